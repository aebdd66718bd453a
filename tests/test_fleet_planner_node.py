"""The fleet_planner node over real DDS, lockstep: each fleet state is answered with the
assignments stamped with it; a state the coordinator never answered (FleetState is best effort)
does not stall the planner once assignments for a later state arrive."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_agent import qos, topics
from wm_agent.conversions import FleetStateArrays, fleet_state_to_msg, time_msg
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.fleet_planner import FleetPlannerNode

pytestmark = [pytest.mark.dds]
msgs, _ = require_interfaces()
N = 3


def _state(step: int) -> Any:
    pos = np.array([[2.0 + i, 2.0, 1.0] for i in range(N)])
    arrays = FleetStateArrays(
        ids=np.arange(N, dtype=np.uint32), position=pos, velocity=np.zeros((N, 3)),
        orientation=np.tile([0.0, 0.0, 0.0, 1.0], (N, 1)), body_rates=np.zeros((N, 3)),
        status=np.full(N, msgs.FleetState.FLYING, np.uint16), step=step)
    m = fleet_state_to_msg(arrays)
    m.header.stamp = time_msg(step / 48.0)
    return m


def _assignments(step: int) -> Any:
    m = msgs.FleetAssignments()
    m.header.stamp = time_msg(step / 48.0)
    m.header.frame_id = "map"
    m.ids = list(range(N))
    m.epochs = [1] * N
    m.phases = [1] * N  # TO_PICKUP
    m.goal = np.tile([6.0, 4.0, 1.0], N).astype(np.float32).tolist()
    m.task_ids = [f"t{i}" for i in range(N)]
    return m


def test_a_state_the_coordinator_missed_does_not_stall_lockstep(ros_context: Any, spin: Any) -> None:
    planner = FleetPlannerNode(context=ros_context, parameter_overrides=[
        Parameter("drones", value=N), Parameter("backend", value="classical"),
        Parameter("lockstep", value=True)])
    test = Node("lockstep_test", context=ros_context)
    state_pub = test.create_publisher(msgs.FleetState, topics.FLEET_STATE,
                                      qos.STATE_LOCKSTEP)  # as the lockstep bridge does
    assign_pub = test.create_publisher(msgs.FleetAssignments, topics.FLEET_ASSIGNMENTS, qos.LATCHED)
    got: list[Any] = []
    test.create_subscription(msgs.FleetCommand, topics.FLEET_COMMAND, got.append, qos.COMMAND_SUB)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (planner, test):
        executor.add_node(node)
    assert spin(executor, lambda: state_pub.get_subscription_count() > 0
                and assign_pub.get_subscription_count() > 0
                and planner.cmd_pub.get_subscription_count() > 0, 10.0)
    # step 1 answered normally
    state_pub.publish(_state(1))
    assign_pub.publish(_assignments(1))
    assert spin(executor, lambda: [m.step for m in got] == [2], 10.0), [m.step for m in got]
    # the coordinator misses step 2 (no assignments stamped with it) but answers step 3
    state_pub.publish(_state(2))
    assert not spin(executor, lambda: len(got) > 1, 0.5)  # lockstep: waits for step 2's table
    state_pub.publish(_state(3))
    assign_pub.publish(_assignments(3))
    assert spin(executor, lambda: [m.step for m in got] == [2, 3, 4], 10.0), [m.step for m in got]
    # and keeps going
    state_pub.publish(_state(4))
    assign_pub.publish(_assignments(4))
    assert spin(executor, lambda: [m.step for m in got] == [2, 3, 4, 5], 10.0), [m.step for m in got]
    executor.shutdown()
    for node in (planner, test):
        node.destroy_node()
