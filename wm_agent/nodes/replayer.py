"""replayer: republish a recorded bag (serialized bytes, never deserialized) with /clock.

    replayer --ros-args -p bag:=bags/run1 -p rate:=2.0 -p remap:="['/fleet/state:=/replay/state']"
    wm-agent replay bags/run1 --rate 0 --topics /fleet/state --remap /fleet/state:=/replay/state

A publisher is created for every replayed topic with the project's QoS for it (wm_agent/qos.py:
best effort for state and odometry, reliable for the rest, transient local for assignments), and
/clock is published from the bag's time stamps (at most ``clock_hz`` per bag second), so nodes
started with ``use_sim_time:=true`` run on the recording's clock. The node waits up to
``wait_for_subscribers_s`` for subscribers, replays once and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock

from wm_agent import qos
from wm_agent.bags.reader import open_bag
from wm_agent.bags.recording import QosKind, qos_kind
from wm_agent.bags.replay import (
    ReplayOptions,
    ReplayStats,
    output_topics,
    parse_remaps,
    replay,
    replay_argument_parser,
)
from wm_agent.errors import ConfigError, WmAgentError
from wm_agent.nodes.common import declare_config
from wm_agent.nodes.recorder import message_class

_PROFILES: dict[QosKind, QoSProfile] = {
    QosKind.STATE: qos.STATE,
    QosKind.COMMAND: qos.COMMAND_SUB,   # no offered deadline: a replay may pause longer than 0.5 s
    QosKind.EVENTS: qos.EVENTS,
    QosKind.LATCHED: qos.LATCHED,
    QosKind.CLOCK: qos.CLOCK,
}


@dataclass(frozen=True)
class ReplayerConfig:
    bag: str = field(default="", metadata={"description": "bag folder (or .mcap file) to replay"})
    rate: float = field(default=1.0, metadata={"description": "speed factor (0 = as fast as possible)"})
    topics: tuple[str, ...] = field(
        default=("",), metadata={"description": "topics to replay ([''] = every topic of the bag)"}
    )
    remap: tuple[str, ...] = field(default=("",), metadata={"description": "remaps, each '/old:=/new'"})
    clock: bool = field(default=True, metadata={"description": "publish /clock from the bag's time"})
    clock_hz: float = field(default=100.0, metadata={"description": "max /clock messages per bag second"})
    start_offset_s: float = field(default=0.0, metadata={"description": "skip the bag's first seconds"})
    wait_for_subscribers_s: float = field(
        default=1.0, metadata={"description": "wait up to this long for subscribers before starting [s]"}
    )
    progress: bool = field(default=False, metadata={"description": "show a progress bar (tqdm)"})

    def __post_init__(self) -> None:
        if not self.bag:
            raise ConfigError("replayer: parameter bag is required (a bag folder or .mcap file)")
        if not self.wait_for_subscribers_s >= 0:
            raise ConfigError("replayer: wait_for_subscribers_s must be >= 0")

    def options(self) -> ReplayOptions:
        return ReplayOptions(
            rate=self.rate,
            topics=tuple(t for t in self.topics if t),
            remap=parse_remaps(r for r in self.remap if r),
            clock=self.clock,
            clock_hz=self.clock_hz,
            start_offset_s=self.start_offset_s,
        )


def _stamp(ns: int) -> Time:
    sec, nanosec = divmod(int(ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


class Replayer(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("replayer", **kwargs)
        self.cfg = declare_config(self, ReplayerConfig)
        self.options = self.cfg.options()
        self.reader = open_bag(self.cfg.bag)
        self.outputs = output_topics(self.reader, self.options)
        self.pubs: dict[str, Any] = {}
        for bag_topic, (out_topic, type_name) in self.outputs.items():
            if out_topic not in self.pubs:
                profile = _PROFILES[qos_kind(bag_topic)]
                self.pubs[out_topic] = self.create_publisher(message_class(type_name), out_topic, profile)
        self.clock_pub = (
            self.create_publisher(Clock, self.options.clock_topic, qos.CLOCK) if self.options.clock else None
        )
        self.stop_requested = False
        self.get_logger().info(
            f"replaying {len(self.outputs)} topic(s) of {self.reader.path} at rate "
            f"{self.options.rate:g}{' (as fast as possible)' if self.options.rate == 0 else ''}"
        )

    def wait_for_subscribers(self, timeout_s: float) -> bool:
        """Wait until every replayed topic has a subscriber, or timeout_s; True if all matched."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self.pubs.values()):
                return True
            time.sleep(0.02)
        return all(p.get_subscription_count() > 0 for p in self.pubs.values())

    def publish_raw(self, topic: str, data: bytes) -> None:
        self.pubs[topic].publish(data)

    def publish_clock(self, time_ns: int) -> None:
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=_stamp(time_ns)))

    def run(self) -> ReplayStats:
        """Replay the bag once (blocking); returns the counts."""
        self.wait_for_subscribers(self.cfg.wait_for_subscribers_s)
        stats = replay(
            self.reader, self.publish_raw, self.publish_clock, self.options,
            progress=self.cfg.progress, should_stop=lambda: self.stop_requested,
        )
        self.get_logger().info(
            f"replayed {stats.messages} messages and {stats.clocks} clocks "
            f"({stats.bag_span_s:.2f} s of bag time) in {stats.wall_s:.2f} s"
        )
        return stats


def _run(args: list[str] | None, overrides: list[Parameter] | None = None) -> int:
    with rclpy.init(args=args):
        try:
            node = Replayer(parameter_overrides=overrides or [])
        except WmAgentError as exc:
            print(f"[fatal] {exc}", file=sys.stderr, flush=True)
            return 2
        try:
            node.run()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except WmAgentError as exc:
            print(f"[fatal] {exc}", file=sys.stderr, flush=True)
            return 2
        finally:
            node.destroy_node()
    return 0


def main(args: list[str] | None = None) -> None:
    """The `replayer` executable: parameters from --ros-args; replays once, then exits."""
    code = _run(args)
    if code:
        raise SystemExit(code)


def replay_main(argv: Sequence[str] | None = None) -> int:
    """``wm-agent replay BAG [--rate R] [--topics ...] [--remap old:=new ...]``; returns the exit code."""
    ns = replay_argument_parser().parse_args(argv)
    return replay_from_namespace(ns)


def replay_from_namespace(ns: argparse.Namespace) -> int:
    """Run a replay from parsed `add_replay_arguments` arguments (the `wm-agent replay` command)."""
    if ns.domain_id is not None:
        os.environ["ROS_DOMAIN_ID"] = str(ns.domain_id)
    overrides: list[Parameter[Any]] = [
        Parameter("bag", value=str(ns.bag)),
        Parameter("rate", value=float(ns.rate)),
        Parameter("topics", value=list(ns.topics) or [""]),
        Parameter("remap", value=list(ns.remap) or [""]),
        Parameter("clock", value=not ns.no_clock),
        Parameter("clock_hz", value=float(ns.clock_hz)),
        Parameter("start_offset_s", value=float(ns.start_offset)),
        Parameter("wait_for_subscribers_s", value=float(ns.wait)),
        Parameter("progress", value=not ns.no_progress),
    ]
    return _run([], overrides)


if __name__ == "__main__":
    main()
