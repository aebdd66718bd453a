"""task_feeder: feeds the scenario's task stream to the coordinator on /tasks/bulk (sim time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.errors import ConfigError
from wm_agent.fleet.task_stream import TaskStream, TaskStreamConfig
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import declare_config, run_node
from wm_agent.sim.scenario import load_scenario


@dataclass(frozen=True)
class FeederConfig:
    scenario: str = field(default="warehouse", metadata={"description": "scenario (stations, rate)"})
    seed: int = field(default=0, metadata={"description": "stream seed"})
    rate_per_min: float = field(default=0.0, metadata={"description": "arrivals/min (0 = scenario's)"})
    max_tasks: int = field(default=0, metadata={"description": "stop after this many (0 = no limit)"})
    period_s: float = field(default=0.25, metadata={"description": "publishing period [s]"})

    def __post_init__(self) -> None:
        if not self.period_s > 0 or self.rate_per_min < 0 or self.max_tasks < 0:
            raise ConfigError("task_feeder: period_s must be > 0, rate_per_min and max_tasks >= 0")


class TaskFeeder(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("task_feeder", **kwargs)
        self.msgs, _ = require_interfaces()
        self.cfg = declare_config(self, FeederConfig)
        sc = load_scenario(self.cfg.scenario)
        self.stream = TaskStream(
            sorted(sc.pick_stations), sorted(sc.drop_stations),
            TaskStreamConfig(rate_per_min=self.cfg.rate_per_min or sc.task_rate_per_min,
                             max_payload_kg=sc.max_payload_kg, max_tasks=self.cfg.max_tasks),
            seed=self.cfg.seed,
        )
        self.pub = self.create_publisher(self.msgs.TaskArray, topics.TASK_BULK, qos.EVENTS)
        self.create_timer(self.cfg.period_s, self.tick)

    def tick(self) -> None:
        now = self.get_clock().now()
        due = self.stream.due(now.nanoseconds * 1e-9)
        if not due:
            return
        out = self.msgs.TaskArray()
        out.header.stamp = now.to_msg()
        for spec in due:
            t = self.msgs.Task(task_id=spec.task_id, pickup_station=str(spec.pickup),
                               dropoff_station=spec.dropoff)
            t.priority = spec.priority
            t.payload_mass = spec.payload_kg
            out.tasks.append(t)
        self.pub.publish(out)


def main(args: list[str] | None = None) -> None:
    run_node(TaskFeeder, args)


if __name__ == "__main__":
    main()
