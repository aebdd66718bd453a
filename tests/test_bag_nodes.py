"""Recorder and replayer over real DDS: a recorded FleetState + Odometry stream reads back equal;
a replayed bag reaches subscribers byte for byte, remapped, with a /clock; the recorder process
closes its bag cleanly on SIGTERM; `wm-agent replay` (replay_main) runs as a command."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from test_bag_support import msgs, odom_msg, state_msg, write_sample_bag

from wm_agent import qos, topics
from wm_agent.bags import fleet_arrays, odometry_arrays, open_bag
from wm_agent.nodes.recorder import Recorder
from wm_agent.nodes.replayer import Replayer

pytestmark = pytest.mark.dds
REPO = Path(__file__).resolve().parent.parent
DEEP_BEST_EFFORT = QoSProfile(depth=200, reliability=ReliabilityPolicy.BEST_EFFORT)


class FleetPublisher(Node):
    """Publishes FleetState (step k) and /drone_0/odom at 50 Hz, remembering the bytes sent."""

    def __init__(self, context: Any) -> None:
        super().__init__("fake_fleet", context=context)
        self.state_pub = self.create_publisher(msgs.FleetState, topics.FLEET_STATE, qos.STATE)
        self.odom_pub = self.create_publisher(Odometry, topics.drone_odom(0), qos.STATE)
        self.sent: dict[int, bytes] = {}
        self.k = 0
        self.create_timer(0.02, self.tick)

    def tick(self) -> None:
        self.k += 1
        m = state_msg(self.k, n=8)
        self.sent[self.k] = serialize_message(m)
        self.state_pub.publish(m)
        self.odom_pub.publish(odom_msg(self.k))


def record_fleet(ros_context: Any, spin: Any, out: Path, min_states: int, linger_s: float = 0.0,
                 extra: tuple[Parameter, ...] = ()) -> tuple[FleetPublisher, dict[str, int]]:
    """Record FleetPublisher's state and odometry into ``out`` until ``min_states`` states are
    written (then ``linger_s`` more); returns the publisher (what it sent) and the counts."""
    fleet = FleetPublisher(ros_context)
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(out)),
        Parameter("topics", value=[topics.FLEET_STATE, "/drone_*/odom"]),
        Parameter("discovery_period_s", value=0.1),
        *extra,
    ])
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(fleet)
    ex.add_node(recorder)
    assert spin(ex, lambda: len(recorder.subscriptions_by_topic) == 2, 10.0), recorder.subscriptions_by_topic
    assert spin(ex, lambda: recorder.writer.counts.get(topics.FLEET_STATE, 0) >= min_states, 10.0)
    spin(ex, lambda: False, linger_s)
    counts = dict(recorder.writer.counts)
    recorder.close()
    ex.shutdown()
    fleet.destroy_node()
    recorder.destroy_node()
    return fleet, counts


def test_recorder_records_fleet_state_and_odometry(ros_context: Any, spin: Any, tmp_path: Path) -> None:
    out = tmp_path / "rec"
    fleet, counts = record_fleet(ros_context, spin, out, min_states=1, linger_s=1.0)

    assert counts[topics.FLEET_STATE] >= 30 and counts[topics.drone_odom(0)] >= 30
    bag = open_bag(out)
    assert {t: i.count for t, i in bag.topics.items()} == counts
    assert bag.topics[topics.FLEET_STATE].msgtype == "wm_agent_msgs/msg/FleetState"
    recorded = list(bag.messages([topics.FLEET_STATE]))
    arrays = fleet_arrays(bag)
    steps = arrays.step.astype(int)
    for m, step in zip(recorded, steps, strict=True):
        assert m.data == fleet.sent[step], f"recorded step {step} differs from what was published"
    np.testing.assert_allclose(arrays.position[:, 3, 1], steps)       # drone 3 at y = k
    assert np.all(np.diff(arrays.t_ns) >= 0), "receive times are monotonic"
    odom = odometry_arrays(bag)[0]
    assert np.all(np.diff(odom.position[:, 0]) >= 1)                   # x = k, increasing
    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    custom = info["custom_data"]
    assert custom["wm_agent.time_source"] == "receive"
    assert int(custom[f"wm_agent.received.{topics.FLEET_STATE}"]) == counts[topics.FLEET_STATE]
    missing = (steps[-1] - steps[0] + 1) - len(steps)                 # steps never recorded
    assert int(custom[f"wm_agent.lost.{topics.FLEET_STATE}"]) == missing


def test_replayer_publishes_bag_messages_with_clock(ros_context: Any, spin: Any, tmp_path: Path) -> None:
    path = tmp_path / "bag"
    written = write_sample_bag(path, 25)
    replayer = Replayer(context=ros_context, parameter_overrides=[
        Parameter("bag", value=str(path)),
        Parameter("rate", value=2.0),
        Parameter("topics", value=[topics.FLEET_STATE, topics.drone_odom(0), topics.FLEET_EVENTS]),
        Parameter("remap", value=["/fleet/state:=/replay/state"]),
        Parameter("wait_for_subscribers_s", value=10.0),
    ])
    sub = Node("listener", context=ros_context)
    got: dict[str, list[Any]] = {"state": [], "odom": [], "events": [], "clock": []}
    sub.create_subscription(msgs.FleetState, "/replay/state", got["state"].append, DEEP_BEST_EFFORT, raw=True)
    sub.create_subscription(Odometry, topics.drone_odom(0), got["odom"].append, DEEP_BEST_EFFORT)
    sub.create_subscription(msgs.FleetEvents, topics.FLEET_EVENTS, got["events"].append, qos.EVENTS)
    sub.create_subscription(Clock, topics.CLOCK, got["clock"].append, QoSProfile(depth=200))
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(sub)
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.setdefault("stats", replayer.run()))
    worker.start()
    spin(ex, lambda: not worker.is_alive(), 20.0)
    worker.join(5.0)
    spin(ex, lambda: len(got["state"]) >= 25 and len(got["odom"]) >= 25, 3.0)
    ex.shutdown()
    stats = result["stats"]
    assert stats.messages == 25 + 25 + 3
    assert stats.wall_s == pytest.approx(24 * 0.02 / 2.0, abs=0.4)       # rate 2: half the bag span
    assert got["state"] == written[topics.FLEET_STATE], "replayed FleetState bytes differ"
    assert [o.pose.pose.position.x for o in got["odom"]] == [float(k) for k in range(25)]
    assert [e.events[0].detail for e in got["events"]] == ["event 0", "event 10", "event 20"]
    assert got["clock"], "no /clock"
    first = got["clock"][0].clock
    assert first.sec * 10**9 + first.nanosec == 1_700_000_000 * 10**9
    replayer.destroy_node()
    sub.destroy_node()


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1")


def test_recorder_process_closes_the_bag_on_sigterm(tmp_path: Path) -> None:
    out = tmp_path / "sig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wm_agent.nodes.recorder", "--ros-args",
         "--params-file", str(REPO / "config" / "recorder.yaml"), "-p", f"output:={out}",
         "-p", "discovery_period_s:=0.1"],
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # up once it says "recording" (its signal handlers are installed before the node starts)
        assert proc.stdout is not None
        first = ""
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        if ready:
            first = proc.stdout.readline()
        assert "recording" in first, first
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=20)
        output = first + rest
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "closed" in output, output
    assert (out / "metadata.yaml").is_file() and (out / "sig_0.mcap").is_file()
    list(open_bag(out).messages())          # a valid (possibly empty) bag


def test_replay_main_command(tmp_path: Path) -> None:
    path = tmp_path / "cli"
    write_sample_bag(path, 10)
    code = (
        "import sys; from wm_agent.nodes.replayer import replay_main; "
        "sys.exit(replay_main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path), "--rate", "0", "--wait", "0", "--topics", topics.FLEET_STATE,
         "--remap", "/fleet/state:=/x/state"],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "replayed 10 messages" in result.stdout + result.stderr
    bad = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "nope")],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_recorder_discovers_topics_before_sim_time_starts(
    ros_context: Any, spin: Any, tmp_path: Path
) -> None:
    """Under use_sim_time with no /clock yet (sim time 0: a run held at its start), discovery
    still runs — on the wall clock — so the first messages of the run are recorded."""
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(tmp_path / "rec")),
        Parameter("topics", value=[topics.FLEET_STATE]),
        Parameter("discovery_period_s", value=0.1),
        Parameter("use_sim_time", value=True),
        Parameter("time_source", value="ros"),
    ])
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(recorder)
    spin(ex, lambda: False, 0.3)
    fleet = FleetPublisher(ros_context)  # appears after the recorder's first discovery
    ex.add_node(fleet)
    assert recorder.get_clock().now().nanoseconds == 0  # no /clock: sim time stands still
    assert spin(ex, lambda: topics.FLEET_STATE in recorder.subscriptions_by_topic, 10.0)
    recorder.close()
    ex.shutdown()
    fleet.destroy_node()
    recorder.destroy_node()


def test_replayer_refuses_a_bag_type_of_a_package_that_is_no_interface_package(
    ros_context: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bag's metadata names the types to publish: a Python package that is not a registered ROS
    interface package is never imported (issue #13 item 15); the replayer stops with a BagError."""
    from wm_agent.bags.definitions import MessageDefinitions
    from wm_agent.bags.writer import BagWriter
    from wm_agent.errors import BagError

    defs = tmp_path / "share"
    (defs / "evilpkg" / "msg").mkdir(parents=True)
    (defs / "evilpkg" / "msg" / "Foo.msg").write_text("int32 x\n")
    with BagWriter(tmp_path / "bag", definitions=MessageDefinitions([defs])) as w:
        w.add_topic("/foo", "evilpkg/msg/Foo")
        w.write("/foo", b"\x00\x01\x00\x00\x07\x00\x00\x00", 1)
    marker = tmp_path / "imported"
    pkg = tmp_path / "py" / "evilpkg"
    (pkg / "msg").mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('side effect')\n")
    (pkg / "msg" / "__init__.py").write_text("class Foo:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path / "py"))
    with pytest.raises(BagError, match="evilpkg is not a ROS 2 interface package"):
        Replayer(context=ros_context, parameter_overrides=[Parameter("bag", value=str(tmp_path / "bag"))])
    assert not marker.exists()


def test_sim_time_log_time_is_the_time_of_the_message(ros_context: Any, spin: Any, tmp_path: Path) -> None:
    """time_source:=ros under use_sim_time (what `wm-agent sim` records with): a message's log
    time is the sim time it carries — its header stamp; /clock's own time — not the recorder's
    clock when the message happened to be taken from the queue (issue #13 item 16: in lockstep
    runs the recorder lags and its clock is already ahead). Without a stamp (0 here): the clock."""
    out = tmp_path / "sim"
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(out)),
        Parameter("topics", value=[topics.FLEET_STATE, topics.CLOCK, "/drone_*/odom"]),
        Parameter("discovery_period_s", value=0.1),
        Parameter("use_sim_time", value=True),
        Parameter("time_source", value="ros"),
    ])
    pub = Node("sim", context=ros_context)
    clock_pub = pub.create_publisher(Clock, topics.CLOCK, qos.CLOCK)
    state_pub = pub.create_publisher(msgs.FleetState, topics.FLEET_STATE, qos.STATE)
    odom_pub = pub.create_publisher(Odometry, topics.drone_odom(0), qos.STATE)
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(recorder)
    ex.add_node(pub)
    five = Clock()
    five.clock.sec = 5

    def clock_at_five() -> bool:
        clock_pub.publish(five)
        return recorder.get_clock().now().nanoseconds == 5 * 10**9 \
            and recorder.writer.counts.get(topics.CLOCK, 0) >= 1

    assert spin(ex, clock_at_five, 10.0), "the recorder's sim clock never reached 5 s (or /clock unrecorded)"

    def recorded(publisher: Any, msg: Any, topic: str) -> Any:
        def check() -> bool:
            if publisher.get_subscription_count():
                publisher.publish(msg)
            return recorder.writer.counts.get(topic, 0) >= 1
        return check

    # stamped 3.0 s, received while the recorder's clock reads 5 s
    assert spin(ex, recorded(state_pub, state_msg(150), topics.FLEET_STATE), 10.0)
    assert spin(ex, recorded(odom_pub, odom_msg(0), topics.drone_odom(0)), 10.0)   # stamp 0
    recorder.close()
    ex.shutdown()
    pub.destroy_node()
    recorder.destroy_node()

    bag = open_bag(out)
    assert {m.timestamp_ns for m in bag.messages([topics.FLEET_STATE])} == {3 * 10**9}
    assert {m.timestamp_ns for m in bag.messages([topics.drone_odom(0)])} == {5 * 10**9}
    clocks = list(bag.decoded([topics.CLOCK]))
    assert clocks and all(d.timestamp_ns == d.msg.clock.sec * 10**9 + d.msg.clock.nanosec for d in clocks)


