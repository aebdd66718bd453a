"""Replay-evaluation throughput (`wm-agent eval BAG`) on generated bags of 50 and 1,000 drones.

    .venv/bin/python bench/eval_speed.py                        # 50 and 1,000 drones, 10 s flights
    .venv/bin/python bench/eval_speed.py --drones 200 --seconds 20 --backend torch

Each bag is a simulated flight (wm_agent.evaluation.synthetic, `warehouse_10k`, waypoints in the
open band south of the shelves, P controller at <= 2 m/s) on the fleet topics:
/fleet/state at 24 Hz, /fleet/cmd, /fleet/assignments, /fleet/planner_status at 12 Hz,
/fleet/events and /tasks/status. Reported: messages in the bag, read + decode + arrays
(messages/s), the world-model and re-planning stage, the report, and end to end (messages/s over
the whole evaluate_bag call). One thread for the backends.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from wm_agent.bags import open_bag
from wm_agent.evaluation.bag_eval import EvalConfig, evaluate_bag
from wm_agent.evaluation.synthetic import simulate_flight, write_fleet_bag

SCENARIO = "warehouse_10k"
BAND = ((2.0, 2.0, 1.0), (198.0, 26.0, 6.0))     # open band south of warehouse_10k's shelves (y >= 28 m)


def run(n: int, seconds: float, backend: str, root: Path, replan_samples: int) -> None:
    t0 = time.perf_counter()
    flight = simulate_flight(drones=n, seconds=seconds, seed=0, scenario=SCENARIO, area=BAND)
    t_sim = time.perf_counter() - t0
    bag = root / f"eval_{n}"
    t0 = time.perf_counter()
    count = write_fleet_bag(bag, flight)
    t_write = time.perf_counter() - t0
    size_mb = sum(p.stat().st_size for p in bag.glob("*.mcap")) / 1e6
    states = open_bag(bag).topics["/fleet/state"].count or 0
    cfg = EvalConfig(backend=backend, scenario=SCENARIO, replan_samples=replan_samples, threads=1)
    # warm-up: typestore, ONNX sessions, the plan graph export for this geofence (cached after)
    evaluate_bag(bag, None, EvalConfig(backend=backend, scenario=SCENARIO, replan_samples=1, max_windows=16))
    t0 = time.perf_counter()
    result = evaluate_bag(bag, root / f"report_{n}", cfg)
    total = time.perf_counter() - t0
    th = result.metrics["throughput"]
    p = result.metrics["prediction"]
    rest = total - th["read_s"] - th.get("prediction_s", 0.0) - th.get("replan_s", 0.0)
    print(
        f"{n:>5} drones, {seconds:.0f} s: bag {count:,} msgs, {size_mb:.1f} MB (sim {t_sim:.1f} s, "
        f"write {t_write:.1f} s) | read+decode {th['messages_per_s']:>7,.0f} msg/s ({th['read_s']:.2f} s)"
        f" | prediction {th.get('prediction_s', 0.0):.2f} s ({p['windows'] if p else 0} windows)"
        f" | re-plan {th.get('replan_s', 0.0):.2f} s ({replan_samples}) | resample+report {rest:.2f} s"
        f" | end to end {count / total:>6,.0f} msg/s, {n * states / total:,.0f} drone-states/s"
        f" ({total:.2f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drones", type=int, nargs="+", default=[50, 1000], help="fleet sizes")
    parser.add_argument("--seconds", type=float, default=10.0, help="flight length [s]")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "torch"))
    parser.add_argument("--replan-samples", type=int, default=256)
    ns = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="eval_speed_"))
    try:
        for n in ns.drones:
            run(n, ns.seconds, ns.backend, root, ns.replan_samples)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
