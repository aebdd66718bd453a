"""Drone ↔ task assignment: cost matrix, optimal dense solver, scalable sparse solver.

Cost of drone i doing task j [s]::

    c[i, j] = |p_i - q_j| / v  -  w_p * priority_j  -  w_u * urgency_j

with ``p`` drone positions, ``q`` pickup positions [m], ``v`` the cruise speed [m/s],
``urgency_j = clip(1 - (deadline_j - now) / horizon, 0, 1)`` (0 without a deadline) so a
task close to its deadline is *cheaper* and therefore served first. The task-only terms are
column offsets (:func:`task_offsets`). A busy drone's current task gets a bonus of the
hysteresis threshold (``incumbent``), so it only switches when that saves more.

Two solvers return the same :class:`Matching`:

* :func:`solve_dense` — optimal, ``scipy.optimize.linear_sum_assignment`` on the full
  matrix (measured faster than ``lap.lapjv`` on these geometric instances; see
  docs/COORDINATOR.md). Rectangular problems match every drone or every task.
* :func:`solve_sparse` — scalable: candidate edges from k-d trees (k nearest tasks per
  drone, k nearest drones per task, a rank band for tasks that share one pickup point),
  ``scipy.sparse.csgraph.min_weight_full_bipartite_matching`` on that graph with one
  expensive dummy edge per row so a full matching always exists; rows left on dummies are
  re-solved (doubling k) until the remainder is small enough to solve densely.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching
from scipy.spatial import cKDTree

from wm_agent.errors import FleetError

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class Matching(NamedTuple):
    """Result of an assignment solve.

    Attributes:
        drone_idx: (K,) row indices into the drone arrays, ascending.
        task_idx: (K,) matching column indices into the task arrays.
        total_cost: sum of the matched costs [s] (incumbent bonus included).
    """

    drone_idx: IntArray
    task_idx: IntArray
    total_cost: float


def task_offsets(
    priority: NDArray[np.integer] | FloatArray,
    deadline_s: FloatArray,
    now_s: float,
    *,
    priority_weight_s: float = 0.05,
    urgency_weight_s: float = 10.0,
    urgency_horizon_s: float = 60.0,
) -> FloatArray:
    """Return the (M,) column offsets [s] of the cost (see module docstring).

    Args:
        priority: (M,) 0..255.
        deadline_s: (M,) deadlines [s]; NaN or inf = none.
        now_s: current time [s].
        priority_weight_s: seconds of travel one priority step is worth [s].
        urgency_weight_s: seconds of travel an imminent deadline is worth [s].
        urgency_horizon_s: how long before the deadline urgency starts to grow [s].
    """
    pri = np.asarray(priority, dtype=np.float64)
    dl = np.asarray(deadline_s, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        urgency = np.clip(1.0 - (dl - now_s) / urgency_horizon_s, 0.0, 1.0)
    urgency = np.where(np.isfinite(dl), urgency, 0.0)
    out: FloatArray = -priority_weight_s * pri - urgency_weight_s * urgency
    return out


def cost_matrix(
    drone_xyz: FloatArray, task_xyz: FloatArray, offsets: FloatArray, speed_mps: float
) -> FloatArray:
    """Return the dense (N, M) cost [s] of drones (N, 3) [m] to pickups (M, 3) [m]."""
    diff = drone_xyz[:, None, :] - task_xyz[None, :, :]
    cost: FloatArray = np.sqrt(np.einsum("nmk,nmk->nm", diff, diff)) / speed_mps
    cost += offsets[None, :]
    return cost


def _apply_incumbent(
    cost: FloatArray, incumbent: IntArray | None, bonus_s: float
) -> FloatArray:
    if incumbent is not None and bonus_s != 0.0:
        rows = np.nonzero(incumbent >= 0)[0]
        cost[rows, incumbent[rows]] -= bonus_s
    return cost


def _check_inputs(
    drone_xyz: FloatArray, task_xyz: FloatArray, offsets: FloatArray, incumbent: IntArray | None
) -> None:
    if drone_xyz.ndim != 2 or drone_xyz.shape[1] != 3:
        raise FleetError(f"drone_xyz must be (N, 3) [m], got {drone_xyz.shape}")
    if task_xyz.ndim != 2 or task_xyz.shape[1] != 3:
        raise FleetError(f"task_xyz must be (M, 3) [m], got {task_xyz.shape}")
    if offsets.shape != (task_xyz.shape[0],):
        raise FleetError(f"offsets must be (M,) = ({task_xyz.shape[0]},), got {offsets.shape}")
    if incumbent is not None and (
        incumbent.shape != (drone_xyz.shape[0],) or np.any(incumbent >= task_xyz.shape[0])
    ):
        raise FleetError("incumbent must be (N,) task indices (or -1) below M")
    if not (np.all(np.isfinite(drone_xyz)) and np.all(np.isfinite(task_xyz))):
        raise FleetError("positions must be finite; drop non-finite drones before solving")


def _empty() -> Matching:
    return Matching(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)


def solve_dense(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed_mps: float,
    *,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
) -> Matching:
    """Optimal assignment on the full cost matrix (min(N, M) pairs).

    Args:
        drone_xyz: (N, 3) drone positions [m].
        task_xyz: (M, 3) pickup positions [m].
        offsets: (M,) task column offsets [s] (:func:`task_offsets`).
        speed_mps: cruise speed [m/s].
        incumbent: (N,) current task index of each drone or -1.
        incumbent_bonus_s: cost reduction [s] for keeping the current task (hysteresis).
    """
    _check_inputs(drone_xyz, task_xyz, offsets, incumbent)
    if drone_xyz.shape[0] == 0 or task_xyz.shape[0] == 0:
        return _empty()
    cost = _apply_incumbent(
        cost_matrix(drone_xyz, task_xyz, offsets, speed_mps), incumbent, incumbent_bonus_s
    )
    return solve_cost_matrix(cost)


def solve_cost_matrix(cost: FloatArray) -> Matching:
    """Optimal assignment of a dense (N, M) cost matrix [s] (min(N, M) pairs)."""
    if cost.size == 0:
        return _empty()
    rows, cols = linear_sum_assignment(cost)
    return Matching(
        rows.astype(np.int64), cols.astype(np.int64), float(cost[rows, cols].sum())
    )


def _candidate_edges(
    rows_xyz: FloatArray, cols_xyz: FloatArray, col_rank_key: FloatArray, k: int
) -> tuple[IntArray, IntArray]:
    """Candidate (row, col) edges: k nearest cols per row, k nearest rows per col.

    Columns sharing one position (e.g. many jobs at one pick station) would all pick the
    same k rows; instead the r-th of c coincident columns (ordered by ``col_rank_key``)
    takes the rows ranked r..r+k-1 among the c+k rows nearest to that point.
    """
    n, m = rows_xyz.shape[0], cols_xyz.shape[0]
    k_r = min(k, m)
    col_tree = cKDTree(cols_xyz)
    _, nn = col_tree.query(rows_xyz, k=k_r)
    out_r = [np.repeat(np.arange(n, dtype=np.int64), k_r)]
    out_c = [np.asarray(nn, dtype=np.int64).reshape(-1)]
    # group coincident columns (1 mm grid)
    keys = np.round(cols_xyz * 1000.0).astype(np.int64)
    _, site_of, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    site_of = site_of.reshape(-1)
    order = np.lexsort((col_rank_key, site_of))  # columns grouped by site, best first
    site_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_site = np.empty(m, dtype=np.int64)
    rank_in_site[order] = np.arange(m) - site_start[site_of[order]]
    row_tree = cKDTree(rows_xyz)
    cnt_of_col = counts[site_of]
    for c in np.unique(cnt_of_col):
        cols_c = order[np.isin(site_of[order], np.nonzero(counts == c)[0])]
        # one representative position per site: its first column
        reps = cols_c[rank_in_site[cols_c] == 0]
        kq = int(min(n, c + k))
        _, near = row_tree.query(cols_xyz[reps], k=kq)
        near = np.asarray(near, dtype=np.int64).reshape(len(reps), kq)
        rep_of_site = np.full(counts.shape[0], -1, dtype=np.int64)
        rep_of_site[site_of[reps]] = np.arange(len(reps))
        band = rank_in_site[cols_c][:, None] + np.arange(min(k, kq))[None, :]
        band = np.minimum(band, kq - 1)
        out_r.append(near[rep_of_site[site_of[cols_c]][:, None], band].reshape(-1))
        out_c.append(np.repeat(cols_c, band.shape[1]))
    return np.concatenate(out_r), np.concatenate(out_c)


def solve_sparse(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed_mps: float,
    *,
    k: int = 16,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
    dense_max: int = 1000,
    rounds: int = 1,
) -> Matching:
    """Scalable near-optimal assignment on a k-nearest-neighbour candidate graph.

    Same arguments and result as :func:`solve_dense`, plus ``k`` (candidates per drone and
    per task), ``dense_max`` (a remainder with at most this many rows or columns is solved
    densely) and ``rounds`` (whole-graph solves; each extra round gives rows stranded on
    dummies 4x more candidates: better cost, much slower at 10k). Always returns
    min(N, M) pairs: pruning never loses a drone or task.
    """
    _check_inputs(drone_xyz, task_xyz, offsets, incumbent)
    if k < 1:
        raise FleetError(f"k must be ≥ 1, got {k}")
    n, m = drone_xyz.shape[0], task_xyz.shape[0]
    inc = incumbent if incumbent is not None else np.full(n, -1, dtype=np.int64)
    d_idx, t_idx = _solve_sparse_rec(
        drone_xyz, task_xyz, offsets, speed_mps, k, inc, incumbent_bonus_s, dense_max, rounds
    )
    if d_idx.size == 0:
        return _empty()
    cost = np.linalg.norm(drone_xyz[d_idx] - task_xyz[t_idx], axis=1) / speed_mps
    cost += offsets[t_idx]
    cost -= np.where(inc[d_idx] == t_idx, incumbent_bonus_s, 0.0)
    order = np.argsort(d_idx)
    assert d_idx.size == min(n, m)
    return Matching(d_idx[order], t_idx[order], float(cost.sum()))


def _solve_sparse_rec(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed: float,
    k: int,
    inc: IntArray,
    bonus: float,
    dense_max: int,
    rounds: int,
) -> tuple[IntArray, IntArray]:
    """Solve on the candidate graph; rows left on dummy edges get 4x more candidates and
    the whole graph is solved again (up to ``rounds`` times); what is still unmatched then
    is solved on its own (densely when small)."""
    n, m = drone_xyz.shape[0], task_xyz.shape[0]
    if n == 0 or m == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if min(n, m) <= dense_max or k >= max(n, m):
        cost = _apply_incumbent(cost_matrix(drone_xyz, task_xyz, offsets, speed), inc, bonus)
        r, c = linear_sum_assignment(cost)
        return r.astype(np.int64), c.astype(np.int64)
    # rows = the smaller side, so every row can be matched
    drones_are_rows = n <= m
    row_xyz, col_xyz = (drone_xyz, task_xyz) if drones_are_rows else (task_xyz, drone_xyz)
    col_key = offsets if drones_are_rows else np.zeros(n)
    n_rows, n_cols = row_xyz.shape[0], col_xyz.shape[0]
    er, ec = _candidate_edges(row_xyz, col_xyz, col_key, k)
    has = np.nonzero(inc >= 0)[0]
    er = np.concatenate([er, has if drones_are_rows else inc[has]])
    ec = np.concatenate([ec, inc[has] if drones_are_rows else has])
    col_tree: cKDTree | None = None
    row_tree: cKDTree | None = None
    kk = k
    for rnd in range(rounds):
        key = np.unique(er * n_cols + ec)
        er, ec = key // n_cols, key % n_cols
        d_e, t_e = (er, ec) if drones_are_rows else (ec, er)
        w = np.linalg.norm(drone_xyz[d_e] - task_xyz[t_e], axis=1) / speed + offsets[t_e]
        w -= np.where(inc[d_e] == t_e, bonus, 0.0)
        lo, hi = float(w.min()), float(w.max())
        w = w - lo + 1.0  # strictly positive (the solver drops explicit zeros)
        dummy = 2.0 * (hi - lo) + 2.0
        graph = csr_matrix(
            (np.concatenate([w, np.full(n_rows, dummy)]),
             (np.concatenate([er, np.arange(n_rows)]),
              np.concatenate([ec, n_cols + np.arange(n_rows)]))),
            shape=(n_rows, n_cols + n_rows),
        )
        r, c = min_weight_full_bipartite_matching(graph)
        on_dummy = r[c >= n_cols]
        if on_dummy.size == 0 or rnd == rounds - 1:
            break
        # enrich: stranded rows see 4x more columns, unmatched columns 4x more rows
        kk *= 4
        col_tree = col_tree or cKDTree(col_xyz)
        row_tree = row_tree or cKDTree(row_xyz)
        k1 = min(kk, n_cols)
        _, nn = col_tree.query(row_xyz[on_dummy], k=k1)
        free_c = np.setdiff1d(np.arange(n_cols), c[c < n_cols])
        k2 = min(kk, n_rows)
        _, nr = row_tree.query(col_xyz[free_c], k=k2)
        er = np.concatenate([er, np.repeat(on_dummy, k1), np.asarray(nr, np.int64).ravel()])
        ec = np.concatenate([ec, np.asarray(nn, np.int64).ravel(), np.repeat(free_c, k2)])
    real = c < n_cols
    r, c = r[real].astype(np.int64), c[real].astype(np.int64)
    d_idx, t_idx = (r, c) if drones_are_rows else (c, r)
    # remainder: unmatched drones x unmatched tasks, solved on their own
    free_d = np.setdiff1d(np.arange(n), d_idx)
    free_t = np.setdiff1d(np.arange(m), t_idx)
    if free_d.size and free_t.size:
        inc_sub = np.full(free_d.size, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(free_t, inc[free_d]), free_t.size - 1)
        ok = (inc[free_d] >= 0) & (free_t[pos] == inc[free_d])
        inc_sub[ok] = pos[ok]
        sd, st = _solve_sparse_rec(
            drone_xyz[free_d], task_xyz[free_t], offsets[free_t], speed, 4 * kk, inc_sub,
            bonus, dense_max, rounds,
        )
        d_idx = np.concatenate([d_idx, free_d[sd]])
        t_idx = np.concatenate([t_idx, free_t[st]])
    return d_idx, t_idx


def solve(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed_mps: float,
    *,
    dense_max: int = 1500,
    k: int = 16,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
) -> Matching:
    """Dense optimal solve up to ``dense_max`` drones and tasks, sparse above."""
    if max(drone_xyz.shape[0], task_xyz.shape[0]) <= dense_max:
        return solve_dense(
            drone_xyz, task_xyz, offsets, speed_mps,
            incumbent=incumbent, incumbent_bonus_s=incumbent_bonus_s,
        )
    return solve_sparse(
        drone_xyz, task_xyz, offsets, speed_mps, k=k,
        incumbent=incumbent, incumbent_bonus_s=incumbent_bonus_s, dense_max=dense_max,
    )
