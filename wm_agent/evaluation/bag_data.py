"""One pass over a bag into the arrays the evaluation needs (no rclpy).

Reads the project's fleet topics (``/fleet/state``, ``/fleet/cmd``, ``/fleet/assignments``,
``/tasks/status``, ``/fleet/events``, ``/fleet/planner_status``) or, without ``/fleet/state``,
per-drone ``nav_msgs/Odometry`` (``/drone_<id>/odom``). Commands come from ``/fleet/cmd``, or
from ``geometry_msgs/TwistStamped`` ``/drone_<id>/cmd_vel`` when there is no ``/fleet/cmd``.
Every time is in seconds from the first message read, on one clock for all topics: the messages'
**header stamps** when every topic read carries them (the project's messages and Odometry /
TwistStamped all have a header; a topic counts as stamped when at least one of its stamps is
non-zero), else the bag's log time for every topic (a recorder's log time can lag the time a
message carries: see docs/BAGS.md, "Log times").

A truncated or corrupt bag is read up to the damage; the reader's ``BagTruncatedWarning`` lines
are collected in :attr:`BagData.damage` (the caller re-issues them once).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent import topics as names
from wm_agent.bags.arrays import drone_topics
from wm_agent.bags.reader import BagReader, BagTruncatedWarning
from wm_agent.errors import BagError
from wm_agent.evaluation.run_data import EventLog, PlannerStats, TaskTransitions
from wm_agent.sim.rotations import quat_to_matrix

#: FleetState status bits (wm_agent_msgs/FleetState constants).
MSG_FLYING, MSG_COLLIDED, MSG_FAILSAFE = 2, 8, 16 | 32 | 64
#: FleetCommand.MODE_VELOCITY.
MODE_VELOCITY = 0
FLEET_TOPICS = (names.FLEET_STATE, names.FLEET_COMMAND, names.FLEET_ASSIGNMENTS, names.TASK_STATUS,
                names.TASK_BULK_ACK, names.FLEET_EVENTS, names.PLANNER_STATUS)


@dataclass
class StateSeries:
    """T state samples of N drones, map ENU (NaN where absent).

    Attributes:
        t: (T,) [s]. ids: (N,). position (T, N, 3) [m], velocity (T, N, 3) [m/s],
        orientation (T, N, 4) xyzw, body_rates (T, N, 3) [rad/s]. flying: (T, N) bool — airborne
        and neither collided nor in failsafe (odometry: altitude above 5 cm).
    """

    t: NDArray[np.float64]
    ids: NDArray[np.int64]
    position: NDArray[np.float64]
    velocity: NDArray[np.float64]
    orientation: NDArray[np.float64]
    body_rates: NDArray[np.float64]
    flying: NDArray[np.bool_]


@dataclass
class CommandSeries:
    """C velocity commands, per drone, stacked: time, drone column, velocity, yaw rate, mode.

    Attributes:
        t: (C,) [s]. column: (C,) index into the state's ``ids``. velocity: (C, 3) [m/s] map ENU.
        yaw_rate: (C,) [rad/s]. velocity_mode: (C,) bool (MODE_VELOCITY; False: hold/land/takeoff).
    """

    t: NDArray[np.float64]
    column: NDArray[np.int64]
    velocity: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    velocity_mode: NDArray[np.bool_]


@dataclass
class GoalSeries:
    """Assignment goals: G updates, each (time [s], column, goal (3,) [m])."""

    t: NDArray[np.float64]
    column: NDArray[np.int64]
    goal: NDArray[np.float64]


@dataclass
class BagData:
    """Everything read from one bag."""

    source: str
    layout: str                           # "fleet" or "odometry"
    states: StateSeries
    commands: CommandSeries | None
    goals: GoalSeries | None
    tasks: TaskTransitions | None
    planner: PlannerStats | None
    events: EventLog | None
    duration_s: float
    messages: int
    read_s: float
    damage: list[str] = field(default_factory=list)
    timing: str = "header stamps"         # or "log time" (see the module doc)


def _t(ns: int, t0: int) -> float:
    return (ns - t0) * 1e-9


def describe_missing(bag: BagReader) -> str:
    """The message of a bag with nothing to evaluate: what was looked for and what it holds."""
    have = ", ".join(f"{t} ({i.msgtype})" for t, i in sorted(bag.topics.items())) or "no topics"
    return (
        f"bag {bag.path} has no usable state topic: looked for {names.FLEET_STATE} "
        "(wm_agent_msgs/msg/FleetState) or /drone_<id>/odom (nav_msgs/msg/Odometry), with commands on "
        f"{names.FLEET_COMMAND} or /drone_<id>/cmd_vel; it holds {have}. Record with "
        "`wm-agent sim` (its run folder's bag/) or the `recorder` node (docs/BAGS.md)"
    )


def read_bag(bag: BagReader, *, max_drones: int | None = None) -> BagData:
    """Read `bag` in one pass (truncation recorded, not raised); BagError if nothing is usable."""
    available = bag.topics
    fleet = names.FLEET_STATE in available
    odom = drone_topics(bag, "odom")
    if not fleet and not odom:
        raise BagError(describe_missing(bag))
    cmd = drone_topics(bag, "cmd_vel")
    wanted = [t for t in FLEET_TOPICS if t in available]
    per_drone_cmd = bool(cmd) and names.FLEET_COMMAND not in available   # e.g. real drones
    if not fleet:
        wanted += list(odom.values())
    if per_drone_cmd:
        wanted += list(cmd.values())
    by_topic: dict[str, list[tuple[int, Any]]] = {t: [] for t in wanted}
    damage: list[str] = []
    t_start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BagTruncatedWarning)
        for d in bag.decoded(wanted):
            by_topic[d.topic].append((d.timestamp_ns, d.msg))
        damage += [str(w.message) for w in caught if issubclass(w.category, BagTruncatedWarning)]
    read_s = time.perf_counter() - t_start
    for w in caught:
        if not issubclass(w.category, BagTruncatedWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    timing = _retime(by_topic)
    for items in by_topic.values():
        items.sort(key=lambda item: item[0])        # file order is log-time order, not stamp order
    count = sum(len(v) for v in by_topic.values())
    stamps = [ns for items in by_topic.values() if items for ns in (items[0][0], items[-1][0])]
    if not stamps:
        raise BagError(f"bag {bag.path}: no message could be read from {', '.join(wanted)}"
                       + (f" ({'; '.join(damage)})" if damage else ""))
    t0, t1 = min(stamps), max(stamps)
    if fleet:
        states = _fleet_states(by_topic[names.FLEET_STATE], t0, bag, max_drones)
    else:
        states = _odometry_states({i: by_topic[t] for i, t in odom.items()}, t0, bag, max_drones)
    if per_drone_cmd:
        commands = _twist_commands({i: by_topic[t] for i, t in cmd.items()}, t0, states)
    else:
        commands = _fleet_commands(by_topic.get(names.FLEET_COMMAND, []), t0, states.ids)
    return BagData(
        source=str(bag.path), layout="fleet" if fleet else "odometry", states=states,
        commands=commands, goals=_goals(by_topic.get(names.FLEET_ASSIGNMENTS, []), t0, states.ids),
        tasks=_tasks(by_topic.get(names.TASK_STATUS, []), by_topic.get(names.TASK_BULK_ACK, []), t0),
        planner=_planner(by_topic.get(names.PLANNER_STATUS, []), t0),
        events=_events(by_topic[names.FLEET_EVENTS], t0) if names.FLEET_EVENTS in by_topic else None,
        duration_s=_t(t1, t0), messages=count, read_s=read_s, damage=damage, timing=timing,
    )


def _stamp_ns(msg: Any) -> int | None:
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _retime(by_topic: dict[str, list[tuple[int, Any]]]) -> str:
    """Replace every log time by the message's header stamp when every topic read is stamped
    (see the module doc); returns which clock the times are on."""
    stamped: dict[str, list[tuple[int, Any]]] = {}
    for topic, items in by_topic.items():
        if not items:
            continue
        stamps = [_stamp_ns(m) for _, m in items]
        if any(s is None for s in stamps) or not any(stamps):
            return f"log time ({topic} has no header stamps)"
        stamped[topic] = [(int(s or 0), m) for s, (_, m) in zip(stamps, items, strict=True)]
    by_topic.update(stamped)
    return "header stamps"


def _columns(ids: NDArray[np.int64], mids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Columns of `mids` in the sorted `ids`, and which of them are there at all."""
    col = np.searchsorted(ids, mids).clip(0, max(ids.size - 1, 0))
    return col.astype(np.int64), (ids.size > 0) & (ids[col] == mids)


