"""Wall time per pipeline stage, per node: what each node spends, per sim second (issue 12).

Every node of the fleet graph times its own stages with a :class:`StageTimer` (physics,
observations, plan, serialise, ...) and publishes the times once per sim second on
/fleet/stage_times (wm_agent_msgs/StageTimes: node, stage names, wall ms, calls, the sim time
covered). :func:`per_sim_second` sums reports (live in the monitor, from the bag in the run
summary) into milliseconds of wall time per sim second of each (node, stage): the budget a
fleet size costs, and where it goes. Pure Python: no rclpy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class StageReport:
    """One node's stage times over ``sim_s`` sim seconds."""

    node: str
    stages: tuple[str, ...]
    wall_ms: tuple[float, ...]
    calls: tuple[int, ...]
    sim_s: float


class StageTimer:
    """Accumulates wall time per named stage until :meth:`take`."""

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}
        self._calls: dict[str, int] = {}

    def add(self, stage: str, ms: float, calls: int = 1) -> None:
        """Count ``ms`` milliseconds (``calls`` calls) to ``stage``."""
        self._ms[stage] = self._ms.get(stage, 0.0) + float(ms)
        self._calls[stage] = self._calls.get(stage, 0) + int(calls)

    def add_all(self, ms: dict[str, float]) -> None:
        """Count one call to each stage of ``ms`` (name → milliseconds)."""
        for stage, v in ms.items():
            self.add(stage, v)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a ``with`` block as one call to ``name``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t0) * 1e3)

    def take(self, node: str, sim_s: float) -> StageReport:
        """The stages timed since the last take (covering ``sim_s`` sim seconds), and reset."""
        names = tuple(self._ms)
        report = StageReport(node, names, tuple(self._ms[n] for n in names),
                             tuple(self._calls[n] for n in names), float(sim_s))
        self._ms, self._calls = {}, {}
        return report


class PeriodicReports:
    """A node's :class:`StageTimer` cut into reports every ``period_s`` of sim time: the node
    calls :meth:`tick` with the sim time of the data it just handled (no timer: a lockstep
    run's sim seconds can take many wall seconds)."""

    def __init__(self, node: str, period_s: float = 1.0) -> None:
        self.node = node
        self.period_s = period_s
        self.timer = StageTimer()
        self._since: float | None = None

    def tick(self, sim_s: float) -> StageReport | None:
        """The stage times since the last report once ``period_s`` sim seconds passed, else
        None."""
        if self._since is None or sim_s < self._since - self.period_s:
            self._since = sim_s  # first data, or sim time went back a period (a new run)
            self.timer.take(self.node, 0.0)
            return None
        if sim_s - self._since < self.period_s:  # also data stamped a little before the report
            return None
        report = self.timer.take(self.node, sim_s - self._since)
        self._since = sim_s
        return report


@dataclass(frozen=True)
class StageBudget:
    """Wall milliseconds per sim second of one (node, stage), and calls per sim second."""

    node: str
    stage: str
    ms_per_sim_s: float
    calls_per_sim_s: float


def per_sim_second(reports: Iterable[StageReport]) -> list[StageBudget]:
    """Sum reports into wall ms per sim second for each (node, stage), biggest first.

    A node's sim time is the sum of its reports' ``sim_s``; a node that covered no sim time
    (only reports at t = 0) is left out."""
    ms: dict[tuple[str, str], float] = {}
    calls: dict[tuple[str, str], int] = {}
    covered: dict[str, float] = {}
    for r in reports:
        covered[r.node] = covered.get(r.node, 0.0) + max(r.sim_s, 0.0)
        for name, v, c in zip(r.stages, r.wall_ms, r.calls, strict=True):
            ms[(r.node, name)] = ms.get((r.node, name), 0.0) + v
            calls[(r.node, name)] = calls.get((r.node, name), 0) + c
    out = [StageBudget(node, stage, v / covered[node], calls[(node, stage)] / covered[node])
           for (node, stage), v in ms.items() if covered.get(node, 0.0) > 0.0]
    return sorted(out, key=lambda b: -b.ms_per_sim_s)


def format_budget(budget: list[StageBudget], top: int | None = None) -> str:
    """One line: ``node/stage ms`` per sim second, biggest first, and the total."""
    total = sum(b.ms_per_sim_s for b in budget)
    shown = budget if top is None else budget[:top]
    parts = [f"{b.node}/{b.stage} {b.ms_per_sim_s:.0f}" for b in shown]
    if top is not None and len(budget) > top:
        parts.append(f"others {sum(b.ms_per_sim_s for b in budget[top:]):.0f}")
    return f"wall ms per sim s: {total:.0f} = " + ", ".join(parts)
