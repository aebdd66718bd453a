"""fleet_coordinator over real DDS: submit/cancel services validate and answer with reasons,
fleet state drives assignments, task status transitions are published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_agent import qos, topics
from wm_agent.conversions import FleetStateArrays, fleet_state_to_msg
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.fleet_coordinator import FleetCoordinatorNode

pytestmark = pytest.mark.dds
msgs, srvs = require_interfaces()


@pytest.fixture
def graph(ros_context: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    params = {"drones": 3, "ledger_path": str(tmp_path / "ledger.sqlite"), "solve_period_s": 0.1,
              "publish_period_s": 0.1}
    node = FleetCoordinatorNode(
        context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
    )
    client_node = Node("client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(client_node)
    yield node, client_node, executor
    executor.shutdown()
    node.close()


def call(executor: Any, client: Any, request: Any, spin: Any) -> Any:
    assert spin(executor, lambda: client.service_is_ready(), 10.0), "service not discovered"
    future = client.call_async(request)
    assert spin(executor, future.done, 10.0), "no response"
    return future.result()


def task(task_id: str, **kw: Any) -> Any:
    t = msgs.Task(task_id=task_id, pickup_station=kw.get("pickup", "pick_a"),
                  dropoff_station=kw.get("dropoff", "drop_b"))
    t.payload_mass = kw.get("payload", 0.005)
    if "xyz" in kw:
        t.pickup_station = ""
        t.pickup_position.x, t.pickup_position.y, t.pickup_position.z = kw["xyz"]
    return t


@pytest.mark.parametrize(
    "bad, code, words",
    [
        (task("t1", dropoff="nowhere"), "UNKNOWN_STATION", "nowhere"),
        (task("t1", payload=1.0), "PAYLOAD_TOO_HEAVY", "payload"),
        (task("t1", xyz=(float("nan"), 1.0, 1.0)), "NON_FINITE", "pickup"),
        (task("t1", xyz=(500.0, 1.0, 1.0)), "OUT_OF_GEOFENCE", "geofence"),
        (task(""), "BAD_ID", "task_id"),
    ],
)
def test_submit_rejects_bad_input_with_a_reason(graph: Any, spin: Any, bad: Any, code: str,
                                                words: str) -> None:
    node, client_node, executor = graph
    client = client_node.create_client(srvs.SubmitTask, topics.SUBMIT_TASK)
    res = call(executor, client, srvs.SubmitTask.Request(task=bad), spin)
    assert not res.accepted
    assert res.code == getattr(srvs.SubmitTask.Response, code)
    assert words in res.reason.lower(), res.reason
    assert node.core.tasks == {}, "a rejected task must change nothing"


def test_submit_cancel_and_duplicate(graph: Any, spin: Any) -> None:
    _node, client_node, executor = graph
    submit = client_node.create_client(srvs.SubmitTask, topics.SUBMIT_TASK)
    cancel = client_node.create_client(srvs.CancelTask, topics.CANCEL_TASK)
    statuses: list[Any] = []
    client_node.create_subscription(msgs.TaskStatus, topics.TASK_STATUS, statuses.append, qos.EVENTS)
    ok = call(executor, submit, srvs.SubmitTask.Request(task=task("job-1")), spin)
    assert ok.accepted and ok.code == srvs.SubmitTask.Response.OK and ok.task_id == "job-1"
    dup = call(executor, submit, srvs.SubmitTask.Request(task=task("job-1")), spin)
    assert not dup.accepted and dup.code == srvs.SubmitTask.Response.DUPLICATE_ID
    res = call(executor, cancel, srvs.CancelTask.Request(task_id="job-1", reason="test"), spin)
    assert res.accepted
    again = call(executor, cancel, srvs.CancelTask.Request(task_id="job-1"), spin)
    assert not again.accepted and "job-1" in again.reason
    unknown = call(executor, cancel, srvs.CancelTask.Request(task_id="nope"), spin)
    assert not unknown.accepted
    assert spin(executor, lambda: any(s.state == msgs.TaskStatus.CANCELLED for s in statuses), 5.0)
    states = [(s.task_id, s.state) for s in statuses if s.task_id == "job-1"]
    assert states[0] == ("job-1", msgs.TaskStatus.QUEUED)
    assert ("job-1", msgs.TaskStatus.CANCELLED) in states


def test_fleet_state_gets_the_task_assigned_to_the_nearest_drone(graph: Any, spin: Any) -> None:
    node, client_node, executor = graph
    submit = client_node.create_client(srvs.SubmitTask, topics.SUBMIT_TASK)
    assignments: list[Any] = []
    client_node.create_subscription(msgs.FleetAssignments, topics.FLEET_ASSIGNMENTS,
                                    assignments.append, qos.LATCHED)
    state_pub = client_node.create_publisher(msgs.FleetState, topics.FLEET_STATE, qos.STATE)
    pick = node.core.layout.station("pick_a")
    near = pick + np.array([0.5, 0.0, 0.0])
    pos = np.array([[20.0, 20.0, 1.0], near, [30.0, 5.0, 1.0]], np.float32)
    state = FleetStateArrays(
        ids=np.arange(3, dtype=np.uint32), position=pos, velocity=np.zeros((3, 3), np.float32),
        orientation=np.tile(np.array([0, 0, 0, 1], np.float32), (3, 1)),
        body_rates=np.zeros((3, 3), np.float32), status=np.full(3, msgs.FleetState.FLYING, np.uint16),
    )
    assert call(executor, submit, srvs.SubmitTask.Request(task=task("near")), spin).accepted

    def assigned() -> bool:
        state_pub.publish(fleet_state_to_msg(state))
        return any("near" in list(a.task_ids) for a in assignments)

    assert spin(executor, assigned, 10.0), "task never assigned"
    last = next(a for a in reversed(assignments) if "near" in list(a.task_ids))
    i = list(last.task_ids).index("near")
    assert last.ids[i] == 1, "drone 1 is next to the pickup"
    assert last.phases[i] == msgs.FleetAssignments.PHASE_TO_PICKUP
    np.testing.assert_allclose(np.frombuffer(last.goal, np.float32).reshape(-1, 3)[i], pick, atol=1e-5)
