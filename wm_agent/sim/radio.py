"""The radio links between the simulated drones and the ground (pure; the sim bridge asks it).

A dropout takes one drone's link down for a window of sim time: nothing it sends arrives (its
fleet-state row, its odometry) and nothing sent to it arrives (fleet commands, cmd_vel). When
the link comes back the drone registers again with the coordinator (which ignores a drone it
marked LOST until then) — :meth:`RadioDropout.restored` says when.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError


@dataclass(frozen=True)
class RadioDropout:
    """Drone ``drone``'s radio is down for ``start_s <= t < end_s`` [s sim time] (-1: none)."""

    drone: int = -1
    start_s: float = 0.0
    end_s: float = 0.0

    def __post_init__(self) -> None:
        if self.drone >= 0 and not (np.isfinite(self.start_s) and self.end_s >= self.start_s):
            raise ConfigError(f"radio dropout: need a finite start <= end [s], got "
                              f"{self.start_s}, {self.end_s}")

    def down(self, drone: int, t_s: float) -> bool:
        """Is ``drone``'s link down at ``t_s``?"""
        return drone == self.drone >= 0 and self.start_s <= t_s < self.end_s

    def up(self, ids: NDArray[np.integer], t_s: float) -> NDArray[np.bool_]:
        """(N,) True where drone ``ids[k]``'s link carries messages at ``t_s``."""
        out: NDArray[np.bool_] = np.ones(np.shape(ids), dtype=bool)
        if self.drone >= 0 and self.start_s <= t_s < self.end_s:
            out &= np.asarray(ids) != self.drone
        return out

    def was_down(self, drone: int, t0_s: float, t1_s: float) -> bool:
        """Was ``drone``'s link down at any time in [t0_s, t1_s] [s]?"""
        return (drone == self.drone >= 0 and self.end_s > self.start_s
                and self.start_s <= t1_s and self.end_s > t0_s)

    def restored(self, t0_s: float, t1_s: float) -> list[int]:
        """Drones whose link came back in (t0_s, t1_s] [s]: they register again."""
        if self.drone >= 0 and t0_s < self.end_s <= t1_s and self.end_s > self.start_s:
            return [self.drone]
        return []
