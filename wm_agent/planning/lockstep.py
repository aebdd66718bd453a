"""Lockstep pairing of fleet states with the assignments computed from them (pure, no rclpy).

In a lockstep run the coordinator answers each fleet state with assignments stamped with that
state's time, and the fleet planner answers the state only with them, so a run is a function of
its seed. FleetState is best effort: a state the coordinator never received gets no
assignments, and waiting for them would stall the run for good. Once assignments for a *later*
state arrive the missing ones cannot come any more (the coordinator answers in time order), so
the earlier states are answered with the latest table before them (counted as ``superseded``).
"""

from __future__ import annotations

from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")


class LockstepPairing(Generic[S, T]):
    """Pairs states and tables by stamp [ns], in time order.

    Args:
        empty: the table used before any arrived (e.g. "no goals").
        max_pending: states kept waiting at most (the oldest are answered with the current
            table beyond it: a coordinator that is down must not grow this without bound).
    """

    def __init__(self, empty: T, max_pending: int = 1000) -> None:
        self.current: T = empty
        self.max_pending = max_pending
        self._states: dict[int, S] = {}
        self._tables: dict[int, T] = {}
        self.superseded = 0

    def add_state(self, stamp_ns: int, state: S) -> list[tuple[S, T]]:
        """A fleet state arrived; returns the (state, table) pairs now ready, in time order."""
        self._states[stamp_ns] = state
        return self._ready()

    def add_table(self, stamp_ns: int, table: T) -> list[tuple[S, T]]:
        """Assignments stamped ``stamp_ns`` arrived; returns the pairs now ready."""
        self._tables[stamp_ns] = table
        return self._ready()

    @property
    def waiting(self) -> int:
        """States waiting for their assignments."""
        return len(self._states)

    def _ready(self) -> list[tuple[S, T]]:
        out: list[tuple[S, T]] = []
        newest = max(self._tables, default=None)
        for ns in sorted(self._states):
            table = self._tables.get(ns)
            if table is None:
                overflow = len(self._states) > self.max_pending
                if not overflow and (newest is None or newest < ns):
                    break  # its assignments may still come
                self.superseded += 1
                table = self.current
            self.current = table
            out.append((self._states.pop(ns), table))
            for old in [k for k in self._tables if k <= ns]:
                del self._tables[old]
        return out
