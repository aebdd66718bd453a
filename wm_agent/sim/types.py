"""Value types shared by the simulator core and the ROS node: status flags, events, state."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


class StatusFlag(enum.IntFlag):
    """Per-drone status bits (stored as ``uint16`` in :class:`FleetStateArrays`).

    GROUNDED and FLYING are exclusive; COLLIDED implies GROUNDED and never clears.
    """

    FLYING = 1 << 0
    GROUNDED = 1 << 1
    COLLIDED = 1 << 2
    FAILSAFE_HOLD = 1 << 3
    FAILSAFE_LAND = 1 << 4
    ARMED = 1 << 5


class EventKind(enum.Enum):
    """What a :class:`SimEvent` reports."""

    COLLISION = "collision"
    FAILSAFE_HOLD = "failsafe_hold"
    FAILSAFE_LAND = "failsafe_land"
    INVALID_COMMAND = "invalid_command"
    LANDED = "landed"
    RECOVERED = "recovered"


class FlightMode(enum.IntEnum):
    """Controller mode per drone (what the failsafe hands to the controller)."""

    OFFBOARD = 0  # track the commanded velocity / yaw rate
    HOLD = 1  # hold the stored position
    LAND = 2  # hold x/y, descend at the airframe's land speed, disarm on touchdown


@dataclass(frozen=True)
class SimEvent:
    """One discrete event.

    Attributes:
        kind: what happened.
        drone_id: index of the drone concerned.
        other_id: the other drone of a drone–drone collision, else -1.
        position: (3,) drone position at the event [m], ENU map frame.
        time: sim time of the event [s].
        detail: human-readable specifics (obstacle name, touchdown speed, rejected value).
    """

    kind: EventKind
    drone_id: int
    other_id: int
    position: tuple[float, float, float]
    time: float
    detail: str = ""


@dataclass(frozen=True)
class FleetStateArrays:
    """Read-only snapshot of the whole fleet (arrays are copies with ``writeable=False``).

    Attributes:
        time: sim time [s].
        ids: (N,) int32 drone indices.
        pos: (N, 3) float64 position [m], ENU map frame (body origin = centre of mass).
        vel: (N, 3) float64 velocity [m/s], ENU.
        quat: (N, 4) float64 attitude quaternion (x, y, z, w), body→map.
        body_rates: (N, 3) float64 angular velocity in the body frame [rad/s].
        status: (N,) uint16 :class:`StatusFlag` bits.
        invalid_commands: (N,) int64 count of rejected (non-finite / absurd) commands.
    """

    time: float
    ids: NDArray[np.int32]
    pos: NDArray[np.float64]
    vel: NDArray[np.float64]
    quat: NDArray[np.float64]
    body_rates: NDArray[np.float64]
    status: NDArray[np.uint16]
    invalid_commands: NDArray[np.int64]

    def has(self, flag: StatusFlag) -> NDArray[np.bool_]:
        """(N,) bool: drones whose status includes ``flag``."""
        return (self.status & np.uint16(flag)) != 0
