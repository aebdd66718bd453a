"""A message's own time from its CDR bytes (wm_agent.bags.stamps): the offset found from the .msg
definitions, the stamp read equal to what a full decode gives."""

from __future__ import annotations

import struct

import pytest
from geometry_msgs.msg import TransformStamped
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from std_msgs.msg import String
from test_bag_support import msgs, odom_msg, state_msg
from visualization_msgs.msg import Marker, MarkerArray

from wm_agent.bags.definitions import MessageDefinitions, fields
from wm_agent.bags.stamps import StampLocation, read_stamp, stamp_location

DEFS = MessageDefinitions()


@pytest.mark.parametrize("msgtype, where", [
    ("wm_agent_msgs/msg/FleetState", StampLocation(0)),        # constants before the header
    ("wm_agent_msgs/msg/TaskStatus", StampLocation(0)),
    ("nav_msgs/msg/Odometry", StampLocation(0)),
    ("rosgraph_msgs/msg/Clock", StampLocation(0)),
    ("visualization_msgs/msg/MarkerArray", StampLocation(4, (0,))),   # markers[0].header.stamp
    ("geometry_msgs/msg/TransformStamped", StampLocation(0)),
    ("std_msgs/msg/String", None),
    ("wm_agent_msgs/msg/Task", None),
    ("geometry_msgs/msg/Point", None),
])
def test_stamp_location(msgtype: str, where: StampLocation | None) -> None:
    assert stamp_location(msgtype, DEFS) == where


def test_constants_are_not_fields() -> None:
    text = "uint8 A = 1\nuint8 B=2\nstring S = 'x=y'\nstd_msgs/Header header\nstring s \"a=b\"\n"
    assert fields(text, "p") == [("std_msgs/msg/Header", ""), ("string", "")]


def _ns(stamp: object) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)  # type: ignore[attr-defined]


def test_read_stamp_equals_the_decoded_stamp() -> None:
    state = state_msg(123)
    clock = Clock()
    clock.clock.sec, clock.clock.nanosec = 7, 250_000_000
    markers = MarkerArray()
    for sec in (11, 12):
        m = Marker()
        m.header.stamp.sec, m.header.stamp.nanosec = sec, 5
        markers.markers.append(m)
    status = msgs.TaskStatus()
    status.header.stamp.sec = 2**31 - 1
    status.task_id = "t"
    cases = [(state, "wm_agent_msgs/msg/FleetState", _ns(state.header.stamp)),
             (odom_msg(40), "nav_msgs/msg/Odometry", _ns(odom_msg(40).header.stamp)),
             (clock, "rosgraph_msgs/msg/Clock", 7_250_000_000),
             (markers, "visualization_msgs/msg/MarkerArray", 11 * 10**9 + 5),
             (status, "wm_agent_msgs/msg/TaskStatus", (2**31 - 1) * 10**9)]
    for msg, msgtype, expected in cases:
        where = stamp_location(msgtype, DEFS)
        assert where is not None
        assert read_stamp(serialize_message(msg), where) == expected, msgtype
    assert read_stamp(serialize_message(MarkerArray()), StampLocation(4, (0,))) is None   # no element
    assert stamp_location("std_msgs/msg/String", DEFS) is None and serialize_message(String())


def test_read_stamp_big_endian_and_bad_bytes() -> None:
    t = TransformStamped()
    t.header.stamp.sec, t.header.stamp.nanosec = 3, 4
    le = serialize_message(t)
    assert read_stamp(le, StampLocation(0)) == 3 * 10**9 + 4
    be = b"\x00\x00\x00\x00" + struct.pack(">iI", 3, 4)
    assert read_stamp(be, StampLocation(0)) == 3 * 10**9 + 4
    assert read_stamp(b"\x00\x01\x00\x00\x01", StampLocation(0)) is None          # too short
    assert read_stamp(b"\x00\x07\x00\x00" + le[4:], StampLocation(0)) is None      # XCDR2: unknown layout
    assert read_stamp(b"\x00\x01\x00\x00" + struct.pack("<iI", 1, 10**9), StampLocation(0)) is None
