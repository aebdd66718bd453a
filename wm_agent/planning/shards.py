"""Which drones a fleet-planner shard plans (pure; no rclpy).

K planner processes share a fleet: shard ``k`` plans the drones with ``id % K == k``, sees
every drone of the fleet state as a neighbour, and publishes a FleetCommand with its own
drones only; the sim bridge (or a hardware bridge) merges the partial commands by drone id and
fails safe per drone (docs/ARCHITECTURE.md, "Sharded planning").

By id, not by space: every shard has to read the whole FleetState anyway (a drone near a
shard's border needs the neighbours on the other side), so a spatial split saves no input;
an id split is balanced to one drone for any layout (a spatial one follows where the drones
are: at the pads at the start, at the stations later), and a drone never changes shard, so its
warm start and PID state stay in one process and nothing is handed over mid-flight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (``count`` = 1: one planner plans every drone)."""

    count: int = 1
    index: int = 0

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError(f"planner shards: count must be >= 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ConfigError(f"planner shards: index must be in 0..{self.count - 1}, got "
                              f"{self.index}")

    def mine(self, ids: NDArray[np.integer]) -> NDArray[np.bool_]:
        """(N,) which of the drone ``ids`` this shard plans."""
        ids64 = np.asarray(ids, np.int64)
        if self.count == 1:
            return np.ones(ids64.shape, bool)
        out: NDArray[np.bool_] = ids64 % self.count == self.index
        return out
