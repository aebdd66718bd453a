#!/usr/bin/env python3
"""Real-time factor of the fleet simulator per drone count and fidelity.

Usage (from the repository root)::

    python bench/sim_speed.py                                  # 1..10,000 drones, both fidelities
    python bench/sim_speed.py --drones 10 100 --fidelity motor --seconds 5

Each run builds ``warehouse_10k`` with N drones, takes off for 1 s (not timed), then flies every
drone in a slow horizontal circle at 1.5 m for ``--seconds`` of sim time, stepping in lockstep
at the scenario's rates (240 Hz physics, 48 Hz control) and reading ``state()`` every period as
the ROS node does. Real-time factor = sim seconds / wall seconds. The breakdown is wall time per
sim second [ms]: physics, controller (+ failsafe), collisions (+ floor contact, events),
readout (engine state reads + state snapshots), other (this harness).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wm_agent.sim import SimOptions, load_scenario, make_simulator

TARGETS = {("motor", 10): 30.0, ("motor", 100): 10.0, ("fleet", 1000): 1.0, ("fleet", 10000): 1.0}
STAGES = ("physics", "controller", "collisions", "readout")


def run_one(fidelity: str, n: int, seconds: float, scenario: str, net_wrench: bool) -> dict[str, float]:
    """Time one configuration; returns RTF and ms per sim second per stage."""
    sc = load_scenario(scenario, drones=n)
    sim = make_simulator(sc, fidelity, SimOptions(per_rotor_forces=not net_wrench))
    hz = sc.rates.control_hz
    cmd = np.zeros((n, 3))
    yaw = np.zeros(n)
    fresh = np.ones(n, dtype=bool)
    cmd[:, 2] = 1.0
    for _ in range(round(hz)):  # take off (untimed)
        sim.step(cmd, yaw, fresh)
        sim.state()
    before = sim.timings()
    steps = round(seconds * hz)
    t0 = time.perf_counter()
    for k in range(steps):
        phase = k / hz
        cmd[:, 0] = 0.5 * np.cos(phase)
        cmd[:, 1] = 0.5 * np.sin(phase)
        cmd[:, 2] = 1.0 * (1.5 - sim.body.pos[:, 2])
        sim.step(cmd, yaw, fresh)
        sim.state()
    wall = time.perf_counter() - t0
    after = sim.timings()
    sim_s = steps / hz
    out = {"rtf": sim_s / wall, "collisions_events": float(len(sim.drain_events()))}
    for stage in STAGES:
        out[stage] = (after[stage] - before[stage]) / sim_s * 1e3
    out["other"] = wall / sim_s * 1e3 - sum(out[s] for s in STAGES)
    sim.close()
    return out


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every configuration, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drones", type=int, nargs="+", default=[1, 10, 100, 1000, 10000],
                        help="drone counts to time (default: 1 10 100 1000 10000)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed sim seconds per run (default 2)")
    parser.add_argument("--fidelity", nargs="+", default=["fleet", "motor"], choices=["fleet", "motor"],
                        help="fidelities to time (default: both)")
    parser.add_argument("--motor-max-drones", type=int, default=100,
                        help="skip the motor fidelity above this many drones (default 100)")
    parser.add_argument("--scenario", default="warehouse_10k", help="scenario name or path")
    parser.add_argument("--net-wrench", action="store_true",
                        help="motor fidelity: one net force + torque per drone instead of per-rotor forces")
    args = parser.parse_args(argv)

    header = f"{'fidelity':8} {'drones':>6} {'RTF':>8} {'target':>7} | ms per sim-second: " + " ".join(
        f"{s:>10}" for s in (*STAGES, "other")
    )
    print(header)
    print("-" * len(header))
    for fidelity in args.fidelity:
        for n in args.drones:
            if fidelity == "motor" and n > args.motor_max_drones:
                continue
            r = run_one(fidelity, n, args.seconds, args.scenario, args.net_wrench)
            target = TARGETS.get((fidelity, n))
            mark = "" if target is None else f"≥{target:g}{'✓' if r['rtf'] >= target else '✗'}"
            print(
                f"{fidelity:8} {n:6d} {r['rtf']:8.2f} {mark:>7} | {'':19}"
                + " ".join(f"{r[s]:10.1f}" for s in (*STAGES, "other")),
                flush=True,
            )


if __name__ == "__main__":
    main()
