"""Planner shards: the fleet plan stage with K = 1 and K = 2 planner processes.

    .venv/bin/python bench/plan_shards.py [--drones 1000 10000] [--reps 5] [--backend onnxruntime]

For each fleet size, the whole fleet airborne over ``warehouse_10k`` (positions around the pad
fields, goals at the stations), one planning step of :class:`FleetController` (routes,
observations with the whole fleet as neighbours, the batched plan, the safety filter — what a
``fleet_planner`` process does per state, without DDS):

* K = 1: one process plans every drone (one inference thread, the node's default);
* K = 2: two processes, each its half (``id % 2``), started together on a barrier; a step takes
  as long as the slower shard.

Prints the median step time [ms] of each and the plan stage's throughput ratio K = 2 / K = 1
(drones planned per wall second). The target of issue 12 is a ratio >= 1.6 on 2 cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from wm_agent.nodes.planning_common import PlannerNodeConfig, build_controller
from wm_agent.planning.fleet_control import PHASE_TO_PICKUP
from wm_agent.planning.shards import ShardSpec

SCENARIO = "warehouse_10k"


def fleet(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """n airborne drones over their pads (1 m up, a little scattered), flying to stations."""
    from wm_agent.sim.scenario import load_scenario

    sc = load_scenario(SCENARIO, drones=n)
    rng = np.random.default_rng(seed)
    pads = np.asarray(sc.home_pads, np.float64)[:n]
    pos = pads + np.column_stack([rng.normal(0.0, 0.2, (n, 2)), np.ones(n)])
    stations = np.array(list(sc.stations.values()), np.float64)
    goals = stations[rng.integers(0, len(stations), n)]
    vel = rng.normal(0.0, 0.3, (n, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    return np.arange(n), pos, vel, quat, goals


def plan_steps(n: int, backend: str, shard: ShardSpec, reps: int, barrier: Any | None
               ) -> list[float]:
    """Wall seconds of each of ``reps`` planning steps (after two warm-up steps)."""
    cfg = PlannerNodeConfig(scenario=SCENARIO, drones=n, backend=backend,
                            shards=shard.count, shard=shard.index)
    _, ctl = build_controller(cfg)
    ids, pos, vel, quat, goals = fleet(n)
    mine = shard.mine(ids)
    args = (ids, pos, vel, quat, np.zeros((n, 3)), np.zeros(n, bool), goals,
            np.full(n, PHASE_TO_PICKUP, np.uint8), np.ones(n, bool))
    out = []
    for k in range(reps + 2):
        if barrier is not None:
            barrier.wait()
        t0 = time.perf_counter()
        ctl.command(*args, mine=mine, step=k)
        if k >= 2:
            out.append(time.perf_counter() - t0)
    return out


def _shard_main(n: int, backend: str, k: int, reps: int, barrier: Any, queue: Any) -> None:
    queue.put((k, plan_steps(n, backend, ShardSpec(2, k), reps, barrier)))


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, time K = 1 and K = 2 at each size, print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drones", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--backend", default="onnxruntime")
    a = p.parse_args(argv)
    ctx = mp.get_context("spawn")
    print(f"# {SCENARIO}, backend {a.backend}, one inference thread a process, median of {a.reps}")
    print(f"{'drones':>7} {'K=1_ms':>8} {'K=2_ms':>8} {'ratio':>6}")
    for n in a.drones:
        one = float(np.median(plan_steps(n, a.backend, ShardSpec(1, 0), a.reps, None)))
        barrier, queue = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_shard_main, args=(n, a.backend, k, a.reps, barrier, queue))
                 for k in range(2)]
        for pr in procs:
            pr.start()
        times = dict(queue.get() for _ in procs)
        for pr in procs:
            pr.join()
        two = float(np.median(np.maximum(times[0], times[1])))  # a step ends with the slower shard
        print(f"{n:7d} {one * 1e3:8.1f} {two * 1e3:8.1f} {one / two:6.2f}", flush=True)


if __name__ == "__main__":
    main()
