"""The one-drone `planner` node over real DDS with the sim bridge: given a goal, the drone
reaches it (world-model planner, shipped model, onnxruntime), and the heartbeat flows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_agent import qos, topics
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.planner import PlannerNode
from wm_agent.nodes.sim_bridge import SimBridge
from wm_agent.sim.types import StatusFlag

pytestmark = [pytest.mark.dds, pytest.mark.slow]
msgs, _ = require_interfaces()


def test_drone_given_a_goal_reaches_it(ros_context: Any, spin: Any) -> None:
    bridge = SimBridge(context=ros_context, parameter_overrides=[
        Parameter("drones", value=1), Parameter("fidelity", value="fleet"),
        Parameter("mode", value="realtime"), Parameter("odom_max_drones", value=1)])
    planner = PlannerNode(context=ros_context, namespace="/drone_0", parameter_overrides=[
        Parameter("drones", value=1), Parameter("backend", value="onnxruntime"),
        Parameter("preset", value="full")])
    user = Node("user", context=ros_context)
    goal_pub = user.create_publisher(PoseStamped, topics.drone_goal(0), qos.LATCHED)
    beats: list[Any] = []
    user.create_subscription(msgs.DroneStatus, topics.DRONE_STATUS, beats.append, qos.EVENTS)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (bridge, planner, user):
        executor.add_node(node)
    goal = np.array([3.0, 3.0, 1.0])
    msg = PoseStamped()
    msg.header.frame_id = "map"
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, goal)
    goal_pub.publish(msg)

    def reached() -> bool:
        return float(np.linalg.norm(bridge.sim.state().pos[0] - goal)) < 0.3

    assert spin(executor, reached, 40.0), f"drone at {bridge.sim.state().pos[0]}, goal {goal}"
    assert beats and beats[-1].drone_id == 0 and beats[-1].planner_backend == "onnxruntime"
    assert beats[-1].plan_latency_ms > 0
    state = bridge.sim.state()
    assert not state.status[0] & StatusFlag.COLLIDED, "collided"
    executor.shutdown()
    bridge.close()
