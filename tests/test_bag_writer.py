"""Writer roundtrip: a rosbag2 MCAP folder that two independent readers (rosbags' AnyReader and
the mcap library with mcap_ros2's decoder) open and decode completely, custom types included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.serialization import serialize_message
from rosbags.highlevel import AnyReader
from test_bag_support import DT, T0, odom_msg, state_msg, write_sample_bag

from wm_agent import topics
from wm_agent.bags.definitions import MessageDefinitions, field_types, normalize_type
from wm_agent.bags.reader import open_bag
from wm_agent.bags.writer import BagWriter
from wm_agent.errors import BagError

Bag = tuple[Path, dict[str, list[bytes]]]
COUNT = 40


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Bag:
    path = tmp_path_factory.mktemp("w") / "run"
    written = write_sample_bag(path, COUNT)
    return path, written


def test_layout_and_metadata(bag: Bag) -> None:
    path, written = bag
    assert sorted(p.name for p in path.iterdir()) == ["metadata.yaml", "run_0.mcap"]
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9 and info["storage_identifier"] == "mcap"
    assert info["relative_file_paths"] == ["run_0.mcap"]
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in info["topics_with_message_count"]}
    assert counts == {t: len(v) for t, v in written.items()}
    assert info["message_count"] == sum(counts.values())
    assert info["starting_time"]["nanoseconds_since_epoch"] == T0
    assert info["duration"]["nanoseconds"] == (COUNT - 1) * DT
    entries = info["topics_with_message_count"]
    types = {t["topic_metadata"]["name"]: t["topic_metadata"]["type"] for t in entries}
    assert types[topics.FLEET_STATE] == "wm_agent_msgs/msg/FleetState"
    hashes = [t["topic_metadata"]["type_description_hash"] for t in info["topics_with_message_count"]]
    assert all(h.startswith("RIHS01_") for h in hashes)


def test_rosbags_anyreader_decodes_every_message(bag: Bag) -> None:
    path, written = bag
    got: dict[str, list[object]] = {}
    with AnyReader([path]) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {t: len(v) for t, v in written.items()}
        for conn, _t, raw in reader.messages():
            assert raw == written[conn.topic][len(got.get(conn.topic, []))]
            got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    last = got[topics.FLEET_STATE][-1]
    np.testing.assert_array_equal(last.position.reshape(-1, 3)[:, 1], COUNT - 1)  # type: ignore[attr-defined]
    assert last.step == COUNT - 1  # type: ignore[attr-defined]
    assert got[topics.FLEET_EVENTS][1].events[0].detail == "event 10"  # type: ignore[attr-defined]
    assert got[topics.drone_odom(3)][5].pose.pose.position.y == 3.0  # type: ignore[attr-defined]


def test_mcap_reader_with_ros2_decoder_decodes_every_message(bag: Bag) -> None:
    path, written = bag
    counts: dict[str, int] = {}
    with (path / "run_0.mcap").open("rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert summary.statistics.message_count == sum(len(v) for v in written.values())
        assert all(s.encoding == "ros2msg" for s in summary.schemas.values())
        assert reader.get_header().profile == "ros2"
        crcs = _chunk_crcs(path / "run_0.mcap")
        assert crcs and all(crc != 0 for crc in crcs), "chunk CRCs must be on"
        for _schema, channel, message, decoded in reader.iter_decoded_messages():
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            assert message.log_time >= T0
            if channel.topic == topics.FLEET_EVENTS:
                assert decoded.events[0].kind == 0 and decoded.events[0].detail.startswith("event")
            if channel.topic == topics.drone_odom(0):
                k = counts[channel.topic] - 1
                assert decoded.pose.pose.position.x == k
                assert decoded.header.frame_id == "map"
            if channel.topic == topics.FLEET_STATE:
                assert len(decoded.position) == 15 and decoded.step == counts[channel.topic] - 1
    assert counts == {t: len(v) for t, v in written.items()}


def _chunk_crcs(path: Path) -> list[int]:
    from mcap.records import Chunk
    from mcap.stream_reader import StreamReader

    with path.open("rb") as f:
        records = StreamReader(f, emit_chunks=True).records
        return [r.uncompressed_crc for r in records if isinstance(r, Chunk)]


def test_embedded_definition_includes_nested_dependencies() -> None:
    d = MessageDefinitions()
    text = d.full_definition("wm_agent_msgs/FleetEvents")
    deps = ("std_msgs/Header", "builtin_interfaces/Time", "wm_agent_msgs/FleetEvent", "geometry_msgs/Point")
    for dep in deps:
        assert f"MSG: {dep}\n" in text
    odom = d.full_definition("nav_msgs/msg/Odometry")
    assert "MSG: geometry_msgs/Pose\n" in odom and "MSG: geometry_msgs/Vector3\n" in odom


@pytest.mark.parametrize(
    "line, expected",
    [
        ("uint8 A=1", []),
        ("Point p", ["geometry_msgs/msg/Point"]),
        ("geometry_msgs/Point[] ps  # comment", ["geometry_msgs/msg/Point"]),
        ("string<=8 name", []),
        ("std_msgs/msg/Header[<=3] hs", ["std_msgs/msg/Header"]),
        ("int32 x 5", []),
    ],
)
def test_field_type_parsing(line: str, expected: list[str]) -> None:
    assert field_types(line, "geometry_msgs") == expected


def test_unknown_type_and_bad_names_raise_bag_error(tmp_path: Path) -> None:
    with pytest.raises(BagError, match="not a ROS 2 message type"):
        normalize_type("Odometry")
    with BagWriter(tmp_path / "b") as w, pytest.raises(BagError, match="no_such_pkg/msg/Thing"):
        w.add_topic("/x", "no_such_pkg/msg/Thing")
    with BagWriter(tmp_path / "c") as w:
        w.add_topic("/x", "nav_msgs/msg/Odometry")
        w.add_topic("/x", "nav_msgs/Odometry")          # same type again: fine
        with pytest.raises(BagError, match="recorded as nav_msgs/msg/Odometry"):
            w.add_topic("/x", "geometry_msgs/msg/TwistStamped")
        with pytest.raises(BagError, match="add_topic"):
            w.write("/y", b"\x00\x01\x00\x00", 1)
        w.write("/z", serialize_message(odom_msg(1)), 5, msgtype="nav_msgs/msg/Odometry")
        assert w.counts["/z"] == 1 and w.types["/z"] == "nav_msgs/msg/Odometry"
    with pytest.raises(BagError, match="exists already"):
        BagWriter(tmp_path / "c")


def test_empty_bag_is_valid(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "empty") as w:
        w.add_topic("/x", "nav_msgs/msg/Odometry")
    with AnyReader([tmp_path / "empty"]) as reader:
        assert [c.topic for c in reader.connections] == ["/x"]
        assert list(reader.messages()) == []
    assert list(open_bag(tmp_path / "empty").messages()) == []


@pytest.mark.parametrize("split", ["size", "duration"])
def test_split_files_read_back_in_order(tmp_path: Path, split: str) -> None:
    kwargs = {"max_file_bytes": 20_000} if split == "size" else {"max_file_duration_ns": 10 * DT}
    path = tmp_path / "split"
    with BagWriter(path, chunk_bytes=4096, compression="none", **kwargs) as w:  # type: ignore[arg-type]
        w.add_topic(topics.FLEET_STATE, "wm_agent_msgs/msg/FleetState")
        w.add_topic(topics.drone_odom(0), "nav_msgs/msg/Odometry")
        for k in range(60):
            w.write(topics.FLEET_STATE, serialize_message(state_msg(k, n=20)), T0 + k * DT)
            w.write(topics.drone_odom(0), serialize_message(odom_msg(k)), T0 + k * DT)
    summary = w.summary()
    assert len(summary.files) >= 3
    assert summary.counts == {topics.FLEET_STATE: 60, topics.drone_odom(0): 60}
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["relative_file_paths"] == [f"split_{i}.mcap" for i in range(len(summary.files))]
    assert sum(f["message_count"] for f in info["files"]) == 120
    with AnyReader([path]) as reader:
        assert sum(1 for _ in reader.messages()) == 120
    steps = [m.msg.step for m in open_bag(path).decoded([topics.FLEET_STATE])]
    assert steps == list(range(60))


def test_uncompressed_and_lz4_bags_read_by_anyreader(tmp_path: Path) -> None:
    for comp in ("none", "lz4"):
        written = write_sample_bag(tmp_path / comp, 5, compression=comp)
        with AnyReader([tmp_path / comp]) as reader:
            assert sum(1 for _ in reader.messages()) == sum(len(v) for v in written.values())
