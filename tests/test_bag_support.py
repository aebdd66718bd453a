"""Helpers shared by the tests/test_bag_*.py files (no tests here): sample messages and bags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.serialization import serialize_message

from wm_agent import topics
from wm_agent.bags.writer import BagWriter, QosInfo
from wm_agent.conversions import FleetStateArrays, fleet_state_to_msg
from wm_agent.interfaces import require_interfaces

msgs, _ = require_interfaces()
T0 = 1_700_000_000 * 10**9          # a plausible epoch time [ns]
DT = 20_000_000                     # 50 Hz [ns]


def state_msg(k: int, n: int = 5, ids: np.ndarray | None = None) -> Any:
    """FleetState number k: drone i at (i, k, 0.1 k), step k, stamp k * DT."""
    ids = np.arange(n, dtype=np.uint32) if ids is None else ids.astype(np.uint32)
    n = ids.size
    pos = np.stack([ids.astype(np.float32), np.full(n, k, np.float32), np.full(n, 0.1 * k, np.float32)], 1)
    arrays = FleetStateArrays(
        ids=ids, position=pos, velocity=np.full((n, 3), 0.5, np.float32),
        orientation=np.tile(np.array([0, 0, 0, 1], np.float32), (n, 1)),
        body_rates=np.zeros((n, 3), np.float32), status=np.full(n, 3, np.uint16), step=k,
    )
    msg = fleet_state_to_msg(arrays)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(k * DT, 10**9)
    return msg


def odom_msg(k: int, drone: int = 0) -> Odometry:
    m = Odometry()
    m.header.frame_id = "map"
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(k * DT, 10**9)
    m.child_frame_id = f"drone_{drone}/base_link"
    m.pose.pose.position.x = float(k)
    m.pose.pose.position.y = float(drone)
    m.pose.pose.orientation.w = 1.0
    m.twist.twist.linear.x = 0.25 * k
    return m


def cmd_vel_msg(k: int) -> TwistStamped:
    m = TwistStamped()
    m.header.frame_id = "map"
    m.twist.linear.z = 0.01 * k
    m.twist.angular.z = -0.1
    return m


def event_msg(k: int) -> Any:
    out = msgs.FleetEvents()
    e = msgs.FleetEvent()
    e.kind = msgs.FleetEvent.COLLISION
    e.drone_id = k
    e.other_id = -1
    e.position.x = 1.5
    e.detail = f"event {k}"
    out.events.append(e)
    return out


def write_sample_bag(path: Path, count: int = 40, **writer_kwargs: Any) -> dict[str, list[bytes]]:
    """A bag with FleetState, FleetEvents, two odometry and one cmd_vel topic; returns the bytes
    written per topic (in order)."""
    written: dict[str, list[bytes]] = {}
    with BagWriter(path, **writer_kwargs) as w:
        w.add_topic(topics.FLEET_STATE, "wm_agent_msgs/msg/FleetState", [QosInfo(reliability="best_effort")])
        w.add_topic(topics.FLEET_EVENTS, "wm_agent_msgs/msg/FleetEvents")
        w.add_topic(topics.drone_odom(0), "nav_msgs/msg/Odometry")
        w.add_topic(topics.drone_odom(3), "nav_msgs/msg/Odometry")
        w.add_topic(topics.drone_cmd_vel(0), "geometry_msgs/msg/TwistStamped")
        for k in range(count):
            t = T0 + k * DT
            items = [
                (topics.FLEET_STATE, state_msg(k)),
                (topics.drone_odom(0), odom_msg(k, 0)),
                (topics.drone_odom(3), odom_msg(k, 3)),
                (topics.drone_cmd_vel(0), cmd_vel_msg(k)),
            ]
            if k % 10 == 0:
                items.append((topics.FLEET_EVENTS, event_msg(k)))
            for topic, msg in items:
                data = serialize_message(msg)
                w.write(topic, data, t)
                written.setdefault(topic, []).append(data)
    return written
