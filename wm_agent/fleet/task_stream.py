"""A seeded stream of warehouse jobs for simulated runs (Poisson arrivals), pure Python.

Arrivals follow a Poisson process of `rate_per_min` (0: no jobs); each job picks up at a random
pick station and drops off at a random drop station, with a random priority and payload under
the airframe limit. The same seed gives the same stream, so lockstep runs repeat exactly.
:class:`PendingTasks` keeps what a bulk submitter sent until the coordinator answered it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wm_agent.errors import ConfigError
from wm_agent.fleet.tasks import TaskSpec


@dataclass(frozen=True)
class TaskStreamConfig:
    """rate_per_min: mean arrivals per minute (0 = none); max_payload_kg [kg]; prefix of task
    ids; max_tasks: stop after this many (0 = unbounded)."""

    rate_per_min: float = 60.0
    max_payload_kg: float = 0.015
    prefix: str = "job"
    max_tasks: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate_per_min) and self.rate_per_min >= 0):
            raise ConfigError(f"task stream: rate_per_min must be >= 0, got {self.rate_per_min}")
        if not (np.isfinite(self.max_payload_kg) and self.max_payload_kg > 0):
            raise ConfigError(f"task stream: max_payload_kg must be > 0, got {self.max_payload_kg}")
        if self.max_tasks < 0:
            raise ConfigError(f"task stream: max_tasks must be >= 0, got {self.max_tasks}")


class TaskStream:
    """Yields the jobs that arrive up to a given time [s]."""

    def __init__(self, pick: Sequence[str], drop: Sequence[str], config: TaskStreamConfig,
                 seed: int = 0) -> None:
        if not pick or not drop:
            raise ConfigError("task stream: need at least one pick and one drop station")
        self.pick = list(pick)
        self.drop = list(drop)
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.next_t = self._gap()

    def _gap(self) -> float:
        rate = self.config.rate_per_min
        return float(self.rng.exponential(60.0 / rate)) if rate > 0 else float("inf")

    def due(self, t_s: float) -> list[TaskSpec]:
        """Jobs arriving at or before `t_s` [s] that were not returned yet."""
        out: list[TaskSpec] = []
        cfg = self.config
        while self.next_t <= t_s and (cfg.max_tasks == 0 or self.count < cfg.max_tasks):
            rng = self.rng
            out.append(TaskSpec(
                task_id=f"{cfg.prefix}-{self.count:06d}",
                pickup=self.pick[int(rng.integers(len(self.pick)))],
                dropoff=self.drop[int(rng.integers(len(self.drop)))],
                priority=int(rng.integers(0, 4)) * 50,
                payload_kg=float(rng.uniform(0.1, 0.9) * cfg.max_payload_kg),
            ))
            self.count += 1
            self.next_t += self._gap()
        return out


class PendingTasks:
    """Tasks a bulk submitter sent and has no answer for yet (pure bookkeeping).

    Args:
        retry_s: send a task again when it got no answer for this long [s].
    """

    def __init__(self, retry_s: float) -> None:
        if not retry_s > 0:
            raise ConfigError(f"pending tasks: retry_s must be > 0, got {retry_s}")
        self.retry_s = retry_s
        self._specs: dict[str, TaskSpec] = {}
        self._sent: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._specs)

    def add(self, specs: Sequence[TaskSpec]) -> None:
        """New tasks to send (not sent yet)."""
        for spec in specs:
            self._specs[spec.task_id] = spec
            self._sent[spec.task_id] = -np.inf

    def answered(self, task_ids: Sequence[str]) -> None:
        """The coordinator answered these (accepted or rejected: either way, not lost)."""
        for tid in task_ids:
            self._specs.pop(tid, None)
            self._sent.pop(tid, None)

    def to_send(self, now_s: float, limit: int) -> list[TaskSpec]:
        """Up to ``limit`` tasks never sent or unanswered for ``retry_s``, oldest first; they
        count as sent at ``now_s`` [s]."""
        out: list[TaskSpec] = []
        for tid, spec in self._specs.items():
            if len(out) >= limit:
                break
            if now_s - self._sent[tid] >= self.retry_s:
                out.append(spec)
                self._sent[tid] = now_s
        return out
