"""Validation of incoming task requests.

:func:`validate_task` is pure: it returns a :class:`Rejection` (machine code + human reason
naming the field and its value) or None, and never changes any state, so a rejected request
leaves the coordinator exactly as it was.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from wm_agent.fleet.layout import Layout
from wm_agent.fleet.tasks import TaskSpec

#: Longest accepted task id [characters].
MAX_ID_LEN = 64


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

    Checks, in order: BAD_ID (empty, > 64 characters, non-printable or not a str),
    DUPLICATE_ID (in ``known_ids``, which includes finished tasks), BAD_PRIORITY (not an
    int in 0..255), NON_FINITE (payload, deadline or pickup xyz not finite; payload < 0),
    UNKNOWN_STATION (pickup not a pick station, dropoff not a drop station),
    OUT_OF_GEOFENCE (pickup xyz outside the box), PAYLOAD_TOO_HEAVY (> layout limit [kg]),
    DEADLINE_PASSED (deadline ≤ ``now_s`` [s]).
    """
    tid = spec.task_id
    if not isinstance(tid, str) or not tid or len(tid) > MAX_ID_LEN or not tid.isprintable():
        return Rejection(
            RejectCode.BAD_ID,
            f"task_id={tid!r} must be a non-empty printable string of at most "
            f"{MAX_ID_LEN} characters",
        )
    if tid in known_ids:
        return Rejection(RejectCode.DUPLICATE_ID, f"task_id={tid!r} was already submitted")
    pri = spec.priority
    if not isinstance(pri, int | np.integer) or isinstance(pri, bool) or not 0 <= pri <= 255:
        return Rejection(RejectCode.BAD_PRIORITY, f"priority={pri!r} must be an int in 0..255")
    if not _is_number(spec.payload_kg) or not math.isfinite(spec.payload_kg):
        return Rejection(
            RejectCode.NON_FINITE, f"payload_kg={spec.payload_kg!r} must be a finite number [kg]"
        )
    if spec.payload_kg < 0.0:
        return Rejection(RejectCode.NON_FINITE, f"payload_kg={spec.payload_kg!r} must be ≥ 0 [kg]")
    if spec.deadline_s is not None and (
        not _is_number(spec.deadline_s) or not math.isfinite(spec.deadline_s)
    ):
        return Rejection(
            RejectCode.NON_FINITE,
            f"deadline_s={spec.deadline_s!r} must be a finite time [s] or None",
        )
    pickup_xyz = None
    if isinstance(spec.pickup, str):
        if spec.pickup not in layout.pick_stations:
            return Rejection(
                RejectCode.UNKNOWN_STATION,
                f"pickup={spec.pickup!r} is not a pick station; known: "
                f"{list(layout.pick_stations)}",
            )
    else:
        try:
            pickup_xyz = np.array(spec.pickup, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            pickup_xyz = None
        if pickup_xyz is None or pickup_xyz.shape != (3,) or not np.all(np.isfinite(pickup_xyz)):
            return Rejection(
                RejectCode.NON_FINITE,
                f"pickup={spec.pickup!r} must be a station name or three finite numbers [m]",
            )
    if not isinstance(spec.dropoff, str) or spec.dropoff not in layout.drop_stations:
        return Rejection(
            RejectCode.UNKNOWN_STATION,
            f"dropoff={spec.dropoff!r} is not a drop station; known: {list(layout.drop_stations)}",
        )
    if pickup_xyz is not None and not layout.contains(pickup_xyz)[0]:
        return Rejection(
            RejectCode.OUT_OF_GEOFENCE,
            f"pickup={pickup_xyz.tolist()} [m] is outside the geofence "
            f"{layout.geofence_min.tolist()}..{layout.geofence_max.tolist()}",
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
