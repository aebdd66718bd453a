"""fleet_coordinator: warehouse tasks in, per-drone assignments out, nothing lost.

Services /tasks/submit and /tasks/cancel (and the bulk topic /tasks/bulk) feed the pure core
wm_agent.fleet.Coordinator; fleet state drives liveness and pickup/delivery detection; a timer
re-solves the assignment and publishes /fleet/assignments (latched), /tasks/status transitions
and /fleet/metrics. Every accepted task and transition is in the SQLite ledger first, so a
restart (even after kill -9) restores exactly what was accepted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.conversions import (
    fleet_assignments_to_msg,
    fleet_state_from_msg,
    seconds,
    task_spec_from_msg,
    time_msg,
)
from wm_agent.errors import ConfigError, FleetError
from wm_agent.fleet.assignment import warm_up
from wm_agent.fleet.coordinator import Coordinator, CoordinatorConfig
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.task_stream import TaskStream, TaskStreamConfig
from wm_agent.fleet.tasks import TaskState, Transition
from wm_agent.fleet.validation import RejectCode, Rejection, show
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import StageReporter, declare_config, run_node
from wm_agent.sim.scenario import load_scenario


@dataclass(frozen=True)
class CoordinatorNodeConfig:
    """The node's own parameters; the core's (solve period, lost timeout, solver sizes, cost
    weights, admission limits) come from :class:`CoordinatorConfig`, declared under their own
    names (:func:`wm_agent.nodes.common.declare_config` flattens ``coordinator``)."""

    scenario: str = field(default="warehouse", metadata={"description": "scenario (stations, geofence)"})
    drones: int = field(default=0, metadata={"description": "drone count for home pads (0 = scenario's)"})
    ledger_path: str = field(
        default="", metadata={"description": "SQLite ledger file ('' = $ROS_HOME/wm_agent/ledger.sqlite, "
                              "':memory:' = not persisted)"}
    )
    publish_period_s: float = field(default=0.5, metadata={"description": "assignment/metrics period [s]"})
    cruise_speed_mps: float = field(
        default=1.0, metadata={"description": "speed for travel-time costs [m/s]"}
    )
    lockstep: bool = field(
        default=False, metadata={"description": "solve in-band on every fleet state, on its clock, and "
                                 "stamp the assignments with it (deterministic lockstep runs)"}
    )
    task_rate_per_min: float = field(
        default=0.0, metadata={"description": "lockstep: in-band seeded task stream [1/min] (0 = none)"}
    )
    task_seed: int = field(default=0, metadata={"description": "lockstep: task stream seed"})
    coordinator: CoordinatorConfig = field(default_factory=CoordinatorConfig)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.publish_period_s) and self.publish_period_s > 0):
            raise ConfigError(f"fleet_coordinator: publish_period_s must be > 0, got {self.publish_period_s}")
        if not (math.isfinite(self.cruise_speed_mps) and self.cruise_speed_mps > 0):
            raise ConfigError(f"fleet_coordinator: cruise_speed_mps must be > 0, got {self.cruise_speed_mps}")
        if self.drones < 0:
            raise ConfigError(f"fleet_coordinator: drones must be >= 0, got {self.drones}")
        if not (math.isfinite(self.task_rate_per_min) and self.task_rate_per_min >= 0):
            raise ConfigError(
                f"fleet_coordinator: task_rate_per_min must be >= 0, got {self.task_rate_per_min}"
            )

    def core(self) -> CoordinatorConfig:
        """The core's config with the resolved ledger path."""
        return replace(self.coordinator, ledger_path=self.resolved_ledger())

    def resolved_ledger(self) -> str:
        if self.ledger_path:
            return self.ledger_path
        ros_home = Path(os.environ.get("ROS_HOME", Path.home() / ".ros"))
        (ros_home / "wm_agent").mkdir(parents=True, exist_ok=True)
        return str(ros_home / "wm_agent" / "ledger.sqlite")


class FleetCoordinatorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("fleet_coordinator", **kwargs)
        self.msgs, self.srvs = require_interfaces()
        self.cfg = declare_config(self, CoordinatorNodeConfig)
        sc = load_scenario(self.cfg.scenario, drones=self.cfg.drones or None)
        self.core = Coordinator(
            Layout.from_scenario(sc, self.cfg.cruise_speed_mps), self.cfg.core(), clock=self.now
        )
        # before anything subscribes (a run's start gate waits for this node): a first solve
        # above dense_max would compile the auction kernels inside the run
        warm_up()
        self.assign_pub = self.create_publisher(
            self.msgs.FleetAssignments, topics.FLEET_ASSIGNMENTS, qos.LATCHED
        )
        self.status_pub = self.create_publisher(self.msgs.TaskStatus, topics.TASK_STATUS, qos.TASKS)
        self.ack_pub = self.create_publisher(self.msgs.TaskArrayAck, topics.TASK_BULK_ACK, qos.TASKS)
        self.metrics_pub = self.create_publisher(self.msgs.FleetMetrics, topics.FLEET_METRICS, qos.EVENTS)
        self.create_service(self.srvs.SubmitTask, topics.SUBMIT_TASK, self.on_submit)
        self.create_service(self.srvs.CancelTask, topics.CANCEL_TASK, self.on_cancel)
        self.create_service(self.srvs.RegisterDrone, topics.REGISTER_DRONE, self.on_register)
        self.create_subscription(self.msgs.TaskArray, topics.TASK_BULK, self.on_bulk, qos.TASKS)
        self.create_subscription(self.msgs.FleetState, topics.FLEET_STATE, self.on_state,
                                 qos.STATE_LOCKSTEP if self.cfg.lockstep else qos.STATE)
        # maybe_solve() solves every solve_period_s, and at once after an event (a lost drone, a
        # new task): poll it often so that reactions do not wait a whole period
        if not self.cfg.lockstep:  # lockstep solves in on_state, on the state's own clock
            self.create_timer(min(0.1, self.cfg.coordinator.solve_period_s), self.on_solve_timer)
        self.stream: TaskStream | None = None
        self.stages = StageReporter(self)  # wall time per stage on /fleet/stage_times
        if self.cfg.lockstep and self.cfg.task_rate_per_min > 0:
            self.stream = TaskStream(
                sorted(sc.pick_stations), sorted(sc.drop_stations),
                TaskStreamConfig(rate_per_min=self.cfg.task_rate_per_min,
                                 max_payload_kg=sc.max_payload_kg),
                seed=self.cfg.task_seed,
            )
        self.create_timer(self.cfg.publish_period_s, self.on_publish_timer)
        restored = len(self.core.tasks)
        self.get_logger().info(
            f"ledger {self.core.config.ledger_path}: restored {restored} task(s); "
            f"{len(sc.pick_stations)} pick / {len(sc.drop_stations)} drop stations"
        )
        self.flush_transitions()

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # -- intake --------------------------------------------------------------------------------------
    def submit(self, msg: Any) -> tuple[bool, int, str]:
        spec = task_spec_from_msg(msg)
        if isinstance(spec, Rejection):
            return False, int(spec.code), spec.reason
        result = self.core.submit(spec, self.now())
        return result.accepted, int(result.code), result.reason

    def on_submit(self, request: Any, response: Any) -> Any:
        response.accepted, response.code, response.reason = self.submit(request.task)
        response.task_id = _echo_id(request.task.task_id)
        self.flush_transitions()
        return response

    def on_bulk(self, msg: Any) -> None:
        """Answer every task of the array, in order, with one TaskArrayAck (the submitter retries
        what it got no answer for); accepted tasks then show up on /tasks/status."""
        ack = self.msgs.TaskArrayAck()
        ack.header.stamp = msg.header.stamp
        ack.header.frame_id = topics.MAP_FRAME
        frame = msg.header.frame_id
        for task in msg.tasks:
            if frame != topics.MAP_FRAME:
                code, reason = int(RejectCode.BAD_FRAME), (
                    f"TaskArray header.frame_id={show(frame)}: positions must be in "
                    f"{topics.MAP_FRAME!r}; set header.frame_id to {topics.MAP_FRAME!r}")
            else:
                _, code, reason = self.submit(task)
            ack.task_ids.append(_echo_id(task.task_id))
            ack.codes.append(code)
            ack.reasons.append(reason)
        self.ack_pub.publish(ack)
        self.flush_transitions()

    def on_cancel(self, request: Any, response: Any) -> Any:
        try:
            self.core.cancel(request.task_id, request.reason or "cancelled by request", self.now())
            response.accepted, response.reason = True, "cancelled"
        except (FleetError, ConfigError) as exc:
            response.accepted, response.reason = False, str(exc)
        self.flush_transitions()
        return response

    def on_register(self, request: Any, response: Any) -> Any:
        response.epoch = self.core.register(int(request.drone_id), self.now())
        response.accepted, response.reason = True, "registered"
        return response

    # -- fleet ----------------------------------------------------------------------------------------
    def on_state(self, msg: Any) -> None:
        timer = self.stages.timer
        s = self.stages.decode("state_in", fleet_state_from_msg, msg, "FleetState")
        if s is None:
            return
        lost = (s.status & self.msgs.FleetState.LOST) != 0
        collided = (s.status & self.msgs.FleetState.COLLIDED) != 0
        # a crashed drone, and one whose commands stopped long enough for the failsafe to land
        # it (its planner shard died), are silent for the coordinator: lost after
        # lost_after_s, their tasks re-queued; the bridge registers them when commands return
        landed = (s.status & self.msgs.FleetState.FAILSAFE_LAND) != 0
        alive = ~(lost | collided | landed)
        t = seconds(msg.header.stamp) or self.now()
        if self.cfg.lockstep and self.stream is not None:
            for spec in self.stream.due(t):
                result = self.core.submit(spec, t)
                if not result.accepted:
                    self.get_logger().warning(f"task stream: {spec.task_id} rejected: {result.reason}",
                                              throttle_duration_sec=5.0)
        with timer.stage("observe"):
            self.core.observe_fleet(s.ids[alive], s.position[alive].astype(np.float64), t)
        if self.cfg.lockstep:
            with timer.stage("solve"):
                self.core.maybe_solve(t)
        self.flush_transitions()
        if self.cfg.lockstep:
            self.publish_assignments(stamp=msg.header.stamp)  # the planner waits for this one
        self.stages.tick(t)

    def on_solve_timer(self) -> None:
        with self.stages.timer.stage("solve"):
            solved = self.core.maybe_solve(self.now()) is not None
        self.flush_transitions()
        if solved:
            self.publish_assignments()

    def on_publish_timer(self) -> None:
        if not self.cfg.lockstep:  # lockstep publishes in-band, stamped with each state
            self.publish_assignments()  # latched anyway; re-sent for lossy links and late joiners
        self.publish_metrics()

    # -- outputs --------------------------------------------------------------------------------------
    def publish_assignments(self, stamp: Any = None) -> None:
        with self.stages.timer.stage("assignments_out"):
            self._publish_assignments(stamp)

    def _publish_assignments(self, stamp: Any) -> None:
        table = self.core.assignments()
        m = fleet_assignments_to_msg(table.drone_ids, table.epochs, table.phases, table.goals,
                                     list(table.task_ids), frame_id=topics.MAP_FRAME)
        m.header.stamp = stamp if stamp is not None else time_msg(self.now())
        self.assign_pub.publish(m)

    def flush_transitions(self) -> None:
        with self.stages.timer.stage("status_out"):
            for tr in self.core.drain_transitions():
                self.status_pub.publish(self.transition_msg(tr))

    def transition_msg(self, tr: Transition) -> Any:
        m = self.msgs.TaskStatus()
        m.header.stamp = time_msg(tr.t_s)
        m.task_id = tr.task_id
        m.state = int(tr.to_state)
        m.previous_state = int(tr.from_state if tr.from_state is not None else TaskState.QUEUED)
        m.has_drone = tr.drone_id is not None
        m.drone_id = int(tr.drone_id or 0)
        m.epoch = int(tr.epoch or 0)
        m.reason = tr.reason
        return m

    def publish_metrics(self) -> None:
        k = self.core.metrics(self.now())
        m = self.msgs.FleetMetrics()
        m.header.stamp = time_msg(self.now())
        m.queued, m.assigned, m.picked = k.queue_length, k.assigned, k.picked
        m.delivered, m.failed, m.cancelled = k.delivered, k.failed, k.cancelled
        m.active_drones, m.lost_drones = k.active_drones, k.lost_drones
        m.tasks_per_hour = float(k.tasks_per_hour)
        m.mean_wait_s = float(k.mean_wait_s) if math.isfinite(k.mean_wait_s) else 0.0
        self.metrics_pub.publish(m)

    def close(self) -> None:
        self.core.ledger.close()


def _echo_id(task_id: str) -> str:
    """A submitted id as echoed in an answer: at most 128 characters."""
    return task_id if len(task_id) <= 128 else task_id[:128]


def main(args: list[str] | None = None) -> None:
    run_node(FleetCoordinatorNode, args)


if __name__ == "__main__":
    main()
