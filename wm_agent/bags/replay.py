"""Replay core: schedule a bag's serialized messages (and /clock) in wall time. Pure, no rclpy.

The caller supplies the publishing functions; :func:`replay` never deserializes. Time mapping:
a message stored at bag time t is due at ``wall_start + (t - t_first) / rate`` (rate 0: as fast as
possible). Before a message whose bag time is at least ``1 / clock_hz`` past the last published
clock, the clock (bag time, in ns) is published first, so subscribers on ``use_sim_time`` see time
move with the data. A ``/clock`` topic recorded in the bag is not replayed (the clock is
generated), unless it is asked for by name.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from wm_agent import topics as topic_names
from wm_agent.bags.reader import BagMessage, BagReader
from wm_agent.errors import BagError


def parse_remaps(items: Iterable[str]) -> dict[str, str]:
    """``["/a:=/b", ...]`` -> ``{"/a": "/b"}``; raises BagError on a malformed item."""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old.strip() or not new.strip():
            raise BagError(f"remap {item!r} must look like /old_topic:=/new_topic")
        out[old.strip()] = new.strip()
    return out


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay. rate 1.0 = recorded speed, 2.0 = twice as fast, 0 = as fast as possible."""

    rate: float = 1.0
    topics: tuple[str, ...] = ()              # empty = every topic of the bag
    remap: Mapping[str, str] = field(default_factory=dict)
    clock: bool = True                        # publish /clock from the bag's time
    clock_hz: float = 100.0                   # at most this many clock messages per bag second
    start_offset_s: float = 0.0               # skip the first seconds of the bag
    clock_topic: str = topic_names.CLOCK

    def __post_init__(self) -> None:
        if not (self.rate >= 0.0 and self.rate < float("inf")):
            raise BagError(f"replay rate must be a finite value >= 0, got {self.rate}")
        if not self.clock_hz > 0.0:
            raise BagError(f"clock_hz must be > 0, got {self.clock_hz}")
        if self.start_offset_s < 0.0:
            raise BagError(f"start_offset_s must be >= 0, got {self.start_offset_s}")


class ReplayItem(NamedTuple):
    """One thing to publish: a message (topic already remapped) or a clock tick (topic "")."""

    due_s: float            # seconds after the replay start (wall), 0 for rate 0
    topic: str              # output topic; "" for a clock tick
    msgtype: str
    data: bytes
    bag_time_ns: int


@dataclass
class ReplayStats:
    messages: int = 0
    clocks: int = 0
    per_topic: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    bag_span_s: float = 0.0
    max_lateness_s: float = 0.0


def output_topics(reader: BagReader, options: ReplayOptions) -> dict[str, tuple[str, str]]:
    """bag topic -> (output topic, type) of what will be replayed; BagError for unknown names."""
    available = reader.topics
    if options.topics:
        missing = [t for t in options.topics if t not in available]
        if missing:
            raise BagError(
                f"bag {reader.path} has no topic(s) {', '.join(missing)}; "
                f"it has {', '.join(sorted(available))}"
            )
        chosen = list(options.topics)
    else:
        chosen = [t for t in available if t != options.clock_topic or not options.clock]
    return {t: (options.remap.get(t, t), available[t].msgtype) for t in chosen}


def schedule(
    messages: Iterable[BagMessage], outputs: Mapping[str, tuple[str, str]], options: ReplayOptions
) -> Iterator[ReplayItem]:
    """The items to publish, in order, with their due times (pure; no sleeping)."""
    t0: int | None = None
    last_clock: int | None = None
    clock_period_ns = int(1e9 / options.clock_hz)
    offset_ns = int(options.start_offset_s * 1e9)
    for m in messages:
        out = outputs.get(m.topic)
        if out is None:
            continue
        if t0 is None:
            t0 = m.timestamp_ns + offset_ns
        if m.timestamp_ns < t0:
            continue
        due = (m.timestamp_ns - t0) / 1e9 / options.rate if options.rate > 0 else 0.0
        if options.clock and (last_clock is None or m.timestamp_ns - last_clock >= clock_period_ns):
            last_clock = m.timestamp_ns
            yield ReplayItem(due, "", "rosgraph_msgs/msg/Clock", b"", m.timestamp_ns)
        yield ReplayItem(due, out[0], out[1], m.data, m.timestamp_ns)


def replay(
    reader: BagReader,
    publish: Callable[[str, bytes], None],
    publish_clock: Callable[[int], None] | None,
    options: ReplayOptions,
    *,
    progress: bool = False,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] = lambda: False,
) -> ReplayStats:
    """Publish the bag's messages in (scaled) time: ``publish(output_topic, cdr_bytes)`` and
    ``publish_clock(bag_time_ns)``. Returns counts and timing; stops early when should_stop()."""
    outputs = output_topics(reader, options)
    total = sum((reader.topics[t].count or 0) for t in outputs) or None
    stats = ReplayStats(per_topic={out: 0 for out, _ in outputs.values()})
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="msg", desc=f"replay {reader.path.name}", dynamic_ncols=True)
    start = now()
    first_ns: int | None = None
    last_ns = 0
    try:
        for item in schedule(reader.messages(list(outputs)), outputs, options):
            if should_stop():
                break
            wait = item.due_s - (now() - start)
            if wait > 0:
                sleep(wait)
            else:
                stats.max_lateness_s = max(stats.max_lateness_s, -wait)
            first_ns = item.bag_time_ns if first_ns is None else first_ns
            last_ns = item.bag_time_ns
            if not item.topic:
                if publish_clock is not None:
                    publish_clock(item.bag_time_ns)
                    stats.clocks += 1
                continue
            publish(item.topic, item.data)
            stats.messages += 1
            stats.per_topic[item.topic] += 1
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    stats.wall_s = now() - start
    stats.bag_span_s = (last_ns - first_ns) / 1e9 if first_ns is not None else 0.0
    return stats


def clock_cdr(time_ns: int) -> bytes:
    """Serialized rosgraph_msgs/Clock (little-endian CDR) for `time_ns` — for raw publishers."""
    sec, nanosec = divmod(int(time_ns), 1_000_000_000)
    header = b"\x00\x01\x00\x00"
    return header + int(sec).to_bytes(4, "little", signed=True) + int(nanosec).to_bytes(4, "little")


def add_replay_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``wm-agent replay`` (no rclpy import: usable while building the CLI)."""
    p.add_argument("bag", help="bag folder (rosbag2, MCAP or sqlite3) or .mcap file")
    p.add_argument(
        "--rate", type=float, default=1.0, help="speed factor; 0 = as fast as possible (default 1)"
    )
    p.add_argument("--topics", nargs="+", default=[], metavar="TOPIC", help="replay only these topics")
    p.add_argument("--remap", nargs="+", default=[], metavar="OLD:=NEW", help="publish OLD on NEW")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--clock-hz", type=float, default=100.0, help="max /clock per bag second (default 100)")
    p.add_argument("--start-offset", type=float, default=0.0, help="skip the bag's first seconds")
    p.add_argument("--wait", type=float, default=1.0, help="wait for subscribers up to this long [s]")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID to publish on")
    return p


def replay_argument_parser() -> argparse.ArgumentParser:
    return add_replay_arguments(
        argparse.ArgumentParser(prog="wm-agent replay", description="Replay a rosbag2 bag with /clock.")
    )
