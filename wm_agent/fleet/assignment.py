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
* :func:`solve_sparse` — scalable: ε-scaling auction with lazily grown candidate lists
  (:mod:`wm_agent.fleet.auction`). It is near-optimal against the *full* problem (cost ≤
  optimum + 1.5·max(N, M)·ε) and returns a certified lower bound on the optimal cost.

:func:`solve` picks by size: dense up to ``dense_max``, the auction above. Both treat the
incumbent bonus as a cost (no drone is pinned to its task) and both hold ≤ 1.02× the optimum
on every demand family of :mod:`wm_agent.fleet.instances` (``tests/test_fleet_assign_families.py``;
times in docs/COORDINATOR.md). A multilevel solver (coarse transport over grid groups) was
faster at 10,000 drones but up to 1.14× the optimum on spread-out tasks and several times
it with busy drones, and it raised on valid input; it was removed (issue 16).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from wm_agent.errors import FleetError
from wm_agent.fleet.auction import auction_assign, cell_spread

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class Matching(NamedTuple):
    """Result of an assignment solve.

    Attributes:
        drone_idx: (K,) row indices into the drone arrays, ascending.
        task_idx: (K,) matching column indices into the task arrays.
        total_cost: sum of the matched costs [s] (incumbent bonus included).
        lower_bound: no assignment of the same problem costs less [s]; equals
            ``total_cost`` from the optimal solver, a dual bound from the scalable one.
    """

    drone_idx: IntArray
    task_idx: IntArray
    total_cost: float
    lower_bound: float = float("-inf")


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


def _pairs_cost(drone_xyz: FloatArray, task_xyz: FloatArray, offsets: FloatArray, speed_mps: float,
                incumbent: IntArray, bonus_s: float, d_idx: IntArray, t_idx: IntArray) -> float:
    """Total cost [s] of the matched pairs (travel + offsets − incumbent bonus)."""
    cost = np.linalg.norm(drone_xyz[d_idx] - task_xyz[t_idx], axis=1) / speed_mps
    cost += offsets[t_idx]
    cost -= np.where(incumbent[d_idx] == t_idx, bonus_s, 0.0)
    return float(cost.sum())


def _empty() -> Matching:
    return Matching(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0, 0.0)


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
    total = float(cost[rows, cols].sum())
    return Matching(rows.astype(np.int64), cols.astype(np.int64), total, total)


# tasks bid for drones in a square problem when the drones' search cells are this much
# narrower than the tasks' (bench/assign_speed.py, 10,000: line 4.2 → 1.3-1.6 s; stations keep
# drones bidding, 1.0 vs 2.6 s the other way; uniform and shelves within ±15 % either way)
TASKS_BID_SPREAD_RATIO = 0.5


def tasks_bid(drone_xyz: FloatArray, task_xyz: FloatArray) -> bool:
    """Whether the auction lets the tasks bid for the drones (otherwise the drones bid).

    The smaller side must bid (the larger one gets implicit dummy bidders). With as many
    tasks as drones either side may, and the time goes into the bidders' exact searches over
    cells of the other side, whose distance bounds are as loose as the cells are wide; so
    the side whose cells are much narrower (:func:`~wm_agent.fleet.auction.cell_spread`) is
    the one bid for.
    """
    n, m = drone_xyz.shape[0], task_xyz.shape[0]
    if n != m:
        return n > m
    return cell_spread(drone_xyz) < TASKS_BID_SPREAD_RATIO * cell_spread(task_xyz)


def solve_sparse(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed_mps: float,
    *,
    k: int = 8,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
    eps_final_s: float = 0.01,
) -> Matching:
    """Scalable near-optimal assignment (ε-scaling auction, :mod:`wm_agent.fleet.auction`).

    Same arguments and result as :func:`solve_dense`, plus ``k`` (initial candidates per
    person) and ``eps_final_s`` [s] (cost ≤ optimum + 1.5·max(N, M)·``eps_final_s``).
    Always returns min(N, M) pairs; ``lower_bound`` is a dual bound on the optimum.

    The smaller side bids (:func:`tasks_bid`; with N = M the side bid for is the one with
    the narrower search cells). When every task gets matched (N ≥ M) the task offsets add
    the same constant to every assignment, so they are left out of the auction and added back.
    """
    _check_inputs(drone_xyz, task_xyz, offsets, incumbent)
    if k < 1:
        raise FleetError(f"k must be ≥ 1, got {k}")
    n, m = drone_xyz.shape[0], task_xyz.shape[0]
    if n == 0 or m == 0:
        return _empty()
    inc = incumbent if incumbent is not None else np.full(n, -1, dtype=np.int64)
    offsets_matter = n < m
    if not tasks_bid(drone_xyz, task_xyz):  # drones bid for tasks
        res = auction_assign(
            drone_xyz, task_xyz, offsets if offsets_matter else np.zeros(m), speed_mps,
            incumbent=inc, incumbent_bonus_s=incumbent_bonus_s, k=k,
            eps_final_s=eps_final_s,
        )
        d_idx, t_idx = np.arange(n, dtype=np.int64), res.assigned
    else:  # tasks bid for drones; a task's incumbent is the drone holding it
        t_inc = np.full(m, -1, dtype=np.int64)
        held = np.flatnonzero(inc >= 0)
        t_inc[inc[held]] = held
        res = auction_assign(
            task_xyz, drone_xyz, np.zeros(n), speed_mps, incumbent=t_inc,
            incumbent_bonus_s=incumbent_bonus_s, k=k, eps_final_s=eps_final_s,
        )
        order = np.argsort(res.assigned)
        d_idx, t_idx = res.assigned[order], np.arange(m, dtype=np.int64)[order]
    const = 0.0 if offsets_matter else float(offsets.sum())
    cost = _pairs_cost(drone_xyz, task_xyz, offsets, speed_mps, inc, incumbent_bonus_s, d_idx, t_idx)
    return Matching(d_idx, t_idx, cost, res.lower_bound + const)


def warm_up() -> None:
    """Compile the auction's numba kernels, or load them from their cache, now: a first solve
    above ``dense_max`` would otherwise spend 10-20 s compiling (once per machine and source
    change) inside a running coordinator — a lockstep run stalls on it. ~1 s when cached."""
    rng = np.random.default_rng(0)
    drones, tasks = rng.uniform(0.0, 10.0, (6, 3)), rng.uniform(0.0, 10.0, (9, 3))
    for d, t in ((drones, tasks), (tasks, drones)):  # both orientations (dummy bidders too)
        solve_sparse(d, t, np.zeros(len(t)), 1.0, incumbent=np.full(len(d), -1, np.int64))


def solve(
    drone_xyz: FloatArray,
    task_xyz: FloatArray,
    offsets: FloatArray,
    speed_mps: float,
    *,
    dense_max: int = 300,
    k: int = 8,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
) -> Matching:
    """Dense optimal solve up to ``dense_max`` drones and tasks, the auction above.

    ``k``: initial candidate tasks per drone of the auction (it grows them as needed).
    """
    if max(drone_xyz.shape[0], task_xyz.shape[0]) <= dense_max:
        return solve_dense(
            drone_xyz, task_xyz, offsets, speed_mps,
            incumbent=incumbent, incumbent_bonus_s=incumbent_bonus_s,
        )
    return solve_sparse(
        drone_xyz, task_xyz, offsets, speed_mps, k=k,
        incumbent=incumbent, incumbent_bonus_s=incumbent_bonus_s,
    )
