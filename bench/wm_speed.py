"""World-model speed: observation building for a fleet and backend throughput.

    .venv/bin/python bench/wm_speed.py [--model models/wm_default] [--drones 64 1024 10000]

Prints one line per measurement: observations built per second for N drones (warehouse_10k
geometry: 1,444 boxes), and encode + one step per second for each available backend and batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from wm_agent.sim.scenario import Obstacles
from wm_agent.world_model.artifacts import default_model_dir
from wm_agent.world_model.spaces import build_observations


def bench_observations(drones: list[int]) -> None:
    from wm_agent.sim import load_scenario

    for n in drones:
        sc = load_scenario("warehouse_10k", drones=min(n, 10000))
        ob = Obstacles.from_scenario(sc)
        rng = np.random.default_rng(0)
        lo, hi = ob.fence_min + np.array([0, 0, 0.5]), ob.fence_max - np.array([0, 0, 2.0])
        pos = rng.uniform(lo, hi, (n, 3))
        q = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
        args = (pos, rng.normal(size=(n, 3)), q, np.zeros((n, 3)), pos + 3.0, ob.boxes_min, ob.boxes_max)
        build_observations(*args, ceiling_z=ob.ceiling_z)
        reps = max(1, int(2000 / n))
        t = time.perf_counter()
        for _ in range(reps):
            build_observations(*args, ceiling_z=ob.ceiling_z)
        dt = (time.perf_counter() - t) / reps
        print(f"build_observations N={n:>6}: {dt * 1e3:8.2f} ms per call ({n / dt:,.0f} drones/s)")


def bench_backends(folder: Path, batches: list[int]) -> None:
    from wm_agent.inference import available_backends, backend_status
    from wm_agent.world_model.runtime import open_runtime

    for name, status in backend_status().items():
        if status != "available":
            print(f"{name}: skipped ({status})")
    for name in available_backends():
        rt = open_runtime(name, folder)
        print(f"{name}: {rt.describe()}")
        for b in batches:
            obs = np.random.default_rng(0).normal(size=(b, rt.obs_dim)).astype(np.float32)
            act = np.zeros((b, rt.action_dim), np.float32)
            z = rt.encode(obs).z
            reps = 20
            t = time.perf_counter()
            for _ in range(reps):
                rt.step(z, act)
            dt = (time.perf_counter() - t) / reps
            print(f"  {name:<12} batch {b:>5}: step {dt * 1e3:7.3f} ms ({b / dt:,.0f} rows/s)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--drones", type=int, nargs="*", default=[64, 1024, 10000])
    p.add_argument("--batches", type=int, nargs="*", default=[1, 64, 1024])
    ns = p.parse_args()
    bench_observations(ns.drones)
    folder = ns.model or default_model_dir()
    if (folder / "card.json").is_file():
        bench_backends(folder, ns.batches)
    else:
        print(f"no model at {folder}: backend benchmark skipped (train and export one first)")


if __name__ == "__main__":
    main()
