"""Read rosbag2 bags (MCAP or sqlite3 storage): raw messages, decoded messages, fleet arrays.

Pure, no rclpy. MCAP files are read with the ``mcap`` library record by record, so a bag whose
recorder was killed (no summary, no footer, last chunk cut) or whose file was damaged still
reads: every chunk whose CRC checks out is returned, a corrupt chunk is skipped (its bytes, its
messages — counted by the message indexes after it — and its time span are reported), reading
stops at the first unreadable record, the summary section is checked (footer CRC, chunk index
and statistics vs the data section), and a :class:`BagTruncatedWarning` says how much was lost
(messages vs metadata.yaml's counts, bytes vs the file size, time span vs metadata.yaml's end
time) or that the summary is damaged.
sqlite3 bags are read with ``rosbags.rosbag2.Reader``.

Decoding uses a ``rosbags`` typestore (ROS 2 Kilted's standard types) extended with the
definitions embedded in the bag, or, for bags without them (sqlite3 from older recorders), with
the .msg text of the installed packages (``wm_agent_msgs`` included).
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NamedTuple

import yaml
from mcap.exceptions import McapError
from mcap.records import (
    Channel,
    Chunk,
    ChunkIndex,
    DataEnd,
    Footer,
    Message,
    MessageIndex,
    Schema,
    Statistics,
)
from mcap.stream_reader import StreamReader, breakup_chunk

from wm_agent.bags.definitions import MessageDefinitions, normalize_type
from wm_agent.errors import BagError


class BagTruncatedWarning(UserWarning):
    """A bag file ended early, held corrupt chunks or a damaged summary; the readable part was
    returned."""


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


@dataclass(frozen=True)
class SkippedChunk:
    """A chunk whose CRC did not match or that failed to decompress: skipped, reading went on."""

    offset: int                   # byte offset of the chunk record in the file
    size_bytes: int               # the whole record (opcode and length included)
    start_ns: int                 # log times of its first and last message (chunk header, or the
    end_ns: int                   # summary's chunk index when the summary is intact)
    messages: int | None          # from the message indexes written after it (None: none)
    reason: str


@dataclass
class FileReport:
    """How much of one storage file was read."""

    path: Path
    size_bytes: int
    read_bytes: int = 0                       # end of the last record read (or skipped)
    messages_read: int = 0
    messages_expected: int | None = None      # metadata.yaml's files[] (else the MCAP statistics)
    origin_ns: int | None = None              # the file's start (metadata.yaml, else first seen)
    expected_end_ns: int | None = None
    last_ns: int | None = None
    skipped: list[SkippedChunk] = field(default_factory=list)
    truncated: bool = False                   # reading stopped before the file's end
    error: str = ""                           # why it stopped
    summary_damaged: bool = False             # the summary/index section is not what was written
    summary_note: str = ""

    @property
    def corrupt_chunks(self) -> int:
        return len(self.skipped)

    @property
    def damaged(self) -> bool:
        return self.truncated or bool(self.skipped) or self.summary_damaged

    @property
    def unread_bytes(self) -> int:
        """Bytes whose content was not read: skipped chunks and whatever follows a stop."""
        tail = max(0, self.size_bytes - self.read_bytes) if self.truncated else 0
        return tail + sum(c.size_bytes for c in self.skipped)

    def _rel(self, ns: int) -> float:
        return (ns - (self.origin_ns if self.origin_ns is not None else ns)) / 1e9

    def describe(self) -> str:
        """One sentence saying what was lost."""
        parts = [f"{self.path.name}: read {self.messages_read} messages"]
        if self.messages_expected is not None:
            lost = max(0, self.messages_expected - self.messages_read)
            parts.append(f" of {self.messages_expected} ({lost} lost)")
        else:
            parts.append(" (metadata.yaml lacks this file's count: messages lost unknown)")
        if self.skipped:
            n = len(self.skipped)
            parts.append(f"; {n} corrupt chunk{'s' if n > 1 else ''} skipped, reading went on after "
                         f"{'them' if n > 1 else 'it'}: ")
            parts.append(", ".join(
                f"{c.size_bytes} bytes at byte {c.offset}, "
                f"{'messages unknown' if c.messages is None else f'{c.messages} messages'} from "
                f"{self._rel(c.start_ns):.3f} s to {self._rel(c.end_ns):.3f} s "
                f"({(c.end_ns - c.start_ns) / 1e9:.3f} s) [{c.reason}]"
                for c in self.skipped))
        if self.size_bytes:
            pct = 100.0 * self.unread_bytes / self.size_bytes
            parts.append(f"; {self.unread_bytes} of {self.size_bytes} bytes unreadable ({pct:.1f} %)")
        if self.truncated:
            parts.append(f"; stopped at byte {self.read_bytes}: {self.error or 'no footer'}")
            if self.expected_end_ns is not None and self.last_ns is not None:
                span = max(0, self.expected_end_ns - self.last_ns) / 1e9
                parts.append(f"; last {span:.3f} s of recorded time lost")
        if self.summary_damaged:
            parts.append(f"; {self.summary_note}")
        return "".join(parts)


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
                fr.origin_ns = _ns(meta.get("starting_time"), "nanoseconds_since_epoch")
                fr.expected_end_ns = fr.origin_ns + _ns(meta.get("duration"), "nanoseconds")
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
        summary = _SummaryCheck()

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
            counting: list[int] | None = None        # message counts of the chunk just skipped
            while True:
                start = stream.tell()
                try:
                    rec = next(records)
                except StopIteration:
                    break
                except (McapError, EOFError, struct.error, ValueError, OSError) as exc:
                    ends = isinstance(exc, (EOFError, struct.error)) or type(exc).__name__ == "EndOfFile"
                    if first:
                        raise BagError(f"{path} is not a readable MCAP file: "
                                       f"{_unreadable(exc, ends, fr.size_bytes)}") from None
                    why = ("the file ends inside a record" if ends
                           else f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                    if summary.data_end:           # the data section was complete
                        summary.damage(f"the summary section could not be read ({why} at byte "
                                       f"{fr.read_bytes})")
                    else:
                        fr.truncated = True
                        fr.error = why
                    break
                first = False
                if counting is not None and isinstance(rec, MessageIndex):
                    counting.append(len(rec.records))
                    fr.read_bytes = stream.tell()
                    continue
                if counting is not None:
                    self._close_skip(fr, counting)
                    counting = None
                if isinstance(rec, Chunk):
                    fr.origin_ns = rec.message_start_time if fr.origin_ns is None \
                        else min(fr.origin_ns, rec.message_start_time)
                    summary.chunks.add((start, stream.tell() - start))
                    try:
                        inner = breakup_chunk(rec, validate_crc=True)
                    except Exception as exc:  # CRC, decompression or record errors: skip the chunk
                        fr.skipped.append(SkippedChunk(
                            start, stream.tell() - start, rec.message_start_time, rec.message_end_time,
                            None, str(exc) or type(exc).__name__))
                        counting = []
                        fr.read_bytes = stream.tell()
                        continue
                    yield from convert(inner)
                else:
                    summary.note(rec)
                    yield from convert([rec])
                fr.read_bytes = stream.tell()
            if counting is not None:
                self._close_skip(fr, counting)
            if not fr.truncated and not summary.data_end:
                fr.truncated = True                  # records ended without a data end / footer
            summary.verify(stream, reader._footer, fr)
        if fr.messages_expected is None and summary.statistics is not None and not fr.summary_damaged:
            fr.messages_expected = int(summary.statistics.message_count)
        known_skipped = sum(c.messages or 0 for c in fr.skipped)
        if fr.messages_expected is not None and not fr.damaged \
                and fr.messages_read + known_skipped < fr.messages_expected:
            fr.truncated = True
            fr.error = (f"the file holds {fr.messages_read} messages, its description "
                        f"{fr.messages_expected}")

    @staticmethod
    def _close_skip(fr: FileReport, counts: list[int]) -> None:
        """The message indexes after a skipped chunk count its messages (none written: unknown)."""
        if counts:
            fr.skipped[-1] = replace(fr.skipped[-1], messages=sum(counts))

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


def _unreadable(exc: BaseException, ends: bool, size: int) -> str:
    """Why a file is not MCAP at all, never an empty reason."""
    if size == 0:
        return "it is empty (0 bytes)"
    if ends:
        return f"it ends inside its first record (the file has {size} bytes)"
    return f"{exc or type(exc).__name__} (the file has {size} bytes)"


class _SummaryCheck:
    """What the data section held, to check the summary section against (see verify)."""

    def __init__(self) -> None:
        self.data_end = False
        self.chunks: set[tuple[int, int]] = set()              # (offset, length) seen in the data
        self.indexed: set[tuple[int, int]] = set()             # ... listed by the chunk indexes
        self.index_times: dict[int, tuple[int, int]] = {}
        self.statistics: Statistics | None = None
        self.problems: list[str] = []

    def note(self, rec: Any) -> None:
        if isinstance(rec, DataEnd):
            self.data_end = True
        elif isinstance(rec, ChunkIndex):
            self.indexed.add((rec.chunk_start_offset, rec.chunk_length))
            self.index_times[rec.chunk_start_offset] = (rec.message_start_time, rec.message_end_time)
        elif isinstance(rec, Statistics):
            self.statistics = rec

    def damage(self, text: str) -> None:
        self.problems.append(text)

    def verify(self, stream: IO[bytes], footer: Footer | None, fr: FileReport) -> None:
        """The footer's summary CRC, then the chunk indexes and statistics against the data read;
        sets fr.summary_damaged with what was found. Intact: the skipped chunks' times are taken
        from the chunk indexes."""
        if footer is None:                   # stopped inside the summary (or before: truncated)
            footer = Footer(summary_start=0, summary_offset_start=0, summary_crc=0)
        end = fr.size_bytes - 8 - 4          # CRC'd: summary start .. footer's summary_offset_start
        if footer.summary_start and footer.summary_crc and 0 < footer.summary_start < end:
            stream.seek(footer.summary_start)
            crc = zlib.crc32(stream.read(end - footer.summary_start))
            if crc != footer.summary_crc:
                self.damage(f"the summary section (bytes {footer.summary_start}-{end}) fails its CRC "
                            f"(stored {footer.summary_crc:#010x}, computed {crc:#010x})")
        if footer.summary_start and self.indexed != self.chunks and not self.problems:
            self.damage(f"the summary's chunk index lists {len(self.indexed)} chunks, the data section "
                        f"holds {len(self.chunks)} others")
        known = fr.messages_read + sum(c.messages or 0 for c in fr.skipped)
        if self.statistics is not None and not self.problems \
                and all(c.messages is not None for c in fr.skipped) \
                and int(self.statistics.message_count) != known:
            self.damage(f"the summary's statistics count {self.statistics.message_count} messages, the "
                        f"data section holds {known}")
        if self.problems:
            fr.summary_damaged = True
            fr.summary_note = (
                "; ".join(self.problems) + ": damaged; read every message from the data section, but "
                "readers that seek with the index (Foxglove, rosbags, `mcap info`) may fail or miss "
                "messages: rewrite the file (e.g. `mcap recover`) to rebuild it")
        else:
            times = self.index_times
            fr.skipped[:] = [replace(c, start_ns=times[c.offset][0], end_ns=times[c.offset][1])
                             if c.offset in times else c for c in fr.skipped]


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
