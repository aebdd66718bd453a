"""The fault scenario of `wm-agent sim --faults`: when each fault happens (pure, no rclpy).

Three faults, spread over the run: a drone's radio drops out (its state and commands vanish; the
sim bridge's failsafe holds then lands it, the coordinator marks it lost and re-queues its task),
the fleet planner stalls (its process is stopped: the bridge's command failsafe holds every
drone), and the coordinator is killed with SIGKILL and restarted (the ledger restores it).
"""

from __future__ import annotations

from dataclasses import dataclass

from wm_agent.errors import ConfigError


@dataclass(frozen=True)
class FaultPlan:
    """Times in sim seconds; durations in seconds.

    dropout_drone: drone whose radio drops out; dropout_start_s, dropout_s.
    stall_start_s, stall_s: fleet-planner stall (SIGSTOP ... SIGCONT).
    kill_start_s, restart_after_s: coordinator SIGKILL and restart delay.
    """

    dropout_drone: int
    dropout_start_s: float
    dropout_s: float
    stall_start_s: float
    stall_s: float
    kill_start_s: float
    restart_after_s: float

    @classmethod
    def for_run(cls, duration_s: float, dropout_drone: int = 0) -> FaultPlan:
        """Faults at 30 %, 50 % and 70 % of a run of `duration_s` sim seconds (≥ 20 s)."""
        if duration_s < 20.0:
            raise ConfigError(f"--faults needs a run of at least 20 s of sim time, got {duration_s}")
        return cls(dropout_drone, 0.3 * duration_s, 4.0, 0.5 * duration_s, 2.0,
                   0.7 * duration_s, 1.0)

    @property
    def dropout_end_s(self) -> float:
        return self.dropout_start_s + self.dropout_s