def test_recorder_keeps_a_burst_of_2000_task_statuses(ros_context: Any, spin: Any, tmp_path: Path) -> None:
    """The coordinator publishes one TaskStatus per transition: 2,000 tasks accepted at once
    are 2,000 messages in one go, and the bag (what the report counts) must hold all."""
    pub_node = Node("fake_coordinator", context=ros_context)
    pub = pub_node.create_publisher(msgs.TaskStatus, topics.TASK_STATUS, qos.TASKS)
    out = tmp_path / "rec"
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(out)), Parameter("topics", value=[topics.TASK_STATUS]),
        Parameter("discovery_period_s", value=0.1)])
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(pub_node)
    ex.add_node(recorder)
    assert spin(ex, lambda: topics.TASK_STATUS in recorder.subscriptions_by_topic
                and pub.get_subscription_count() > 0, 10.0)
    for k in range(2000):
        pub.publish(msgs.TaskStatus(task_id=f"t{k}", state=msgs.TaskStatus.QUEUED))
    assert spin(ex, lambda: recorder.writer.counts.get(topics.TASK_STATUS, 0) >= 2000, 20.0), \
        recorder.writer.counts
    recorder.close()
    ex.shutdown()
    for node in (pub_node, recorder):
        node.destroy_node()
    assert open_bag(out).topics[topics.TASK_STATUS].count == 2000


