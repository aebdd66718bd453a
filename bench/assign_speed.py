"""Benchmark the fleet assignment solvers on warehouse-like instances.

Drones are spread uniformly over the floor of ``sim/scenarios/warehouse.yaml`` (40 x 30 m);
task pickups are 20 % at the four pick stations and 80 % at shelf-slot faces (random x
along a shelf row, aisle side, one of three shelf levels); priorities are uniform 0..255
and a third of the tasks carry a deadline. For every size the scalable solver (ε-scaling
auction, ``solve_sparse``) runs beside the optimal dense solver
(``scipy.optimize.linear_sum_assignment``) on the same instance where that finishes
(``--optimal-max``); every size also gets the auction's dual lower bound. Ratios are of total
travel time (when every task is matched the priority/deadline offsets add the same
constant to every assignment, so they are subtracted): ``ratio_opt`` = auction / optimal,
``ratio_lb`` = auction / lower bound (an upper bound on the true ratio). The multilevel
solver (``solve_multilevel``, what the coordinator runs above ``auction_max``) is timed on
the same instance and compared with the same optimum and bound; ``mlv_gap_s`` is its excess
cost per assigned pair [s]. The numba kernels
are compiled (or loaded from the cache) before timing; that time is printed first.

Usage::

    python bench/assign_speed.py --sizes 100 1000 2000 10000 --seed 0 --optimal-max 2000
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
    solve_multilevel,
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


def _ratio(cost: float, ref: float, const: float, all_tasks_matched: bool) -> str:
    """Travel-time ratio cost / ref (offset constant removed); n/a when tasks stay open."""
    return f"{(cost - const) / (ref - const):9.5f}" if all_tasks_matched else "      n/a"


def main(args: list[str] | None = None) -> None:
    """Parse arguments, run every size, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 2000, 10000],
                   help="drones per instance")
    p.add_argument("--tasks-per-drone", type=float, default=1.0,
                   help="tasks / drones ratio (rectangular when != 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=8, help="auction: initial candidates per bidder")
    p.add_argument("--eps", type=float, default=0.01, help="auction: final ε [s]")
    p.add_argument("--optimal-max", type=int, default=2000,
                   help="skip the optimal dense solve above this many drones (4000: ~40 s)")
    a = p.parse_args(args)
    t0 = time.perf_counter()
    d, t, off = warehouse_instance(30, 40, np.random.default_rng(0))
    solve_sparse(d, t, off, SPEED_MPS)
    solve_sparse(t, d, off[:30], SPEED_MPS)
    solve_multilevel(d, t, off, SPEED_MPS)
    print(f"# numba kernels compiled / loaded from cache, POT loaded in {time.perf_counter() - t0:.1f} s")
    print("# auction: certified (dual bound); multilevel: the solver above auction_max "
          "(ratios against the same optimum / bound)")
    print(f"{'drones':>7} {'tasks':>7} {'auction_s':>9} {'multilvl_s':>10} {'optimal_s':>9}"
          f" {'auc/opt':>9} {'mlv/opt':>9} {'auc/lb':>9} {'mlv/lb':>9} {'mlv_gap_s':>9}  bound")
    for n in a.sizes:
        rng = np.random.default_rng(a.seed)
        m_tasks = max(1, round(n * a.tasks_per_drone))
        drones, tasks, offsets = warehouse_instance(n, m_tasks, rng)
        t0 = time.perf_counter()
        sp = solve_sparse(drones, tasks, offsets, SPEED_MPS, k=a.k, eps_final_s=a.eps)
        t_sparse = time.perf_counter() - t0
        t0 = time.perf_counter()
        ml = solve_multilevel(drones, tasks, offsets, SPEED_MPS)
        t_ml = time.perf_counter() - t0
        c_sparse = cost_of(sp, drones, tasks, offsets)
        c_ml = cost_of(ml, drones, tasks, offsets)
        pairs = max(1, len(sp.task_idx))
        square_or_more = n >= m_tasks  # all tasks matched: offsets are a constant
        const = float(offsets.sum())

        if n <= a.optimal_max:
            t0 = time.perf_counter()
            opt = solve_cost_matrix(cost_matrix(drones, tasks, offsets, SPEED_MPS))
            t_opt_s = f"{time.perf_counter() - t0:9.3f}"
            c_ref = cost_of(opt, drones, tasks, offsets)
            r_opt = _ratio(c_sparse, c_ref, const, square_or_more)
            r_opt_ml = _ratio(c_ml, c_ref, const, square_or_more)
            gap = (c_ml - c_ref) / pairs
            bound = "optimal (dense) + dual (auction prices); gap = multilevel - optimal"
            if sp.lower_bound > c_ref + 1e-6:
                raise SystemExit(f"lower bound {sp.lower_bound} above the optimum {c_ref}")
        else:
            t_opt_s, r_opt, r_opt_ml = "  skipped", "      n/a", "      n/a"
            gap = (c_ml - sp.lower_bound) / pairs
            bound = "dual (auction prices); gap = multilevel - bound"
        r_lb = _ratio(c_sparse, sp.lower_bound, const, square_or_more)
        r_lb_ml = _ratio(c_ml, sp.lower_bound, const, square_or_more)
        print(f"{n:7d} {m_tasks:7d} {t_sparse:9.3f} {t_ml:10.3f} {t_opt_s} {r_opt} {r_opt_ml}"
              f" {r_lb} {r_lb_ml} {gap:9.4f}  {bound}", flush=True)

if __name__ == "__main__":
    main()
