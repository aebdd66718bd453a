"""The project's own messages over real Fast DDS: build, publish, receive, compare arrays."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.conversions import (
    FleetCommandArrays,
    FleetStateArrays,
    MessageError,
    fleet_assignments_from_msg,
    fleet_command_from_msg,
    fleet_command_to_msg,
    fleet_state_from_msg,
    fleet_state_to_msg,
)
from wm_agent.interfaces import require_interfaces

pytestmark = pytest.mark.dds
msgs, srvs = require_interfaces()


def random_state(n: int, seed: int = 0) -> FleetStateArrays:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return FleetStateArrays(
        ids=rng.permutation(n).astype(np.uint32),
        position=rng.uniform(-50, 50, size=(n, 3)).astype(np.float32),
        velocity=rng.normal(size=(n, 3)).astype(np.float32),
        orientation=q,
        body_rates=rng.normal(size=(n, 3)).astype(np.float32),
        status=rng.integers(0, 128, size=n).astype(np.uint16),
    )


def test_conversion_roundtrip_without_dds() -> None:
    state = random_state(17)
    back = fleet_state_from_msg(fleet_state_to_msg(state))
    for name in FleetStateArrays._fields:
        np.testing.assert_array_equal(getattr(back, name), getattr(state, name), err_msg=name)


def test_malformed_state_is_rejected_with_the_field_name() -> None:
    msg = fleet_state_to_msg(random_state(4))
    msg.velocity = msg.velocity[:-1]  # 11 values for 4 drones
    with pytest.raises(MessageError, match="velocity"):
        fleet_state_from_msg(msg)


def test_assignments_decode_and_malformed_ones_name_the_field() -> None:
    msg = msgs.FleetAssignments()
    msg.ids = [4, 9]
    msg.phases = [1, 3]
    msg.goal = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    a = fleet_assignments_from_msg(msg)
    assert a.ids.tolist() == [4, 9] and a.phases.tolist() == [1, 3]
    np.testing.assert_array_equal(a.goal, [[1, 2, 3], [4, 5, 6]])
    msg.goal = [1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(MessageError, match="goal"):
        fleet_assignments_from_msg(msg)
    msg.goal = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    msg.phases = [1]
    with pytest.raises(MessageError, match="phases"):
        fleet_assignments_from_msg(msg)


@pytest.mark.parametrize("n", [1, 1000])
def test_fleet_state_over_dds(ros_context: object, spin, n: int) -> None:
    pub_node = Node("state_pub", context=ros_context)
    sub_node = Node("state_sub", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(pub_node)
    executor.add_node(sub_node)
    received: list[object] = []
    sub_node.create_subscription(msgs.FleetState, topics.FLEET_STATE, received.append, qos.STATE)
    pub = pub_node.create_publisher(msgs.FleetState, topics.FLEET_STATE, qos.STATE)
    state = random_state(n, seed=n)
    msg = fleet_state_to_msg(state)
    msg.header.stamp.sec = 12
    assert spin(executor, lambda: pub.get_subscription_count() > 0, 10.0), "no discovery"

    def publish_and_check() -> bool:
        if not received:
            pub.publish(msg)
        return bool(received)

    assert spin(executor, publish_and_check, 10.0), "fleet state never arrived"
    got = fleet_state_from_msg(received[0])
    assert received[0].header.stamp.sec == 12
    assert received[0].header.frame_id == "map"
    for name in FleetStateArrays._fields:
        np.testing.assert_array_equal(getattr(got, name), getattr(state, name), err_msg=name)
    executor.shutdown()


def test_fleet_command_and_tasks_over_dds(ros_context: object, spin) -> None:
    node = Node("cmd_roundtrip", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    cmds: list[object] = []
    bulk: list[object] = []
    node.create_subscription(msgs.FleetCommand, topics.FLEET_COMMAND, cmds.append, qos.COMMAND_SUB)
    node.create_subscription(msgs.TaskArray, topics.TASK_BULK, bulk.append, qos.EVENTS)
    cmd_pub = node.create_publisher(msgs.FleetCommand, topics.FLEET_COMMAND, qos.COMMAND)
    task_pub = node.create_publisher(msgs.TaskArray, topics.TASK_BULK, qos.EVENTS)
    n = 50
    cmd = FleetCommandArrays(
        ids=np.arange(n, dtype=np.uint32),
        velocity=np.linspace(-1, 1, 3 * n, dtype=np.float32).reshape(n, 3),
        yaw_rate=np.full(n, 0.25, np.float32),
        mode=np.full(n, msgs.FleetCommand.MODE_VELOCITY, np.uint8),
        step=42,
    )
    tasks = msgs.TaskArray()
    for i in range(3):
        t = msgs.Task(task_id=f"job-{i}", pickup_station="pick_a", dropoff_station="drop_b")
        t.priority = 10 * i
        t.payload_mass = 0.005
        tasks.tasks.append(t)
    assert spin(executor, lambda: cmd_pub.get_subscription_count() > 0
                and task_pub.get_subscription_count() > 0, 10.0)

    def send() -> bool:
        if not cmds:
            cmd_pub.publish(fleet_command_to_msg(cmd))
        if not bulk:
            task_pub.publish(tasks)
        return bool(cmds and bulk)

    assert spin(executor, send, 10.0)
    got = fleet_command_from_msg(cmds[0])
    assert got.step == 42
    np.testing.assert_array_equal(got.velocity, cmd.velocity)
    np.testing.assert_array_equal(got.yaw_rate, cmd.yaw_rate)
    np.testing.assert_array_equal(got.mode, cmd.mode)
    assert [t.task_id for t in bulk[0].tasks] == ["job-0", "job-1", "job-2"]
    assert [t.priority for t in bulk[0].tasks] == [0, 10, 20]
    executor.shutdown()
