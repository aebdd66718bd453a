"""Small recorded flights for tests and benchmarks: the simulator core flown by a P controller,
written as rosbag2 MCAP bags with this project's topics (no rclpy: CDR through a rosbags typestore
that knows ``wm_agent_msgs``).

* :func:`simulate_flight` — N drones of a scenario take off and fly between random waypoints
  west of the shelves (P controller, speed cap), commands every world-model step (1/12 s).
* :func:`write_fleet_bag` — ``/fleet/state`` (24 Hz), ``/fleet/cmd``, ``/fleet/assignments``,
  ``/fleet/planner_status`` (the P controller's latency and its speed clamps), ``/fleet/events``
  and ``/tasks/status`` (one pick-and-drop task per waypoint pair).
* :func:`write_odometry_bag` — the same flight as ``/drone_<id>/odom`` + ``/drone_<id>/cmd_vel``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent import topics as names
from wm_agent.bags.definitions import MessageDefinitions
from wm_agent.bags.writer import BagWriter

T0_NS = 1_000_000_000           # bag time of the first sample [ns]
_TYPES = ("wm_agent_msgs/msg/FleetState", "wm_agent_msgs/msg/FleetCommand",
          "wm_agent_msgs/msg/FleetAssignments", "wm_agent_msgs/msg/PlannerStatus",
          "wm_agent_msgs/msg/FleetEvents", "wm_agent_msgs/msg/TaskStatus")
#: simulator StatusFlag bit → FleetState message bit (by name, as sim_bridge does).
_STATUS_BITS = {"FLYING": 2, "GROUNDED": 4, "COLLIDED": 8, "FAILSAFE_HOLD": 16, "FAILSAFE_LAND": 32,
                "ARMED": 1}
#: (time [s], FleetEvent kind, drone, other drone or -1, position [m]).
Event = tuple[float, int, int, int, tuple[float, float, float]]
_EVENT_KINDS = {"COLLISION": 0, "FAILSAFE_HOLD": 1, "FAILSAFE_LAND": 2, "INVALID_COMMAND": 4,
                "RECOVERED": 6, "LANDED": 7}


@dataclass
class Flight:
    """A simulated flight: states every control period, commands every world-model step.

    Attributes:
        t: (T,) sim time [s]. position, velocity, body_rates (T, N, 3); orientation (T, N, 4);
        status (T, N) FleetState message bits. cmd_t (C,) [s], cmd_vel (C, N, 3) [m/s],
        cmd_clamped (C, N) bool, cmd_latency_ms (C,), goal (C, N, 3) [m] (current waypoint).
        events: (time [s], kind, drone, other, position). tasks: (time [s], task id, state,
        previous, drone).
    """

    t: NDArray[np.float64]
    position: NDArray[np.float64]
    velocity: NDArray[np.float64]
    orientation: NDArray[np.float64]
    body_rates: NDArray[np.float64]
    status: NDArray[np.uint16]
    cmd_t: NDArray[np.float64]
    cmd_vel: NDArray[np.float64]
    cmd_clamped: NDArray[np.bool_]
    cmd_latency_ms: NDArray[np.float64]
    goal: NDArray[np.float64]
    events: list[Event]
    tasks: list[tuple[float, str, int, int, int]]


#: Waypoint box (min, max corner [m]) of the default scenario: the open strip west of the shelves.
WAREHOUSE_STRIP = ((1.5, 2.0, 1.0), (6.5, 28.0, 2.5))


def simulate_flight(drones: int = 4, seconds: float = 12.0, seed: int = 0, scenario: str = "warehouse",
                    max_speed: float = 2.0, gain: float = 1.2,
                    area: tuple[tuple[float, float, float], tuple[float, float, float]] = WAREHOUSE_STRIP,
                    ) -> Flight:
    """Fly `drones` drones for `seconds`: vertical take-off to 0.8 m, then a P controller
    (`gain` [1/s], speed cap `max_speed` [m/s]) between random waypoints 2–5 m apart in the open
    `area` (default: the strip west of the warehouse's shelves, x 1.5–6.5 m, y 2–28 m,
    z 1–2.5 m). Every second waypoint reached completes a task (queued → assigned → picked →
    delivered)."""
    from wm_agent.sim import StatusFlag, load_scenario, make_simulator

    sc = load_scenario(scenario, drones=drones)
    sim = make_simulator(sc, fidelity="fleet")
    sim.reset(seed=seed)
    rng = np.random.default_rng(seed)
    control_dt = sc.rates.control_dt
    per_cmd = round((1.0 / 12.0) / control_dt)
    status_map = np.zeros(1 << 6, np.uint16)
    for f in StatusFlag:
        status_map[(np.arange(1 << 6) & int(f)) != 0] |= np.uint16(_STATUS_BITS[str(f.name)])

    lo, hi = np.array(area[0], np.float64), np.array(area[1], np.float64)

    def waypoint(start: NDArray[np.float64]) -> NDArray[np.float64]:
        """Points 2-5 m from `start` in a random horizontal direction, inside the strip."""
        k = start.shape[0]
        ang, dist = rng.uniform(0, 2 * np.pi, k), rng.uniform(2.0, 5.0, k)
        p = start + np.column_stack([dist * np.cos(ang), dist * np.sin(ang), np.zeros(k)])
        p[:, 2] = rng.uniform(lo[2], hi[2], k)
        return np.clip(p, lo, hi)

    home = np.asarray(sc.home_pads[:drones], np.float64)
    spread = home.copy()
    spread[:, 1] += 2.0 + 2.5 * (np.arange(drones) % 10)     # first legs fan out northwards
    goal = waypoint(spread)
    legs = np.zeros(drones, np.int64)
    airborne = np.zeros(drones, bool)
    rows: dict[str, list[Any]] = {k: [] for k in ("t", "p", "v", "q", "w", "s")}
    cmd_rows: dict[str, list[Any]] = {k: [] for k in ("t", "v", "c", "l", "g")}
    events: list[Event] = []
    tasks: list[tuple[float, str, int, int, int]] = [(0.0, f"task_{i}_0", 0, 0, -1) for i in range(drones)]
    tasks += [(0.05, f"task_{i}_0", 1, 0, i) for i in range(drones)]
    steps = round(seconds / control_dt)
    cmd = np.zeros((drones, 3))
    for k in range(steps):
        st = sim.state()
        if k % per_cmd == 0:
            t0 = time.perf_counter()
            airborne |= st.pos[:, 2] > 0.8
            reached = airborne & (np.linalg.norm(goal - st.pos, axis=1) < 0.4)
            for i in np.flatnonzero(reached):
                legs[i] += 1
                tid = f"task_{i}_{(legs[i] - 1) // 2}"
                if legs[i] % 2 == 1:
                    tasks.append((st.time, tid, 2, 1, int(i)))
                else:
                    tasks.append((st.time, tid, 3, 2, int(i)))
                    nxt = f"task_{i}_{legs[i] // 2}"
                    tasks += [(st.time, nxt, 0, 0, -1), (st.time, nxt, 1, 0, int(i))]
            if reached.any():
                goal[reached] = waypoint(st.pos[reached])
            raw = gain * (goal - st.pos)
            raw[~airborne] = (0.0, 0.0, 1.0)        # vertical take-off to 0.8 m first
            speed = np.linalg.norm(raw, axis=1, keepdims=True)
            clamped = speed[:, 0] > max_speed
            cmd = raw * np.minimum(1.0, max_speed / np.maximum(speed, 1e-9))
            latency = (time.perf_counter() - t0) * 1e3
            for name, v in (("t", st.time), ("v", cmd.copy()), ("c", clamped), ("l", latency),
                            ("g", goal.copy())):
                cmd_rows[name].append(v)
        fresh = np.full(drones, k % per_cmd == 0)
        sim.step(cmd, np.zeros(drones), fresh)
        for name, v in (("t", st.time), ("p", st.pos), ("v", st.vel), ("q", st.quat), ("w", st.body_rates),
                        ("s", status_map[st.status & 0x3F])):
            rows[name].append(np.array(v, copy=True))
        for e in sim.drain_events():
            x, y, z = (float(v) for v in e.position)
            events.append((e.time, _EVENT_KINDS.get(e.kind.name, 4), int(e.drone_id), int(e.other_id),
                           (x, y, z)))
    sim.close()
    return Flight(
        t=np.array(rows["t"]), position=np.array(rows["p"]), velocity=np.array(rows["v"]),
        orientation=np.array(rows["q"]), body_rates=np.array(rows["w"]),
        status=np.array(rows["s"], np.uint16), cmd_t=np.array(cmd_rows["t"]), cmd_vel=np.array(cmd_rows["v"]),
        cmd_clamped=np.array(cmd_rows["c"]), cmd_latency_ms=np.array(cmd_rows["l"]),
        goal=np.array(cmd_rows["g"]), events=events, tasks=sorted(tasks, key=lambda x: x[0]),
    )


class Serializer:
    """CDR serialization of this project's messages through a rosbags typestore (no rclpy)."""

    def __init__(self, definitions: MessageDefinitions | None = None) -> None:
        from rosbags.typesys import Stores, get_types_from_msg, get_typestore

        self.store = get_typestore(Stores.ROS2_KILTED)
        defs = definitions or MessageDefinitions()
        for msgtype in _TYPES:
            types = get_types_from_msg(defs.full_definition(msgtype), msgtype)
            self.store.register({k: v for k, v in types.items() if k not in self.store.fielddefs})
        self.types = self.store.types

    def header(self, t_s: float, frame: str = "map") -> Any:
        sec, nsec = divmod(round(t_s * 1e9), 10**9)
        return self.types["std_msgs/msg/Header"](
            stamp=self.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nsec), frame_id=frame)

    def cdr(self, msg: Any) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msg.__msgtype__))

    def fleet_state(self, t_s: float, ids: NDArray[Any], pos: NDArray[Any], vel: NDArray[Any],
                    quat: NDArray[Any], rates: NDArray[Any], status: NDArray[Any], step: int = 0) -> bytes:
        return self.cdr(self.types["wm_agent_msgs/msg/FleetState"](
            header=self.header(t_s), step=step, ids=np.asarray(ids, np.uint32),
            position=np.asarray(pos, np.float32).ravel(), velocity=np.asarray(vel, np.float32).ravel(),
            orientation=np.asarray(quat, np.float32).ravel(),
            body_rates=np.asarray(rates, np.float32).ravel(),
            status=np.asarray(status, np.uint16)))

    def fleet_command(self, t_s: float, ids: NDArray[Any], vel: NDArray[Any], step: int = 0) -> bytes:
        n = len(ids)
        return self.cdr(self.types["wm_agent_msgs/msg/FleetCommand"](
            header=self.header(t_s), step=step, ids=np.asarray(ids, np.uint32),
            velocity=np.asarray(vel, np.float32).ravel(), yaw_rate=np.zeros(n, np.float32),
            mode=np.zeros(n, np.uint8)))

    def assignments(self, t_s: float, ids: NDArray[Any], goal: NDArray[Any]) -> bytes:
        n = len(ids)
        return self.cdr(self.types["wm_agent_msgs/msg/FleetAssignments"](
            header=self.header(t_s), ids=np.asarray(ids, np.uint32), epochs=np.ones(n, np.uint64),
            phases=np.ones(n, np.uint8), goal=np.asarray(goal, np.float32).ravel(), task_ids=[""] * n))

    def planner_status(self, t_s: float, latency_ms: float, subs: NDArray[Any], total: NDArray[Any],
                       batch: int) -> bytes:
        return self.cdr(self.types["wm_agent_msgs/msg/PlannerStatus"](
            header=self.header(t_s), backend="classical", batch_size=batch, plan_latency_ms=latency_ms,
            substitutions=np.asarray(subs, np.uint32), substitutions_total=np.asarray(total, np.uint64)))

    def events(self, t_s: float, items: list[Event]) -> bytes:
        ev = [self.types["wm_agent_msgs/msg/FleetEvent"](
            header=self.header(e[0]), kind=e[1], drone_id=e[2], other_id=e[3],
            position=self.types["geometry_msgs/msg/Point"](x=e[4][0], y=e[4][1], z=e[4][2]), detail="")
            for e in items]
        return self.cdr(self.types["wm_agent_msgs/msg/FleetEvents"](header=self.header(t_s), events=ev))

    def task_status(self, t_s: float, task_id: str, state: int, previous: int, drone: int) -> bytes:
        return self.cdr(self.types["wm_agent_msgs/msg/TaskStatus"](
            header=self.header(t_s), task_id=task_id, state=state, previous_state=previous,
            drone_id=max(drone, 0), has_drone=drone >= 0, epoch=1, reason=""))

    def odometry(self, t_s: float, drone: int, pos: NDArray[Any], quat: NDArray[Any],
                 body_vel: NDArray[Any], rates: NDArray[Any]) -> bytes:
        ty = self.types
        vec = ty["geometry_msgs/msg/Vector3"]
        pose = ty["geometry_msgs/msg/PoseWithCovariance"](
            pose=ty["geometry_msgs/msg/Pose"](
                position=ty["geometry_msgs/msg/Point"](x=float(pos[0]), y=float(pos[1]), z=float(pos[2])),
                orientation=ty["geometry_msgs/msg/Quaternion"](
                    x=float(quat[0]), y=float(quat[1]), z=float(quat[2]), w=float(quat[3]))),
            covariance=np.zeros(36))
        twist = ty["geometry_msgs/msg/TwistWithCovariance"](
            twist=ty["geometry_msgs/msg/Twist"](linear=vec(*map(float, body_vel)),
                                                angular=vec(*map(float, rates))),
            covariance=np.zeros(36))
        return self.cdr(ty["nav_msgs/msg/Odometry"](
            header=self.header(t_s), child_frame_id=f"drone_{drone}/base_link", pose=pose, twist=twist))

    def twist(self, t_s: float, vel: NDArray[Any], frame: str = "map") -> bytes:
        ty = self.types
        vec = ty["geometry_msgs/msg/Vector3"]
        return self.cdr(ty["geometry_msgs/msg/TwistStamped"](
            header=self.header(t_s, frame),
            twist=ty["geometry_msgs/msg/Twist"](linear=vec(*map(float, vel)), angular=vec(0.0, 0.0, 0.0))))


