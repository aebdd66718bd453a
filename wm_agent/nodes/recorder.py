"""recorder: record the fleet's topics into a rosbag2 MCAP bag (see docs/BAGS.md).

    recorder --ros-args -p output:=bags/run1 -p topics:="['/fleet/state', '/drone_*/odom']"

Every ``discovery_period_s`` the node lists the graph's topics and types, and subscribes (raw:
serialized CDR bytes, never deserialized) to each new one matching `topics` (glob patterns; empty
= every project topic, wm_agent.bags.recording.PROJECT_TOPICS), with a QoS matching its
publishers (best effort for the fleet state and odometry, reliable for the rest, transient local
for latched topics). Log times: the receive time (system clock) by default; with
``time_source:=ros`` the message's own time — its header stamp (or /clock's time, or the first
element's header stamp of a leading sequence, read from the CDR bytes: wm_agent.bags.stamps),
else the node's ROS clock at reception (the simulated /clock when ``use_sim_time:=true``).
Losses are counted per topic (publisher sequence-number gaps and the middleware's message-lost
events), logged on close and stored in metadata.yaml ``custom_data``. The bag is closed cleanly
on shutdown (SIGINT / SIGTERM -> run_node calls close()).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rclpy.logging
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from wm_agent.bags.recording import (
    PROJECT_TOPICS,
    LossTracker,
    OfferedQos,
    RateLimiter,
    message_class,
    parse_rates,
    select_topics,
    subscription_qos,
)
from wm_agent.bags.stamps import StampLocation, read_stamp, stamp_location
from wm_agent.bags.writer import BagWriter, QosInfo
from wm_agent.errors import BagError, ConfigError
from wm_agent.nodes.common import StageReporter, declare_config, run_node

TIME_SOURCES = ("receive", "ros")
COMPRESSIONS = ("zstd", "lz4", "none")


@dataclass(frozen=True)
class RecorderConfig:
    output: str = field(
        default="", metadata={"description": "bag folder to create ('' = bags/wm_agent_<date>_<time>)"}
    )
    topics: tuple[str, ...] = field(
        default=("",),
        metadata={"description": "topics or glob patterns to record ([''] = all project topics)"},
    )
    exclude: tuple[str, ...] = field(default=("",), metadata={"description": "glob patterns not to record"})
    max_file_size_mb: float = field(default=0.0, metadata={"description": "split beyond [MB] (0 = never)"})
    max_file_duration_s: float = field(default=0.0, metadata={"description": "split beyond [s] (0 = never)"})
    compression: str = field(default="zstd", metadata={"description": "chunk compression: zstd | lz4 | none"})
    chunk_size_kb: int = field(default=1024, metadata={"description": "MCAP chunk size [KiB]"})
    time_source: str = field(
        default="receive",
        metadata={"description": "receive (system receive time) | ros (the message's header stamp, "
                  "else the node clock: sim time with use_sim_time)"},
    )
    queue_depth: int = field(default=100, metadata={"description": "subscription queue depth"})
    rates: tuple[str, ...] = field(
        default=("",),
        metadata={"description": "TOPIC=HZ entries (globs allowed): record at most HZ messages per "
                  "second of message time on those topics, e.g. /fleet/state=5 (['']: every "
                  "message of every topic)"},
    )
    discovery_period_s: float = field(default=0.5, metadata={"description": "topic discovery period [s]"})
    scenario: str = field(
        default="", metadata={"description": "the scenario the recorded fleet flies (metadata "
                              "custom_data wm_agent.scenario: wm-agent eval builds its map from "
                              "it; '' = not stored)"})

    def __post_init__(self) -> None:
        if self.time_source not in TIME_SOURCES:
            raise ConfigError(
                f"recorder: time_source must be one of {TIME_SOURCES}, got {self.time_source!r}"
            )
        if self.compression not in COMPRESSIONS:
            raise ConfigError(
                f"recorder: compression must be one of {COMPRESSIONS}, got {self.compression!r}"
            )
        for name in ("max_file_size_mb", "max_file_duration_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"recorder: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("chunk_size_kb", "queue_depth"):
            if getattr(self, name) < 1:
                raise ConfigError(f"recorder: {name} must be >= 1, got {getattr(self, name)}")
        parse_rates(self.rates)
        if not self.discovery_period_s > 0:
            raise ConfigError(f"recorder: discovery_period_s must be > 0, got {self.discovery_period_s}")

    @property
    def patterns(self) -> tuple[str, ...]:
        chosen = tuple(t for t in self.topics if t)
        return chosen or PROJECT_TOPICS


def to_qos_profile(req: Any) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=req.depth,
        reliability=ReliabilityPolicy.RELIABLE if req.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if req.transient_local else DurabilityPolicy.VOLATILE,
    )


class Recorder(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("recorder", **kwargs)
        self.cfg = declare_config(self, RecorderConfig)
        output = self.cfg.output or time.strftime("bags/wm_agent_%Y%m%d_%H%M%S")
        self.loss = LossTracker()
        self.limiter = RateLimiter(parse_rates(self.cfg.rates))
        self.stages = StageReporter(self)  # wall time per stage on /fleet/stage_times
        self.writer = BagWriter(
            Path(output),
            max_file_bytes=int(self.cfg.max_file_size_mb * 1e6),
            max_file_duration_ns=int(self.cfg.max_file_duration_s * 1e9),
            chunk_bytes=self.cfg.chunk_size_kb * 1024,
            compression=self.cfg.compression,
            custom_data={"wm_agent.time_source": self.cfg.time_source,
                         **({"wm_agent.scenario": self.cfg.scenario} if self.cfg.scenario else {})},
        )
        self.subscriptions_by_topic: dict[str, Any] = {}
        self.stamp_at: dict[str, StampLocation | None] = {}   # where each topic's stamp lies
        self.failed: set[str] = set()
        # Discovery runs on the wall (steady) clock: under use_sim_time a ROS-time timer would not
        # fire before /clock advances, and the start of a run would go unrecorded.
        self.timer = self.create_timer(self.cfg.discovery_period_s, self.discover,
                                       clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"recording {', '.join(self.cfg.patterns)} into {self.writer.path} "
            f"(time stamps: {self.cfg.time_source})"
            + "".join(f"; {r.pattern} at most {r.hz:g} Hz" for r in self.limiter.rates)
        )
        self.discover()

    # -- discovery ---------------------------------------------------------------------------------
    def discover(self) -> None:
        if self.writer.closed:
            return
        chosen = select_topics(
            self.get_topic_names_and_types(), self.cfg.patterns, tuple(e for e in self.cfg.exclude if e)
        )
        for topic, type_name in chosen.items():
            if topic in self.subscriptions_by_topic or topic in self.failed:
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue          # only subscribers so far: wait for a publisher to match its QoS
            offered = [
                OfferedQos(
                    reliable=i.qos_profile.reliability == ReliabilityPolicy.RELIABLE,
                    transient_local=i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
                )
                for i in infos
            ]
            req = subscription_qos(topic, offered, self.cfg.queue_depth)
            try:
                msg_class = message_class(type_name)
                self.writer.add_topic(
                    topic, type_name,
                    [QosInfo(
                        reliability="reliable" if o.reliable else "best_effort",
                        durability="transient_local" if o.transient_local else "volatile",
                    ) for o in offered],
                )
            except BagError as exc:  # a bad or unknown type: skip the topic, keep recording
                self.failed.add(topic)
                self.get_logger().warning(f"not recording {topic}: {exc}")
                continue
            self.stamp_at[topic] = stamp_location(type_name, self.writer.definitions)
            events = SubscriptionEventCallbacks(message_lost=self._lost_callback(topic))
            self.subscriptions_by_topic[topic] = self.create_subscription(
                msg_class, topic, lambda data, info, topic=topic: self.on_message(topic, data, info),
                to_qos_profile(req), raw=True, event_callbacks=events,
            )
            self.get_logger().info(
                f"recording {topic} [{type_name}] "
                f"({'reliable' if req.reliable else 'best effort'}"
                f"{', transient local' if req.transient_local else ''})"
            )

    def _lost_callback(self, topic: str) -> Any:
        def on_lost(info: Any) -> None:
            self.loss.on_lost(topic, info.total_count_change)

        return on_lost

    # -- messages ----------------------------------------------------------------------------------
    def on_message(self, topic: str, data: bytes, info: Any) -> None:
        if self.writer.closed:
            return
        if self.cfg.time_source == "ros":
            # the message's own time (header stamp, /clock's time), else the clock at reception
            where = self.stamp_at.get(topic)
            stamp = (read_stamp(data, where) if where is not None else None) \
                or self.get_clock().now().nanoseconds
        else:
            stamp = int(info.get("received_timestamp") or time.time_ns())
        gid = info.get("publisher_gid") or {}
        skipped = self.loss.on_message(
            topic, len(data), bytes(gid.get("data", b"")) or None, info.get("publication_sequence_number")
        )
        if skipped:
            self.get_logger().debug(f"{topic}: {skipped} message(s) lost before this one")
        if self.limiter.keep(topic, stamp):
            with self.stages.timer.stage("write"):
                self.writer.write(topic, data, stamp)
        if self.cfg.time_source == "ros":  # stage times per sim second need sim time
            self.stages.tick(stamp * 1e-9)

    def close(self) -> None:
        if self.writer.closed:
            return
        self.writer.custom_data.update(self.loss.custom_data())
        self.writer.custom_data.update(self.limiter.custom_data())
        summary = self.writer.close()
        # after SIGINT / SIGTERM the context is shut down and /rosout cannot be published:
        # log to the console only then
        log = self.get_logger() if self.context.ok() else rclpy.logging.get_logger("wm_agent.recorder")
        for line in self.loss.report_lines():
            log.info(line)
        log.info(
            f"bag {summary.path} closed: {summary.message_count} messages on {len(summary.counts)} topics, "
            f"{summary.bytes_written / 1e6:.2f} MB in {len(summary.files)} file(s)"
        )


def main(args: list[str] | None = None) -> None:
    run_node(Recorder, args)


if __name__ == "__main__":
    main()
