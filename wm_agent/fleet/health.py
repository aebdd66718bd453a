"""Vectorised drone liveness and epochs.

Each known drone has a row: last-seen time [s], status (ACTIVE / LOST) and two epochs.
``epoch`` grows by one on every registration, every new assignment and every loss, so a
command or report tagged with an older epoch is recognisably stale. ``min_epoch`` is the
epoch given at the last :meth:`FleetHealth.register`: observations carrying an epoch
below it come from before the drone was (re)registered and are ignored. A LOST drone is
ignored altogether until it is registered again.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import FleetError

IntArray = NDArray[np.int64]


class DroneStatus(IntEnum):
    """Liveness of a drone (values go on the wire: never renumber)."""

    ACTIVE = 0
    LOST = 1


class FleetHealth:
    """Arrays of per-drone liveness, indexed by registration order (row = index)."""

    def __init__(self, lost_after_s: float) -> None:
        """Create an empty table; a drone silent for ``lost_after_s`` [s] becomes LOST."""
        if not lost_after_s > 0.0:
            raise FleetError(f"lost_after_s must be > 0 [s], got {lost_after_s}")
        self.lost_after_s = float(lost_after_s)
        self.ids: IntArray = np.zeros(0, np.int64)
        self.last_seen_s: NDArray[np.float64] = np.zeros(0)
        self.status: NDArray[np.uint8] = np.zeros(0, np.uint8)
        self.epoch: IntArray = np.zeros(0, np.int64)
        self.min_epoch: IntArray = np.zeros(0, np.int64)
        self._sorted_ids: IntArray = np.zeros(0, np.int64)
        self._sorted_rows: IntArray = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(self.ids.size)

    def rows_of(self, drone_ids: NDArray[np.integer] | list[int]) -> IntArray:
        """Return the row of each id in ``drone_ids`` (-1 where unknown), vectorised."""
        ids = np.asarray(drone_ids, dtype=np.int64).reshape(-1)
        if self._sorted_ids.size == 0:
            return np.full(ids.size, -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted_ids, ids), self._sorted_ids.size - 1)
        found = self._sorted_ids[pos] == ids
        rows: IntArray = np.where(found, self._sorted_rows[pos], -1)
        return rows

    def row_of(self, drone_id: int) -> int:
        """Row of one drone; FleetError if it was never registered."""
        row = int(self.rows_of([drone_id])[0])
        if row < 0:
            raise FleetError(f"drone {drone_id} is not registered; call register() first")
        return row

    def add(self, drone_ids: IntArray, t_s: float, epoch: IntArray | None = None) -> IntArray:
        """Append unknown ``drone_ids`` as ACTIVE, last seen ``t_s`` [s]; return their rows.

        ``epoch`` (restored from a ledger) sets both epochs; new drones start at epoch 1.
        """
        ids = np.asarray(drone_ids, dtype=np.int64).reshape(-1)
        if np.unique(ids).size != ids.size or np.any(self.rows_of(ids) >= 0):
            raise FleetError(f"drone ids {ids.tolist()[:10]} are duplicated or already known")
        ep = np.ones(ids.size, np.int64) if epoch is None else np.asarray(epoch, np.int64)
        first = self.ids.size
        self.ids = np.concatenate([self.ids, ids])
        self.last_seen_s = np.concatenate([self.last_seen_s, np.full(ids.size, t_s)])
        self.status = np.concatenate(
            [self.status, np.full(ids.size, DroneStatus.ACTIVE, np.uint8)]
        )
        self.epoch = np.concatenate([self.epoch, ep])
        self.min_epoch = np.concatenate([self.min_epoch, ep])
        order = np.argsort(self.ids, kind="stable")
        self._sorted_ids, self._sorted_rows = self.ids[order], order.astype(np.int64)
        return np.arange(first, self.ids.size, dtype=np.int64)

    def register(self, drone_id: int, t_s: float) -> int:
        """(Re)register a drone: ACTIVE, seen now, new epoch; return that epoch."""
        row = int(self.rows_of([drone_id])[0])
        if row < 0:
            row = int(self.add(np.array([drone_id]), t_s)[0])
            return int(self.epoch[row])
        self.epoch[row] += 1
        self.min_epoch[row] = self.epoch[row]
        self.status[row] = DroneStatus.ACTIVE
        self.last_seen_s[row] = t_s
        return int(self.epoch[row])

    def heard(
        self, rows: IntArray, t_s: float, epochs: NDArray[np.integer] | None = None
    ) -> NDArray[np.bool_]:
        """Record that ``rows`` were heard at ``t_s`` [s]; return which were accepted.

        Rejected (not accepted): LOST drones and, when ``epochs`` is given, epochs below
        the drone's ``min_epoch`` (stale: from before its last registration).
        """
        ok = self.status[rows] == DroneStatus.ACTIVE
        if epochs is not None:
            ok &= np.asarray(epochs, np.int64) >= self.min_epoch[rows]
        acc = rows[ok]
        self.last_seen_s[acc] = np.maximum(self.last_seen_s[acc], t_s)
        return ok

    def silent(self, t_s: float) -> IntArray:
        """Rows of ACTIVE drones silent for more than ``lost_after_s`` at ``t_s`` [s] (no change:
        :meth:`mark_lost` them once the loss is persisted)."""
        out: IntArray = np.nonzero(
            (self.status == DroneStatus.ACTIVE) & (t_s - self.last_seen_s > self.lost_after_s)
        )[0].astype(np.int64)
        return out

    def mark_lost(self, rows: IntArray) -> None:
        """Mark ``rows`` LOST (epoch + 1: their commands and reports are stale from now)."""
        self.status[rows] = DroneStatus.LOST
        self.epoch[rows] += 1

    def active_mask(self) -> NDArray[np.bool_]:
        """(N,) True for ACTIVE drones."""
        out: NDArray[np.bool_] = self.status == DroneStatus.ACTIVE
        return out