def _ns(t_s: float) -> int:
    return T0_NS + round(t_s * 1e9)


def write_fleet_bag(path: str | Path, flight: Flight, *, state_hz: float = 24.0, chunk_bytes: int = 1 << 20,
                    serializer: Serializer | None = None) -> int:
    """The flight on the project's fleet topics; returns the number of messages written."""
    ser = serializer or Serializer()
    n = flight.position.shape[1]
    ids = np.arange(n)
    every = max(1, round(1.0 / (state_hz * (flight.t[1] - flight.t[0]))))
    items: list[tuple[float, str, bytes]] = []
    for k in range(0, flight.t.size, every):
        items.append((flight.t[k], names.FLEET_STATE, ser.fleet_state(
            flight.t[k], ids, flight.position[k], flight.velocity[k], flight.orientation[k],
            flight.body_rates[k], flight.status[k], step=k)))
    total = np.zeros(4, np.int64)
    for c, t in enumerate(flight.cmd_t):
        items.append((t, names.FLEET_COMMAND, ser.fleet_command(t, ids, flight.cmd_vel[c])))
        if c == 0 or not np.array_equal(flight.goal[c], flight.goal[c - 1]):
            items.append((t, names.FLEET_ASSIGNMENTS, ser.assignments(t, ids, flight.goal[c])))
        subs = np.array([0, int(flight.cmd_clamped[c].sum()), 0, 0])
        total += subs
        items.append((t, names.PLANNER_STATUS, ser.planner_status(t, float(flight.cmd_latency_ms[c]), subs,
                                                                  total, n)))
    for e in flight.events:
        items.append((e[0], names.FLEET_EVENTS, ser.events(e[0], [e])))
    for t, tid, state, prev, drone in flight.tasks:
        items.append((t, names.TASK_STATUS, ser.task_status(t, tid, state, prev, drone)))
    items.sort(key=lambda x: x[0])
    types = {names.FLEET_STATE: _TYPES[0], names.FLEET_COMMAND: _TYPES[1], names.FLEET_ASSIGNMENTS: _TYPES[2],
             names.PLANNER_STATUS: _TYPES[3], names.FLEET_EVENTS: _TYPES[4], names.TASK_STATUS: _TYPES[5]}
    with BagWriter(path, chunk_bytes=chunk_bytes) as w:
        for topic, msgtype in types.items():
            w.add_topic(topic, msgtype)
        for t, topic, data in items:
            w.write(topic, data, _ns(t))
    return len(items)