def test_a_rate_limited_fleet_state_is_recorded_at_its_rate_and_decodes_everywhere(
        ros_context: Any, spin: Any, tmp_path: Path) -> None:
    """rates:=['/fleet/state=10'] with header-stamp time: one FleetState per 0.1 s of message
    time (the publisher stamps 50 Hz), odometry in full; rosbags and mcap + mcap_ros2 decode the
    bag with the counts metadata.yaml states; recorded + decimated = received."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory
    from rosbags.highlevel import AnyReader

    out = tmp_path / "rate"
    record_fleet(ros_context, spin, out, min_states=10, extra=(
        Parameter("time_source", value="ros"),
        Parameter("rates", value=[f"{topics.FLEET_STATE}=10"]),
    ))

    info = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    counts = {t["topic_metadata"]["name"]: t["message_count"]
              for t in info["topics_with_message_count"]}
    custom = info["custom_data"]
    n_state = counts[topics.FLEET_STATE]
    assert custom[f"wm_agent.rate.{topics.FLEET_STATE}"] == "10"
    assert n_state + int(custom[f"wm_agent.decimated.{topics.FLEET_STATE}"]) == int(
        custom[f"wm_agent.received.{topics.FLEET_STATE}"])
    assert counts[topics.drone_odom(0)] > 3 * n_state  # odometry in full (50 Hz)
    with AnyReader([out]) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == counts
        steps = [reader.deserialize(raw, c.msgtype).step for c, _, raw in reader.messages()
                 if c.topic == topics.FLEET_STATE]
    windows = [k // 5 for k in steps]  # stamps k * 20 ms: a 0.1 s window holds 5 steps
    assert len(steps) == n_state and len(set(windows)) == n_state  # one per window
    decoded: dict[str, int] = {}
    with next(out.glob("*.mcap")).open("rb") as f:
        for _s, channel, _m, _d in make_reader(f, decoder_factories=[DecoderFactory()]
                                               ).iter_decoded_messages():
            decoded[channel.topic] = decoded.get(channel.topic, 0) + 1
    assert decoded == counts
