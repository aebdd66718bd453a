"""A message's own time, read from its serialized CDR bytes without deserializing. Pure, no rclpy.

Most ROS 2 messages start with a time stamp: ``std_msgs/Header header`` (whose first field is
``builtin_interfaces/Time stamp``), ``rosgraph_msgs/Clock`` (``builtin_interfaces/Time clock``),
or a sequence whose elements start with one (``tf2_msgs/TFMessage``,
``visualization_msgs/MarkerArray``: the first element's header). Following the *first* field of
each type down to a ``builtin_interfaces/Time`` gives a fixed byte offset: every field on the way
starts at offset 0 of its parent, and a leading sequence adds its 4-byte length (which must be
non-zero). The stamp is then 8 bytes (int32 sec, uint32 nanosec) at that offset after the 4-byte
CDR encapsulation header. :func:`stamp_location` finds the offset once per type from the .msg
definitions; :func:`read_stamp` costs one ``struct.unpack_from`` per message.

Used by the recorder (``time_source:=ros``): the log time of a stamped message is its stamp.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from wm_agent.bags.definitions import PRIMITIVES, MessageDefinitions, fields, normalize_type
from wm_agent.errors import BagError

TIME_TYPE = "builtin_interfaces/msg/Time"
_MAX_DEPTH = 16
_CDR_BE, _CDR_LE = 0x0000, 0x0001       # plain CDR encapsulations (what ROS 2 sends)


class StampLocation(NamedTuple):
    """Where a type's leading time stamp lies, in bytes after the encapsulation header."""

    offset: int                      # of Time.sec (Time.nanosec follows)
    sequences: tuple[int, ...] = ()  # offsets of leading sequence lengths that must be > 0


def stamp_location(msgtype: str, definitions: MessageDefinitions) -> StampLocation | None:
    """The location of `msgtype`'s leading stamp (see the module doc), or None when its first
    field path ends in a primitive (or its definition cannot be found)."""
    t = normalize_type(msgtype)
    offset = 0
    sequences: list[int] = []
    for _ in range(_MAX_DEPTH):
        if t == TIME_TYPE:
            return StampLocation(offset, tuple(sequences))
        try:
            first = fields(definitions.msg_text(t), t.split("/")[0])
        except BagError:
            return None
        if not first or first[0][0] in PRIMITIVES:
            return None
        t, array = first[0]
        if array == "[]" or array.startswith("[<="):
            sequences.append(offset)
            offset += 4
        elif array and int(array[1:-1]) == 0:
            return None
    return None


def read_stamp(data: bytes | bytearray | memoryview, where: StampLocation) -> int | None:
    """The stamp [ns] at `where` in one serialized message; None when the bytes are not plain
    CDR, too short, a leading sequence is empty, or the nanoseconds are out of range."""
    if len(data) < 4:
        return None
    kind = (data[0] << 8) | data[1]
    if kind not in (_CDR_BE, _CDR_LE):
        return None
    endian = "<" if kind == _CDR_LE else ">"
    if len(data) < 4 + where.offset + 8:
        return None
    for at in where.sequences:
        if struct.unpack_from(endian + "I", data, 4 + at)[0] == 0:
            return None
    sec, nanosec = struct.unpack_from(endian + "iI", data, 4 + where.offset)
    if nanosec >= 1_000_000_000:
        return None
    return int(sec) * 1_000_000_000 + int(nanosec)
