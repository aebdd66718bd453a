"""Bag recording, reading and replay (rosbag2 MCAP), without rclpy.

* :class:`BagWriter` — the recorder core: (topic, type, CDR bytes, time) -> rosbag2 MCAP folder
  with embedded message definitions, chunk CRCs, optional splitting, per-topic counts.
* :func:`open_bag` / :class:`BagReader` — read any rosbag2 bag (MCAP or sqlite3), raw or decoded;
  truncated or corrupt MCAP files read up to the damage with a :class:`BagTruncatedWarning`.
* :func:`fleet_arrays`, :func:`odometry_arrays`, :func:`cmd_vel_arrays` — numpy views of a run.
* :func:`replay` — republish a bag's serialized messages with a clock, at a rate (used by the
  ``replayer`` node and ``wm-agent replay``).

See docs/BAGS.md.
"""

from __future__ import annotations

from wm_agent.bags.arrays import (
    FleetTrajectory,
    OdometryTrack,
    TwistTrack,
    cmd_vel_arrays,
    fleet_arrays,
    odometry_arrays,
)
from wm_agent.bags.definitions import MessageDefinitions
from wm_agent.bags.reader import (
    BagMessage,
    BagReader,
    BagTruncatedWarning,
    DecodedMessage,
    ReadReport,
    TopicInfo,
    open_bag,
    read_messages,
)
from wm_agent.bags.recording import PROJECT_TOPICS, LossTracker
from wm_agent.bags.replay import ReplayOptions, ReplayStats, parse_remaps, replay
from wm_agent.bags.writer import BagSummary, BagWriter, QosInfo

__all__ = [
    "PROJECT_TOPICS",
    "BagMessage",
    "BagReader",
    "BagSummary",
    "BagTruncatedWarning",
    "BagWriter",
    "DecodedMessage",
    "FleetTrajectory",
    "LossTracker",
    "MessageDefinitions",
    "OdometryTrack",
    "QosInfo",
    "ReadReport",
    "ReplayOptions",
    "ReplayStats",
    "TopicInfo",
    "TwistTrack",
    "cmd_vel_arrays",
    "fleet_arrays",
    "odometry_arrays",
    "open_bag",
    "parse_remaps",
    "read_messages",
    "replay",
]
