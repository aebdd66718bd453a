"""Replay and recording cores without DDS: timing at a rate, clock ticks, topic filter and remap,
topic selection, QoS matching and loss counting."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bag_support import DT, T0, write_sample_bag

from wm_agent import topics
from wm_agent.bags import open_bag
from wm_agent.bags.recording import (
    PROJECT_TOPICS,
    LossTracker,
    OfferedQos,
    QosKind,
    qos_kind,
    select_topics,
    subscription_qos,
)
from wm_agent.bags.replay import ReplayOptions, clock_cdr, parse_remaps, replay
from wm_agent.errors import BagError

COUNT = 20


@pytest.fixture(scope="module")
def bag_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rp") / "bag"
    write_sample_bag(path, COUNT)
    return path


class FakeTime:
    def __init__(self) -> None:
        self.t = 100.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s
        self.slept += s


@pytest.mark.parametrize("rate", [1.0, 2.0, 0.0])
def test_replay_timing_clock_filter_and_remap(bag_path: Path, rate: float) -> None:
    clock = FakeTime()
    published: list[tuple[float, str, bytes]] = []
    clocks: list[int] = []
    opts = ReplayOptions(
        rate=rate, topics=(topics.FLEET_STATE, topics.drone_odom(0)),
        remap=parse_remaps(["/fleet/state:=/replay/state"]), clock_hz=25.0,
    )
    stats = replay(open_bag(bag_path), lambda t, d: published.append((clock.t, t, d)), clocks.append, opts,
                   now=clock.now, sleep=clock.sleep)
    assert stats.messages == 2 * COUNT
    assert stats.per_topic == {"/replay/state": COUNT, topics.drone_odom(0): COUNT}
    assert {t for _, t, _ in published} == {"/replay/state", topics.drone_odom(0)}
    span = (COUNT - 1) * DT / 1e9
    expected_wall = span / rate if rate else 0.0
    assert clock.slept == pytest.approx(expected_wall)
    # clock: bag time, every 40 ms of bag time at 25 Hz (messages are 20 ms apart)
    assert clocks[0] == T0 and clocks == [T0 + k * DT for k in range(0, COUNT, 2)]
    assert stats.clocks == len(clocks)
    raw = [m.data for m in open_bag(bag_path).messages([topics.FLEET_STATE])]
    assert [d for _, t, d in published if t == "/replay/state"] == raw


def test_replay_skips_recorded_clock_and_honours_stop(bag_path: Path) -> None:
    count = {"n": 0}

    def publish(_t: str, _d: bytes) -> None:
        count["n"] += 1

    stats = replay(open_bag(bag_path), publish, None, ReplayOptions(rate=0),
                   should_stop=lambda: count["n"] >= 7)
    assert stats.messages == 7


def test_replay_option_errors(bag_path: Path) -> None:
    with pytest.raises(BagError, match="rate"):
        ReplayOptions(rate=-1)
    with pytest.raises(BagError, match="old_topic:=/new_topic"):
        parse_remaps(["/a=/b"])
    with pytest.raises(BagError, match="/missing"):
        replay(open_bag(bag_path), lambda t, d: None, None, ReplayOptions(topics=("/missing",)))


def test_clock_cdr_matches_rclpy() -> None:
    from rclpy.serialization import serialize_message
    from rosgraph_msgs.msg import Clock

    m = Clock()
    m.clock.sec, m.clock.nanosec = 12, 345
    assert clock_cdr(12 * 10**9 + 345) == serialize_message(m)


def test_topic_selection_and_qos() -> None:
    graph = [
        ("/fleet/state", ["wm_agent_msgs/msg/FleetState"]),
        ("/drone_3/odom", ["nav_msgs/msg/Odometry"]),
        ("/drone_3/cmd_vel", ["geometry_msgs/msg/TwistStamped"]),
        ("/rosout", ["rcl_interfaces/msg/Log"]),
        ("/twice", ["a/msg/A", "b/msg/B"]),
        ("/clock", ["rosgraph_msgs/msg/Clock"]),
    ]
    chosen = select_topics(graph, PROJECT_TOPICS, exclude=["/clock"])
    assert chosen == {
        "/fleet/state": "wm_agent_msgs/msg/FleetState",
        "/drone_3/odom": "nav_msgs/msg/Odometry",
        "/drone_3/cmd_vel": "geometry_msgs/msg/TwistStamped",
    }
    assert select_topics(graph, ["/drone_*/odom"]) == {"/drone_3/odom": "nav_msgs/msg/Odometry"}
    assert qos_kind("/fleet/state") is QosKind.STATE and qos_kind("/drone_0/odom") is QosKind.STATE
    assert qos_kind("/fleet/assignments") is QosKind.LATCHED
    assert qos_kind("/drone_0/cmd_vel") is QosKind.COMMAND
    no_pub = subscription_qos("/fleet/state", [], 100)
    assert not no_pub.reliable and no_pub.depth == 100
    assert subscription_qos("/fleet/events", [], 10).reliable
    mixed = subscription_qos("/x", [OfferedQos(True, True), OfferedQos(False, True)], 10)
    assert not mixed.reliable and mixed.transient_local


def test_loss_tracker_counts_sequence_gaps_per_publisher() -> None:
    loss = LossTracker()
    a, b = b"pub-a", b"pub-b"
    for seq in (5, 6, 9, 10):           # 7, 8 lost; starting at 5 is not a loss (late join)
        loss.on_message("/t", 10, a, seq)
    for seq in (1, 2, 3):
        loss.on_message("/t", 10, b, seq)
    loss.on_message("/t", 10, None, None)
    loss.on_lost("/u", 4)
    t = loss.topics["/t"]
    assert (t.received, t.gaps, t.publishers, t.size_bytes, t.lost) == (8, 2, 2, 80, 2)
    assert loss.topics["/u"].lost == 4
    assert loss.custom_data()["wm_agent.lost./t"] == "2"
    assert any("/t: received 8, lost 2" in line for line in loss.report_lines())
