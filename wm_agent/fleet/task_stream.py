"""A seeded stream of warehouse jobs for simulated runs (Poisson arrivals), pure Python.

Arrivals follow a Poisson process of `rate_per_min`; each job picks up at a random pick
station and drops off at a random drop station, with a random priority and payload under the
airframe limit. The same seed gives the same stream, so lockstep runs repeat exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wm_agent.errors import ConfigError
from wm_agent.fleet.tasks import TaskSpec


@dataclass(frozen=True)
class TaskStreamConfig:
    """rate_per_min: mean arrivals per minute; max_payload_kg [kg]; prefix of task ids;
    max_tasks: stop after this many (0 = unbounded)."""

    rate_per_min: float = 60.0
    max_payload_kg: float = 0.015
    prefix: str = "job"
    max_tasks: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate_per_min) and self.rate_per_min > 0):
            raise ConfigError(f"task stream: rate_per_min must be > 0, got {self.rate_per_min}")
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
        self.next_t = float(self.rng.exponential(60.0 / config.rate_per_min))

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
            self.next_t += float(rng.exponential(60.0 / cfg.rate_per_min))
        return out
