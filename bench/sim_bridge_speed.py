#!/usr/bin/env python3
"""Real-time factor of the sim_bridge ROS node (fast mode), beside the bare simulator core.

Runs the node in this process over real Fast DDS with a subscriber receiving the fleet state,
and the same scenario through the core alone in the same run, so the ratio shows what ROS costs.

    python bench/sim_bridge_speed.py --drones 10 100 1000 --seconds 2
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_agent import qos, topics
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.sim_bridge import SimBridge
from wm_agent.sim.scenario import load_scenario
from wm_agent.sim.simulator import make_simulator


def core_rtf(scenario: str, drones: int, fidelity: str, seconds: float) -> float:
    sc = load_scenario(scenario, drones=drones)
    sim = make_simulator(sc, fidelity=fidelity)
    n = sc.drones
    cmd = np.zeros((n, 3))
    cmd[:, 2] = 0.5
    yaw = np.zeros(n)
    fresh = np.ones(n, dtype=bool)
    steps = int(seconds * sc.rates.control_hz)
    every = max(1, round(sc.rates.control_hz / sc.rates.state_pub_hz))
    t0 = time.perf_counter()
    for k in range(steps):
        sim.step(cmd, yaw, fresh)
        if k % every == 0:
            sim.state()
    wall = time.perf_counter() - t0
    sim.close()
    return seconds / wall


def node_rtf(scenario: str, drones: int, fidelity: str, seconds: float, domain: int) -> tuple[float, int]:
    msgs, _ = require_interfaces()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    params = dict(scenario=scenario, drones=drones, fidelity=fidelity, mode="fast",
                  duration_s=seconds, odom_max_drones=min(drones, 16))
    bridge = SimBridge(context=context,
                       parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    listener = Node("listener", context=context)
    received = [0]
    listener.create_subscription(msgs.FleetState, topics.FLEET_STATE,
                                 lambda _m: received.__setitem__(0, received[0] + 1), qos.STATE)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    executor.add_node(listener)
    t0 = time.perf_counter()
    while bridge.sim.sim_time < seconds - 1e-9:
        executor.spin_once(timeout_sec=0.01)
    wall = time.perf_counter() - t0
    executor.shutdown()
    bridge.close()
    context.try_shutdown()
    return seconds / wall, received[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drones", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--seconds", type=float, default=2.0, help="sim seconds per case")
    parser.add_argument("--scenario", default="warehouse_10k")
    parser.add_argument("--domain-id", type=int, default=77)
    args = parser.parse_args()
    print(f"{'drones':>7} {'fidelity':>8} {'core RTF':>9} {'node RTF':>9} {'node/core':>9} {'states rx':>9}")
    for n in args.drones:
        for fidelity in ("motor", "fleet"):
            if fidelity == "motor" and n > 100:
                continue
            core = core_rtf(args.scenario, n, fidelity, args.seconds)
            node, rx = node_rtf(args.scenario, n, fidelity, args.seconds, args.domain_id)
            print(f"{n:>7} {fidelity:>8} {core:>8.1f}x {node:>8.1f}x {node / core:>9.2f} {rx:>9}")


if __name__ == "__main__":
    main()