def _fleet_states(items: list[tuple[int, Any]], t0: int, bag: BagReader,
                  max_drones: int | None) -> StateSeries:
    if not items:
        raise BagError(f"bag {bag.path}: {names.FLEET_STATE} is listed but no message on it could be read")
    ids = np.unique(np.concatenate([np.asarray(m.ids, np.int64) for _, m in items]))
    if max_drones is not None:
        ids = ids[:max_drones]
    t_count, n = len(items), ids.size
    s = StateSeries(
        t=np.array([_t(ns, t0) for ns, _ in items]), ids=ids,
        position=np.full((t_count, n, 3), np.nan), velocity=np.full((t_count, n, 3), np.nan),
        orientation=np.full((t_count, n, 4), np.nan), body_rates=np.full((t_count, n, 3), np.nan),
        flying=np.zeros((t_count, n), bool),
    )
    for k, (_, m) in enumerate(items):
        mids = np.asarray(m.ids, np.int64)
        c = mids.size
        col, ok = _columns(ids, mids)
        try:
            s.position[k, col[ok]] = np.asarray(m.position, np.float64).reshape(c, 3)[ok]
            s.velocity[k, col[ok]] = np.asarray(m.velocity, np.float64).reshape(c, 3)[ok]
            s.orientation[k, col[ok]] = np.asarray(m.orientation, np.float64).reshape(c, 4)[ok]
            s.body_rates[k, col[ok]] = np.asarray(m.body_rates, np.float64).reshape(c, 3)[ok]
            st = np.asarray(m.status, np.uint16).reshape(c)[ok]
        except ValueError as exc:
            raise BagError(f"bag {bag.path}: FleetState #{k} has array lengths that disagree with its "
                           f"{c} ids: {exc}") from None
        s.flying[k, col[ok]] = ((st & MSG_FLYING) != 0) & ((st & (MSG_COLLIDED | MSG_FAILSAFE)) == 0)
    return _sorted_by_time(s)


