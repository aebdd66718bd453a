#!/usr/bin/env python3
"""Observation building for a fleet: obstacle features through the box grid vs every pair.

Usage (from the repository root)::

    python bench/obs_speed.py                          # warehouse_10k, 100 / 1,000 / 10,000 drones
    python bench/obs_speed.py --drones 1000 --reps 20

Drones are placed uniformly over the floor at 0.1–4 m. For each count the obstacle features
(8 sector distances + up/down clearance against 1,440 shelf units and 4 walls) are computed
with the grid prefilter (what the planner nodes run) and, as the baseline in the same run,
against every (drone, box) pair; the two must agree exactly. The neighbour features (4
nearest within 5 m) through the k-d tree (what the nodes run) against the grid candidates +
one sort of all pairs in range (the baseline, in the same run); they must agree exactly. Then
the whole ``build_observations``. Prints ms per call and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wm_agent.sim import load_scenario
from wm_agent.sim.scenario import Obstacles
from wm_agent.world_model import spaces


def best_ms(fn, reps: int) -> float:  # type: ignore[no-untyped-def]
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return float(np.median(out)) * 1e3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="warehouse_10k")
    p.add_argument("--drones", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--reps", type=int, default=10, help="timed calls per figure (median)")
    ns = p.parse_args(argv)
    sc = load_scenario(ns.scenario, drones=min(max(ns.drones), 1000))
    ob = Obstacles.from_scenario(sc)
    spec = spaces.ObservationSpec()
    size = sc.world_size
    print(f"scenario {ns.scenario}: {len(ob.boxes_min)} boxes; median of {ns.reps} calls")
    print("| drones | obstacles: grid [ms] | every pair [ms] | ratio | neighbours: k-d tree [ms] "
          "| grid + sort [ms] | ratio | build_observations [ms] |")
    print("|---|---|---|---|---|---|---|---|")
    default = spaces._DENSE_PAIRS
    for n in ns.drones:
        rng = np.random.default_rng(n)
        pos = np.column_stack([rng.uniform(0.2, size[0] - 0.2, n), rng.uniform(0.2, size[1] - 0.2, n),
                               rng.uniform(0.1, 4.0, n)])
        vel = rng.normal(0.0, 1.0, (n, 3))
        quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        args = (pos, ob.boxes_min, ob.boxes_max, spec, ob.floor_z, ob.ceiling_z)
        grid = spaces.obstacle_features(*args)
        t_grid = best_ms(lambda: spaces.obstacle_features(*args), ns.reps)  # noqa: B023
        spaces._DENSE_PAIRS = 1 << 40  # the baseline: every (drone, box) pair
        try:
            every = spaces.obstacle_features(*args)
            t_every = best_ms(lambda: spaces.obstacle_features(*args), max(1, ns.reps // 3))  # noqa: B023
        finally:
            spaces._DENSE_PAIRS = default
        if not (np.array_equal(grid[0], every[0]) and np.array_equal(grid[1], every[1])):
            print(f"error: {n} drones: the grid and every-pair results differ")
            return 1
        ids = np.arange(n)
        nb_args = (pos, vel, ids, pos, vel, ids, spec)
        tree = spaces.neighbour_features(*nb_args)
        t_tree = best_ms(lambda: spaces.neighbour_features(*nb_args), ns.reps)  # noqa: B023

        def by_grid() -> np.ndarray:
            qi, pj = spaces._grid_candidates(pos, pos, spec.neighbour_radius)  # noqa: B023
            qi, pj, rel, rank = spaces._nearest_k(qi, pj, pos, ids, pos, ids,  # noqa: B023
                                                  spec.neighbour_radius, spec.neighbours)
            out = np.zeros((n, spec.neighbours, 7))  # noqa: B023
            out[qi, rank, 0:3] = rel
            out[qi, rank, 3:6] = vel[pj] - vel[qi]  # noqa: B023
            out[qi, rank, 6] = 1.0
            return out.reshape(n, -1)  # noqa: B023

        if n * n > spaces._BRUTE_FORCE_NEIGHBOURS and not np.array_equal(tree, by_grid()):
            print(f"error: {n} drones: the k-d tree and grid neighbours differ")
            return 1
        t_sort = best_ms(by_grid, ns.reps)
        t_obs = best_ms(lambda: spaces.build_observations(
            pos, vel, quat, np.zeros((n, 3)), pos + 5.0, ob.boxes_min, ob.boxes_max,  # noqa: B023
            floor_z=ob.floor_z, ceiling_z=ob.ceiling_z), ns.reps)
        print(f"| {n:,} | {t_grid:.1f} | {t_every:.1f} | {t_every / t_grid:.1f}x | {t_tree:.1f} "
              f"| {t_sort:.1f} | {t_sort / t_tree:.1f}x | {t_obs:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
