"""ε-scaling forward auction for large assignment problems (kernels compiled with numba).

Persons are the smaller side, objects the larger; person ``i`` values object ``j`` at
``-c[i, j] - p[j]`` with prices ``p`` [s]. Bertsekas' forward auction, Gauss-Seidel (one
unassigned person bids at a time, FIFO queue), with ε-scaling: prices carry over from phase
to phase (ε shrinks by about ``theta``, the last phase exactly at the final ε) and
assignments still ε-CS at the new ε are kept.

*Searches run in batches.* A person whose list may miss a better object (below) waits
until ``SEARCH_BATCH`` such persons have gathered or the queue is empty; their exact
searches then run in parallel (numba ``prange``; they only read prices) and each bids at
once on its grown list with the current prices. Prices only rise, so a bound found by a
search stays a valid bound until the bid. Objects are renumbered cell by cell first, so a
search reads each cell's objects in memory order.

*Candidates are lazy; the guarantee is over the full problem, not a pruned graph.* Each
person starts with its ``k`` nearest objects (plus, per object, its ``k_object`` nearest
persons, plus its incumbent). Before bidding, a person compares its best candidate with an
upper bound on the value of every object *not* in its list: the smaller of (a) its k-th
nearest distance minus the cheapest ``offset + price`` anywhere and (b) the bound left by
its last exact search. If the bound is higher, an exact search over a grid of object cells
(ranked by ``-dist(person, cell box) / v - min(offset + price in cell)``, scanned best-first)
adds its truly best ``r_add`` objects and records a new bound. In the intermediate phases
a search is only triggered when the bound beats the best candidate by ``slack_mid * ε``
(those phases only shape the prices); before the final phase every person's bound is
refreshed and the final phase searches at ``ε / 2``, so the final assignment is
1.5ε-complementary-slack against *every* object: its cost is at most ``1.5 * O * ε`` above
the optimum. No pruning can strand a person.

*Lower bound.* From the final prices, ``pi_i = max_j (-c_ij - p_j)`` over all objects (by
the same cell search) and the dummies' ``-min p`` form a feasible LP dual, so
``-(sum pi + sum p + dummies)`` ≤ optimal cost (:func:`_dual_bound`).

*Rectangular.* With P < O, O − P identical dummy persons value every object at 0: a free
dummy takes the cheapest object not held by a dummy (a segment tree over prices) at the
second-cheapest price + ε; prices of dummy-held objects are raised lazily to a common floor
so the dummies are ε-CS too.

The kernels compile on first use (``cache=True``: several seconds once, then loaded from
the cache in ``__pycache__``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import numba
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from wm_agent.errors import FleetError
from wm_agent.fleet.cells import chunked_cells

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(func: _F) -> _F:
    """Compile with numba, cached on disk (``__pycache__``) after the first run."""
    compiled: _F = numba.njit(cache=True)(func)  # type: ignore[assignment]
    return compiled


IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]

_DUMMY = -2
# persons whose exact searches run together, on every core numba has (bench/assign_speed.py at
# 10,000 on 2 cores, shelves / line / half: one at a time 2.6-3.0 / 1.3-1.8 / 1.7-1.9 s, 16 at
# a time 1.3-1.6 / 1.0-1.3 / 1.1-1.4 s, 64 at a time 1.2-1.4 / 1.0-1.2 / 1.0-1.2 s)
SEARCH_BATCH = 64
_INF = np.inf


class AuctionResult(NamedTuple):
    """Assignment of persons to objects with its certificate.

    Attributes:
        assigned: (P,) object index of every person.
        cost: total cost of the assignment [s] (the solver's internal costs).
        lower_bound: dual bound [s]: no assignment of the same problem costs less.
        bids: number of bids made.
        searches: number of exact candidate searches.
        phases: number of ε phases run.
    """

    assigned: IntArray
    cost: float
    lower_bound: float
    bids: int
    searches: int
    phases: int


@_jit
def _cost(i: int, j: int, px: FloatArray, ox: FloatArray, off: FloatArray, inv_speed: float,
          inc: IntArray, bonus: float) -> float:
    d0 = px[i, 0] - ox[j, 0]
    d1 = px[i, 1] - ox[j, 1]
    d2 = px[i, 2] - ox[j, 2]
    c = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2) * inv_speed + off[j]
    if inc[i] == j:
        c -= bonus
    return c


@_jit
def _peff(j: int, price: FloatArray, owner: IntArray, lam: float) -> float:
    """Price of object j; dummy-held objects are at least at the dummy floor ``lam``."""
    p = price[j]
    if owner[j] == _DUMMY and lam > p:
        return lam
    return p


@_jit
def _cell_min(c: int, off: FloatArray, price: FloatArray, owner: IntArray, lam: float,
              cstart: IntArray) -> float:
    """Min over the objects in cell c of offset + price."""
    m = _INF
    for j in range(cstart[c], cstart[c + 1]):
        v = off[j] + _peff(j, price, owner, lam)
        if v < m:
            m = v
    return m


@_jit
def _refresh_cells(off: FloatArray, price: FloatArray, owner: IntArray, lam: float,
                   cstart: IntArray, cmin: FloatArray) -> float:
    """cmin[c] = min over objects in cell c of offset + price; returns the global min."""
    glob = _INF
    for c in range(cmin.size):
        m = _cell_min(c, off, price, owner, lam, cstart)
        cmin[c] = m
        if m < glob:
            glob = m
    return glob


@_jit
def _sift_down(heap: IntArray, key: FloatArray, s: int, n: int) -> None:
    """Restore the max-heap property of heap[:n] (ordered by key) below position s."""
    item = heap[s]
    v = key[item]
    while True:
        c = 2 * s + 1
        if c >= n:
            break
        if c + 1 < n and key[heap[c + 1]] > key[heap[c]]:
            c += 1
        if key[heap[c]] <= v:
            break
        heap[s] = heap[c]
        s = c
    heap[s] = item


@_jit
def _search(i: int, r: int, px: FloatArray, ox: FloatArray, off: FloatArray, inv_speed: float,
            inc: IntArray, bonus: float, price: FloatArray, owner: IntArray, lam: float,
            cstart: IntArray, clo: FloatArray, chi: FloatArray,
            cmin: FloatArray, ub: FloatArray, rank: IntArray, top_obj: IntArray,
            top_val: FloatArray) -> tuple[int, float]:
    """Exact top-r objects of person i by value; returns (count, bound on all others).

    Cells are scanned best-first by the upper bound ``-dist(person, cell box) / v -
    min(offset + price in cell)`` until no unscanned cell can beat the r-th best found.
    """
    n_c = cmin.size
    for c in range(n_c):
        dx = max(clo[c, 0] - px[i, 0], px[i, 0] - chi[c, 0], 0.0)
        dy = max(clo[c, 1] - px[i, 1], px[i, 1] - chi[c, 1], 0.0)
        dz = max(clo[c, 2] - px[i, 2], px[i, 2] - chi[c, 2], 0.0)
        ub[c] = -math.sqrt(dx * dx + dy * dy + dz * dz) * inv_speed - cmin[c]
    # max-heap of cell indices by ub, built in O(C); usually only a few cells are popped
    heap = rank
    for c in range(n_c):
        heap[c] = c
    for s in range(n_c // 2 - 1, -1, -1):
        _sift_down(heap, ub, s, n_c)
    n_heap = n_c
    n_top = 0
    spill = -_INF
    rest = -_INF
    while n_heap > 0:
        best_c = heap[0]
        best_u = ub[best_c]
        if n_top == r and best_u <= top_val[r - 1]:
            rest = best_u
            break
        n_heap -= 1
        heap[0] = heap[n_heap]
        _sift_down(heap, ub, 0, n_heap)
        for j in range(cstart[best_c], cstart[best_c + 1]):
            v = -_cost(i, j, px, ox, off, inv_speed, inc, bonus) - _peff(j, price, owner, lam)
            if n_top == r:
                if v <= top_val[r - 1]:
                    if v > spill:
                        spill = v
                    continue
                if top_val[r - 1] > spill:
                    spill = top_val[r - 1]
                pos = r - 1
            else:
                pos = n_top
                n_top += 1
            while pos > 0 and top_val[pos - 1] < v:
                top_val[pos] = top_val[pos - 1]
                top_obj[pos] = top_obj[pos - 1]
                pos -= 1
            top_val[pos] = v
            top_obj[pos] = j
    return n_top, max(spill, rest)



@numba.njit(parallel=True, cache=True)
def _search_batch(who: IntArray, cnt: int, r: int, px: FloatArray, ox: FloatArray,
                  off: FloatArray, inv_speed: float, inc: IntArray, bonus: float,
                  price: FloatArray, owner: IntArray, lam: float, cstart: IntArray,
                  clo: FloatArray, chi: FloatArray, cmin: FloatArray, s_ub: FloatArray,
                  s_rank: IntArray, s_obj: IntArray, s_val: FloatArray, s_n: IntArray,
                  s_b: FloatArray) -> None:
    """:func:`_search` for persons who[:cnt], one slot of buffers each: on every core numba
    has for two or more (they only read prices and cells), inline for one (no thread start)."""
    if cnt == 1:
        s_n[0], s_b[0] = _search(who[0], r, px, ox, off, inv_speed, inc, bonus, price, owner,
                                 lam, cstart, clo, chi, cmin, s_ub[0], s_rank[0], s_obj[0],
                                 s_val[0])
        return
    for s in numba.prange(cnt):
        s_n[s], s_b[s] = _search(who[s], r, px, ox, off, inv_speed, inc, bonus, price, owner,
                                 lam, cstart, clo, chi, cmin, s_ub[s], s_rank[s], s_obj[s],
                                 s_val[s])


@_jit
def _add_edges(i: int, n_top: int, top_obj: IntArray, px: FloatArray, ox: FloatArray,
               off: FloatArray, inv_speed: float, inc: IntArray, bonus: float,
               adj_obj: IntArray, adj_cost: FloatArray, rstart: IntArray, rlen: IntArray,
               rcap: IntArray, used: int) -> tuple[IntArray, FloatArray, int]:
    """Append the objects top_obj[:n_top] that person i does not list yet (grows the pool)."""
    if rlen[i] + n_top > rcap[i]:
        cap = max(2 * rcap[i], rlen[i] + n_top)
        if used + cap > adj_obj.size:
            grow = max(2 * adj_obj.size, used + cap)
            a_obj = np.empty(grow, np.int64)
            a_cost = np.empty(grow)
            a_obj[:used] = adj_obj[:used]
            a_cost[:used] = adj_cost[:used]
            adj_obj = a_obj
            adj_cost = a_cost
        s0 = rstart[i]
        for t in range(rlen[i]):
            adj_obj[used + t] = adj_obj[s0 + t]
            adj_cost[used + t] = adj_cost[s0 + t]
        rstart[i] = used
        rcap[i] = cap
        used += cap
    for q in range(n_top):
        j = top_obj[q]
        known = False
        for t in range(rstart[i], rstart[i] + rlen[i]):
            if adj_obj[t] == j:
                known = True
                break
        if not known:
            adj_obj[rstart[i] + rlen[i]] = j
            adj_cost[rstart[i] + rlen[i]] = _cost(i, j, px, ox, off, inv_speed,
                                                   inc, bonus)
            rlen[i] += 1
    return adj_obj, adj_cost, used


@_jit
def _seg_set(tree: FloatArray, size: int, j: int, v: float) -> None:
    k = size + j
    tree[k] = v
    k //= 2
    while k >= 1:
        a = tree[2 * k]
        b = tree[2 * k + 1]
        tree[k] = a if a <= b else b
        k //= 2


@_jit
def _seg_argmin(tree: FloatArray, size: int) -> int:
    k = 1
    while k < size:
        k = 2 * k if tree[2 * k] <= tree[2 * k + 1] else 2 * k + 1
    return k - size


@_jit
def _auction(px: FloatArray, ox: FloatArray, off: FloatArray, inv_speed: float, inc: IntArray,
             bonus: float, rad: FloatArray, n_dummy: int, adj_obj: IntArray,
             adj_cost: FloatArray, rstart: IntArray, rlen: IntArray, rcap: IntArray, used: int,
             cell_of: IntArray, cstart: IntArray, clo: FloatArray,
             chi: FloatArray, eps0: float, eps_final: float, theta: float, r_add: int,
             slack_mid: float, max_bids: int, batch: int, price: FloatArray, owner: IntArray,
             assigned: IntArray) -> tuple[int, int, int, float, int]:
    """Run all ε phases in place; returns (bids, searches, phases, dummy floor, status)."""
    n_p = px.shape[0]
    n_o = ox.shape[0]
    n_c = cstart.size - 1
    beta = np.full(n_p, _INF)
    cmin = np.empty(n_c)
    # search slots: persons whose list may miss a better object wait in `pend` until
    # `batch` of them (or the queue is empty), then search at once
    s_ub = np.empty((batch, n_c))
    s_rank = np.empty((batch, n_c), np.int64)
    s_obj = np.empty((batch, r_add), np.int64)
    s_val = np.empty((batch, r_add))
    s_n = np.empty(batch, np.int64)
    s_b = np.empty(batch)
    pend = np.empty(batch, np.int64)
    ready = np.empty(batch, np.int64)
    queue = np.empty(n_p, np.int64)
    size = 1
    while size < n_o:
        size *= 2
    tree = np.full(2 * size, _INF)
    bids = 0
    searches = 0
    phases = 0
    lam = -_INF
    eps = eps0
    while True:
        phases += 1
        # free the dummies: their objects keep the floor price
        for j in range(n_o):
            if owner[j] == _DUMMY:
                if lam > price[j]:
                    price[j] = lam
                owner[j] = -1
        lam = -_INF
        mop = _refresh_cells(off, price, owner, lam, cstart, cmin)
        if eps <= eps_final:
            # fresh bounds for everyone before the phase that carries the guarantee
            for i0 in range(0, n_p, batch):
                cnt = min(batch, n_p - i0)
                for s in range(cnt):
                    pend[s] = i0 + s
                _search_batch(pend, cnt, r_add, px, ox, off, inv_speed, inc, bonus, price,
                              owner, lam, cstart, clo, chi, cmin, s_ub, s_rank, s_obj,
                              s_val, s_n, s_b)
                for s in range(cnt):
                    beta[i0 + s] = s_b[s]
                    adj_obj, adj_cost, used = _add_edges(i0 + s, s_n[s], s_obj[s], px, ox, off,
                                                         inv_speed, inc, bonus, adj_obj,
                                                         adj_cost, rstart, rlen, rcap, used)
                searches += cnt
        # keep assignments that are still eps-CS, queue the rest
        qh = 0
        qn = 0
        for i in range(n_p):
            j0 = assigned[i]
            if j0 >= 0:
                own = -_cost(i, j0, px, ox, off, inv_speed, inc, bonus) - price[j0]
                best = min(beta[i], -rad[i] * inv_speed - mop)
                for t in range(rstart[i], rstart[i] + rlen[i]):
                    v = -adj_cost[t] - price[adj_obj[t]]
                    if v > best:
                        best = v
                if own < best - eps:
                    owner[j0] = -1
                    assigned[i] = -1
            if assigned[i] < 0:
                queue[(qh + qn) % n_p] = i
                qn += 1
        free_d = n_dummy
        if n_dummy > 0:
            for j in range(size):
                tree[size + j] = price[j] if j < n_o else _INF
            for k in range(size - 1, 0, -1):
                a = tree[2 * k]
                b = tree[2 * k + 1]
                tree[k] = a if a <= b else b
        since_refresh = 0
        slack = 0.5 if eps <= eps_final else slack_mid
        npend = 0
        nready = 0
        while qn > 0 or free_d > 0 or npend > 0 or nready > 0:
            if npend == batch or (npend > 0 and qn == 0 and nready == 0):
                # exact searches of the waiting persons, then they bid on fresh lists
                since_refresh += npend
                if since_refresh >= 64:
                    mop = cmin.min()
                    since_refresh = 0
                _search_batch(pend, npend, r_add, px, ox, off, inv_speed, inc, bonus, price,
                              owner, lam, cstart, clo, chi, cmin, s_ub, s_rank, s_obj,
                              s_val, s_n, s_b)
                for s in range(npend):
                    beta[pend[s]] = s_b[s]
                    adj_obj, adj_cost, used = _add_edges(pend[s], s_n[s], s_obj[s], px, ox,
                                                         off, inv_speed, inc, bonus, adj_obj,
                                                         adj_cost, rstart, rlen, rcap, used)
                    ready[s] = pend[s]
                searches += npend
                nready = npend
                npend = 0
                continue
            bids += 1
            if bids > max_bids:
                return bids, searches, phases, lam, 1
            if nready > 0 or qn > 0:
                if nready > 0:
                    nready -= 1
                    i = ready[nready]
                    searched = True
                else:
                    i = queue[qh]
                    qh = (qh + 1) % n_p
                    qn -= 1
                    searched = False
                v1 = -_INF
                v2 = -_INF
                j1 = -1
                for t in range(rstart[i], rstart[i] + rlen[i]):
                    j = adj_obj[t]
                    v = -adj_cost[t] - _peff(j, price, owner, lam)
                    if v > v1:
                        v2 = v1
                        v1 = v
                        j1 = j
                    elif v > v2:
                        v2 = v
                bound = min(beta[i], -rad[i] * inv_speed - mop)
                if not searched and v1 < bound - slack * eps:
                    # an object outside the list may be better: exact search first
                    bids -= 1
                    pend[npend] = i
                    npend += 1
                    continue
                if v2 < bound:
                    v2 = min(bound, v1)
                if v2 == -_INF:  # a single object in the whole problem
                    v2 = v1 - 1.0
                old = _peff(j1, price, owner, lam)
                bid = old + v1 - v2 + eps
                prev = owner[j1]
                if prev >= 0:
                    assigned[prev] = -1
                    queue[(qh + qn) % n_p] = prev
                    qn += 1
                elif prev == _DUMMY:
                    free_d += 1
                owner[j1] = i
                assigned[i] = j1
                price[j1] = bid
                _price_rose(j1, off[j1] + old, off, price, owner, lam, cell_of, cstart,
                            cmin)
                if n_dummy > 0:
                    _seg_set(tree, size, j1, bid)
            else:
                # a free dummy takes the cheapest object not held by a dummy
                j1 = _seg_argmin(tree, size)
                p1 = tree[size + j1]
                _seg_set(tree, size, j1, _INF)
                q2 = tree[1]
                if q2 == _INF:
                    q2 = p1
                if q2 > lam:
                    lam = q2
                prev = owner[j1]
                if prev >= 0:
                    assigned[prev] = -1
                    queue[(qh + qn) % n_p] = prev
                    qn += 1
                owner[j1] = _DUMMY
                price[j1] = q2 + eps
                _price_rose(j1, off[j1] + p1, off, price, owner, lam, cell_of, cstart,
                            cmin)
                free_d -= 1
        if eps <= eps_final:
            break
        eps = max(eps / theta, eps_final)
    return bids, searches, phases, lam, 0


@_jit
def _dual_bound(px: FloatArray, ox: FloatArray, off: FloatArray, inv_speed: float,
                inc: IntArray, bonus: float, n_dummy: int, price: FloatArray, owner: IntArray,
                lam: float, cstart: IntArray, clo: FloatArray,
                chi: FloatArray) -> float:
    """Lower bound on the minimum cost from any prices (weak LP duality).

    With profits ``pi_i = max_j (-c_ij - p_j)`` over *all* objects and the dummies' profit
    ``-min_j p_j``, ``(pi, p)`` is dual feasible, so ``-(sum pi + n_dummy * pi_dummy +
    sum p)`` ≤ the optimal cost.
    """
    n_p = px.shape[0]
    n_o = ox.shape[0]
    n_c = cstart.size - 1
    cmin = np.empty(n_c)
    batch = SEARCH_BATCH
    s_ub = np.empty((batch, n_c))
    s_rank = np.empty((batch, n_c), np.int64)
    s_obj = np.empty((batch, 1), np.int64)
    s_val = np.empty((batch, 1))
    s_n = np.empty(batch, np.int64)
    s_b = np.empty(batch)
    who = np.empty(batch, np.int64)
    _refresh_cells(off, price, owner, lam, cstart, cmin)
    total = 0.0
    pmin = _INF
    for j in range(n_o):
        p = _peff(j, price, owner, lam)
        total += p
        if p < pmin:
            pmin = p
    for i0 in range(0, n_p, batch):
        cnt = min(batch, n_p - i0)
        for s in range(cnt):
            who[s] = i0 + s
        _search_batch(who, cnt, 1, px, ox, off, inv_speed, inc, bonus, price, owner, lam,
                      cstart, clo, chi, cmin, s_ub, s_rank, s_obj, s_val, s_n, s_b)
        for s in range(cnt):
            i = i0 + s
            best = s_val[s, 0]
            if inc[i] >= 0:  # the bonus edge may beat its cell's bound
                v = -_cost(i, inc[i], px, ox, off, inv_speed, inc, bonus) - _peff(
                    inc[i], price, owner, lam)
                if v > best:
                    best = v
            total += best
    if n_dummy > 0:
        total += -pmin * n_dummy
    return -total


def _object_cells(xyz: FloatArray, offsets: FloatArray, per_cell: float, chunk: int = 128
                  ) -> tuple[IntArray, IntArray, IntArray, FloatArray, FloatArray]:
    """Search cells over the objects: an (x, y) grid, each cell split into chunks of at most
    ``chunk`` objects (cheapest offset first), so coincident objects (a pick station) do not
    form one huge cell. Returns (cell_of (O,), order (O,), start (C+1,), box lo (C, 3), hi)."""
    n = xyz.shape[0]
    lo = xyz[:, :2].min(axis=0)
    ext = np.maximum(xyz[:, :2].max(axis=0) - lo, 1e-6)
    # by the spread's area, or by its length where it has no width (tasks in one line would
    # otherwise get millimetre cells of one task each)
    by_area = float(np.sqrt(ext[0] * ext[1] * per_cell / max(n, 1)))
    h = max(by_area, float(ext.max()) * per_cell / max(n, 1), 1e-3)
    nx, ny = int(ext[0] // h) + 1, int(ext[1] // h) + 1
    ij = np.minimum(((xyz[:, :2] - lo) // h).astype(np.int64), [nx - 1, ny - 1])
    grid = ij[:, 0] * ny + ij[:, 1]
    order, start, cell_of = chunked_cells(grid, offsets, chunk)
    sx = xyz[order]
    return (cell_of, order, start, np.minimum.reduceat(sx, start[:-1], axis=0),
            np.maximum.reduceat(sx, start[:-1], axis=0))


def cell_spread(xyz: FloatArray, per_cell: float = 32.0) -> float:
    """Mean diagonal [m] of the search cells :func:`auction_assign` builds over ``xyz`` as
    objects: how loose a cell's distance bound is. A search over objects with wide cells
    scans many of them (issue 16: tasks bidding for drones standing in one line, 0.6 m
    cells, took 1.3-1.6 s at 10,000; drones bidding for the tasks, 11.8 m cells, 3.9-4.2 s)."""
    if xyz.shape[0] == 0:
        return 0.0
    _, _, _, lo, hi = _object_cells(np.asarray(xyz, np.float64), np.zeros(xyz.shape[0]),
                                    per_cell)
    return float(np.linalg.norm(hi - lo, axis=1).mean())


@_jit
def _price_rose(j: int, old: float, off: FloatArray, price: FloatArray, owner: IntArray,
                lam: float, cell_of: IntArray, cstart: IntArray,
                cmin: FloatArray) -> None:
    """Keep cmin exact after object j's price rose from ``old`` (offset + price)."""
    c = cell_of[j]
    if old > cmin[c]:
        return
    cmin[c] = _cell_min(c, off, price, owner, lam, cstart)


def auction_assign(
    person_xyz: FloatArray,
    object_xyz: FloatArray,
    object_offsets: FloatArray,
    speed_mps: float,
    *,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
    k: int = 8,
    k_object: int = 2,
    r_add: int = 8,
    eps_final_s: float = 0.01,
    theta: float = 4.0,
    slack_mid: float = 10.0,
    per_cell: float = 32.0,
) -> AuctionResult:
    """Near-optimal assignment of every person (P ≤ O) to a distinct object.

    Cost of person i for object j [s]: ``|x_i - y_j| / v + offset_j``, minus
    ``incumbent_bonus_s`` when ``j == incumbent[i]``.

    Args:
        person_xyz: (P, 3) positions [m], P ≤ O.
        object_xyz: (O, 3) positions [m].
        object_offsets: (O,) per-object cost offsets [s].
        speed_mps: speed [m/s].
        incumbent: (P,) object index each person holds now, or -1.
        incumbent_bonus_s: cost reduction of the incumbent edge [s].
        k: nearest objects per person in the initial candidate lists.
        k_object: nearest persons per object added to the lists.
        r_add: objects an exact search adds to a person's list.
        eps_final_s: final ε [s]; the cost is at most ``1.5 * O * eps_final_s`` above
            the optimum (the returned lower bound is usually much tighter).
        theta: ε reduction factor between phases (the first ε is the cost span / theta; the
            factor is lowered slightly so the last phase lands exactly on ``eps_final_s``).
        slack_mid: in the intermediate phases, search only when a person's bound beats its
            best candidate by this many ε.
        per_cell: mean objects per search cell.

    Raises:
        FleetError: P > O (swap the sides) or the bid limit was hit (a bug, not an input).
    """
    n_p, n_o = person_xyz.shape[0], object_xyz.shape[0]
    if n_p > n_o:
        raise FleetError(f"auction_assign needs persons ≤ objects, got {n_p} > {n_o}")
    px = np.ascontiguousarray(person_xyz, dtype=np.float64)
    ox = np.ascontiguousarray(object_xyz, dtype=np.float64)
    off = np.ascontiguousarray(object_offsets, dtype=np.float64)
    inc = (np.full(n_p, -1, np.int64) if incumbent is None
           else np.ascontiguousarray(incumbent, dtype=np.int64))
    inv_speed = 1.0 / speed_mps
    # objects renumbered cell by cell: a search scans each cell's objects in memory order
    cell_of, perm, cstart, clo, chi = _object_cells(ox, off, per_cell)
    ox, off, cell_of = ox[perm], off[perm], cell_of[perm]
    rank_of = np.empty(n_o, np.int64)
    rank_of[perm] = np.arange(n_o, dtype=np.int64)
    inc = np.where(inc >= 0, rank_of[np.maximum(inc, 0)], -1)
    kk = min(k, n_o)
    dist, nn = cKDTree(ox).query(px, k=kk)
    dist = np.asarray(dist, np.float64).reshape(n_p, kk)
    nn = np.asarray(nn, np.int64).reshape(n_p, kk)
    rad = dist[:, -1].copy() if kk < n_o else np.full(n_p, np.inf)
    er = [np.repeat(np.arange(n_p, dtype=np.int64), kk)]
    ec = [nn.reshape(-1)]
    ko = min(k_object, n_p)
    if ko > 0:
        _, nnp = cKDTree(px).query(ox, k=ko)
        er.append(np.asarray(nnp, np.int64).reshape(-1))
        ec.append(np.repeat(np.arange(n_o, dtype=np.int64), ko))
    has = np.flatnonzero(inc >= 0)
    er.append(has)
    ec.append(inc[has])
    key = np.unique(np.concatenate(er) * n_o + np.concatenate(ec))
    rows, cols = key // n_o, key % n_o
    deg = np.bincount(rows, minlength=n_p).astype(np.int64)
    cap = deg + r_add
    rstart = np.concatenate([[0], np.cumsum(cap)[:-1]]).astype(np.int64)
    used = int(cap.sum())
    adj_obj = np.full(2 * used, -1, np.int64)
    adj_cost = np.full(2 * used, np.inf)
    row_first = np.concatenate([[0], np.cumsum(deg)[:-1]])
    pos = rstart[rows] + np.arange(rows.size) - row_first[rows]
    adj_obj[pos] = cols
    c = np.linalg.norm(px[rows] - ox[cols], axis=1) * inv_speed + off[cols]
    adj_cost[pos] = c - np.where(inc[rows] == cols, incumbent_bonus_s, 0.0)
    span = float(np.linalg.norm(np.ptp(np.concatenate([px, ox]), axis=0))) * inv_speed
    span += float(np.ptp(off)) + abs(incumbent_bonus_s)
    eps0 = max(span / theta, eps_final_s)
    # the ε sequence ends exactly at eps_final_s: a last step of ε/1.4 cost a whole phase
    steps = math.ceil(math.log(eps0 / eps_final_s) / math.log(theta) - 1e-9)
    theta = (eps0 / eps_final_s) ** (1.0 / steps) if steps > 0 else theta
    price = np.zeros(n_o)
    owner = np.full(n_o, -1, np.int64)
    assigned = np.full(n_p, -1, np.int64)
    bids, searches, phases, lam, status = _auction(
        px, ox, off, inv_speed, inc, float(incumbent_bonus_s), rad, n_o - n_p, adj_obj,
        adj_cost, rstart, deg.copy(), cap, used, cell_of, cstart, clo, chi, eps0,
        float(eps_final_s), float(theta), int(r_add), float(slack_mid), 10_000 * (n_o + 10),
        SEARCH_BATCH, price, owner, assigned,
    )
    if status != 0:
        raise FleetError(f"auction hit its bid limit after {bids} bids ({n_p} x {n_o}); "
                         "report this instance")
    lb = _dual_bound(px, ox, off, inv_speed, inc, float(incumbent_bonus_s), n_o - n_p, price,
                     owner, lam, cstart, clo, chi)
    cost = np.linalg.norm(px - ox[assigned], axis=1) * inv_speed + off[assigned]
    cost -= np.where(inc == assigned, incumbent_bonus_s, 0.0)
    return AuctionResult(perm[assigned], float(cost.sum()), float(lb), int(bids), int(searches),
                         int(phases))