def _sorted_by_time(s: StateSeries) -> StateSeries:
    order = np.argsort(s.t, kind="stable")
    if (order == np.arange(order.size)).all():
        return s
    return StateSeries(s.t[order], s.ids, s.position[order], s.velocity[order], s.orientation[order],
                       s.body_rates[order], s.flying[order])


def _odometry_states(tracks: dict[int, list[tuple[int, Any]]], t0: int, bag: BagReader,
                     max_drones: int | None) -> StateSeries:
    """Per-drone odometry on a common time axis (the union of sample times; NaN elsewhere)."""
    ids = np.array(sorted(i for i, v in tracks.items() if v), np.int64)
    if ids.size == 0:
        raise BagError(f"bag {bag.path}: the /drone_<id>/odom topics hold no readable message")
    if max_drones is not None:
        ids = ids[:max_drones]
    times = np.unique(np.concatenate([[ns for ns, _ in tracks[int(i)]] for i in ids]))
    n = ids.size
    s = StateSeries(
        t=(times - t0) * 1e-9, ids=ids, position=np.full((times.size, n, 3), np.nan),
        velocity=np.full((times.size, n, 3), np.nan), orientation=np.full((times.size, n, 4), np.nan),
        body_rates=np.full((times.size, n, 3), np.nan), flying=np.zeros((times.size, n), bool),
    )
    for j, i in enumerate(ids):
        items = tracks[int(i)]
        rows = np.searchsorted(times, [ns for ns, _ in items])
        v = np.array([[*_xyz(m.pose.pose.position), *_quat(m.pose.pose.orientation),
                       *_xyz(m.twist.twist.linear), *_xyz(m.twist.twist.angular)] for _, m in items])
        q = v[:, 3:7] / np.maximum(np.linalg.norm(v[:, 3:7], axis=1, keepdims=True), 1e-12)
        s.position[rows, j] = v[:, 0:3]
        s.orientation[rows, j] = v[:, 3:7]
        s.velocity[rows, j] = np.einsum("kij,kj->ki", quat_to_matrix(q), v[:, 7:10])  # child → map
        s.body_rates[rows, j] = v[:, 10:13]
        s.flying[rows, j] = v[:, 2] > 0.05
    return s


def _xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def _quat(q: Any) -> list[float]:
    return [float(q.x), float(q.y), float(q.z), float(q.w)]


def _empty_commands() -> CommandSeries:
    return CommandSeries(np.zeros(0), np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0), np.zeros(0, bool))


def _fleet_commands(items: list[tuple[int, Any]], t0: int, ids: NDArray[np.int64]) -> CommandSeries | None:
    if not items:
        return None
    parts: list[tuple[NDArray[Any], ...]] = []
    for ns, m in items:
        mids = np.asarray(m.ids, np.int64)
        c = mids.size
        col, ok = _columns(ids, mids)
        vel = np.asarray(m.velocity, np.float64).reshape(c, 3)
        yaw = np.asarray(m.yaw_rate, np.float64).reshape(c)
        mode = np.asarray(m.mode, np.int64).reshape(c) if len(m.mode) else np.zeros(c, np.int64)
        parts.append((np.full(int(ok.sum()), _t(ns, t0)), col[ok], vel[ok], yaw[ok],
                      mode[ok] == MODE_VELOCITY))
    if not parts:
        return _empty_commands()
    t, col, vel, yaw, vm = (np.concatenate(p) for p in zip(*parts, strict=True))
    return CommandSeries(t, col, vel, yaw, vm)


