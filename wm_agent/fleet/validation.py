"""Validation of incoming task requests.

:func:`validate_task` is pure: it returns a :class:`Rejection` (machine code + human reason
naming the field and its value) or None, and never changes any state, so a rejected request
leaves the coordinator exactly as it was.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from wm_agent.fleet.layout import Layout
from wm_agent.fleet.tasks import TaskSpec

#: Longest accepted task id [characters].
MAX_ID_LEN = 64

#: Task.msg's own rule for ids: ASCII letters, digits, ``_``, ``.``, ``-``; 1..64 characters.
TASK_ID_PATTERN = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_ID_LEN}}}")

#: Longest piece of a submitted value echoed back in a reason [characters].
MAX_ECHO = 80


def show(value: object, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` for a reason, cut to ``limit`` characters (a 1 MB id is not echoed)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters shown"
    return f"{text[:limit]}… ({size})"


class RejectCode(IntEnum):
    """Why a task was rejected (values go on the wire: never renumber). 0 means accepted."""

    OK = 0
    NON_FINITE = 1
    OUT_OF_GEOFENCE = 2
    UNKNOWN_STATION = 3
    PAYLOAD_TOO_HEAVY = 4
    DUPLICATE_ID = 5
    DEADLINE_PASSED = 6
    BAD_ID = 7
    BAD_PRIORITY = 8
    INTERNAL = 9
    BAD_DEADLINE = 10
    BLOCKED = 11
    BAD_FRAME = 12
    QUEUE_FULL = 13


@dataclass(frozen=True)
class Rejection:
    """A rejected request: ``code`` for machines, ``reason`` (names field and value) for people."""

    code: RejectCode
    reason: str


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def validate_task(
    spec: TaskSpec, *, layout: Layout, known_ids: Container[str], now_s: float
) -> Rejection | None:
    """Check ``spec`` against ``layout``; return the first problem found, or None.

    Checks, in order: BAD_ID (not ``[A-Za-z0-9_.-]{1,64}``, Task.msg's rule), DUPLICATE_ID
    (in ``known_ids``, which includes finished tasks), BAD_PRIORITY (not an int in 0..255),
    NON_FINITE (payload, deadline or pickup xyz not finite; payload < 0), UNKNOWN_STATION
    (pickup not a pick station, dropoff not a drop station), OUT_OF_GEOFENCE (pickup xyz outside
    the box), BLOCKED (pickup xyz inside a shelf), PAYLOAD_TOO_HEAVY (> layout limit [kg]),
    DEADLINE_PASSED (deadline ≤ ``now_s`` [s]). Reasons echo at most :data:`MAX_ECHO`
    characters of a submitted value.
    """
    tid = spec.task_id
    if not isinstance(tid, str) or not TASK_ID_PATTERN.fullmatch(tid):
        return Rejection(
            RejectCode.BAD_ID,
            f"task_id={show(tid)} must be 1 to {MAX_ID_LEN} ASCII letters, digits, '_', '.' "
            "or '-'",
        )
    if tid in known_ids:
        return Rejection(RejectCode.DUPLICATE_ID, f"task_id={tid!r} was already submitted "
                         "with other content")
    pri = spec.priority
    if not isinstance(pri, int | np.integer) or isinstance(pri, bool) or not 0 <= pri <= 255:
        return Rejection(RejectCode.BAD_PRIORITY, f"priority={show(pri)} must be an int in 0..255")
    if not _is_number(spec.payload_kg) or not math.isfinite(spec.payload_kg):
        return Rejection(
            RejectCode.NON_FINITE, f"payload_kg={show(spec.payload_kg)} must be a finite number [kg]"
        )
    if spec.payload_kg < 0.0:
        return Rejection(RejectCode.NON_FINITE, f"payload_kg={spec.payload_kg!r} must be ≥ 0 [kg]")
    if spec.deadline_s is not None and (
        not _is_number(spec.deadline_s) or not math.isfinite(spec.deadline_s)
    ):
        return Rejection(
            RejectCode.NON_FINITE,
            f"deadline_s={show(spec.deadline_s)} must be a finite time [s] or None",
        )
    pickup_xyz = None
    if isinstance(spec.pickup, str):
        if spec.pickup not in layout.pick_stations:
            return Rejection(
                RejectCode.UNKNOWN_STATION,
                f"pickup={show(spec.pickup)} is not a pick station; known: "
                f"{show(list(layout.pick_stations), 4 * MAX_ECHO)}",
            )
    else:
        try:
            pickup_xyz = np.array(spec.pickup, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            pickup_xyz = None
        if pickup_xyz is None or pickup_xyz.shape != (3,) or not np.all(np.isfinite(pickup_xyz)):
            return Rejection(
                RejectCode.NON_FINITE,
                f"pickup={show(spec.pickup)} must be a station name or three finite numbers [m]",
            )
    if not isinstance(spec.dropoff, str) or spec.dropoff not in layout.drop_stations:
        return Rejection(
            RejectCode.UNKNOWN_STATION,
            f"dropoff={show(spec.dropoff)} is not a drop station; known: "
            f"{show(list(layout.drop_stations), 4 * MAX_ECHO)}",
        )
    if pickup_xyz is not None and not layout.contains(pickup_xyz)[0]:
        return Rejection(
            RejectCode.OUT_OF_GEOFENCE,
            f"pickup={pickup_xyz.tolist()} [m] is outside the geofence "
            f"{layout.geofence_min.tolist()}..{layout.geofence_max.tolist()}",
        )
    if pickup_xyz is not None and layout.blocked(pickup_xyz)[0]:
        return Rejection(
            RejectCode.BLOCKED,
            f"pickup={pickup_xyz.tolist()} [m] is inside a shelf (or within "
            f"{layout.clearance_m} m of one): no drone can reach it",
        )
    if spec.payload_kg > layout.max_payload_kg:
        return Rejection(
            RejectCode.PAYLOAD_TOO_HEAVY,
            f"payload_kg={spec.payload_kg} exceeds the limit {layout.max_payload_kg} [kg]",
        )
    if spec.deadline_s is not None and spec.deadline_s <= now_s:
        return Rejection(
            RejectCode.DEADLINE_PASSED,
            f"deadline_s={spec.deadline_s} is not after now={now_s} [s]",
        )
    return None
