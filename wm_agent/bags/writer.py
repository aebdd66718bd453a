"""Recorder core: write serialized ROS 2 messages into a rosbag2 MCAP bag folder. Pure, no rclpy.

Layout (what ``ros2 bag record -s mcap`` writes, readable by rosbag2, rosbags, the mcap CLI and
Foxglove)::

    <bag>/metadata.yaml        rosbag2 metadata, version 9 (per-topic and per-file counts)
    <bag>/<bag>_0.mcap         MCAP, profile "ros2": one schema per type with the full ros2msg
    <bag>/<bag>_1.mcap ...     definition (dependencies included), one channel per topic,
                               chunked (zstd or none) with a CRC-32 per chunk, summary + indexes

Messages go in as ``(topic, serialized CDR bytes, timestamp [ns])``; the writer never
deserializes. A new file starts when the current one exceeds ``max_file_bytes`` or spans more
than ``max_file_duration_ns`` (0 = no split); metadata.yaml is rewritten at every split and on
close, so a bag whose recorder died keeps an up-to-date description of its finished files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapWriter

from wm_agent.bags.definitions import MessageDefinitions, normalize_type
from wm_agent.errors import BagError

METADATA_VERSION = 9
COMPRESSIONS = {"none": CompressionType.NONE, "zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4}


@dataclass(frozen=True)
class QosInfo:
    """A publisher's offered QoS, as stored in metadata.yaml (rosbag2 v9 spelling)."""

    reliability: str = "reliable"          # reliable | best_effort
    durability: str = "volatile"           # volatile | transient_local
    history: str = "keep_last"             # keep_last | keep_all
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in ("reliable", "best_effort"):
            raise BagError(f"QosInfo: reliability must be reliable or best_effort, got {self.reliability!r}")
        if self.durability not in ("volatile", "transient_local"):
            raise BagError(
                f"QosInfo: durability must be volatile or transient_local, got {self.durability!r}"
            )
        if self.history not in ("keep_last", "keep_all"):
            raise BagError(f"QosInfo: history must be keep_last or keep_all, got {self.history!r}")

    def as_dict(self) -> dict[str, Any]:
        infinite = {"sec": 2147483647, "nsec": 4294967295}
        return {
            "history": self.history,
            "depth": int(self.depth),
            "reliability": self.reliability,
            "durability": self.durability,
            "deadline": dict(infinite),
            "lifespan": dict(infinite),
            "liveliness": "automatic",
            "liveliness_lease_duration": dict(infinite),
            "avoid_ros_namespace_conventions": False,
        }


@dataclass(frozen=True)
class FileSummary:
    """One finished .mcap file of a bag."""

    path: str                  # relative to the bag folder
    start_ns: int
    end_ns: int
    message_count: int


@dataclass(frozen=True)
class BagSummary:
    """What a closed bag holds."""

    path: Path
    files: tuple[FileSummary, ...]
    counts: Mapping[str, int]                 # topic -> messages written
    types: Mapping[str, str]                  # topic -> pkg/msg/Type
    start_ns: int
    end_ns: int
    bytes_written: int

    @property
    def message_count(self) -> int:
        return sum(self.counts.values())


@dataclass
class _Topic:
    name: str
    msgtype: str
    qos: tuple[QosInfo, ...]
    count: int = 0


@dataclass
class _File:
    relpath: str
    stream: IO[bytes]
    writer: McapWriter
    channel_ids: dict[str, int] = field(default_factory=dict)
    schema_ids: dict[str, int] = field(default_factory=dict)
    start_ns: int = 2**63 - 1
    end_ns: int = 0
    count: int = 0