def write_odometry_bag(path: str | Path, flight: Flight, *, state_hz: float = 24.0,
                       serializer: Serializer | None = None) -> int:
    """The flight as per-drone Odometry (twist in base_link) + TwistStamped (map); returns messages."""
    from wm_agent.sim.rotations import quat_to_matrix

    ser = serializer or Serializer()
    n = flight.position.shape[1]
    every = max(1, round(1.0 / (state_hz * (flight.t[1] - flight.t[0]))))
    items: list[tuple[float, str, bytes]] = []
    for k in range(0, flight.t.size, every):
        body = np.einsum("nji,nj->ni", quat_to_matrix(flight.orientation[k]), flight.velocity[k])
        for i in range(n):
            items.append((flight.t[k], names.drone_odom(i), ser.odometry(
                flight.t[k], i, flight.position[k, i], flight.orientation[k, i], body[i],
                flight.body_rates[k, i])))
    for c, t in enumerate(flight.cmd_t):
        for i in range(n):
            items.append((t, names.drone_cmd_vel(i), ser.twist(t, flight.cmd_vel[c, i])))
    items.sort(key=lambda x: x[0])
    with BagWriter(path) as w:
        for i in range(n):
            w.add_topic(names.drone_odom(i), "nav_msgs/msg/Odometry")
            w.add_topic(names.drone_cmd_vel(i), "geometry_msgs/msg/TwistStamped")
        for t, topic, data in items:
            w.write(topic, data, _ns(t))
    return len(items)
