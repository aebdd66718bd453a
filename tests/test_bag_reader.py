"""Reader: decoded messages and numpy arrays; truncated and corrupt MCAP files read up to the
damage with a warning that says how much was lost; missing or foreign files raise BagError naming
the file; sqlite3 bags without embedded definitions decode through the installed .msg files."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from test_bag_support import DT, T0, odom_msg, state_msg, write_sample_bag

from wm_agent import topics
from wm_agent.bags import (
    BagTruncatedWarning,
    cmd_vel_arrays,
    fleet_arrays,
    odometry_arrays,
    open_bag,
)
from wm_agent.bags.writer import BagWriter
from wm_agent.errors import BagError

Bag = tuple[Path, dict[str, list[bytes]]]
COUNT = 200


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Bag:
    """Small chunks (many of them) so that cuts land in different places."""
    path = tmp_path_factory.mktemp("r") / "big"
    return path, write_sample_bag(path, COUNT, chunk_bytes=8192, compression="none")


@pytest.fixture(scope="module")
def small_zstd(tmp_path_factory: pytest.TempPathFactory) -> Bag:
    path = tmp_path_factory.mktemp("z") / "big"
    return path, write_sample_bag(path, COUNT, chunk_bytes=8192, compression="zstd")


def test_decoded_messages_and_counts(big: Bag) -> None:
    path, written = big
    bag = open_bag(path)
    assert {t: i.count for t, i in bag.topics.items()} == {t: len(v) for t, v in written.items()}
    assert bag.topics[topics.FLEET_STATE].msgtype == "wm_agent_msgs/msg/FleetState"
    raw = list(bag.messages([topics.drone_odom(3)]))
    assert [m.data for m in raw] == written[topics.drone_odom(3)]
    assert [m.timestamp_ns for m in raw] == [T0 + k * DT for k in range(COUNT)]
    decoded = list(bag.decoded([topics.FLEET_EVENTS]))
    assert [d.msg.events[0].drone_id for d in decoded] == list(range(0, COUNT, 10))
    assert not bag.report.damaged and bag.report.messages_lost == 0


def test_fleet_odometry_and_cmd_vel_arrays(big: Bag) -> None:
    bag = open_bag(big[0])
    fleet = fleet_arrays(bag)
    assert fleet.position.shape == (COUNT, 5, 3) and fleet.orientation.shape == (COUNT, 5, 4)
    np.testing.assert_array_equal(fleet.ids, np.arange(5))
    np.testing.assert_array_equal(fleet.step, np.arange(COUNT))
    np.testing.assert_allclose(fleet.position[:, 2, 1], np.arange(COUNT))
    np.testing.assert_allclose(fleet.stamp, np.arange(COUNT) * DT / 1e9)
    assert fleet.present.all() and (fleet.status == 3).all()
    odom = odometry_arrays(bag)
    assert sorted(odom) == [0, 3]
    np.testing.assert_allclose(odom[3].position[:, 0], np.arange(COUNT))
    np.testing.assert_allclose(odom[3].linear[:, 0], 0.25 * np.arange(COUNT))
    cmd = cmd_vel_arrays(bag)
    assert list(cmd) == [0] and cmd[0].frame_ids[0] == "map"
    np.testing.assert_allclose(cmd[0].linear[:, 2], 0.01 * np.arange(COUNT))
    with pytest.raises(BagError, match="no messages on /nope"):
        fleet_arrays(bag, "/nope")


def test_fleet_arrays_with_changing_drone_sets(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "b") as w:
        w.add_topic(topics.FLEET_STATE, "wm_agent_msgs/msg/FleetState")
        w.write(topics.FLEET_STATE, serialize_message(state_msg(0, ids=np.array([2, 7]))), T0)
        w.write(topics.FLEET_STATE, serialize_message(state_msg(1, ids=np.array([7, 9, 2]))), T0 + DT)
    f = fleet_arrays(open_bag(tmp_path / "b"))
    np.testing.assert_array_equal(f.ids, [2, 7, 9])
    np.testing.assert_array_equal(f.present, [[True, True, False], [True, True, True]])
    assert np.isnan(f.position[0, 2]).all()
    np.testing.assert_allclose(f.position[1, :, 0], [2, 7, 9])


@pytest.mark.parametrize(
    "compression, fraction", [("none", 0.05), ("none", 0.5), ("none", 0.8), ("none", 0.95), ("zstd", 0.3)]
)
def test_truncated_file_reads_the_valid_prefix_with_a_warning(
    big: Bag, small_zstd: Bag,
    tmp_path: Path, compression: str, fraction: float,
) -> None:
    path, written = big if compression == "none" else small_zstd
    cut = tmp_path / "cut"
    shutil.copytree(path, cut)
    data = (path / "big_0.mcap").read_bytes()
    (cut / "big_0.mcap").write_bytes(data[: int(len(data) * fraction)])
    bag = open_bag(cut)
    with pytest.warns(BagTruncatedWarning, match=r"read \d+ messages of \d+ \(\d+ lost\)") as record:
        msgs = list(bag.messages())
    text = str(record[0].message)
    assert "bytes unreadable" in text and "recorded time lost" in text and "big_0.mcap" in text
    total = sum(len(v) for v in written.values())
    assert 0 < len(msgs) < total
    assert bag.report.messages_lost == total - len(msgs)
    # the prefix is exact: every message read is the one written, per topic, in order
    per_topic: dict[str, list[bytes]] = {}
    for m in msgs:
        per_topic.setdefault(m.topic, []).append(m.data)
    for topic, datas in per_topic.items():
        assert datas == written[topic][: len(datas)]
    # and it decodes (warning again: each pass reports)
    with pytest.warns(BagTruncatedWarning):
        assert len(list(bag.decoded([topics.FLEET_STATE]))) == len(per_topic[topics.FLEET_STATE])


def test_cut_after_the_data_keeps_every_message(big: Bag, tmp_path: Path) -> None:
    """A recorder killed while writing the summary: all data there, the warning says 0 lost."""
    path, written = big
    cut = tmp_path / "tail"
    shutil.copytree(path, cut)
    data = (path / "big_0.mcap").read_bytes()
    (cut / "big_0.mcap").write_bytes(data[:-40])
    with pytest.warns(BagTruncatedWarning, match=r"\(0 lost\)"):
        msgs = list(open_bag(cut).messages())
    assert len(msgs) == sum(len(v) for v in written.values())


def test_truncated_file_without_metadata(big: Bag, tmp_path: Path) -> None:
    """A recorder killed hard: no metadata.yaml; topics come from the file, lost count unknown."""
    path, _ = big
    (tmp_path / "nometa").mkdir()
    data = (path / "big_0.mcap").read_bytes()
    (tmp_path / "nometa" / "nometa_0.mcap").write_bytes(data[: len(data) // 2])
    bag = open_bag(tmp_path / "nometa")
    assert topics.FLEET_STATE in bag.topics and bag.message_count is None
    with pytest.warns(BagTruncatedWarning, match="lost unknown"):
        msgs = list(bag.decoded())
    assert msgs and bag.report.messages_lost is None


def test_corrupt_chunk_is_skipped_and_reported(big: Bag, tmp_path: Path) -> None:
    path, written = big
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    data = bytearray((path / "big_0.mcap").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "big_0.mcap").write_bytes(bytes(data))
    bag = open_bag(bad)
    with pytest.warns(BagTruncatedWarning, match="corrupt chunk"):
        msgs = list(bag.messages())
    total = sum(len(v) for v in written.values())
    assert 0 < total - len(msgs) < total // 4, "only the damaged chunk may be lost"
    assert bag.report.files[0].corrupt_chunks == 1
    assert msgs[-1].timestamp_ns == T0 + (COUNT - 1) * DT, "chunks after the damage are read"


def test_missing_and_foreign_files_raise_bag_error_naming_the_file(
    big: Bag, tmp_path: Path
) -> None:
    with pytest.raises(BagError, match="no_such_bag"):
        open_bag(tmp_path / "no_such_bag")
    gone = tmp_path / "gone"
    shutil.copytree(big[0], gone)
    (gone / "big_0.mcap").unlink()
    with pytest.raises(BagError, match=r"gone/big_0\.mcap"):
        open_bag(gone)
    junk = tmp_path / "junk"
    shutil.copytree(big[0], junk)
    (junk / "big_0.mcap").write_bytes(b"this is not an mcap file at all")
    with pytest.raises(BagError, match=r"junk/big_0\.mcap is not a readable MCAP"):
        list(open_bag(junk).messages())
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagError, match="not a rosbag2 bag"):
        open_bag(tmp_path / "empty_dir")
    broken_meta = tmp_path / "meta"
    broken_meta.mkdir()
    (broken_meta / "metadata.yaml").write_text("just: [text")
    with pytest.raises(BagError, match=r"meta/metadata\.yaml"):
        open_bag(broken_meta)


def test_single_mcap_file_opens(big: Bag) -> None:
    bag = open_bag(big[0] / "big_0.mcap")
    assert bag.topics[topics.drone_odom(0)].count == COUNT


@pytest.mark.parametrize("version", [8, 9])
def test_sqlite3_bag_without_definitions_decodes_custom_types(tmp_path: Path, version: int) -> None:
    from rosbags.rosbag2 import Writer

    path = tmp_path / "sq"
    with Writer(path, version=version) as w:      # default storage: sqlite3
        # msgdef "" = no embedded definition (as older recorders wrote): the reader needs .msg files
        h = "RIHS01_" + "0" * 64
        state = w.add_connection(topics.FLEET_STATE, "wm_agent_msgs/msg/FleetState", msgdef="", rihs01=h)
        odom = w.add_connection(topics.drone_odom(1), "nav_msgs/msg/Odometry", msgdef="", rihs01=h)
        for k in range(10):
            w.write(state, T0 + k * DT, serialize_message(state_msg(k)))
            w.write(odom, T0 + k * DT, serialize_message(odom_msg(k, 1)))
    bag = open_bag(path)
    assert bag.storage == "sqlite3"
    assert {t: i.count for t, i in bag.topics.items()} == {topics.FLEET_STATE: 10, topics.drone_odom(1): 10}
    fleet = fleet_arrays(bag)
    np.testing.assert_array_equal(fleet.step, np.arange(10))
    np.testing.assert_allclose(odometry_arrays(bag)[1].position[:, 0], np.arange(10))


def test_warnings_are_silent_for_a_healthy_bag(big: Bag) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sum(1 for _ in open_bag(big[0]).messages()) > 0


def _chunk_indexes(path: Path) -> list[object]:
    from mcap.reader import make_reader

    with path.open("rb") as f:
        summary = make_reader(f).get_summary()
    assert summary is not None
    return sorted(summary.chunk_indexes, key=lambda c: c.chunk_start_offset)


def test_corrupt_chunk_warning_states_what_was_skipped(big: Bag, tmp_path: Path) -> None:
    """The warning of a skipped chunk gives its true loss — the chunk's bytes, its messages and
    its time span — and says that reading went on (issue #13 item 17: it said '8 bytes
    unreadable, last 0.000 s lost' for a chunk of 1,656 messages over 2.45 s)."""
    path, written = big
    mcap = path / "big_0.mcap"
    chunks = _chunk_indexes(mcap)
    victim = chunks[len(chunks) // 2]
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    data = bytearray(mcap.read_bytes())
    data[victim.chunk_start_offset + victim.chunk_length - 50] ^= 0xFF     # inside its records
    (bad / "big_0.mcap").write_bytes(bytes(data))
    bag = open_bag(bad)
    with pytest.warns(BagTruncatedWarning) as record:
        msgs = list(bag.messages())
    text = str(record[0].message)
    lost = sum(len(v) for v in written.values()) - len(msgs)
    fr = bag.report.files[0]
    assert len(fr.skipped) == 1
    skip = fr.skipped[0]
    assert skip.messages == lost > 0
    assert skip.size_bytes == victim.chunk_length
    assert (skip.start_ns, skip.end_ns) == (victim.message_start_time, victim.message_end_time)
    span = (victim.message_end_time - victim.message_start_time) / 1e9
    start = (victim.message_start_time - T0) / 1e9
    assert "1 corrupt chunk skipped, reading went on after it" in text
    assert f"{victim.chunk_length} bytes at byte {victim.chunk_start_offset}" in text
    assert f"{lost} messages from {start:.3f} s to {start + span:.3f} s ({span:.3f} s)" in text
    assert f"{victim.chunk_length} of {len(data)} bytes unreadable" in text
    assert "recorded time lost" not in text and "stopped at" not in text, text
    assert f"({lost} lost)" in text


def test_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    with pytest.raises(BagError, match=r"empty\.mcap is not a readable MCAP file: it is empty \(0 bytes\)$"):
        list(open_bag(empty).messages())
    short = tmp_path / "short.mcap"
    short.write_bytes(b"\x89MCA")
    with pytest.raises(BagError, match=r"short\.mcap is not a readable MCAP file: \S.*4 bytes"):
        list(open_bag(short).messages())


def test_damaged_summary_is_noticed(big: Bag, tmp_path: Path) -> None:
    """Damage to the summary/index section (what indexed readers such as Foxglove or rosbags
    seek with) is found through the footer's summary CRC and reported; the messages, read from
    the data section, are all there (issue #13 item 17: it went unnoticed)."""
    path, written = big
    data = bytearray((path / "big_0.mcap").read_bytes())
    bad = tmp_path / "sum"
    shutil.copytree(path, bad)
    data[-200] ^= 0xFF                        # inside the summary (chunk indexes, statistics)
    (bad / "big_0.mcap").write_bytes(bytes(data))
    bag = open_bag(bad)
    with pytest.warns(BagTruncatedWarning, match=r"summary section .*CRC.* damaged") as record:
        msgs = list(bag.messages())
    assert len(msgs) == sum(len(v) for v in written.values())
    assert "read every message from the data section" in str(record[0].message)
    assert bag.report.files[0].summary_damaged and bag.report.messages_lost == 0
