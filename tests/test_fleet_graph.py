"""The whole simulated graph in one process over real DDS, lockstep: tasks fed from the
scenario's stream are assigned, flown by the world-model fleet planner and delivered, with no
collision; the same seed gives the same run."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from wm_agent.nodes.fleet_coordinator import FleetCoordinatorNode
from wm_agent.nodes.fleet_planner import FleetPlannerNode
from wm_agent.nodes.sim_bridge import SimBridge
from wm_agent.nodes.task_feeder import TaskFeeder
from wm_agent.sim.types import StatusFlag

pytestmark = [pytest.mark.dds, pytest.mark.slow]


def params(**kw: Any) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in kw.items()]


def fly(context: Any, spin: Any, sim_seconds: float, backend: str = "onnxruntime",
        seed: int = 0) -> dict[str, Any]:
    n = 3
    sim_time = [Parameter("use_sim_time", value=True)]
    bridge = SimBridge(context=context, parameter_overrides=params(
        drones=n, fidelity="fleet", mode="lockstep", seed=seed, lockstep_min_commanders=n,
        lockstep_timeout_s=5.0, odom_max_drones=0))
    planner = FleetPlannerNode(context=context, parameter_overrides=params(
        drones=n, backend=backend, seed=seed) + sim_time)
    coordinator = FleetCoordinatorNode(context=context, parameter_overrides=params(
        drones=n, ledger_path=":memory:", solve_period_s=0.25, publish_period_s=0.25) + sim_time)
    feeder = TaskFeeder(context=context, parameter_overrides=params(
        seed=seed, rate_per_min=120.0, max_tasks=2, period_s=0.1) + sim_time)
    executor = SingleThreadedExecutor(context=context)
    nodes = [bridge, planner, coordinator, feeder]
    for node in nodes:
        executor.add_node(node)

    def kick() -> bool:  # re-send step 0 until the planner has answered (discovery)
        if bridge.step_count == 0:
            bridge.publish_state()
        return bridge.step_count > 0

    assert spin(executor, kick, 20.0), "the fleet planner never answered"
    steps = round(sim_seconds * bridge.scenario.rates.control_hz)
    assert spin(executor, lambda: bridge.step_count >= steps, 240.0), bridge.step_count
    state = bridge.sim.state()
    collided = np.flatnonzero(state.status & np.uint16(StatusFlag.COLLIDED)).tolist()
    tasks = coordinator.core.tasks
    result = {"tasks": {k: t.state.name for k, t in tasks.items()}, "pos": state.pos.copy(),
              "collided": collided, "events": bridge.events_total,
              "transitions": coordinator.core.ledger.transitions()}
    executor.shutdown()
    for node in nodes:
        close = getattr(node, "close", None)
        if close:
            close()
        node.destroy_node()
    return result


def test_tasks_are_delivered_exactly_once_without_collisions(ros_context: Any, spin: Any) -> None:
    r = fly(ros_context, spin, sim_seconds=45.0)
    assert r["tasks"], "the task stream fed nothing"
    assert list(r["tasks"].values()) == ["DELIVERED"] * len(r["tasks"]), r["tasks"]
    delivered = [t.task_id for t in r["transitions"] if t.to_state.name == "DELIVERED"]
    assert sorted(delivered) == sorted(set(delivered)), "a task was delivered twice"
    assert r["collided"] == [], f"drones {r['collided']} collided"
    assert np.all(np.isfinite(r["pos"]))
