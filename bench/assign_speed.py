"""Benchmark the coordinator's fleet assignment on every kind of warehouse demand.

For each family of :mod:`wm_agent.fleet.instances` (uniform, backlog 2×, half, shelves on
three levels, stations from pad fields, drones in one line, degenerate) and a **re-solve**
(the uniform fleet a solve period later: drones moved up to 1.5 m, 2 % of the tasks
replaced, the rest held with the 2 s hysteresis bonus), at each size: the time of
``assignment.solve`` with the coordinator's defaults (dense up to ``dense_max``, the auction
above: the ``path`` column) and its ratio to a reference:

* ``optimal`` — the exact optimum of the same cost matrix (``linear_sum_assignment``), up to
  ``--optimal-max`` drones (10,000 × 10,000 takes ~30 s and 2 GB for the matrix alone);
* ``bound`` — above that, the certified dual lower bound of an auction run to ε = 1e-4 s
  (within 0.02 % of the optimum where both were measured), so the ratio printed is an
  upper bound on the true one.

``ratio = 1 + (cost − reference) / travel`` with ``travel`` the reference's travel time: the
plain cost ratio where costs are travel times, and the same excess measured in travel time
where offsets or the incumbent bonus shift the cost (``half``, ``re-solve``). The numba
kernels are compiled (or loaded from the cache) before timing; that time is printed first.
There is no warm start: the re-solve is timed like a cold solve (see docs/COORDINATOR.md). The
auction's exact searches run on every core numba has (``NUMBA_NUM_THREADS`` to change it).

Usage::

    python bench/assign_speed.py                       # 1,000 / 5,000 / 10,000, all families
    python bench/assign_speed.py --sizes 1000 --families uniform line
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from wm_agent.fleet import instances
from wm_agent.fleet.assignment import (
    Matching,
    solve,
    solve_dense,
    solve_sparse,
    task_offsets,
)
from wm_agent.fleet.coordinator import CoordinatorConfig

FLOOR = np.array([40.0, 30.0])
PICK_STATIONS = np.array([[3.0, y, 1.0] for y in (5.0, 12.0, 19.0, 26.0)])
BONUS_S = 2.0
FloatArray = NDArray[np.float64]


def warehouse_instance(
    n_drones: int, n_tasks: int, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The 40 × 30 m warehouse of sim/scenarios/warehouse.yaml: drones over the floor, 20 %
    of the pickups at four pick stations, 80 % at shelf faces; priorities and deadlines."""
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


def _travel_s(m: Matching, inst: instances.Instance) -> float:
    d = np.linalg.norm(inst.drones[m.drone_idx] - inst.tasks[m.task_idx], axis=1)
    return float(d.sum()) / instances.SPEED_MPS


def _reference(inst: instances.Instance, inc: NDArray[np.int64], bonus: float,
               optimal_max: int) -> tuple[str, float, float]:
    """(kind, reference cost [s], its travel time [s]) — see the module docstring."""
    if max(len(inst.drones), len(inst.tasks)) <= optimal_max:
        ref = solve_dense(*inst, instances.SPEED_MPS, incumbent=inc, incumbent_bonus_s=bonus)
        return "optimal", ref.total_cost, _travel_s(ref, inst)
    ref = solve_sparse(*inst, instances.SPEED_MPS, k=16, incumbent=inc, incumbent_bonus_s=bonus,
                       eps_final_s=1e-4)
    if bonus == 0.0 and inst.offsets.min() >= 0.0 and ref.total_cost == 0.0:
        return "optimal", 0.0, 0.0  # no cost is negative: a matching that costs 0 is optimal
    return "bound", ref.lower_bound, _travel_s(ref, inst)


def _cases(family: str, n: int, seed: int, cfg: CoordinatorConfig
           ) -> tuple[instances.Instance, NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    if family != "re-solve":
        inst = instances.FAMILIES[family](n, rng)
        return inst, np.full(len(inst.drones), -1, np.int64)
    inst = instances.uniform(n, rng)
    first = solve(*inst, instances.SPEED_MPS, dense_max=cfg.dense_max, k=cfg.knn_k)
    held = np.full(n, -1, np.int64)
    held[first.drone_idx] = first.task_idx
    return instances.moved(inst, held, rng)


def main(args: list[str] | None = None) -> None:
    """Parse arguments, run every family and size, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000],
                   help="drones per instance")
    p.add_argument("--families", nargs="+", default=[*instances.FAMILIES, "re-solve"],
                   choices=[*instances.FAMILIES, "re-solve"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--optimal-max", type=int, default=5000,
                   help="exact optimum up to this size, the certified bound above")
    a = p.parse_args(args)
    cfg = CoordinatorConfig()
    t0 = time.perf_counter()
    warm = instances.uniform(40, np.random.default_rng(0))
    solve_sparse(*warm, instances.SPEED_MPS)
    print(f"# numba kernels compiled / loaded from cache in {time.perf_counter() - t0:.1f} s")
    print(f"# solve(): dense up to dense_max={cfg.dense_max}, auction (k={cfg.knn_k}) above;"
          " targets: ratio <= 1.02, time <= 1 s at 10,000")
    print(f"{'family':>10} {'drones':>7} {'tasks':>7} {'path':>8} {'time_s':>8} {'ratio':>9}"
          f" {'reference':>10} {'ref_s':>7}")
    worst: dict[int, tuple[float, float]] = {}
    for n in a.sizes:
        for family in a.families:
            inst, inc = _cases(family, n, a.seed, cfg)
            bonus = BONUS_S if family == "re-solve" else 0.0
            t0 = time.perf_counter()
            res = solve(*inst, instances.SPEED_MPS, dense_max=cfg.dense_max, k=cfg.knn_k,
                        incumbent=inc, incumbent_bonus_s=bonus)
            dt = time.perf_counter() - t0
            t0 = time.perf_counter()
            kind, ref, travel = _reference(inst, inc, bonus, a.optimal_max)
            t_ref = time.perf_counter() - t0
            ratio = 1.0 + (res.total_cost - ref) / travel if travel > 0 else (
                1.0 if res.total_cost <= ref + 1e-9 else float("inf"))
            path = "dense" if max(len(inst.drones), len(inst.tasks)) <= cfg.dense_max else "auction"
            w = worst.get(n, (0.0, 0.0))
            worst[n] = (max(w[0], dt), max(w[1], ratio))
            print(f"{family:>10} {len(inst.drones):7d} {len(inst.tasks):7d} {path:>8} {dt:8.3f}"
                  f" {ratio:9.5f} {kind:>10} {t_ref:7.1f}", flush=True)
    for n, (dt, ratio) in worst.items():
        print(f"# {n} drones: slowest {dt:.2f} s, worst ratio {ratio:.5f}")


if __name__ == "__main__":
    main()
