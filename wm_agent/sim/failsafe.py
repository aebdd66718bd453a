"""Offboard-command failsafe with PX4 semantics, vectorised over the fleet.

Per drone, the age of the last *accepted* command (fresh, finite, not absurd) decides the mode:
age ≤ ``hold_after_s`` → OFFBOARD, > ``hold_after_s`` → HOLD (at the position where hold began),
> ``land_after_s`` → LAND. A rejected command (NaN/inf, or |v| / |yaw rate| above
``absurd_factor`` × the airframe limit) never reaches the controller: the drone holds at once,
an INVALID_COMMAND event is raised and its counter incremented. Accepted commands are clamped to
``max_speed`` (norm, direction kept) and ``max_yaw_rate``. PX4 equivalents: COM_OF_LOSS_T (hold
delay) and COM_OBL_RC_ACT (action after loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.sim.types import FlightMode

# Plain ints: IntEnum attribute lookups are slow in per-period code.
_OFFBOARD, _HOLD, _LAND = int(FlightMode.OFFBOARD), int(FlightMode.HOLD), int(FlightMode.LAND)


@dataclass(frozen=True)
class FailsafeConfig:
    """Failsafe timing.

    Attributes:
        hold_after_s: command age that triggers HOLD [s].
        land_after_s: command age that triggers LAND [s]; ``None`` = hold forever.
        absurd_factor: commands above this multiple of the airframe limits are rejected [-].
    """

    hold_after_s: float = 0.5
    land_after_s: float | None = 1.5
    absurd_factor: float = 10.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.hold_after_s) and self.hold_after_s > 0.0):
            raise ConfigError(f"failsafe: hold_after_s: expected > 0, got {self.hold_after_s!r}")
        if self.land_after_s is not None and not (
            math.isfinite(self.land_after_s) and self.land_after_s > self.hold_after_s
        ):
            raise ConfigError(
                f"failsafe: land_after_s: expected > hold_after_s ({self.hold_after_s}) or None, "
                f"got {self.land_after_s!r}"
            )
        if not (math.isfinite(self.absurd_factor) and self.absurd_factor >= 1.0):
            raise ConfigError(f"failsafe: absurd_factor: expected >= 1, got {self.absurd_factor!r}")


@dataclass(frozen=True)
class FailsafeOutput:
    """Result of one failsafe update (all (N,) unless stated).

    Attributes:
        mode: int8 :class:`FlightMode` per drone.
        cmd_vel: (N, 3) accepted, clamped velocity command [m/s] (zeros where none accepted).
        yaw_rate: accepted, clamped yaw-rate command [rad/s].
        accepted: a fresh command was accepted this period.
        rejected: a fresh command was rejected this period.
        entered_hold / entered_land / recovered: mode transitions this period (armed drones).
    """

    mode: NDArray[np.int8]
    cmd_vel: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    accepted: NDArray[np.bool_]
    rejected: NDArray[np.bool_]
    entered_hold: NDArray[np.bool_]
    entered_land: NDArray[np.bool_]
    recovered: NDArray[np.bool_]


class Failsafe:
    """Command gate and loss-of-command failsafe for N drones.

    Args:
        config: timing.
        max_speed: airframe speed limit [m/s].
        max_yaw_rate: airframe yaw-rate limit [rad/s].
        n: number of drones.
    """

    def __init__(self, config: FailsafeConfig, max_speed: float, max_yaw_rate: float, n: int):
        self.config = config
        self.max_speed = max_speed
        self.max_yaw_rate = max_yaw_rate
        self.reset(n)

    def reset(self, n: int) -> None:
        """Forget all commands: no drone has an accepted command yet."""
        self.last_accept = np.full(n, -np.inf)
        self.mode: NDArray[np.int8] = np.zeros(n, dtype=np.int8)
        self.reject_latch = np.zeros(n, dtype=bool)
        self.invalid_count = np.zeros(n, dtype=np.int64)
        self.hold_pos = np.zeros((n, 3))
        self.cmd_vel = np.zeros((n, 3))
        self.yaw_rate = np.zeros(n)

    def validate(
        self, cmd_vel: NDArray[np.float64], yaw_rate: NDArray[np.float64], fresh: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
        """Split fresh commands into (accepted, rejected) (N,) masks."""
        with np.errstate(invalid="ignore", over="ignore"):
            speed = np.sqrt(np.einsum("ij,ij->i", cmd_vel, cmd_vel))
            sane = (speed <= self.config.absurd_factor * self.max_speed) & (
                np.abs(yaw_rate) <= self.config.absurd_factor * self.max_yaw_rate
            )
        # NaN compares False, so `sane` is False for NaN; inf fails the bound.
        accepted = fresh & sane
        return accepted, fresh & ~accepted

    def update(
        self,
        cmd_vel: NDArray[np.float64],
        yaw_rate: NDArray[np.float64],
        fresh: NDArray[np.bool_],
        now: float,
        pos: NDArray[np.float64],
        armed: NDArray[np.bool_],
    ) -> FailsafeOutput:
        """Gate this period's commands and update each drone's mode.

        Args:
            cmd_vel: (N, 3) commanded velocity [m/s], ENU (any values, NaN included).
            yaw_rate: (N,) commanded yaw rate [rad/s].
            fresh: (N,) a new command arrived for this drone since the last period.
            now: sim time at the start of the period [s].
            pos: (N, 3) current positions [m] (hold points are taken from it).
            armed: (N,) drones the failsafe applies to (armed, not collided), after arming.

        Returns:
            The modes, the gated commands and the transition masks.
        """
        cfg = self.config
        accepted, rejected = self.validate(cmd_vel, yaw_rate, fresh)
        self.invalid_count += rejected
        self.last_accept[accepted] = now
        self.reject_latch[accepted] = False
        self.reject_latch[rejected] = True
        if accepted.any():
            v = cmd_vel[accepted]
            speed = np.sqrt(np.einsum("ij,ij->i", v, v))
            v = v * np.minimum(1.0, self.max_speed / np.maximum(speed, 1e-12))[:, None]
            self.cmd_vel[accepted] = v
            self.yaw_rate[accepted] = np.clip(
                yaw_rate[accepted], -self.max_yaw_rate, self.max_yaw_rate
            )

        age = now - self.last_accept
        mode: NDArray[np.int8] = np.full(age.shape[0], _OFFBOARD, dtype=np.int8)
        mode[(age > cfg.hold_after_s) | self.reject_latch] = _HOLD
        if cfg.land_after_s is not None:
            mode[age > cfg.land_after_s] = _LAND
        mode[~armed] = _OFFBOARD

        prev = self.mode
        entered_hold = (mode == _HOLD) & (prev != _HOLD)
        entered_land = (mode == _LAND) & (prev != _LAND)
        recovered = (mode == _OFFBOARD) & (prev != _OFFBOARD) & armed
        entering = entered_hold | entered_land
        self.hold_pos[entering] = pos[entering]
        self.mode = mode
        offboard = mode == _OFFBOARD
        return FailsafeOutput(
            mode=mode,
            cmd_vel=np.where(offboard[:, None], self.cmd_vel, 0.0),
            yaw_rate=np.where(offboard, self.yaw_rate, 0.0),
            accepted=accepted,
            rejected=rejected,
            entered_hold=entered_hold,
            entered_land=entered_land,
            recovered=recovered,
        )
