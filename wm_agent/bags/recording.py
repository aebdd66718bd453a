"""Recorder logic without rclpy: which topics to record, which QoS to ask for, what was lost.

The recorder node asks the graph for topic names and types, picks the ones matching its patterns
(:func:`select_topics`), subscribes with :func:`subscription_qos` and feeds every received message
into :class:`LossTracker`, which counts messages per topic and the gaps in each publisher's
sequence numbers (the middleware numbers every sample a writer sends: a jump from 7 to 10 means
2 samples never reached the recorder), plus the middleware's own message-lost events.
:class:`RateLimiter` thins chosen topics to a rate of message time (a 10,000-drone fleet state
at 24 Hz is ~50 MB per sim-minute; at 5 Hz a long run's bag stays one that opens and replays).
"""

from __future__ import annotations

import fnmatch
import importlib
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from wm_agent import topics
from wm_agent.errors import BagError, ConfigError

#: The default selection, "all project topics" (glob patterns allowed).
PROJECT_TOPICS: tuple[str, ...] = (
    topics.FLEET_STATE,
    topics.FLEET_COMMAND,
    topics.FLEET_EVENTS,
    topics.FLEET_ASSIGNMENTS,
    topics.FLEET_METRICS,
    topics.PLANNER_STATUS,
    topics.STAGE_TIMES,
    topics.DRONE_STATUS,
    topics.TASK_STATUS,
    topics.TASK_BULK,
    topics.TASK_BULK_ACK,
    topics.CLOCK,
    topics.WORLD_MARKERS,
    topics.FLEET_MARKERS,
    topics.TF,
    "/drone_*/odom",
    "/drone_*/cmd_vel",
    "/drone_*/goal",
)


_MSG_TYPE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)/msg/([A-Za-z_][A-Za-z0-9_]*)", re.ASCII)


def check_type_name(type_name: str) -> tuple[str, str]:
    """``pkg/msg/Name`` -> (pkg, Name); BagError unless both are plain ASCII identifiers.

    Type names come from the graph or from a bag's metadata: they are checked before any module
    named by them is imported."""
    m = _MSG_TYPE.fullmatch(type_name)
    if m is None:
        raise BagError(f"{type_name!r} is not a ROS 2 message type name (expected pkg/msg/Name, "
                       "identifiers only)")
    return m.group(1), m.group(2)


def interface_packages() -> set[str]:
    """ROS 2 interface packages registered in the ament index (``rosidl_interfaces``) of every
    prefix on AMENT_PREFIX_PATH and of this Python's prefix (where the wheels install theirs)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    found: set[str] = set()
    for prefix in [*prefixes, sys.prefix]:
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "rosidl_interfaces"
        if index.is_dir():
            found.update(p.name for p in index.iterdir())
    return found


def message_class(type_name: str) -> Any:
    """The generated Python class of ``pkg/msg/Name``.

    BagError, before importing anything, when the name is not ``pkg/msg/Name`` or `pkg` is not an
    interface package of the ament index; after importing, when the package lacks the type or
    the attribute is not a generated message class."""
    pkg, name = check_type_name(type_name)
    if pkg not in interface_packages():
        raise BagError(
            f"message type {type_name}: {pkg} is not a ROS 2 interface package registered in the "
            f"ament index (looked in AMENT_PREFIX_PATH and {sys.prefix}); install it or source its "
            "workspace"
        )
    try:
        cls = getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise BagError(f"message type {type_name} is not installed for this Python: {exc}") from None
    if not (isinstance(cls, type) and callable(getattr(type(cls), "__import_type_support__", None))):
        raise BagError(f"{type_name}: {pkg}.msg.{name} is not a message class")
    return cls


class QosKind(Enum):
    """The project's named QoS profiles (wm_agent/qos.py), by the role of a topic."""

    STATE = "state"          # best effort
    COMMAND = "command"      # reliable, volatile
    EVENTS = "events"        # reliable, volatile, deep
    TASKS = "tasks"          # reliable, volatile, deep enough for a fleet-wide burst
    LATCHED = "latched"      # reliable, transient local
    CLOCK = "clock"          # reliable, depth 1


