"""The whole fleet graph at scale: where the wall time goes, per stage, per sim second.

    .venv/bin/python bench/fleet_scale.py [--drones 1000 2000 5000 10000] [--modes lockstep realtime]
                                          [--shards 1 2] [--duration 10] [--out runs/fleet_scale]

For every fleet size, sim mode and planner-shard count, one `wm-agent sim` run (real node
processes over DDS, recorded, no report) on ``warehouse_10k`` with the task rate scaled to the
fleet (the scenario's 240/min at 10,000 drones). Every node reports its stages' wall time on
/fleet/stage_times (wm_agent.stages); the run sums them from the bag. Printed per run:

* the real-time factor while stepping and its inverse, wall seconds per sim second;
* wall ms per sim second of the stage groups issue 12 names — physics (+ controller,
  collisions, state readout), observations (+ route targets), plan, safety filter, DDS
  serialise + deserialise (every node's ``*_in`` / ``*_out`` stages), coordinator (solve,
  fleet observation), recorder — summed over the processes (with 2 cores, a sum above
  1,000 ms per sim s cannot run at real time);
* the biggest single stages;
* ratios against the first row of the same run (the baseline: the smallest fleet, first mode,
  one shard): per-drone cost and, for K = 2, the plan stage's throughput against K = 1 (plan
  ms per sim s of the one planner / of the slowest shard).

A run that the verdict calls invalid (e.g. the planner answered too few states in realtime) is
still measured; its verdict is printed with it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from wm_agent.graph import FleetSimArgs
from wm_agent.run import RunOptions, run_fleet
from wm_agent.sim.scenario import load_scenario

SCENARIO = "warehouse_10k"
GROUPS = {
    "physics": ("physics", "controller", "collisions", "readout"),
    "observations": ("observations", "targets"),
    "plan": ("plan",),
    "safety": ("safety",),
    "dds": None,  # every *_in / *_out stage
    "coordinator": ("solve", "observe"),
    "recorder": ("write",),
}


def group_of(node: str, stage: str) -> str:
    """The stage group of one node's stage (GROUPS; the rest: other)."""
    if stage.endswith("_in") or stage.endswith("_out"):
        return "dds"
    if node == "recorder":
        return "recorder"
    if node == "fleet_coordinator":
        return "coordinator"
    for name, stages in GROUPS.items():
        if stages and stage in stages:
            return name
    return "other"


def measure(drones: int, mode: str, shards: int, duration: float, out: Path) -> dict[str, Any]:
    """One run; returns its figures."""
    rate = load_scenario(SCENARIO).task_rate_per_min * drones / 10_000
    graph = FleetSimArgs(drones=drones, scenario=SCENARIO, mode=mode, planner_shards=shards,
                         task_rate_per_min=rate, state_rate_hz=5.0)
    domain = 150 + (os.getpid() % 50)
    t0 = time.perf_counter()
    m = run_fleet(RunOptions(graph=graph, duration_s=duration, out=out, domain_id=domain,
                             report=False, progress=False))
    groups: dict[str, float] = {}
    for b in m["stages"]:
        g = group_of(b["node"].rsplit("_", 1)[0] if b["node"][-1].isdigit() else b["node"],
                     b["stage"])
        groups[g] = groups.get(g, 0.0) + b["ms_per_sim_s"]
    # the plan stage's critical path: the slowest planner process (K shards plan in parallel)
    plan = max((b["ms_per_sim_s"] for b in m["stages"] if b["stage"] == "plan"), default=0.0)
    return {"drones": drones, "mode": mode, "shards": shards, "rtf": m["real_time_factor"],
            "wall_s_per_sim_s": m["wall_s_per_sim_s"], "groups": groups, "plan": plan,
            "top": m["stages"][:4], "valid": m["verdict"]["valid"],
            "why": "; ".join(m["verdict"]["problems"]),
            "run_s": time.perf_counter() - t0, "flying_tasks": m["tasks"].get("accepted", 0)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--drones", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    p.add_argument("--modes", nargs="+", default=["lockstep", "realtime"],
                   choices=["lockstep", "realtime"])
    p.add_argument("--shards", type=int, nargs="+", default=[1, 2])
    p.add_argument("--duration", type=float, default=10.0, help="sim seconds per run")
    p.add_argument("--out", type=Path, default=None, help="run folders (default: a temp dir)")
    ns = p.parse_args()
    root = ns.out or Path(tempfile.mkdtemp(prefix="fleet_scale_"))
    print(f"# {SCENARIO}, {ns.duration:g} sim s a run, task rate 240/min x drones/10,000, "
          f"fleet state recorded at 5 Hz; run folders in {root}")
    cols = [*GROUPS, "other"]
    print(f"{'drones':>7} {'mode':>9} {'K':>2} {'RTF':>5} {'wall/sim':>8} "
          + " ".join(f"{c:>12}" for c in cols) + "   valid")
    rows = []
    for n in ns.drones:
        for mode in ns.modes:
            for k in ns.shards:
                r = measure(n, mode, k, ns.duration, root / f"{n}_{mode}_k{k}")
                rows.append(r)
                g = r["groups"]
                print(f"{n:>7} {mode:>9} {k:>2} {r['rtf'] or 0:>5.2f} "
                      f"{r['wall_s_per_sim_s'] or float('nan'):>8.2f} "
                      + " ".join(f"{g.get(c, 0.0):>12.0f}" for c in cols)
                      + f"   {r['valid']}" + ("" if r["valid"] else f" ({r['why']})"), flush=True)
    print("# stage groups: wall ms per sim second, summed over the processes")
    base = rows[0]
    print(f"# baseline: {base['drones']} drones {base['mode']} K={base['shards']}")
    for r in rows:
        per_drone = (r["wall_s_per_sim_s"] or 0) / r["drones"]
        base_per = (base["wall_s_per_sim_s"] or 0) / base["drones"]
        top = ", ".join(f"{b['node']}/{b['stage']} {b['ms_per_sim_s']:.0f}" for b in r["top"])
        line = (f"# {r['drones']:>6} {r['mode']:>9} K={r['shards']}: wall/sim per drone "
                f"{per_drone / base_per if base_per else float('nan'):.2f}x the baseline's; "
                f"biggest: {top}")
        if r["shards"] > 1:
            one = next((o for o in rows if o["drones"] == r["drones"] and o["mode"] == r["mode"]
                        and o["shards"] == 1), None)
            if one and r["plan"] > 0:
                line += f"; plan stage K=1/K={r['shards']} {one['plan'] / r['plan']:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
