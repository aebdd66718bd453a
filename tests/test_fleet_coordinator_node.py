"""fleet_coordinator over real DDS: submit/cancel services and the bulk topic validate and answer
with reasons (the bulk one with a TaskArrayAck per array), fleet state drives assignments, task
status transitions are published — only for accepted tasks, none lost in a burst — and bulk
tasks sent while the coordinator restarts reach the ledger."""

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
    if "deadline" in kw:
        t.deadline.sec, t.deadline.nanosec = kw["deadline"]
    return t


@pytest.mark.parametrize(
    "bad, code, words",
    [
        (task("t1", dropoff="nowhere"), "UNKNOWN_STATION", "nowhere"),
        (task("t1", payload=1.0), "PAYLOAD_TOO_HEAVY", "payload"),
        (task("t1", xyz=(float("nan"), 1.0, 1.0)), "NON_FINITE", "pickup"),
        (task("t1", xyz=(500.0, 1.0, 1.0)), "OUT_OF_GEOFENCE", "geofence"),
        (task(""), "BAD_ID", "task_id"),
        (task("a:b"), "BAD_ID", "task_id"),
        (task("\u0117\u0160"), "BAD_ID", "task_id"),
        (task(" id"), "BAD_ID", "task_id"),
        (task("a\u00a0b"), "BAD_ID", "task_id"),
        (task("\u00e9" * 64), "BAD_ID", "task_id"),
        (task("t1", xyz=(9.0, 6.4, 1.5)), "BLOCKED", "inside a shelf"),
        (task("t1", deadline=(-5, 0)), "BAD_DEADLINE", "deadline"),
        (task("t1", deadline=(5, 1_000_000_000)), "BAD_DEADLINE", "nanosec"),
        (task("x" * 100_000), "BAD_ID", "100000 characters"),
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
    assert len(res.reason) < 500 and len(res.task_id) <= 128  # a huge value is not echoed
    assert node.core.tasks == {}, "a rejected task must change nothing"


def test_submit_cancel_and_duplicate(graph: Any, spin: Any) -> None:
    _node, client_node, executor = graph
    submit = client_node.create_client(srvs.SubmitTask, topics.SUBMIT_TASK)
    cancel = client_node.create_client(srvs.CancelTask, topics.CANCEL_TASK)
    statuses: list[Any] = []
    client_node.create_subscription(msgs.TaskStatus, topics.TASK_STATUS, statuses.append, qos.TASKS)
    ok = call(executor, submit, srvs.SubmitTask.Request(task=task("job-1")), spin)
    assert ok.accepted and ok.code == srvs.SubmitTask.Response.OK and ok.task_id == "job-1"
    again = call(executor, submit, srvs.SubmitTask.Request(task=task("job-1")), spin)
    assert again.accepted and again.code == srvs.SubmitTask.Response.OK  # a retry: idempotent
    assert "already accepted" in again.reason
    dup = call(executor, submit, srvs.SubmitTask.Request(task=task("job-1", pickup="pick_b")), spin)
    assert not dup.accepted and dup.code == srvs.SubmitTask.Response.DUPLICATE_ID
    res = call(executor, cancel, srvs.CancelTask.Request(task_id="job-1", reason="test"), spin)
    assert res.accepted
    again = call(executor, cancel, srvs.CancelTask.Request(task_id="job-1"), spin)
    assert not again.accepted and "job-1" in again.reason
    unknown = call(executor, cancel, srvs.CancelTask.Request(task_id="nope"), spin)
    assert not unknown.accepted
    assert spin(executor, lambda: any(s.state == msgs.TaskStatus.CANCELLED for s in statuses), 5.0)
    states = [(s.task_id, s.state) for s in statuses if s.task_id == "job-1"]
    assert states == [("job-1", msgs.TaskStatus.QUEUED), ("job-1", msgs.TaskStatus.CANCELLED)]


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


def bulk(tasks: list[Any], frame_id: str = "map") -> Any:
    m = msgs.TaskArray()
    m.header.frame_id = frame_id
    m.header.stamp.sec = 7
    m.tasks = tasks
    return m


class BulkClient:
    """Publishes TaskArrays and collects the acks and the task statuses."""

    def __init__(self, node: Node) -> None:
        self.acks: list[Any] = []
        self.statuses: list[Any] = []
        self.pub = node.create_publisher(msgs.TaskArray, topics.TASK_BULK, qos.TASKS)
        node.create_subscription(msgs.TaskArrayAck, topics.TASK_BULK_ACK, self.acks.append, qos.TASKS)
        node.create_subscription(msgs.TaskStatus, topics.TASK_STATUS, self.statuses.append, qos.TASKS)

    def ready(self) -> bool:
        return self.pub.get_subscription_count() > 0

    def answers(self) -> list[tuple[str, int]]:
        return [(tid, code) for a in self.acks for tid, code in zip(a.task_ids, a.codes, strict=True)]


def test_bulk_tasks_are_answered_in_order_and_rejections_never_reach_task_status(
        graph: Any, spin: Any) -> None:
    """A duplicate inside one bulk array, a duplicate of a live task and a bad id are answered
    on /tasks/bulk_ack (in the array's order); /tasks/status carries only the lifecycle of the
    accepted tasks (a watcher of t1 never sees it "rejected")."""
    node, client_node, executor = graph
    c = BulkClient(client_node)
    assert spin(executor, c.ready, 10.0)
    c.pub.publish(bulk([task("t1"), task("t1", pickup="pick_c"), task("t2"), task("bad:id"),
                        task("t1")]))
    ok, dup, bad = (srvs.SubmitTask.Response.OK, srvs.SubmitTask.Response.DUPLICATE_ID,
                    srvs.SubmitTask.Response.BAD_ID)
    assert spin(executor, lambda: len(c.answers()) == 5 and len(c.statuses) >= 2, 10.0)
    assert c.answers() == [("t1", ok), ("t1", dup), ("t2", ok), ("bad:id", bad), ("t1", ok)]
    assert c.acks[0].header.stamp.sec == 7  # the ack names the array it answers
    assert not spin(executor, lambda: len(c.statuses) > 2, 0.5)
    assert [(s.task_id, s.state) for s in c.statuses] == [
        ("t1", msgs.TaskStatus.QUEUED), ("t2", msgs.TaskStatus.QUEUED)]
    assert set(node.core.tasks) == {"t1", "t2"}
    assert node.core.tasks["t1"].spec.pickup == "pick_a"


def test_bulk_array_in_another_frame_is_rejected_whole(graph: Any, spin: Any) -> None:
    node, client_node, executor = graph
    c = BulkClient(client_node)
    assert spin(executor, c.ready, 10.0)
    c.pub.publish(bulk([task("f1"), task("f2", xyz=(10.0, 5.7, 1.5))], frame_id="odom"))
    assert spin(executor, lambda: len(c.answers()) == 2, 10.0)
    assert {code for _, code in c.answers()} == {srvs.SubmitTask.Response.BAD_FRAME}
    assert "'odom'" in c.acks[0].reasons[0] and "'map'" in c.acks[0].reasons[0]
    assert node.core.tasks == {}


def test_a_burst_of_2000_bulk_tasks_loses_no_status(ros_context: Any, tmp_path: Path,
                                                    spin: Any) -> None:
    params = {"drones": 3, "ledger_path": ":memory:", "max_open_per_station": 1000}
    node = FleetCoordinatorNode(
        context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    client_node = Node("client", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    executor.add_node(client_node)
    c = BulkClient(client_node)
    assert spin(executor, c.ready, 10.0)
    picks = ("pick_a", "pick_b", "pick_c", "pick_d")
    c.pub.publish(bulk([task(f"b{k}", pickup=picks[k % 4]) for k in range(2000)]))
    assert spin(executor, lambda: len(c.statuses) >= 2000 and len(c.answers()) == 2000, 30.0), (
        len(c.statuses), len(c.answers()))
    assert {code for _, code in c.answers()} == {srvs.SubmitTask.Response.OK}
    queued = {s.task_id for s in c.statuses if s.state == msgs.TaskStatus.QUEUED}
    assert queued == {f"b{k}" for k in range(2000)}
    executor.shutdown()
    node.close()


def test_bulk_tasks_sent_while_the_coordinator_restarts_all_reach_the_ledger(
        ros_context: Any, tmp_path: Path, spin: Any) -> None:
    """The feeder sends again what got no answer: the tasks it fed while the coordinator was
    down are in the ledger after the restart, each once."""
    from wm_agent.fleet.ledger import Ledger
    from wm_agent.nodes.task_feeder import TaskFeeder

    ledger = str(tmp_path / "ledger.sqlite")

    def coordinator() -> FleetCoordinatorNode:
        return FleetCoordinatorNode(context=ros_context, parameter_overrides=[
            Parameter("drones", value=3), Parameter("ledger_path", value=ledger)])

    feeder = TaskFeeder(context=ros_context, parameter_overrides=[
        Parameter("rate_per_min", value=600.0), Parameter("period_s", value=0.05),
        Parameter("retry_s", value=0.3)])
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(feeder)
    first = coordinator()
    executor.add_node(first)
    assert spin(executor, lambda: feeder.stream.count >= 5 and len(feeder.pending) == 0, 20.0)
    executor.remove_node(first)  # killed: whatever is published now reaches nobody
    first.close()
    first.destroy_node()
    down_from = feeder.stream.count
    assert spin(executor, lambda: feeder.stream.count >= down_from + 5, 20.0)
    assert len(feeder.pending) >= 5  # fed while down, no answer yet
    second = coordinator()
    executor.add_node(second)
    assert spin(executor, lambda: len(feeder.pending) == 0 and feeder.stream.count > down_from + 5,
                20.0), len(feeder.pending)
    fed = {f"job-{k:06d}" for k in range(feeder.stream.count)}
    executor.remove_node(second)
    second.close()
    executor.shutdown()
    state = Ledger.open(ledger).restore()
    assert fed - set(state.tasks) == set(), "fed tasks missing from the ledger"


def test_every_core_setting_is_a_node_parameter_and_reaches_the_core() -> None:
    """CoordinatorNodeConfig.core() once dropped priority/urgency weights: now every
    CoordinatorConfig field (but the ledger path, resolved by the node) is a parameter of the
    node under its own name, with the core's default, and arrives in the core's config."""
    import dataclasses

    from wm_agent.fleet.coordinator import CoordinatorConfig
    from wm_agent.nodes.common import build_config, parameter_fields
    from wm_agent.nodes.fleet_coordinator import CoordinatorNodeConfig

    params = {name: default for name, default, _ in parameter_fields(CoordinatorNodeConfig)}
    core_fields = [f for f in dataclasses.fields(CoordinatorConfig) if f.name != "ledger_path"]
    for f in core_fields:
        assert params[f.name] == f.default, f.name
    changed = {f.name: f.default * 2 for f in core_fields}
    cfg = build_config(CoordinatorNodeConfig, {**changed, "ledger_path": ":memory:"})
    core = cfg.core()
    for name, value in changed.items():
        assert getattr(core, name) == value, name
    assert core.ledger_path == ":memory:"
