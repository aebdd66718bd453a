"""Latest command per drone, freshness, and the lockstep gate of the sim bridge (pure, no rclpy).

The sim bridge node converts each FleetCommand / TwistStamped once and hands the arrays here;
the simulator takes `(cmd_vel, yaw_rate, fresh)` once per control period from :meth:`take`.

Lockstep: the bridge advances period k once every *expected* drone has a command for k (a
command carrying ``step >= k``), or a wall-clock timeout passed. Expected drones are those that
commanded in the previous period; a drone that misses a timeout is dropped from the expected set
(so one dead commander costs one timeout, not one per period) and rejoins with its next command.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import SimError


class CommandMode(IntEnum):
    """Per-drone mode of a FleetCommand (values as in wm_agent_msgs/FleetCommand)."""

    VELOCITY = 0
    HOLD = 1
    LAND = 2
    TAKEOFF = 3


class CommandBuffer:
    """Holds the newest command of each of `n` drones.

    Args:
        n: number of drones (ids 0..n-1).
        land_speed: descent speed used for MODE_LAND [m/s].
        takeoff_speed: climb speed used for MODE_TAKEOFF [m/s].
    """

    def __init__(self, n: int, land_speed: float, takeoff_speed: float) -> None:
        if n < 1:
            raise SimError(f"command buffer: need at least one drone, got {n}")
        self.n = n
        self.land_speed = float(land_speed)
        self.takeoff_speed = float(takeoff_speed)
        self.cmd_vel = np.zeros((n, 3), dtype=np.float64)
        self.yaw_rate = np.zeros(n, dtype=np.float64)
        self.fresh = np.zeros(n, dtype=bool)
        self.last_step = np.full(n, -1, dtype=np.int64)     # newest `step` commanded per drone
        self.expected = np.zeros(n, dtype=bool)             # lockstep: drones we wait for
        self.unknown_ids = 0                                # commands for ids >= n (dropped)
        self.bad_modes = 0                                  # commands with an unknown mode

    def submit(
        self,
        ids: NDArray[np.integer],
        velocity: NDArray[np.floating],
        yaw_rate: NDArray[np.floating],
        mode: NDArray[np.integer],
        step: int = 0,
    ) -> None:
        """Record commands for `ids`: velocity (k, 3) [m/s], yaw_rate (k,) [rad/s], mode (k,).

        Non-finite values are stored as they are: the simulator's failsafe must see, count and
        reject them. Unknown ids and modes are dropped and counted.
        """
        ids = np.asarray(ids, dtype=np.int64)
        k = ids.shape[0]
        velocity = np.asarray(velocity, dtype=np.float64).reshape(k, 3)
        yaw_rate = np.asarray(yaw_rate, dtype=np.float64).reshape(k)
        mode = np.asarray(mode, dtype=np.int64).reshape(k)
        ok = (ids >= 0) & (ids < self.n)
        self.unknown_ids += int(np.count_nonzero(~ok))
        known_mode = (mode >= CommandMode.VELOCITY) & (mode <= CommandMode.TAKEOFF)
        self.bad_modes += int(np.count_nonzero(ok & ~known_mode))
        ok &= known_mode
        ids, velocity, yaw_rate, mode = ids[ok], velocity[ok].copy(), yaw_rate[ok].copy(), mode[ok]
        hold = mode == CommandMode.HOLD
        velocity[hold] = 0.0
        yaw_rate[hold] = 0.0
        land = mode == CommandMode.LAND
        velocity[land] = (0.0, 0.0, -self.land_speed)
        yaw_rate[land] = 0.0
        takeoff = mode == CommandMode.TAKEOFF
        velocity[takeoff] = (0.0, 0.0, self.takeoff_speed)
        yaw_rate[takeoff] = 0.0
        self.cmd_vel[ids] = velocity
        self.yaw_rate[ids] = yaw_rate
        self.fresh[ids] = True
        self.last_step[ids] = np.maximum(self.last_step[ids], step)
        self.expected[ids] = True

    def ready(self, step: int) -> bool:
        """Lockstep: has every expected drone commanded period `step`?"""
        return bool(np.all(self.last_step[self.expected] >= step))

    def missing(self, step: int) -> NDArray[np.intp]:
        """Expected drones without a command for `step` (for the timeout path)."""
        return np.flatnonzero(self.expected & (self.last_step < step))

    def take(
        self, step: int | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        """Commands for the next period and which rows are fresh; clears freshness.

        With `step` (lockstep), drones that did not command `step` are dropped from the expected
        set until they command again.
        """
        fresh = self.fresh.copy()
        self.fresh[:] = False
        if step is not None:
            self.expected &= self.last_step >= step
        return self.cmd_vel.copy(), self.yaw_rate.copy(), fresh