def qos_kind(topic: str) -> QosKind:
    """The QoS role the project's publishers give `topic` (unknown topics: EVENTS, reliable)."""
    if topic in (topics.FLEET_STATE, topics.FLEET_MARKERS) or fnmatch.fnmatchcase(topic, "/drone_*/odom"):
        return QosKind.STATE
    if topic in (topics.FLEET_COMMAND,) or fnmatch.fnmatchcase(topic, "/drone_*/cmd_vel") or \
            fnmatch.fnmatchcase(topic, "/drone_*/goal"):
        return QosKind.COMMAND
    if topic in (topics.FLEET_ASSIGNMENTS, topics.WORLD_MARKERS):
        return QosKind.LATCHED
    if topic == topics.CLOCK:
        return QosKind.CLOCK
    if topic in (topics.TASK_STATUS, topics.TASK_BULK, topics.TASK_BULK_ACK):
        return QosKind.TASKS
    return QosKind.EVENTS


@dataclass(frozen=True)
class OfferedQos:
    """What one publisher offers (from the graph)."""

    reliable: bool
    transient_local: bool


@dataclass(frozen=True)
class RequestedQos:
    """What the recorder asks for on one topic."""

    reliable: bool
    transient_local: bool
    depth: int


def subscription_qos(topic: str, offered: Sequence[OfferedQos], depth: int) -> RequestedQos:
    """Match the publishers: reliable / transient local only when every publisher offers it (a
    stricter request would not match a weaker publisher); without publishers, the project's role.
    The depth is ``depth``, or the task topics' burst depth (:data:`topics.TASK_QUEUE_DEPTH`)
    on those: a fleet-wide burst of task transitions must not overrun the recorder's queue."""
    kind = qos_kind(topic)
    if kind is QosKind.TASKS:
        depth = max(depth, topics.TASK_QUEUE_DEPTH)
    if offered:
        return RequestedQos(
            reliable=all(o.reliable for o in offered),
            transient_local=all(o.transient_local for o in offered),
            depth=depth,
        )
    return RequestedQos(
        reliable=kind is not QosKind.STATE,
        transient_local=kind is QosKind.LATCHED,
        depth=depth,
    )


def select_topics(
    graph: Iterable[tuple[str, Sequence[str]]], patterns: Sequence[str], exclude: Sequence[str] = ()
) -> dict[str, str]:
    """topic -> type for the graph's topics matching any pattern (glob) and no exclude pattern.

    A topic with several types is skipped (a recorder cannot tell them apart); services' hidden
    topics and ``/rosout`` / ``/parameter_events`` only match when named explicitly.
    """
    chosen: dict[str, str] = {}
    for name, types in graph:
        if len(types) != 1:
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in exclude):
            continue
        chosen[name] = types[0]
    return chosen


@dataclass
class TopicLoss:
    """Per-topic counts of one recording."""

    received: int = 0
    size_bytes: int = 0
    gaps: int = 0                 # samples skipped inside a publisher's sequence
    lost_events: int = 0          # the middleware's message-lost count (total_count_change)
    publishers: int = 0
    _last_seq: dict[bytes, int] = field(default_factory=dict, repr=False)

    @property
    def lost(self) -> int:
        """Best estimate of messages lost on the way to the recorder."""
        return max(self.gaps, self.lost_events)


