"""Read rosbag2 bags (MCAP or sqlite3 storage): raw messages, decoded messages, fleet arrays.

Pure, no rclpy. MCAP files are read with the ``mcap`` library record by record, so a bag whose
recorder was killed (no summary, no footer, last chunk cut) or whose file was damaged still
reads: every chunk whose CRC checks out is returned, a corrupt chunk is skipped, reading stops at
the first unreadable record, and a :class:`BagTruncatedWarning` says how much was lost (messages
vs metadata.yaml's counts, bytes vs the file size, time span vs metadata.yaml's end time).
sqlite3 bags are read with ``rosbags.rosbag2.Reader``.

Decoding uses a ``rosbags`` typestore (ROS 2 Kilted's standard types) extended with the
definitions embedded in the bag, or, for bags without them (sqlite3 from older recorders), with
the .msg text of the installed packages (``wm_agent_msgs`` included).
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Chunk, Message, Schema
from mcap.stream_reader import StreamReader, breakup_chunk

from wm_agent.bags.definitions import MessageDefinitions, normalize_type
from wm_agent.errors import BagError


class BagTruncatedWarning(UserWarning):
    """A bag file ended early or held corrupt chunks; the readable part was returned."""


class BagMessage(NamedTuple):
    """One serialized message as stored."""

    topic: str
    msgtype: str            # pkg/msg/Type
    timestamp_ns: int       # the bag's log time [ns]
    data: bytes             # CDR, with its 4-byte encapsulation header


class DecodedMessage(NamedTuple):
    topic: str
    msgtype: str
    timestamp_ns: int
    msg: Any                # rosbags dataclass; primitive arrays are numpy arrays


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int | None       # messages according to metadata.yaml / the MCAP summary (None: unknown)


@dataclass
class FileReport:
    """How much of one storage file was read."""

    path: Path
    size_bytes: int
    read_bytes: int = 0                       # offset of the end of the last good record
    messages_read: int = 0
    messages_expected: int | None = None      # from metadata.yaml's files[] (None: unknown)
    expected_end_ns: int | None = None
    last_ns: int | None = None
    corrupt_chunks: int = 0
    truncated: bool = False
    error: str = ""

    @property
    def damaged(self) -> bool:
        return self.truncated or self.corrupt_chunks > 0

    def describe(self) -> str:
        """One sentence saying what was lost."""
        parts = [f"{self.path.name}: read {self.messages_read} messages"]
        if self.messages_expected is not None:
            lost = max(0, self.messages_expected - self.messages_read)
            parts.append(f"of {self.messages_expected} ({lost} lost)")
        else:
            parts.append("(metadata.yaml lacks this file's count: messages lost unknown)")
        unread = max(0, self.size_bytes - self.read_bytes)
        pct = 100.0 * unread / self.size_bytes if self.size_bytes else 0.0
        parts.append(f"; {unread} of {self.size_bytes} bytes unreadable ({pct:.1f} %)")
        if self.corrupt_chunks:
            parts.append(f"; {self.corrupt_chunks} corrupt chunk(s) skipped")
        if self.expected_end_ns is not None and self.last_ns is not None:
            span = max(0, self.expected_end_ns - self.last_ns) / 1e9
            parts.append(f"; last {span:.3f} s of recorded time lost")
        if self.error:
            parts.append(f"; stopped at: {self.error}")
        return " ".join(parts)


@dataclass
class ReadReport:
    """What a full pass over a bag read (filled in while iterating)."""

    files: list[FileReport] = field(default_factory=list)

    @property
    def messages_read(self) -> int:
        return sum(f.messages_read for f in self.files)

    @property
    def messages_lost(self) -> int | None:
        """Messages in metadata.yaml that could not be read (None: unknown)."""
        if any(f.messages_expected is None for f in self.files if f.damaged):
            return None
        return sum(max(0, (f.messages_expected or 0) - f.messages_read) for f in self.files)

    @property
    def damaged(self) -> bool:
        return any(f.damaged for f in self.files)


def _ns(node: Any, key: str) -> int:
    return int((node or {}).get(key, 0) or 0)


class BagReader:
    """A rosbag2 bag folder (with or without metadata.yaml) or a single ``.mcap`` / ``.db3`` file.

    Use as a context manager or call close(). Iteration order is file order; inside a chunk,
    messages are sorted by log time (the recorder writes them in receive order).
    """

    def __init__(
        self, path: str | os.PathLike[str], *, definitions: MessageDefinitions | None = None
    ) -> None:
        self.path = Path(path)
        self.definitions = definitions or MessageDefinitions()
        self.metadata: dict[str, Any] = {}
        self.report = ReadReport()
        self._typestore: Any = None
        self._registered: set[str] = set()
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        folder = self.path if self.path.is_dir() else self.path.parent
        meta_path = folder / "metadata.yaml"
        if self.path.is_dir() and meta_path.is_file():
            try:
                loaded = yaml.safe_load(meta_path.read_text())
                self.metadata = dict(loaded["rosbag2_bagfile_information"])
            except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
                raise BagError(f"{meta_path} is not a rosbag2 metadata file: {exc}") from None
        self.storage = self._storage()
        self.files = self._files()
        self._topics: dict[str, TopicInfo] | None = None
        self._definitions_in_bag: dict[str, str] = {}

    # -- layout ------------------------------------------------------------------------------------
    def _storage(self) -> str:
        if self.metadata:
            ident = str(self.metadata.get("storage_identifier", ""))
            if ident not in ("mcap", "sqlite3"):
                raise BagError(f"{self.path}: unsupported storage {ident!r} (expected mcap or sqlite3)")
            return ident
        candidates = [self.path] if self.path.is_file() else sorted(self.path.iterdir())
        if any(p.suffix == ".mcap" for p in candidates):
            return "mcap"
        if any(p.suffix == ".db3" for p in candidates):
            return "sqlite3"
        raise BagError(f"{self.path} holds no metadata.yaml, .mcap or .db3 file: not a rosbag2 bag")

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if self.metadata:
            rel = self.metadata.get("relative_file_paths") or []
            files = [self.path / str(r) for r in rel]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise BagError(
                    f"bag {self.path}: file(s) listed in metadata.yaml missing: {', '.join(missing)}"
                )
            if files:
                return files
        suffix = ".mcap" if self.storage == "mcap" else ".db3"
        files = sorted(self.path.glob(f"*{suffix}"), key=_natural_key)
        if not files:
            raise BagError(f"bag {self.path} holds no {suffix} file")
        return files

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """topic -> (type, message count) from metadata.yaml, else from a pass over the files."""
        if self._topics is None:
            self._topics = {}
            for entry in self.metadata.get("topics_with_message_count") or []:
                meta = entry["topic_metadata"]
                name = str(meta["name"])
                self._topics[name] = TopicInfo(
                    name, normalize_type(str(meta["type"])), int(entry.get("message_count", 0))
                )
            if not self._topics:
                counts: dict[str, int] = {}
                types: dict[str, str] = {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", BagTruncatedWarning)
                    for m in self._raw(None, report=ReadReport()):
                        counts[m.topic] = counts.get(m.topic, 0) + 1
                        types[m.topic] = m.msgtype
                    for topic, msgtype in self._seen_types.items():
                        types.setdefault(topic, msgtype)
                self._topics = {t: TopicInfo(t, types[t], counts.get(t, 0)) for t in types}
        return self._topics

    @property
    def message_count(self) -> int | None:
        """Messages according to metadata.yaml (None when the bag has no metadata.yaml)."""
        return int(self.metadata["message_count"]) if self.metadata else None

    # -- raw messages ------------------------------------------------------------------------------
    def messages(self, topics: Sequence[str] | None = None) -> Iterator[BagMessage]:
        """Every stored message (optionally only `topics`), serialized, in file order.

        Warns (BagTruncatedWarning) once per damaged file, saying what was lost; the details are
        in ``self.report`` after the pass.
        """
        self.report = ReadReport()
        yield from self._raw(topics, report=self.report)

    _seen_types: dict[str, str]

    def _raw(self, topics: Sequence[str] | None, *, report: ReadReport) -> Iterator[BagMessage]:
        self._seen_types = {}
        wanted = set(topics) if topics is not None else None
        meta_files = {str(f.get("path")): f for f in self.metadata.get("files") or []}
        for path in self.files:
            meta = meta_files.get(path.name)
            fr = FileReport(path=path, size_bytes=path.stat().st_size)
            if meta is not None:
                fr.messages_expected = int(meta.get("message_count", 0))
                fr.expected_end_ns = _ns(meta.get("starting_time"), "nanoseconds_since_epoch") + _ns(
                    meta.get("duration"), "nanoseconds"
                )
            elif len(self.files) == 1 and self.metadata:
                fr.messages_expected = int(self.metadata.get("message_count", 0))
            report.files.append(fr)
            if self.storage == "mcap":
                yield from self._read_mcap(path, wanted, fr)
            else:
                yield from self._read_sqlite(path, wanted, fr)
            if fr.damaged:
                warnings.warn(
                    BagTruncatedWarning(f"bag {self.path} is truncated or corrupt: {fr.describe()}"),
                    stacklevel=3,
                )

    def _read_mcap(self, path: Path, wanted: set[str] | None, fr: FileReport) -> Iterator[BagMessage]:
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}

        def convert(records: Sequence[Any]) -> list[BagMessage]:
            out: list[BagMessage] = []
            for rec in records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec
                elif isinstance(rec, Channel):
                    channels[rec.id] = rec
                    self._note_channel(rec, schemas)
                elif isinstance(rec, Message):
                    ch = channels.get(rec.channel_id)
                    if ch is None:
                        continue
                    fr.messages_read += 1
                    fr.last_ns = rec.log_time if fr.last_ns is None else max(fr.last_ns, rec.log_time)
                    if wanted is None or ch.topic in wanted:
                        msgtype = self._seen_types.get(ch.topic, "")
                        out.append(BagMessage(ch.topic, msgtype, rec.log_time, bytes(rec.data)))
            out.sort(key=lambda m: m.timestamp_ns)
            return out

        try:
            stream = path.open("rb")
        except OSError as exc:
            raise BagError(f"cannot open {path}: {exc}") from None
        with stream:
            reader = StreamReader(stream, emit_chunks=True, record_size_limit=max(fr.size_bytes, 1))
            records = reader.records
            first = True
            while True:
                try:
                    rec = next(records)
                except StopIteration:
                    break
                except (McapError, EOFError, struct.error, ValueError, OSError) as exc:
                    if first:
                        raise BagError(f"{path} is not a readable MCAP file: {exc}") from None
                    fr.truncated = True
                    if isinstance(exc, (EOFError, struct.error)) or type(exc).__name__ == "EndOfFile":
                        fr.error = f"the file ends inside a record at byte {fr.read_bytes}"
                    else:
                        fr.error = f"{type(exc).__name__}: {exc}"
                    break
                first = False
                if isinstance(rec, Chunk):
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except Exception as exc:  # CRC, decompression or record errors: skip the chunk
                        fr.corrupt_chunks += 1
                        fr.error = f"chunk at byte {fr.read_bytes}: {exc}"
                        fr.read_bytes = stream.tell()
                        continue
                    yield from convert(inner)
                else:
                    yield from convert([rec])
                fr.read_bytes = stream.tell()
            if not fr.truncated and reader._footer is None:  # records ended without a footer
                fr.truncated = True
        if fr.messages_expected is not None and fr.messages_read < fr.messages_expected:
            fr.truncated = True

    def _note_channel(self, ch: Channel, schemas: dict[int, Schema]) -> None:
        schema = schemas.get(ch.schema_id)
        if schema is None:
            return
        msgtype = normalize_type(schema.name)
        self._seen_types[ch.topic] = msgtype
        if schema.encoding == "ros2msg" and schema.data:
            self._definitions_in_bag.setdefault(msgtype, schema.data.decode(errors="replace"))

    def _read_sqlite(self, path: Path, wanted: set[str] | None, fr: FileReport) -> Iterator[BagMessage]:
        from rosbags.rosbag2 import Reader
        from rosbags.rosbag2.errors import ReaderError

        if not self.path.is_dir() or not self.metadata:
            raise BagError(f"{path}: a sqlite3 bag is read as a folder with its metadata.yaml")
        try:
            with Reader(self.path) as reader:
                for c in reader.connections:
                    self._seen_types[c.topic] = normalize_type(c.msgtype)
                    if c.msgdef.data:
                        self._definitions_in_bag.setdefault(normalize_type(c.msgtype), c.msgdef.data)
                conns = [c for c in reader.connections if wanted is None or c.topic in wanted]
                for c, t, raw in reader.messages(connections=conns):
                    fr.messages_read += 1
                    fr.last_ns = t
                    yield BagMessage(c.topic, normalize_type(c.msgtype), t, bytes(raw))
        except ReaderError as exc:
            raise BagError(f"cannot read sqlite3 bag {self.path}: {exc}") from None
        except Exception as exc:  # sqlite3.DatabaseError and friends on a damaged file
            if type(exc).__module__.startswith("sqlite3"):
                raise BagError(f"{path} is not a readable sqlite3 bag: {exc}") from None
            raise
        fr.read_bytes = fr.size_bytes

    # -- decoding ----------------------------------------------------------------------------------
    @property
    def typestore(self) -> Any:
        """rosbags typestore able to decode every type of this bag (built on first use)."""
        if self._typestore is None:
            from rosbags.typesys import Stores, get_typestore

            self._typestore = get_typestore(Stores.ROS2_KILTED)
        return self._typestore

    def _ensure_type(self, msgtype: str) -> None:
        if msgtype in self._registered:
            return
        from rosbags.typesys import get_types_from_msg
        from rosbags.typesys.base import TypesysError

        store = self.typestore
        text = self._definitions_in_bag.get(msgtype)
        if text is None:
            text = self.definitions.full_definition(msgtype)
        try:
            types = get_types_from_msg(text, msgtype)
        except TypesysError as exc:
            raise BagError(f"cannot parse the definition of {msgtype} in {self.path}: {exc}") from None
        new = {k: v for k, v in types.items() if k not in store.fielddefs}
        if new:
            store.register(new)
        self._registered.add(msgtype)

    def decode(self, m: BagMessage) -> Any:
        """Deserialize one stored message."""
        self._ensure_type(m.msgtype)
        try:
            return self.typestore.deserialize_cdr(m.data, m.msgtype)
        except Exception as exc:
            raise BagError(
                f"cannot decode a {m.msgtype} message on {m.topic} at t={m.timestamp_ns} ns "
                f"in {self.path}: {exc}"
            ) from None

    def decoded(self, topics: Sequence[str] | None = None) -> Iterator[DecodedMessage]:
        """(topic, type, time [ns], decoded message) for every stored message, in file order."""
        for m in self.messages(topics):
            yield DecodedMessage(m.topic, m.msgtype, m.timestamp_ns, self.decode(m))

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Nothing is held open between passes; present for symmetry with BagWriter."""

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _natural_key(p: Path) -> tuple[str, int]:
    stem, _, idx = p.stem.rpartition("_")
    return (stem, int(idx)) if idx.isdigit() else (p.stem, -1)


def open_bag(path: str | os.PathLike[str], *, definitions: MessageDefinitions | None = None) -> BagReader:
    """Open a rosbag2 bag (folder, .mcap or .db3) for reading; raises BagError naming the file."""
    return BagReader(path, definitions=definitions)


def read_messages(
    path: str | os.PathLike[str], topics: Sequence[str] | None = None
) -> Iterator[DecodedMessage]:
    """Shortcut: iterate the decoded messages of the bag at `path`."""
    yield from open_bag(path).decoded(topics)
