"""task_feeder: feeds the scenario's task stream to the coordinator on /tasks/bulk (its clock —
sim time in a run — counted from its first tick).

Delivery is acknowledged: the coordinator answers each TaskArray with a TaskArrayAck on
/tasks/bulk_ack, and the feeder sends again (every ``retry_s`` of wall time) every task it got
no answer for — a coordinator that was down or restarting misses nothing, and a task it already
holds is answered OK again without a change (the coordinator's intake is idempotent). The
bookkeeping is the pure :class:`wm_agent.fleet.task_stream.PendingTasks`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.errors import ConfigError
from wm_agent.fleet.task_stream import PendingTasks, TaskStream, TaskStreamConfig
from wm_agent.fleet.tasks import TaskSpec
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import declare_config, run_node
from wm_agent.sim.scenario import load_scenario


@dataclass(frozen=True)
class FeederConfig:
    scenario: str = field(default="warehouse", metadata={"description": "scenario (stations, rate)"})
    seed: int = field(default=0, metadata={"description": "stream seed"})
    rate_per_min: float = field(
        default=-1.0, metadata={"description": "arrivals/min (-1 = the scenario's, 0 = none)"})
    max_tasks: int = field(default=0, metadata={"description": "stop after this many (0 = no limit)"})
    period_s: float = field(default=0.25, metadata={"description": "publishing period [s]"})
    retry_s: float = field(
        default=1.0, metadata={"description": "send again tasks unanswered this long (wall) [s]"})
    max_per_message: int = field(
        default=1000, metadata={"description": "tasks in one TaskArray at most"})

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and self.retry_s > 0 and self.max_per_message > 0):
            raise ConfigError("task_feeder: period_s, retry_s and max_per_message must be > 0")
        if not (self.rate_per_min >= 0 or self.rate_per_min == -1.0) or self.max_tasks < 0:
            raise ConfigError(
                f"task_feeder: rate_per_min must be >= 0 (or -1 = the scenario's), got "
                f"{self.rate_per_min}; max_tasks >= 0")


class TaskFeeder(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("task_feeder", **kwargs)
        self.msgs, _ = require_interfaces()
        self.cfg = declare_config(self, FeederConfig)
        sc = load_scenario(self.cfg.scenario)
        rate = sc.task_rate_per_min if self.cfg.rate_per_min < 0 else self.cfg.rate_per_min
        self.stream = TaskStream(
            sorted(sc.pick_stations), sorted(sc.drop_stations),
            TaskStreamConfig(rate_per_min=rate, max_payload_kg=sc.max_payload_kg,
                             max_tasks=self.cfg.max_tasks),
            seed=self.cfg.seed,
        )
        self.pending = PendingTasks(self.cfg.retry_s)
        self.t0_ns: int | None = None  # the stream's time 0: this node's first tick
        self.pub = self.create_publisher(self.msgs.TaskArray, topics.TASK_BULK, qos.TASKS)
        self.create_subscription(self.msgs.TaskArrayAck, topics.TASK_BULK_ACK, self.on_ack, qos.TASKS)
        self.create_timer(self.cfg.period_s, self.tick)

    def on_ack(self, msg: Any) -> None:
        self.pending.answered(msg.task_ids)

    def tick(self) -> None:
        now = self.get_clock().now()
        if self.t0_ns is None:
            self.t0_ns = now.nanoseconds  # sim time 0 in a run; the start on a wall clock
        self.pending.add(self.stream.due((now.nanoseconds - self.t0_ns) * 1e-9))
        batch = self.pending.to_send(time.monotonic(), self.cfg.max_per_message)
        if not batch:
            return
        out = self.msgs.TaskArray()
        out.header.stamp = now.to_msg()
        out.header.frame_id = topics.MAP_FRAME
        out.tasks = [self.task_msg(spec) for spec in batch]
        self.pub.publish(out)

    def task_msg(self, spec: TaskSpec) -> Any:
        t = self.msgs.Task(task_id=spec.task_id, pickup_station=str(spec.pickup),
                           dropoff_station=spec.dropoff)
        t.priority = spec.priority
        t.payload_mass = spec.payload_kg
        return t


def main(args: list[str] | None = None) -> None:
    run_node(TaskFeeder, args)


if __name__ == "__main__":
    main()
