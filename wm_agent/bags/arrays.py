"""Bag contents as numpy arrays: the fleet state over time, per-drone odometry and cmd_vel.

Pure, no rclpy. Decoded FleetState arrays are numpy already (rosbags decodes primitive arrays to
numpy), so each message costs a handful of vectorised copies; a loop runs over messages only.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent import topics as topic_names
from wm_agent.bags.reader import BagReader
from wm_agent.errors import BagError

_DRONE_TOPIC = re.compile(r"^/drone_(\d+)/(odom|cmd_vel)$")


class FleetTrajectory(NamedTuple):
    """T fleet-state samples of N drones (the union of every id seen; absent drones are NaN).

    Units: m, m/s, quaternion xyzw (base_link -> frame), rad/s; times in ns (bag) and s (stamp).
    """

    t_ns: NDArray[np.int64]              # (T,) bag log time [ns]
    stamp: NDArray[np.float64]           # (T,) header stamp [s]
    step: NDArray[np.uint64]             # (T,) FleetState.step
    ids: NDArray[np.uint32]              # (N,) sorted drone ids
    position: NDArray[np.float32]        # (T, N, 3) [m]
    velocity: NDArray[np.float32]        # (T, N, 3) [m/s]
    orientation: NDArray[np.float32]     # (T, N, 4) xyzw
    body_rates: NDArray[np.float32]      # (T, N, 3) [rad/s]
    status: NDArray[np.uint16]           # (T, N) FleetState flags (0 where absent)
    present: NDArray[np.bool_]           # (T, N) drone was in that sample


class TwistTrack(NamedTuple):
    """One drone's TwistStamped commands: linear [m/s] and angular [rad/s] in `frame_ids`."""

    t_ns: NDArray[np.int64]              # (T,)
    stamp: NDArray[np.float64]           # (T,) [s]
    linear: NDArray[np.float64]          # (T, 3)
    angular: NDArray[np.float64]         # (T, 3)
    frame_ids: tuple[str, ...]           # (T,)


class OdometryTrack(NamedTuple):
    """One drone's nav_msgs/Odometry: pose in the header frame, twist in the child frame."""

    t_ns: NDArray[np.int64]              # (T,)
    stamp: NDArray[np.float64]           # (T,) [s]
    position: NDArray[np.float64]        # (T, 3) [m]
    orientation: NDArray[np.float64]     # (T, 4) xyzw
    linear: NDArray[np.float64]          # (T, 3) [m/s], child frame (base_link)
    angular: NDArray[np.float64]         # (T, 3) [rad/s], child frame


def _stamp(header: Any) -> float:
    return float(header.stamp.sec) + 1e-9 * float(header.stamp.nanosec)


def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def fleet_arrays(bag: BagReader, topic: str = topic_names.FLEET_STATE) -> FleetTrajectory:
    """Every FleetState on `topic` stacked into (T, N, k) arrays; raises BagError if there is none."""
    decoded = list(bag.decoded([topic]))
    samples = [d.msg for d in decoded]
    times = [d.timestamp_ns for d in decoded]
    if not samples:
        raise BagError(f"bag {bag.path} has no messages on {topic} (topics: {', '.join(bag.topics)})")
    ids = np.unique(np.concatenate([np.asarray(m.ids, dtype=np.uint32) for m in samples]))
    t_count, n = len(samples), ids.size
    out = FleetTrajectory(
        t_ns=np.asarray(times, dtype=np.int64),
        stamp=np.array([_stamp(m.header) for m in samples], dtype=np.float64),
        step=np.array([int(m.step) for m in samples], dtype=np.uint64),
        ids=ids,
        position=np.full((t_count, n, 3), np.nan, np.float32),
        velocity=np.full((t_count, n, 3), np.nan, np.float32),
        orientation=np.full((t_count, n, 4), np.nan, np.float32),
        body_rates=np.full((t_count, n, 3), np.nan, np.float32),
        status=np.zeros((t_count, n), np.uint16),
        present=np.zeros((t_count, n), np.bool_),
    )
    for k, m in enumerate(samples):
        mids = np.asarray(m.ids, dtype=np.uint32)
        cols = np.searchsorted(ids, mids)
        c = mids.size
        try:
            out.position[k, cols] = np.asarray(m.position, np.float32).reshape(c, 3)
            out.velocity[k, cols] = np.asarray(m.velocity, np.float32).reshape(c, 3)
            out.orientation[k, cols] = np.asarray(m.orientation, np.float32).reshape(c, 4)
            out.body_rates[k, cols] = np.asarray(m.body_rates, np.float32).reshape(c, 3)
            out.status[k, cols] = np.asarray(m.status, np.uint16).reshape(c)
        except ValueError as exc:
            raise BagError(
                f"bag {bag.path}: FleetState #{k} on {topic} has array lengths that disagree "
                f"with its {c} ids: {exc}"
            ) from None
        out.present[k, cols] = True
    return out


