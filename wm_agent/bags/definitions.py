"""ROS 2 message definitions (.msg text) for bags: found on disk, concatenated with dependencies.

A rosbag2 MCAP file embeds, per message type, the type's .msg text followed by the text of every
type it depends on (the ``ros2msg`` schema encoding of rosbag2 and Foxglove)::

    <text of pkg/msg/Type>
    ================================================================================
    MSG: dep_pkg/Dep
    <text of dep_pkg/msg/Dep>
    ...

The .msg files are looked up under ``<prefix>/share/<pkg>/msg/`` of every prefix on
``AMENT_PREFIX_PATH`` and of this Python's prefix (the PyPI wheels and the venv build install them
there), and in this checkout's ``msg/msg/`` for ``wm_agent_msgs``. Pure: no rclpy.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from wm_agent.errors import BagError

#: rosbag2's separator between the definitions of a type and of its dependencies.
SEPARATOR = "=" * 80
PRIMITIVES = frozenset({
    "bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
    "uint32", "int64", "uint64", "string", "wstring", "time", "duration",
})
_REPO_MSG = Path(__file__).resolve().parent.parent.parent / "msg"
_TYPE_RE = re.compile(r"^([A-Za-z_][\w]*)/(?:msg/)?([A-Za-z_]\w*)$")


def normalize_type(name: str) -> str:
    """``pkg/Type`` or ``pkg/msg/Type`` -> ``pkg/msg/Type`` (the rosbag2 / graph spelling)."""
    m = _TYPE_RE.match(name.strip())
    if not m:
        raise BagError(f"{name!r} is not a ROS 2 message type name (expected pkg/msg/Type)")
    return f"{m.group(1)}/msg/{m.group(2)}"


def short_type(name: str) -> str:
    """``pkg/msg/Type`` -> ``pkg/Type`` (the spelling inside ``MSG:`` sections)."""
    pkg, _, typ = normalize_type(name).split("/")
    return f"{pkg}/{typ}"


def default_search_dirs() -> list[Path]:
    """Folders holding ``<pkg>/msg/<Type>.msg``: ament prefixes' share/, this venv's share/."""
    dirs: list[Path] = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    dirs.append(Path(sys.prefix) / "share")
    seen: set[Path] = set()
    out = []
    for d in dirs:
        if d not in seen and d.is_dir():
            seen.add(d)
            out.append(d)
    return out


def fields(text: str, package: str) -> list[tuple[str, str]]:
    """The fields of one .msg text, in order, constants left out: (type, array suffix).

    The type is a primitive name (``float64``, ``string``) or ``pkg/msg/Type``; the suffix is
    ``""``, ``"[]"``, ``"[3]"`` or ``"[<=3]"``."""
    found: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        typ, rest = parts
        name = rest.split(None, 1)[0]
        if "=" in name or rest[len(name):].lstrip().startswith("="):   # constant: `uint8 A=1`, `A = 1`
            continue
        m = re.search(r"\[.*\]$", typ)                 # arrays: T[], T[3], T[<=3]
        array = m.group(0) if m else ""
        base = typ[: len(typ) - len(array)].split("<=", 1)[0]   # bounded strings: string<=8
        if base not in PRIMITIVES:
            base = normalize_type(base if "/" in base else f"{package}/{base}")
        found.append((base, array))
    return found


def field_types(text: str, package: str) -> list[str]:
    """Non-primitive field types (``pkg/msg/Type``) used by one .msg text, in order, unique."""
    found: list[str] = []
    for base, _ in fields(text, package):
        if base not in PRIMITIVES and base not in found:
            found.append(base)
    return found


class MessageDefinitions:
    """Finds .msg text of ROS 2 types and builds the full (dependency-including) definitions."""

    def __init__(self, search_dirs: Sequence[Path] | None = None, *, include_repo: bool = True) -> None:
        self.search_dirs = list(search_dirs) if search_dirs is not None else default_search_dirs()
        self.include_repo = include_repo
        self._text: dict[str, str] = {}

    def _candidates(self, msgtype: str) -> Iterable[Path]:
        pkg, _, typ = msgtype.split("/")
        for d in self.search_dirs:
            yield d / pkg / "msg" / f"{typ}.msg"
        if self.include_repo and pkg == "wm_agent_msgs":
            yield _REPO_MSG / "msg" / f"{typ}.msg"

    def msg_text(self, msgtype: str) -> str:
        """The .msg text of one type (no dependencies). Raises BagError naming where it looked."""
        msgtype = normalize_type(msgtype)
        if msgtype not in self._text:
            for path in self._candidates(msgtype):
                if path.is_file():
                    self._text[msgtype] = path.read_text()
                    break
            else:
                looked = ", ".join(str(p) for p in self._candidates(msgtype))
                raise BagError(
                    f"no .msg definition of {msgtype} found (looked in {looked}); install the "
                    f"package's share/ files or set AMENT_PREFIX_PATH to its install prefix"
                )
        return self._text[msgtype]

    def dependencies(self, msgtype: str) -> list[str]:
        """Every type `msgtype` depends on, depth first, each once (not `msgtype` itself)."""
        msgtype = normalize_type(msgtype)
        order: list[str] = []

        def visit(t: str) -> None:
            for dep in field_types(self.msg_text(t), t.split("/")[0]):
                if dep not in order and dep != msgtype:
                    order.append(dep)
                    visit(dep)

        visit(msgtype)
        return order

    def full_definition(self, msgtype: str) -> str:
        """The ros2msg schema text of `msgtype`: its .msg text, then each dependency's section."""
        msgtype = normalize_type(msgtype)
        parts = [self.msg_text(msgtype).rstrip("\n")]
        for dep in self.dependencies(msgtype):
            parts.append(f"{SEPARATOR}\nMSG: {short_type(dep)}\n{self.msg_text(dep).rstrip(chr(10))}")
        return "\n".join(parts) + "\n"

    def type_hash(self, msgtype: str) -> str:
        """The RIHS01 type hash from the installed ``<Type>.json``, or "" when none is installed."""
        pkg, _, typ = normalize_type(msgtype).split("/")
        for d in self.search_dirs:
            path = d / pkg / "msg" / f"{typ}.json"
            if path.is_file():
                try:
                    hashes = json.loads(path.read_text()).get("type_hashes", [])
                except (OSError, ValueError):
                    return ""
                for h in hashes:
                    if h.get("type_name") == normalize_type(msgtype):
                        return str(h.get("hash_string", ""))
        return ""
