"""run_supervisor: the `wm-agent sim` runner's eyes on the graph (in the runner's process).

Follows /clock (progress, fault timing), /fleet/metrics, /fleet/events, /tasks/status and
/fleet/assignments, and measures the end-to-end state → command latency: the wall time from
receiving the FleetState of step k to receiving the FleetCommand for step k + 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from wm_agent import qos, topics
from wm_agent.interfaces import require_interfaces


@dataclass
class Observed:
    """What the supervisor saw (wall times from time.monotonic(), sim times from /clock)."""

    sim_time: float = 0.0
    metrics: Any = None
    events: list[tuple[float, int, int]] = field(default_factory=list)        # (sim t, kind, drone)
    transitions: list[tuple[float, str, int, int, str]] = field(default_factory=list)
    # ^ (wall t, task id, previous state, state, reason)
    assignment_walls: list[float] = field(default_factory=list)
    metrics_walls: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    lost_by_wall: list[tuple[float, int]] = field(default_factory=list)       # (wall t, lost drones)
    clock_first: tuple[float, float] | None = None   # (wall t, sim t) of the first /clock after 0
    clock_last: tuple[float, float] | None = None    # ... and of the latest

    @property
    def real_time_factor(self) -> float | None:
        """Sim seconds per wall second while the sim ran (from the first /clock after t = 0 to
        the last one): start-up and shut-down do not count."""
        if self.clock_first is None or self.clock_last is None:
            return None
        wall = self.clock_last[0] - self.clock_first[0]
        return (self.clock_last[1] - self.clock_first[1]) / wall if wall > 0 else None


class RunSupervisor(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("run_supervisor", **kwargs)
        self.msgs, _ = require_interfaces()
        self.seen = Observed()
        self._state_wall: dict[int, tuple[float, int]] = {}
        self.create_subscription(Clock, topics.CLOCK, self.on_clock, qos.CLOCK)
        self.create_subscription(self.msgs.FleetMetrics, topics.FLEET_METRICS, self.on_metrics, qos.EVENTS)
        self.create_subscription(self.msgs.FleetEvents, topics.FLEET_EVENTS, self.on_events, qos.EVENTS)
        self.create_subscription(self.msgs.TaskStatus, topics.TASK_STATUS, self.on_status, qos.TASKS)
        self.create_subscription(self.msgs.FleetAssignments, topics.FLEET_ASSIGNMENTS,
                                 self.on_assignments, qos.LATCHED)
        self.create_subscription(self.msgs.FleetState, topics.FLEET_STATE, self.on_state, qos.STATE)
        self.create_subscription(self.msgs.FleetCommand, topics.FLEET_COMMAND, self.on_command,
                                 qos.COMMAND_SUB)

    def on_clock(self, msg: Clock) -> None:
        self.seen.sim_time = msg.clock.sec + msg.clock.nanosec * 1e-9
        if self.seen.sim_time > 0:
            now = (time.monotonic(), self.seen.sim_time)
            self.seen.clock_last = now
            if self.seen.clock_first is None:
                self.seen.clock_first = now

    def on_metrics(self, msg: Any) -> None:
        now = time.monotonic()
        self.seen.metrics = msg
        self.seen.metrics_walls.append(now)
        self.seen.lost_by_wall.append((now, int(msg.lost_drones)))

    def on_events(self, msg: Any) -> None:
        for e in msg.events:
            t = e.header.stamp.sec + e.header.stamp.nanosec * 1e-9
            self.seen.events.append((t, int(e.kind), int(e.drone_id)))

    def on_status(self, msg: Any) -> None:
        self.seen.transitions.append(
            (time.monotonic(), msg.task_id, int(msg.previous_state), int(msg.state), msg.reason)
        )

    def on_assignments(self, _msg: Any) -> None:
        self.seen.assignment_walls.append(time.monotonic())

    def on_state(self, msg: Any) -> None:
        # wall time and drones still to command: with planner shards a state is answered
        # when the last shard's partial command is in
        self._state_wall[int(msg.step)] = (time.monotonic(), len(msg.ids))
        if len(self._state_wall) > 4096:
            for k in sorted(self._state_wall)[:2048]:
                del self._state_wall[k]

    def on_command(self, msg: Any) -> None:
        k = int(msg.step) - 1
        pending = self._state_wall.get(k)
        if pending is None:
            return
        left = pending[1] - len(msg.ids)
        if left > 0:
            self._state_wall[k] = (pending[0], left)
            return
        del self._state_wall[k]
        self.seen.latencies_ms.append((time.monotonic() - pending[0]) * 1e3)


#: Topics every rclpy node has; left out of :func:`graph_of`.
STANDARD_TOPICS = frozenset({"/rosout", "/parameter_events"})


def graph_of(node: Node, names: list[str]) -> dict[str, dict[str, list[str]] | None]:
    """The live graph of the nodes `names` (in namespace /) as `node` sees it: name →
    ``{"publishes", "subscribes", "services", "clients"}`` (sorted topic / service names, without
    /rosout, /parameter_events and each node's parameter services), None for a node not seen."""
    out: dict[str, dict[str, list[str]] | None] = {}
    for name in names:
        try:
            pubs = node.get_publisher_names_and_types_by_node(name, "/")
            subs = node.get_subscriber_names_and_types_by_node(name, "/")
            srvs = node.get_service_names_and_types_by_node(name, "/")
            clis = node.get_client_names_and_types_by_node(name, "/")
        except Exception:  # NodeNameNonExistentError: the node is gone or never came up
            out[name] = None
            continue
        own = f"/{name}/"
        out[name] = {
            "publishes": sorted(t for t, _ in pubs if t not in STANDARD_TOPICS),
            "subscribes": sorted(t for t, _ in subs if t not in STANDARD_TOPICS),
            "services": sorted(t for t, _ in srvs if not t.startswith(own)),
            "clients": sorted(t for t, _ in clis if not t.startswith(own)),
        }
    return out