class BagWriter:
    """Write a rosbag2 MCAP bag folder; use as a context manager or call close().

    Args:
        path: bag folder to create (must not exist); files are named ``<folder name>_<i>.mcap``.
        max_file_bytes: start a new file beyond this size [bytes] (0 = never split by size).
        max_file_duration_ns: start a new file beyond this time span [ns] (0 = never).
        chunk_bytes: uncompressed chunk size [bytes] (a truncated file loses at most its last chunk).
        compression: ``zstd`` (default), ``lz4`` or ``none``, per chunk.
        definitions: where to find .msg text (default: the installed share/ folders).
        custom_data: string pairs stored under metadata.yaml ``custom_data``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_file_bytes: int = 0,
        max_file_duration_ns: int = 0,
        chunk_bytes: int = 1 << 20,
        compression: str = "zstd",
        definitions: MessageDefinitions | None = None,
        custom_data: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        if compression not in COMPRESSIONS:
            raise BagError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
        if max_file_bytes < 0 or max_file_duration_ns < 0 or chunk_bytes <= 0:
            raise BagError(
                "max_file_bytes and max_file_duration_ns must be >= 0 and chunk_bytes > 0, got "
                f"{max_file_bytes}, {max_file_duration_ns}, {chunk_bytes}"
            )
        if self.path.exists():
            raise BagError(f"bag folder {self.path} exists already; choose a new output name")
        try:
            self.path.mkdir(parents=True)
        except OSError as exc:
            raise BagError(f"cannot create bag folder {self.path}: {exc}") from None
        self.max_file_bytes = max_file_bytes
        self.max_file_duration_ns = max_file_duration_ns
        self.chunk_bytes = chunk_bytes
        self.compression = compression
        self.definitions = definitions or MessageDefinitions()
        self.custom_data: dict[str, str] = dict(custom_data or {})
        self._topics: dict[str, _Topic] = {}
        self._schemas: dict[str, tuple[str, str]] = {}    # type -> (definition, RIHS01 hash)
        self._finished: list[FileSummary] = []
        self._file: _File | None = None
        self._closed = False
        self._bytes_finished = 0

    # -- topics ------------------------------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, qos: Sequence[QosInfo] = ()) -> None:
        """Declare a topic and its type (``pkg/msg/Type``); the definition is looked up now.

        Declaring the same topic again with the same type is a no-op; another type is an error.
        """
        self._check_open()
        msgtype = normalize_type(msgtype)
        known = self._topics.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise BagError(f"topic {topic} is recorded as {known.msgtype}, cannot add it as {msgtype}")
            return
        if msgtype not in self._schemas:
            self._schemas[msgtype] = (
                self.definitions.full_definition(msgtype),
                self.definitions.type_hash(msgtype),
            )
        self._topics[topic] = _Topic(topic, msgtype, tuple(qos))
        if self._file is not None:
            self._register(self._file, self._topics[topic])

    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far per topic."""
        return {t.name: t.count for t in self._topics.values()}

    @property
    def types(self) -> dict[str, str]:
        return {t.name: t.msgtype for t in self._topics.values()}

    # -- writing -----------------------------------------------------------------------------------
    def write(
        self, topic: str, data: bytes | bytearray | memoryview, timestamp_ns: int, msgtype: str | None = None
    ) -> None:
        """Append one serialized message (CDR bytes, encapsulation header included) at `timestamp_ns`.

        `msgtype` (``pkg/msg/Type``) adds an unknown topic on the fly; without it the topic must
        have been added with add_topic().
        """
        self._check_open()
        t = self._topics.get(topic)
        if t is None and msgtype is not None:
            self.add_topic(topic, msgtype)
            t = self._topics[topic]
        if t is None:
            raise BagError(f"topic {topic} was not added; call add_topic(topic, type) first")
        f = self._file
        if f is not None and self._should_split(f, timestamp_ns):
            self._finish_file()
            f = None
        if f is None:
            f = self._open_file()
        f.writer.add_message(
            channel_id=f.channel_ids[topic], log_time=int(timestamp_ns), data=bytes(data),
            publish_time=int(timestamp_ns), sequence=t.count,
        )
        t.count += 1
        f.count += 1
        f.start_ns = min(f.start_ns, int(timestamp_ns))
        f.end_ns = max(f.end_ns, int(timestamp_ns))

    def _should_split(self, f: _File, timestamp_ns: int) -> bool:
        if f.count == 0:
            return False
        if self.max_file_bytes and f.stream.tell() >= self.max_file_bytes:
            return True
        return bool(self.max_file_duration_ns) and timestamp_ns - f.start_ns >= self.max_file_duration_ns

    def _open_file(self) -> _File:
        index = len(self._finished)
        relpath = f"{self.path.name}_{index}.mcap"
        try:
            stream = (self.path / relpath).open("xb")
        except OSError as exc:
            raise BagError(f"cannot create {self.path / relpath}: {exc}") from None
        writer = McapWriter(
            stream, chunk_size=self.chunk_bytes, compression=COMPRESSIONS[self.compression],
            enable_crcs=True, enable_data_crcs=False,
        )
        writer.start(profile="ros2", library="wm_agent.bags.writer (mcap python)")
        f = _File(relpath, stream, writer)
        for t in self._topics.values():
            self._register(f, t)
        self._file = f
        return f

    def _register(self, f: _File, t: _Topic) -> None:
        if t.msgtype not in f.schema_ids:
            definition, _ = self._schemas[t.msgtype]
            f.schema_ids[t.msgtype] = f.writer.register_schema(
                name=t.msgtype, encoding="ros2msg", data=definition.encode()
            )
        qos_text = yaml.safe_dump([q.as_dict() for q in t.qos], default_flow_style=False) if t.qos else ""
        f.channel_ids[t.name] = f.writer.register_channel(
            topic=t.name, message_encoding="cdr", schema_id=f.schema_ids[t.msgtype],
            metadata={"offered_qos_profiles": qos_text, "topic_type_hash": self._schemas[t.msgtype][1]},
        )

    def _finish_file(self) -> None:
        f = self._file
        if f is None:
            return
        self._file = None
        try:
            f.writer.finish()
            self._bytes_finished += f.stream.tell()
            f.stream.close()
        except OSError as exc:
            raise BagError(f"cannot finish {self.path / f.relpath}: {exc}") from None
        start = f.start_ns if f.count else 0
        self._finished.append(FileSummary(f.relpath, start, f.end_ns if f.count else 0, f.count))
        self._write_metadata()

    # -- metadata ----------------------------------------------------------------------------------
    def summary(self) -> BagSummary:
        files = list(self._finished)
        if self._file is not None and self._file.count:
            f = self._file
            files.append(FileSummary(f.relpath, f.start_ns, f.end_ns, f.count))
        with_msgs = [f for f in files if f.message_count]
        start = min((f.start_ns for f in with_msgs), default=0)
        end = max((f.end_ns for f in with_msgs), default=0)
        current = self._file.stream.tell() if self._file is not None and not self._file.stream.closed else 0
        return BagSummary(
            path=self.path, files=tuple(files), counts=self.counts, types=self.types,
            start_ns=start, end_ns=end, bytes_written=self._bytes_finished + current,
        )

    def _write_metadata(self) -> None:
        s = self.summary()
        info: dict[str, Any] = {
            "version": METADATA_VERSION,
            "storage_identifier": "mcap",
            "duration": {"nanoseconds": max(0, s.end_ns - s.start_ns)},
            "starting_time": {"nanoseconds_since_epoch": s.start_ns},
            "message_count": s.message_count,
            "topics_with_message_count": [
                {
                    "topic_metadata": {
                        "name": t.name,
                        "type": t.msgtype,
                        "serialization_format": "cdr",
                        "offered_qos_profiles": [q.as_dict() for q in t.qos],
                        "type_description_hash": self._schemas[t.msgtype][1],
                    },
                    "message_count": t.count,
                }
                for t in self._topics.values()
            ],
            "compression_format": "",
            "compression_mode": "",
            "relative_file_paths": [f.path for f in s.files],
            "files": [
                {
                    "path": f.path,
                    "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                    "duration": {"nanoseconds": max(0, f.end_ns - f.start_ns)},
                    "message_count": f.message_count,
                }
                for f in s.files
            ],
            "custom_data": dict(self.custom_data),
            "ros_distro": os.environ.get("ROS_DISTRO", "kilted"),
        }
        text = yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False)
        tmp = self.path / "metadata.yaml.tmp"
        try:
            tmp.write_text(text)
            tmp.replace(self.path / "metadata.yaml")
        except OSError as exc:
            raise BagError(f"cannot write {self.path / 'metadata.yaml'}: {exc}") from None

    # -- lifecycle ---------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise BagError(f"bag {self.path} is closed")

    def close(self) -> BagSummary:
        """Finish the current file (chunk, indexes, summary) and write metadata.yaml. Idempotent."""
        if not self._closed:
            if self._file is None and not self._finished:
                self._open_file()          # an empty bag is still a valid bag
            self._finish_file()
            self._closed = True
        return self.summary()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
