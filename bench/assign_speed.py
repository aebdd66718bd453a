"""Benchmark the fleet assignment solvers on warehouse-like instances.

Drones are spread uniformly over the floor of ``sim/scenarios/warehouse.yaml`` (40 x 30 m);
task pickups are 20 % at the four pick stations and 80 % at shelf-slot faces (random x
along a shelf row, aisle side, one of three shelf levels); priorities are uniform 0..255
and a third of the tasks carry a deadline. For every size the scalable sparse solver runs
beside the optimal dense solver (``scipy.optimize.linear_sum_assignment``) on the same
instance, and the table prints seconds, the cost gap per matched pair [s] and, for square
instances (every task matched, so the priority/deadline offsets add the same constant to
both), the ratio of total travel time sparse / optimal.

Usage::

    python bench/assign_speed.py --sizes 100 1000 2000 10000 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from wm_agent.fleet.assignment import (
    Matching,
    cost_matrix,
    solve_cost_matrix,
    solve_sparse,
    task_offsets,
)

FLOOR = np.array([40.0, 30.0])
PICK_STATIONS = np.array([[3.0, y, 1.0] for y in (5.0, 12.0, 19.0, 26.0)])
SPEED_MPS = 1.0


def warehouse_instance(
    n_drones: int, n_tasks: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return drone positions (N, 3) [m], pickup positions (M, 3) [m], offsets (M,) [s]."""
    drones = np.column_stack(
        [rng.uniform(0.3, FLOOR[0] - 0.3, n_drones), rng.uniform(0.3, FLOOR[1] - 0.3, n_drones),
         rng.uniform(0.5, 2.0, n_drones)]
    )
    n_station = int(0.2 * n_tasks)
    at_station = PICK_STATIONS[rng.integers(0, 4, n_station)]
    n_shelf = n_tasks - n_station
    row = rng.integers(0, 6, n_shelf)
    side = rng.integers(0, 2, n_shelf)
    shelf = np.column_stack(
        [rng.uniform(8.0, 20.0, n_shelf), 6.0 + 3.5 * row + np.where(side == 0, -0.3, 1.1),
         rng.choice([0.5, 1.5, 2.5], n_shelf)]
    )
    tasks = np.concatenate([at_station, shelf])[rng.permutation(n_tasks)]
    priority = rng.integers(0, 256, n_tasks)
    deadline = np.where(rng.random(n_tasks) < 1 / 3, rng.uniform(10.0, 300.0, n_tasks), np.inf)
    return drones, tasks, task_offsets(priority, deadline, 0.0)


def cost_of(m: Matching, drones: NDArray[np.float64], tasks: NDArray[np.float64],
            offsets: NDArray[np.float64]) -> float:
    """Total cost [s] of a matching (travel time plus offsets)."""
    c = np.linalg.norm(drones[m.drone_idx] - tasks[m.task_idx], axis=1) / SPEED_MPS
    return float((c + offsets[m.task_idx]).sum())


def main(args: list[str] | None = None) -> None:
    """Parse arguments, run every size, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 2000, 10000],
                   help="drones = tasks per instance")
    p.add_argument("--tasks-per-drone", type=float, default=1.0,
                   help="tasks / drones ratio (rectangular when != 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=16, help="sparse candidates per drone and task")
    p.add_argument("--rounds", type=int, default=1,
                   help="sparse solver: whole-graph solves with enriched candidates")
    p.add_argument("--dense-max", type=int, default=1000,
                   help="sparse solver: remainder size solved densely")
    p.add_argument("--optimal-max", type=int, default=4000,
                   help="skip the optimal dense solve above this many drones (4000: ~40 s)")
    a = p.parse_args(args)
    print(f"{'drones':>7} {'tasks':>7} {'sparse_s':>9} {'optimal_s':>9} {'gap_s/pair':>10}"
          f" {'ratio':>8}  (ratio = sparse / optimal total travel time, square only)")
    for n in a.sizes:
        rng = np.random.default_rng(a.seed)
        m_tasks = max(1, round(n * a.tasks_per_drone))
        drones, tasks, offsets = warehouse_instance(n, m_tasks, rng)
        t0 = time.perf_counter()
        sp = solve_sparse(drones, tasks, offsets, SPEED_MPS, k=a.k, dense_max=a.dense_max,
                          rounds=a.rounds)
        t_sparse = time.perf_counter() - t0
        c_sparse = cost_of(sp, drones, tasks, offsets)
        if n <= a.optimal_max:
            t0 = time.perf_counter()
            opt = solve_cost_matrix(cost_matrix(drones, tasks, offsets, SPEED_MPS))
            t_opt = time.perf_counter() - t0
            c_opt = cost_of(opt, drones, tasks, offsets)
            gap = f"{(c_sparse - c_opt) / max(1, len(opt.task_idx)):10.4f}"
            if m_tasks == n:  # all tasks matched: offsets cancel, compare travel time
                const = float(offsets.sum())
                ratio = f"{(c_sparse - const) / (c_opt - const):8.4f}"
            else:
                ratio = "     n/a"
            t_opt_s = f"{t_opt:9.3f}"
        else:
            ratio, t_opt_s, gap = "     n/a", "  skipped", "       n/a"
        print(f"{n:7d} {m_tasks:7d} {t_sparse:9.3f} {t_opt_s} {gap} {ratio}", flush=True)


if __name__ == "__main__":
    main()