class LossTracker:
    """Counts received messages and losses per topic (feed it every message and lost event)."""

    def __init__(self) -> None:
        self.topics: dict[str, TopicLoss] = {}

    def on_message(
        self, topic: str, size: int, publisher: bytes | None = None, seq: int | None = None
    ) -> int:
        """Record one message; return how many samples of its publisher were skipped before it."""
        t = self.topics.setdefault(topic, TopicLoss())
        t.received += 1
        t.size_bytes += size
        if publisher is None or seq is None or seq <= 0:
            return 0
        last = t._last_seq.get(publisher)
        t._last_seq[publisher] = seq if last is None else max(last, seq)
        if last is None:
            t.publishers += 1
            return 0           # samples sent before the recorder matched are not losses
        skipped = max(0, seq - last - 1)
        t.gaps += skipped
        return skipped

    def on_lost(self, topic: str, count_change: int) -> None:
        self.topics.setdefault(topic, TopicLoss()).lost_events += max(0, int(count_change))

    def summary(self) -> Mapping[str, TopicLoss]:
        return dict(self.topics)

    def report_lines(self) -> list[str]:
        """One line per topic: received, lost (gaps, middleware events), bytes."""
        lines = []
        for name, t in sorted(self.topics.items()):
            lines.append(
                f"{name}: received {t.received}, lost {t.lost} (sequence gaps {t.gaps}, "
                f"middleware lost events {t.lost_events}), {t.size_bytes / 1e6:.2f} MB"
            )
        return lines

    def custom_data(self) -> dict[str, str]:
        """Flat strings for metadata.yaml's custom_data (``wm_agent.lost./fleet/state: 3``)."""
        out = {}
        for name, t in self.topics.items():
            out[f"wm_agent.received.{name}"] = str(t.received)
            out[f"wm_agent.lost.{name}"] = str(t.lost)
        return out


@dataclass(frozen=True)
class TopicRate:
    """Record at most ``hz`` messages per second of message time on topics matching ``pattern``."""

    pattern: str
    hz: float


def parse_rates(entries: Sequence[str]) -> tuple[TopicRate, ...]:
    """``topic=hz`` entries (glob patterns allowed; empty entries ignored) as TopicRates.

    Raises:
        ConfigError: an entry is not ``pattern=hz`` with hz a finite number > 0.
    """
    out = []
    for entry in entries:
        if not entry:
            continue
        pattern, sep, value = entry.rpartition("=")
        try:
            hz = float(value)
        except ValueError:
            hz = float("nan")
        if not sep or not pattern.startswith("/") or not (math.isfinite(hz) and hz > 0):
            raise ConfigError(
                f"recording rate {entry[:80]!r}: expected TOPIC=HZ with a topic (or glob) "
                "starting with '/' and HZ a number > 0, e.g. /fleet/state=5")
        out.append(TopicRate(pattern, hz))
    return tuple(out)


class RateLimiter:
    """Decides which messages a rate-limited topic keeps: one per ``1/hz`` window of message
    time (the window index ``floor(stamp · hz)``), the first in each; a stamp that goes back
    starts again. Deterministic for the same stamps (lockstep bags of the same seed stay
    equal); topics without a rate keep every message. Counts what it drops per topic."""

    def __init__(self, rates: Sequence[TopicRate]) -> None:
        self.rates = tuple(rates)
        self._interval_ns: dict[str, int] = {}
        self._last_window: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    def interval_ns(self, topic: str) -> int:
        """The window [ns] of ``topic`` (0: every message), from the first matching rate."""
        if topic not in self._interval_ns:
            hz = next((r.hz for r in self.rates if fnmatch.fnmatchcase(topic, r.pattern)), 0.0)
            self._interval_ns[topic] = max(1, round(1e9 / hz)) if hz else 0
        return self._interval_ns[topic]

    def keep(self, topic: str, stamp_ns: int) -> bool:
        """Whether to record a message of ``topic`` stamped ``stamp_ns``."""
        interval = self.interval_ns(topic)
        if not interval:
            return True
        window = stamp_ns // interval
        last = self._last_window.get(topic)
        if last is not None and window == last:
            self.dropped[topic] = self.dropped.get(topic, 0) + 1
            return False
        self._last_window[topic] = window
        return True

    def custom_data(self) -> dict[str, str]:
        """metadata.yaml custom_data: each rate-limited topic's rate and messages not recorded
        (``wm_agent.rate./fleet/state: 5.0``, ``wm_agent.decimated./fleet/state: 1234``)."""
        out = {}
        for topic, interval in self._interval_ns.items():
            if interval:
                out[f"wm_agent.rate.{topic}"] = f"{1e9 / interval:g}"
                out[f"wm_agent.decimated.{topic}"] = str(self.dropped.get(topic, 0))
        return out