def drone_topics(bag: BagReader, kind: str) -> dict[int, str]:
    """drone id -> topic for ``/drone_<id>/<kind>`` topics in the bag (kind: odom | cmd_vel)."""
    found: dict[int, str] = {}
    for name in bag.topics:
        m = _DRONE_TOPIC.match(name)
        if m and m.group(2) == kind:
            found[int(m.group(1))] = name
    return dict(sorted(found.items()))


def odometry_arrays(bag: BagReader) -> dict[int, OdometryTrack]:
    """drone id -> its ``/drone_<id>/odom`` samples as arrays (one pass over the bag)."""
    by_topic = {t: i for i, t in drone_topics(bag, "odom").items()}
    rows: dict[int, list[tuple[int, float, list[float]]]] = {i: [] for i in by_topic.values()}
    for d in bag.decoded(list(by_topic)):
        p, o, tw = d.msg.pose.pose.position, d.msg.pose.pose.orientation, d.msg.twist.twist
        quat = [float(o.x), float(o.y), float(o.z), float(o.w)]
        values = [*_xyz(p), *quat, *_xyz(tw.linear), *_xyz(tw.angular)]
        rows[by_topic[d.topic]].append((d.timestamp_ns, _stamp(d.msg.header), values))
    out: dict[int, OdometryTrack] = {}
    for i, r in rows.items():
        v = np.array([x[2] for x in r], dtype=np.float64).reshape(-1, 13)
        out[i] = OdometryTrack(
            t_ns=np.array([x[0] for x in r], dtype=np.int64),
            stamp=np.array([x[1] for x in r], dtype=np.float64),
            position=v[:, 0:3], orientation=v[:, 3:7], linear=v[:, 7:10], angular=v[:, 10:13],
        )
    return out


def cmd_vel_arrays(bag: BagReader) -> dict[int, TwistTrack]:
    """drone id -> its ``/drone_<id>/cmd_vel`` TwistStamped setpoints as arrays."""
    by_topic = {t: i for i, t in drone_topics(bag, "cmd_vel").items()}
    rows: dict[int, list[tuple[int, float, list[float], str]]] = {i: [] for i in by_topic.values()}
    for d in bag.decoded(list(by_topic)):
        tw = d.msg.twist
        rows[by_topic[d.topic]].append(
            (d.timestamp_ns, _stamp(d.msg.header), [*_xyz(tw.linear), *_xyz(tw.angular)],
             str(d.msg.header.frame_id))
        )
    out: dict[int, TwistTrack] = {}
    for i, r in rows.items():
        v = np.array([x[2] for x in r], dtype=np.float64).reshape(-1, 6)
        out[i] = TwistTrack(
            t_ns=np.array([x[0] for x in r], dtype=np.int64),
            stamp=np.array([x[1] for x in r], dtype=np.float64),
            linear=v[:, 0:3], angular=v[:, 3:6], frame_ids=tuple(x[3] for x in r),
        )
    return out
