"""fleet_monitor: prints a one-line fleet summary at a fixed period (the graph's "listener")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.conversions import fleet_state_from_msg, stage_report_from_msg
from wm_agent.errors import ConfigError, MessageError
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import declare_config, run_node
from wm_agent.stages import StageReport, format_budget, per_sim_second


@dataclass(frozen=True)
class MonitorConfig:
    period_s: float = field(default=1.0, metadata={"description": "summary period [s]"})

    def __post_init__(self) -> None:
        if not (0.01 <= self.period_s <= 3600.0):
            raise ConfigError(f"period_s must be in [0.01, 3600] s, got {self.period_s}")


class FleetMonitor(Node):
    def __init__(self) -> None:
        super().__init__("fleet_monitor")
        msgs, _ = require_interfaces()
        self.cfg = declare_config(self, MonitorConfig)
        self.flags = msgs.FleetState
        self.last_state: Any = None
        self.states = 0
        self.events = 0
        self.metrics: Any = None
        self.stage_reports: list[StageReport] = []  # since the last summary
        self.create_subscription(msgs.FleetState, topics.FLEET_STATE, self.on_state, qos.STATE)
        self.create_subscription(msgs.FleetEvents, topics.FLEET_EVENTS, self.on_events, qos.EVENTS)
        self.create_subscription(msgs.FleetMetrics, topics.FLEET_METRICS, self.on_metrics, qos.EVENTS)
        self.create_subscription(msgs.StageTimes, topics.STAGE_TIMES, self.on_stages, qos.EVENTS)
        self.create_timer(self.cfg.period_s, self.report)

    def on_state(self, msg: Any) -> None:
        self.last_state = msg
        self.states += 1

    def on_events(self, msg: Any) -> None:
        self.events += len(msg.events)

    def on_metrics(self, msg: Any) -> None:
        self.metrics = msg

    def on_stages(self, msg: Any) -> None:
        try:
            self.stage_reports.append(stage_report_from_msg(msg))
        except MessageError as exc:
            self.get_logger().warning(f"dropped malformed StageTimes: {exc}")

    def report(self) -> None:
        if self.last_state is None:
            self.get_logger().info("waiting for fleet state ...")
            return
        s = fleet_state_from_msg(self.last_state)
        flying = int(np.count_nonzero(s.status & self.flags.FLYING))
        collided = int(np.count_nonzero(s.status & self.flags.COLLIDED))
        stamp = self.last_state.header.stamp
        line = (
            f"t={stamp.sec + stamp.nanosec * 1e-9:8.2f}s drones={len(s.ids)} flying={flying} "
            f"collided={collided} mean_z={float(np.mean(s.position[:, 2])) if len(s.ids) else 0:.2f}m "
            f"states={self.states} events={self.events}"
        )
        if self.metrics is not None:
            m = self.metrics
            line += f" queued={m.queued} delivered={m.delivered} lost={m.lost_drones}"
        self.get_logger().info(line)
        if self.stage_reports:  # where the wall time went since the last summary
            self.get_logger().info(format_budget(per_sim_second(self.stage_reports), top=8))
            self.stage_reports = []


def main(args: list[str] | None = None) -> None:
    run_node(FleetMonitor, args)


if __name__ == "__main__":
    main()