def _twist_commands(tracks: dict[int, list[tuple[int, Any]]], t0: int, states: StateSeries
                    ) -> CommandSeries | None:
    """TwistStamped setpoints; a body frame (``…base_link``) is rotated into map by the drone's
    attitude at the nearest earlier state sample."""
    parts: list[tuple[NDArray[Any], ...]] = []
    for i, items in tracks.items():
        col, ok = _columns(states.ids, np.array([i], np.int64))
        if not items or not ok[0]:
            continue
        t = np.array([_t(ns, t0) for ns, _ in items])
        lin = np.array([_xyz(m.twist.linear) for _, m in items]).reshape(-1, 3)
        yaw = np.array([float(m.twist.angular.z) for _, m in items])
        body = np.array([str(m.header.frame_id).endswith("base_link") for _, m in items])
        if body.any():
            k = np.searchsorted(states.t, t[body], side="right").clip(1, states.t.size) - 1
            q = np.nan_to_num(states.orientation[k, col[0]], nan=0.0)
            q[np.linalg.norm(q, axis=1) < 1e-9] = (0.0, 0.0, 0.0, 1.0)
            q /= np.linalg.norm(q, axis=1, keepdims=True)
            lin[body] = np.einsum("kij,kj->ki", quat_to_matrix(q), lin[body])
        parts.append((t, np.full(t.size, col[0]), lin, yaw, np.ones(t.size, bool)))
    if not parts:
        return None
    t, c, v, y, vm = (np.concatenate(p) for p in zip(*parts, strict=True))
    return CommandSeries(t, c, v, y, vm)


def _goals(items: list[tuple[int, Any]], t0: int, ids: NDArray[np.int64]) -> GoalSeries | None:
    if not items:
        return None
    t, cols, goals = [], [], []
    for ns, m in items:
        mids = np.asarray(m.ids, np.int64)
        col, ok = _columns(ids, mids)
        g = np.asarray(m.goal, np.float64).reshape(mids.size, 3)
        t.append(np.full(int(ok.sum()), _t(ns, t0)))
        cols.append(col[ok])
        goals.append(g[ok])
    return GoalSeries(np.concatenate(t), np.concatenate(cols), np.concatenate(goals).reshape(-1, 3))


def _tasks(items: list[tuple[int, Any]], acks: list[tuple[int, Any]], t0: int
           ) -> TaskTransitions | None:
    if not items:
        return None
    rejected = {(str(tid), int(code)) for _, m in acks
                for tid, code in zip(m.task_ids, m.codes, strict=False) if int(code) != 0}
    task_ids = sorted({str(m.task_id) for _, m in items})
    index = {k: i for i, k in enumerate(task_ids)}
    order = np.argsort([ns for ns, _ in items], kind="stable")
    rows = [items[i] for i in order]
    return TaskTransitions(
        t=np.array([_t(ns, t0) for ns, _ in rows]),
        task=np.array([index[str(m.task_id)] for _, m in rows], np.int64),
        state=np.array([int(m.state) for _, m in rows], np.int64),
        previous=np.array([int(m.previous_state) for _, m in rows], np.int64),
        drone=np.array([int(m.drone_id) if m.has_drone else -1 for _, m in rows], np.int64),
        task_ids=tuple(task_ids), rejections=len(rejected),
    )


def _planner(items: list[tuple[int, Any]], t0: int) -> PlannerStats | None:
    if not items:
        return None
    subs = np.zeros((len(items), 4))
    for k, (_, m) in enumerate(items):
        s = np.asarray(m.substitutions, np.float64).reshape(-1)[:4]
        subs[k, : s.size] = s
    return PlannerStats(
        t=np.array([_t(ns, t0) for ns, _ in items]),
        latency_ms=np.array([float(m.plan_latency_ms) for _, m in items]),
        substitutions=subs, batch_size=np.array([int(m.batch_size) for _, m in items], np.int64),
    )


def _events(items: list[tuple[int, Any]], t0: int) -> EventLog:
    rows = [(_t(ns, t0), int(e.kind), int(e.drone_id), int(e.other_id), _xyz(e.position))
            for ns, m in items for e in m.events]
    if not rows:
        return EventLog(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                        np.zeros((0, 3)))
    return EventLog(
        t=np.array([r[0] for r in rows]), kind=np.array([r[1] for r in rows], np.int64),
        drone=np.array([r[2] for r in rows], np.int64), other=np.array([r[3] for r in rows], np.int64),
        position=np.array([r[4] for r in rows], np.float64).reshape(-1, 3),
    )
