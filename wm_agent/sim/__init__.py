"""Pure-Python fleet simulation core (no rclpy; PyBullet only inside the "motor" fidelity).

Entry points::

    from wm_agent.sim import load_scenario, make_simulator
    scenario = load_scenario("warehouse", drones=10)
    sim = make_simulator(scenario, fidelity="fleet")   # or "motor" (PyBullet)
    sim.reset(seed=0)
    sim.step(cmd_vel, yaw_rate, fresh)                 # one control period
    state = sim.state(); events = sim.drain_events()

See docs/SIM.md and docs/SCENARIOS.md.
"""

from __future__ import annotations

from wm_agent.sim.airframe import Airframe, load_airframe
from wm_agent.sim.failsafe import FailsafeConfig
from wm_agent.sim.options import SimOptions
from wm_agent.sim.paths import sim_data_dir
from wm_agent.sim.scenario import Rates, Scenario, load_scenario
from wm_agent.sim.simulator import FIDELITIES, FleetSimulator, make_simulator
from wm_agent.sim.types import EventKind, FleetStateArrays, SimEvent, StatusFlag

__all__ = [
    "FIDELITIES",
    "Airframe",
    "EventKind",
    "FailsafeConfig",
    "FleetSimulator",
    "FleetStateArrays",
    "Rates",
    "Scenario",
    "SimEvent",
    "SimOptions",
    "StatusFlag",
    "load_airframe",
    "load_scenario",
    "make_simulator",
    "sim_data_dir",
]
