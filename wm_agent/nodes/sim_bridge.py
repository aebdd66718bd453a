"""sim_bridge: the simulated drone fleet, looking like hardware over ROS 2.

Publishes /clock, the batched fleet state, fleet events, and for the drones with ids below
`odom_max_drones` (DEFAULT_ODOM_DRONES; `wm-agent sim --odom-drones`, launch `odom_drones:=`)
per-drone nav_msgs/Odometry and their TF (`map` -> `drone_<id>/base_link` on /tf, one
tf2_msgs/TFMessage per fleet state); takes the batched fleet command and per-drone
geometry_msgs/TwistStamped cmd_vel. The physics, controller, failsafe and collisions are the
pure core in wm_agent.sim; this node converts messages once and steps the core.

Modes: realtime (sim time follows the wall clock), fast (as fast as possible), lockstep (period k
advances once every live commander sent its command for k, or a timeout passed: deterministic).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, TransformStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.serialization import serialize_message
from rosgraph_msgs.msg import Clock
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from wm_agent import qos, topics
from wm_agent import visualization as vis
from wm_agent.conversions import (
    FleetStateArrays,
    fleet_command_from_msg,
    fleet_state_to_msg,
    time_msg,
)
from wm_agent.errors import ConfigError
from wm_agent.graph import DEFAULT_ODOM_DRONES
from wm_agent.interfaces import require_interfaces, require_tf2_msgs
from wm_agent.nodes.common import StageReporter, declare_config, run_node
from wm_agent.sim.command_buffer import CommandBuffer, CommandMode
from wm_agent.sim.modes import AUTO_MOTOR_MAX_DRONES, Fidelity, SimMode, resolve_fidelity
from wm_agent.sim.radio import RadioDropout
from wm_agent.sim.rotations import quat_to_matrix
from wm_agent.sim.scenario import load_scenario
from wm_agent.sim.simulator import make_simulator
from wm_agent.sim.types import StatusFlag

MODES = tuple(m.value for m in SimMode)
START_SETTLE_S = 1.0
"""Wall time the start gate still holds t = 0 after the subscribers matched on this side
(discovery is not symmetric: the readers may match the writer a little later; with 0.3 s a
loaded machine's recorder missed a lockstep run's first 44 commands)."""
FIDELITIES = tuple(f.value for f in Fidelity)
REGISTER_AGAIN_WINDOW_S = 5.0
"""A drone commanded again after a failsafe landing registers again, unless its radio was down
within this much sim time before (then the radio's return registered it already) [s]."""


@dataclass(frozen=True)
class SimBridgeConfig:
    scenario: str = field(default="warehouse", metadata={"description": "scenario name or YAML path"})
    drones: int = field(default=0, metadata={"description": "drone count (0 = the scenario's)"})
    seed: int = field(default=0, metadata={"description": "random seed"})
    mode: str = field(default="realtime", metadata={"description": "realtime | fast | lockstep"})
    fidelity: str = field(default="auto", metadata={"description": "motor | fleet | auto"})
    auto_motor_max_drones: int = field(
        default=AUTO_MOTOR_MAX_DRONES,
        metadata={"description": "auto fidelity: motor up to this many drones, else fleet"}
    )
    state_rate_hz: float = field(
        default=0.0, metadata={"description": "fleet-state rate in sim time [Hz] (0 = scenario's)"}
    )
    odom_max_drones: int = field(
        default=DEFAULT_ODOM_DRONES,
        metadata={"description": "per-drone topics for ids below this: /drone_<id>/odom, its TF "
                  "(map -> drone_<id>/base_link on /tf) and /drone_<id>/cmd_vel (0 = none)"}
    )
    publish_tf: bool = field(
        default=True, metadata={"description": "publish /tf for the drones with odometry"}
    )
    lockstep_timeout_s: float = field(
        default=0.5, metadata={"description": "lockstep: wall time to wait for late commanders [s]"}
    )
    lockstep_min_commanders: int = field(
        default=0, metadata={"description": "lockstep: drones that must command before step 1"}
    )
    lockstep_startup_timeout_s: float = field(
        default=30.0, metadata={"description": "lockstep: wait this long for the first commanders [s]"}
    )
    takeoff_speed: float = field(default=0.5, metadata={"description": "MODE_TAKEOFF climb [m/s]"})
    duration_s: float = field(
        default=0.0, metadata={"description": "stop stepping after this sim time [s] (0 = never)"}
    )
    frame_id: str = field(default="map", metadata={"description": "world frame of published state"})
    dropout_drone: int = field(
        default=-1, metadata={"description": "fault injection: this drone's radio drops out (-1 = none)"}
    )
    start_subscribers: int = field(
        default=0, metadata={"description": "hold sim time at 0 until the fleet state has this many "
                             "subscribers, so that nobody (a recorder) misses the start "
                             "(0 = start at once; lockstep then also waits for its commanders)"}
    )
    start_command_subscribers: int = field(
        default=0, metadata={"description": "also hold sim time at 0 until the fleet command topic "
                             "has this many subscribers (this bridge and a recorder: 2), so the "
                             "first commands are recorded too (0 = do not wait)"}
    )
    start_command_publishers: int = field(
        default=0, metadata={"description": "also hold sim time at 0 until the fleet command topic "
                             "has this many publishers (the planner shards), so a recorder has "
                             "discovered every one before the first commands (0 = do not wait)"}
    )
    start_timeout_s: float = field(
        default=30.0, metadata={"description": "start anyway after this wall time [s]"}
    )
    dropout_start_s: float = field(default=0.0, metadata={"description": "dropout start, sim time [s]"})
    dropout_end_s: float = field(default=0.0, metadata={"description": "dropout end, sim time [s]"})
    markers_rate_hz: float = field(
        default=5.0, metadata={"description": "fleet MarkerArray rate in sim time [Hz] (0 = no "
                               "markers: neither /fleet/markers nor the latched /world/markers)"}
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"sim_bridge: mode must be one of {MODES}, got {self.mode!r}")
        if self.fidelity not in FIDELITIES:
            raise ConfigError(f"sim_bridge: fidelity must be one of {FIDELITIES}, got {self.fidelity!r}")
        for name in ("drones", "odom_max_drones", "lockstep_min_commanders", "auto_motor_max_drones",
                     "start_subscribers", "start_command_subscribers", "start_command_publishers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim_bridge: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("state_rate_hz", "duration_s", "markers_rate_hz"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ConfigError(f"sim_bridge: {name} must be a finite value >= 0")
        for name in ("lockstep_timeout_s", "lockstep_startup_timeout_s", "takeoff_speed",
                     "start_timeout_s"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"sim_bridge: {name} must be a finite value > 0")



LOCKSTEP_RESEND_FRACTION = 0.25
"""Lockstep: a step's state is published again after this fraction of ``lockstep_timeout_s``
without its commands (and again each such interval until the timeout)."""


class SimBridge(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("sim_bridge", **kwargs)
        self.msgs, _ = require_interfaces()
        self.cfg = declare_config(self, SimBridgeConfig)
        scenario = load_scenario(self.cfg.scenario, drones=self.cfg.drones or None)
        fidelity = resolve_fidelity(self.cfg.fidelity, scenario.drones, self.cfg.auto_motor_max_drones).value
        self.sim = make_simulator(scenario, fidelity=fidelity)
        self.sim.reset(self.cfg.seed)
        self.radio = RadioDropout(self.cfg.dropout_drone, self.cfg.dropout_start_s,
                                  self.cfg.dropout_end_s)
        self.scenario = scenario
        self.n = scenario.drones
        af = scenario.airframe
        self.commands = CommandBuffer(self.n, af.land_speed, self.cfg.takeoff_speed)
        self.control_dt = scenario.rates.control_dt
        rate = self.cfg.state_rate_hz or scenario.rates.state_pub_hz
        self.state_every = max(1, round(scenario.rates.control_hz / rate))
        self.step_count = 0
        self.events_total = 0
        self._status_map = self._build_status_map()
        self._stale = np.zeros(self.n, bool)  # drones whose commands stopped (failsafe landed)
        self.stages = StageReporter(self)  # wall time per stage on /fleet/stage_times
        self._sim_timings = self.sim.timings()

        self.clock_pub = self.create_publisher(Clock, topics.CLOCK, qos.CLOCK)
        self.state_pub = self.create_publisher(
            self.msgs.FleetState, topics.FLEET_STATE,
            qos.STATE_LOCKSTEP if self.cfg.mode == SimMode.LOCKSTEP else qos.STATE)
        self.events_pub = self.create_publisher(self.msgs.FleetEvents, topics.FLEET_EVENTS, qos.EVENTS)
        self.odom_ids = list(range(min(self.n, self.cfg.odom_max_drones)))
        self.odom_pubs = [
            self.create_publisher(Odometry, topics.drone_odom(i), qos.STATE) for i in self.odom_ids
        ]
        self.tf_pub: Any = None
        if self.cfg.publish_tf and self.odom_ids:
            self.tf_pub = self.create_publisher(require_tf2_msgs().TFMessage, topics.TF, qos.TF)
        self.create_subscription(
            self.msgs.FleetCommand, topics.FLEET_COMMAND, self.on_fleet_command, qos.COMMAND_SUB
        )
        for i in self.odom_ids:
            self.create_subscription(
                TwistStamped, topics.drone_cmd_vel(i),
                lambda msg, i=i: self.on_cmd_vel(i, msg), qos.COMMAND_SUB,
            )
        # a drone whose radio comes back registers again (the coordinator ignores a LOST drone
        # until then): what the drone's own link does on hardware
        _, srvs = require_interfaces()
        self.register_client: Any = self.create_client(srvs.RegisterDrone, topics.REGISTER_DRONE)
        self._init_markers()
        self.wall_start = time.monotonic()
        self.started = self.cfg.start_subscribers == 0
        self._all_seen: float | None = None
        self.lockstep_wait_since = time.monotonic()
        self._last_kick = time.monotonic()
        self._last_resend = 0.0
        self.lockstep_resends = 0  # states published again because their commands were late
        period = self.control_dt if self.cfg.mode == SimMode.REALTIME else 0.001
        self.timer = self.create_timer(period, self.tick)
        self.get_logger().info(
            f"scenario {scenario.name}: {self.n} drones, fidelity {fidelity}, mode {self.cfg.mode}, "
            f"physics {scenario.rates.physics_hz:g} Hz, control {scenario.rates.control_hz:g} Hz"
        )
        self.publish_state()

    # -- inputs ------------------------------------------------------------------------------------
    def on_fleet_command(self, msg: Any) -> None:
        cmd = self.stages.decode("command_in", fleet_command_from_msg, msg, "FleetCommand")
        if cmd is None:
            return
        keep = self.radio.up(cmd.ids, self.sim.sim_time)  # a drone whose radio is down hears nothing
        ids, vel, yaw, mode = cmd.ids[keep], cmd.velocity[keep], cmd.yaw_rate[keep], cmd.mode[keep]
        self.commands.submit(ids, vel, yaw, mode, cmd.step)
        if self.cfg.mode == SimMode.LOCKSTEP and not self._done():
            self.lockstep_tick()  # advance as soon as the last expected command is in

    def on_cmd_vel(self, drone: int, msg: TwistStamped) -> None:
        if self.radio.down(drone, self.sim.sim_time):
            return  # its radio is down: the command never arrives
        v = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z], dtype=np.float64)
        if msg.header.frame_id.endswith("base_link"):
            # body-frame setpoint: rotate into the world frame with the drone's attitude
            q = self.sim.attitude(np.array([drone]))
            v = _rotate(q, v[None])[0]
        self.commands.submit(
            np.array([drone]), v[None], np.array([msg.twist.angular.z]),
            np.array([CommandMode.VELOCITY]), step=self.step_count + 1,
        )

    # -- stepping ----------------------------------------------------------------------------------
    def tick(self) -> None:
        if self.cfg.duration_s and self.sim.sim_time >= self.cfg.duration_s - 1e-9:
            return
        if not self.started and not self._start_gate():
            return
        if self.cfg.mode == SimMode.REALTIME:
            due = int((time.monotonic() - self.wall_start) / self.control_dt)
            for _ in range(min(due - self.step_count, 4)):  # catch up at most 4 periods a tick
                self.advance()
        elif self.cfg.mode == "fast":
            t_end = time.monotonic() + 0.02
            while time.monotonic() < t_end and not self._done():
                self.advance()
        else:
            self.lockstep_tick()

    def _start_gate(self) -> bool:
        """True once the fleet state has ``start_subscribers`` subscribers (or
        after ``start_timeout_s``) and :data:`START_SETTLE_S` has passed; until then sim time
        stays 0 and the t = 0 state is re-published every 0.1 s for late joiners."""
        have = self.state_pub.get_subscription_count()
        now = time.monotonic()
        want = self.cfg.start_subscribers
        have_cmd = self.count_subscribers(topics.FLEET_COMMAND)
        have_cmd_pub = self.count_publishers(topics.FLEET_COMMAND)
        commands_heard = (have_cmd >= self.cfg.start_command_subscribers
                          and have_cmd_pub >= self.cfg.start_command_publishers)
        if have >= want and commands_heard and self._all_seen is None:
            self._all_seen = now  # matched here; give the readers' side START_SETTLE_S to match too
        settled = self._all_seen is not None and now - self._all_seen >= START_SETTLE_S
        if not settled and now - self.wall_start < self.cfg.start_timeout_s:
            if now - self._last_kick >= 0.1:
                self._last_kick = now
                self.publish_state()
            return False
        if have < want or not commands_heard:
            self.get_logger().warning(
                f"starting with {have} of {want} fleet-state subscribers and "
                f"{have_cmd} of {self.cfg.start_command_subscribers} fleet-command subscribers "
                f"({have_cmd_pub} of {self.cfg.start_command_publishers} publishers) after "
                f"{self.cfg.start_timeout_s} s")
        else:
            self.get_logger().info(f"{have} fleet-state subscribers: starting the clock")
        self.started = True
        self.wall_start = now
        self.lockstep_wait_since = now
        return True

    def _done(self) -> bool:
        return bool(self.cfg.duration_s) and self.sim.sim_time >= self.cfg.duration_s - 1e-9

    def lockstep_tick(self) -> None:
        k = self.step_count + 1
        waited = time.monotonic() - self.lockstep_wait_since
        if self.step_count == 0 and self.cfg.lockstep_min_commanders:
            joined = int(np.count_nonzero(self.commands.expected))
            if joined < self.cfg.lockstep_min_commanders and waited < self.cfg.lockstep_startup_timeout_s:
                now = time.monotonic()
                if now - self._last_kick >= 0.25:  # commanders may join late: show them step 0 again
                    self._last_kick = now
                    self.publish_state()
                return
        if not self.commands.ready(k):
            if waited < self.cfg.lockstep_timeout_s:
                now = time.monotonic()
                since = now - max(self.lockstep_wait_since, self._last_resend)
                if since >= self.cfg.lockstep_timeout_s * LOCKSTEP_RESEND_FRACTION:
                    # the state may have been lost on the way (best effort; a 10,000-drone
                    # state is ~600 kB of fragments) to the planner or the coordinator: the
                    # same step again, instead of waiting out the timeout without commands
                    self._last_resend = now
                    self.lockstep_resends += 1
                    self.publish_state()
                return
            late = self.commands.missing(k)
            self.get_logger().warning(
                f"lockstep: step {k}: no command from {late.size} drone(s) after "
                f"{self.cfg.lockstep_timeout_s} s (first: {late[:5].tolist()}); advancing"
            )
        self.advance(lockstep_step=k)

    def advance(self, lockstep_step: int | None = None) -> None:
        cmd_vel, yaw_rate, fresh = self.commands.take(lockstep_step)
        t_before = self.sim.sim_time
        self.sim.step(cmd_vel, yaw_rate, fresh)
        timings = self.sim.timings()  # controller, physics, collisions, readout [s], cumulative
        for stage, total in timings.items():
            self.stages.timer.add(stage, (total - self._sim_timings.get(stage, 0.0)) * 1e3)
        self._sim_timings = timings
        self.step_count += 1
        self.lockstep_wait_since = time.monotonic()
        t = self.sim.sim_time
        for drone in self.radio.restored(t_before, t):
            self.register(drone, "radio back")
        stale = self.sim.commands_stale()
        for drone in np.flatnonzero(self._stale & ~stale).tolist():
            # commands again after the failsafe landed it (its planner shard came back): the
            # coordinator marked it lost meanwhile, so it registers again (once: a drone whose
            # radio just came back has registered already)
            if not self.radio.was_down(drone, t - REGISTER_AGAIN_WINDOW_S, t):
                self.register(drone, "commanded again")
        self._stale = stale
        self.clock_pub.publish(Clock(clock=time_msg(t)))
        events = self.sim.drain_events()
        timer = self.stages.timer
        if events:
            with timer.stage("events"):
                self.publish_events(events)
        if lockstep_step is not None or self.step_count % self.state_every == 0:
            self.publish_state()
        with timer.stage("markers"):
            self.publish_markers()
        self.stages.tick(t)

    def register(self, drone: int, why: str) -> None:
        """Register ``drone`` with the coordinator again (asynchronous; logged)."""
        _, srvs = require_interfaces()
        if not self.register_client.service_is_ready():
            self.get_logger().warning(f"drone {drone}: {why}, but no coordinator offers "
                                      f"{topics.REGISTER_DRONE}; not registered")
            return
        self.register_client.call_async(srvs.RegisterDrone.Request(drone_id=drone))
        self.get_logger().info(f"drone {drone}: {why} at t = {self.sim.sim_time:.2f} s; "
                               "registering again")

    # -- outputs -----------------------------------------------------------------------------------
    def _build_status_map(self) -> np.ndarray:
        """Lookup table: simulator StatusFlag bits -> FleetState message bits (by name)."""
        bits = [(int(f), int(getattr(self.msgs.FleetState, str(f.name)))) for f in StatusFlag]
        table = np.zeros(1 << 16, dtype=np.uint16)
        values = np.arange(1 << 16, dtype=np.uint32)
        for sim_bit, msg_bit in bits:
            table[(values & sim_bit) != 0] |= np.uint16(msg_bit)
        return table

    def publish_state(self) -> None:
        s = self.sim.state()
        rows = np.flatnonzero(self.radio.up(s.ids, s.time))  # a silent radio sends nothing
        arrays = FleetStateArrays(
            ids=s.ids[rows].astype(np.uint32),
            position=s.pos[rows],
            velocity=s.vel[rows],
            orientation=s.quat[rows],
            body_rates=s.body_rates[rows],
            status=self._status_map[s.status[rows]],
            step=self.step_count,
        )
        with self.stages.timer.stage("state_out"):
            msg = fleet_state_to_msg(arrays, frame_id=self.cfg.frame_id)
            msg.header.stamp = time_msg(s.time)
            self.state_pub.publish(msg)
        with self.stages.timer.stage("odometry"):
            if self.odom_pubs:
                self.publish_odometry(s)
            if self.tf_pub is not None:
                self.publish_tf(s)

    def publish_odometry(self, s: Any) -> None:
        ids = self.odom_ids
        body_vel = _rotate_inverse(s.quat[ids], s.vel[ids])
        stamp = time_msg(s.time)
        up = self.radio.up(np.asarray(ids), s.time)
        for j, i in enumerate(ids):
            if not up[j]:
                continue
            m = Odometry()
            m.header.stamp = stamp
            m.header.frame_id = self.cfg.frame_id
            m.child_frame_id = f"drone_{i}/base_link"
            p, q, w = s.pos[i], s.quat[i], s.body_rates[i]
            m.pose.pose.position.x, m.pose.pose.position.y, m.pose.pose.position.z = map(float, p)
            o = m.pose.pose.orientation
            o.x, o.y, o.z, o.w = map(float, q)
            lin, ang = m.twist.twist.linear, m.twist.twist.angular
            lin.x, lin.y, lin.z = map(float, body_vel[j])
            ang.x, ang.y, ang.z = map(float, w)
            self.odom_pubs[j].publish(m)

    def publish_tf(self, s: Any) -> None:
        """One TFMessage: ``map`` -> ``drone_<id>/base_link`` of every drone with odometry whose
        radio is up (what the drone itself would broadcast), stamped with the state's time."""
        ids = np.asarray(self.odom_ids)
        up = self.radio.up(ids, s.time)
        stamp = time_msg(s.time)
        msg = self.tf_pub.msg_type()
        for i in ids[up].tolist():
            t = TransformStamped()
            t.header.stamp = stamp
            t.header.frame_id = self.cfg.frame_id
            t.child_frame_id = f"drone_{i}/base_link"  # as the odometry's child frame
            tr, r = t.transform.translation, t.transform.rotation
            tr.x, tr.y, tr.z = map(float, s.pos[i])
            r.x, r.y, r.z, r.w = map(float, s.quat[i])
            msg.transforms.append(t)
        if msg.transforms:
            self.tf_pub.publish(msg)

    def publish_events(self, events: list[Any]) -> None:
        out = self.msgs.FleetEvents()
        out.header.stamp = time_msg(self.sim.sim_time)
        out.header.frame_id = self.cfg.frame_id
        for e in events:
            m = self.msgs.FleetEvent()
            m.header.stamp = time_msg(e.time)
            m.header.frame_id = self.cfg.frame_id
            m.kind = int(getattr(self.msgs.FleetEvent, e.kind.name))
            m.drone_id = int(e.drone_id)
            m.other_id = int(e.other_id)
            m.position.x, m.position.y, m.position.z = map(float, e.position)
            m.detail = e.detail
            out.events.append(m)
        self.events_total += len(events)
        self.events_pub.publish(out)

    # -- markers (Foxglove / RViz) ------------------------------------------------------------------
    def _init_markers(self) -> None:
        """The latched map on /world/markers (once) and the fleet's template (see visualization)."""
        self.markers_pub: Any = None
        self.world_markers_pub: Any = None
        if not self.cfg.markers_rate_hz:
            return
        # every markers_every control steps, a multiple of the state's: markers share a state's stamp
        rates = self.scenario.rates
        per_state = max(1, round(rates.control_hz / (self.state_every * self.cfg.markers_rate_hz)))
        self.markers_every = self.state_every * per_state
        self.world_markers_pub = self.create_publisher(MarkerArray, topics.WORLD_MARKERS, qos.LATCHED)
        self.markers_pub = self.create_publisher(MarkerArray, topics.FLEET_MARKERS, qos.STATE)
        d = vis.DRONE_DIAMETER_M
        fleet = vis.MarkerSpec(vis.FLEET_NS, 0, vis.SPHERE_LIST, np.array([vis.POINT_SENTINEL]), (d, d, d),
                               (1.0, 1.0, 1.0, 1.0))
        template = MarkerArray(markers=[self._marker(fleet)])
        template.markers[0].colors = [ColorRGBA(r=c[0], g=c[1], b=c[2], a=c[3]) for c in [vis.COLOR_SENTINEL]]
        self.marker_template = vis.split_template(serialize_message(template))
        self.world_markers_pub.publish(
            MarkerArray(markers=[self._marker(m) for m in vis.world_markers(self.scenario)]))

    def _marker(self, spec: vis.MarkerSpec) -> Marker:
        m = Marker()
        m.header.frame_id = self.cfg.frame_id
        m.ns, m.id, m.type, m.action = spec.ns, spec.id, spec.type, Marker.ADD
        m.pose.orientation.w = 1.0
        m.scale.x, m.scale.y, m.scale.z = spec.scale
        m.color.r, m.color.g, m.color.b, m.color.a = spec.color
        m.points = [Point(x=x, y=y, z=z) for x, y, z in spec.points.tolist()]
        if spec.type in (vis.CUBE, vis.TEXT_VIEW_FACING):
            m.pose.position = m.points[0]
            m.points = []
        m.text = spec.text
        return m

    def publish_markers(self) -> None:
        """The fleet as one SPHERE_LIST coloured by status, about markers_rate_hz in sim time, on
        steps that publish a state (the simulator's truth: a drone in radio dropout is drawn)."""
        if self.markers_pub is None or self.step_count % self.markers_every:
            return
        s = self.sim.state()
        colors = vis.status_colors(self._status_map[s.status])
        self.markers_pub.publish(
            vis.fleet_marker_cdr(self.marker_template, s.pos, colors, round(s.time * 1e9)))

    def close(self) -> None:
        self.sim.close()


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Body-frame vectors v (k, 3) into the world frame of attitudes q (k, 4) xyzw."""
    return np.einsum("kij,kj->ki", quat_to_matrix(np.asarray(q, dtype=np.float64)), v)


def _rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """World-frame vectors v (k, 3) into the body frame of attitudes q (k, 4) xyzw."""
    return np.einsum("kji,kj->ki", quat_to_matrix(np.asarray(q, dtype=np.float64)), v)


def main(args: list[str] | None = None) -> None:
    run_node(SimBridge, args)


if __name__ == "__main__":
    main()
