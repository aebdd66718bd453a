"""Classical baseline: a PID waypoint controller (goal → velocity setpoint), vectorised over drones.

``v = kp·e + ki·∫e + kd·ė`` with e = goal − position [m], the integral clamped (anti-windup), the
result capped at ``max_speed`` [m/s] and braked against close obstacles/neighbours exactly like
the safety filter (:func:`wm_agent.planning.brake.brake_velocity`). Used as the safety filter's
fallback (stateless P form, :func:`p_command`) and as the closed-loop comparison baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.planning.brake import brake_velocity
from wm_agent.world_model.spaces import ObservationSpec


@dataclass(frozen=True)
class PidConfig:
    """Gains and limits.

    Attributes:
        kp [1/s], ki [1/s²], kd [1]: gains on the position error [m].
        integral_limit: clamp of ∫e per axis [m·s].
        max_speed: speed cap [m/s].
        obstacle_margin, neighbour_margin: brake distances [m].
    """

    kp: float = 1.2
    ki: float = 0.0
    kd: float = 0.1
    integral_limit: float = 1.0
    max_speed: float = 2.5
    obstacle_margin: float = 0.45
    neighbour_margin: float = 0.5

    def __post_init__(self) -> None:
        if not (self.kp >= 0 and self.ki >= 0 and self.kd >= 0 and self.max_speed > 0):
            raise ConfigError(
                f"pid: expected kp, ki, kd >= 0 and max_speed > 0, got {self.kp}, {self.ki}, "
                f"{self.kd}, {self.max_speed}"
            )


def cap_speed(v: NDArray[np.float64], max_speed: float) -> NDArray[np.float64]:
    """(N, 3) velocities scaled so that ‖v‖ ≤ max_speed [m/s]."""
    big = np.max(np.abs(v), axis=1, keepdims=True) if v.size else np.zeros((v.shape[0], 1))
    big = np.where(big > 0.0, big, 1.0)
    norm = big * np.linalg.norm(v / big, axis=1, keepdims=True)  # no overflow for huge entries
    return v * np.minimum(1.0, max_speed / np.maximum(norm, 1e-12))


def p_command(
    pos: NDArray[np.floating], goal: NDArray[np.floating], obs: NDArray[np.floating],
    config: PidConfig, spec: ObservationSpec | None = None,
) -> NDArray[np.float64]:
    """Stateless P controller with the speed cap and the brake: (N, 3) velocity setpoint [m/s].

    Rows with a non-finite position, goal or observation get zero velocity (hold).
    """
    spec = spec or ObservationSpec()
    p = np.asarray(pos, np.float64)
    g = np.asarray(goal, np.float64)
    o = np.asarray(obs, np.float64)
    ok = np.asarray(np.isfinite(p).all(1) & np.isfinite(g).all(1) & np.isfinite(o).all(1), bool)
    e = np.where(ok[:, None], g - np.where(ok[:, None], p, 0.0), 0.0)
    e = np.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0)
    v = cap_speed(config.kp * e, config.max_speed)
    return brake_velocity(v, np.where(ok[:, None], o, 0.0), spec, config.obstacle_margin,
                          config.neighbour_margin).cmd_vel


class PidController:
    """PID waypoint controller for N drones (state: integral and previous error per drone row).

    Args:
        n: drones (state rows). config: gains and limits. spec: observation layout (the brake).
    """

    def __init__(self, n: int, config: PidConfig | None = None, spec: ObservationSpec | None = None):
        self.config = config or PidConfig()
        self.spec = spec or ObservationSpec()
        self.integral = np.zeros((n, 3))
        self.prev_err = np.zeros((n, 3))
        self.has_prev = np.zeros(n, bool)  # False: no derivative term on the next update

    def reset(self, rows: NDArray[np.intp] | None = None) -> None:
        """Clear the integral and derivative state (of ``rows``, default all)."""
        sel = slice(None) if rows is None else rows
        self.integral[sel] = 0.0
        self.prev_err[sel] = 0.0
        self.has_prev[sel] = False

    def resize(self, n: int, keep: NDArray[np.intp]) -> None:
        """Grow to ``n`` rows; old row i moves to ``keep[i]``, new rows start cleared."""
        integral, prev, has = np.zeros((n, 3)), np.zeros((n, 3)), np.zeros(n, bool)
        integral[keep], prev[keep], has[keep] = self.integral, self.prev_err, self.has_prev
        self.integral, self.prev_err, self.has_prev = integral, prev, has

    def command(
        self, pos: NDArray[np.floating], goal: NDArray[np.floating], obs: NDArray[np.floating],
        dt: float, rows: NDArray[np.intp] | None = None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """One control update.

        Args:
            pos, goal: (K, 3) [m]. obs: (K, D) observations (for the brake). dt: since the last
                call [s]. rows: (K,) state rows of these drones (default: all N, in order).

        Returns:
            cmd_vel (K, 3) [m/s] (capped, braked; zero for non-finite rows), yaw_rate (K,) = 0.
        """
        c = self.config
        sel = np.arange(self.integral.shape[0]) if rows is None else np.asarray(rows, np.intp)
        p = np.asarray(pos, np.float64)
        g = np.asarray(goal, np.float64)
        ok = np.asarray(np.isfinite(p).all(1) & np.isfinite(g).all(1), bool)
        e = np.where(ok[:, None], np.nan_to_num(g - p), 0.0)
        integral = np.clip(self.integral[sel] + e * dt, -c.integral_limit, c.integral_limit)
        de = np.where(self.has_prev[sel, None], (e - self.prev_err[sel]) / max(dt, 1e-6), 0.0)
        self.integral[sel], self.prev_err[sel], self.has_prev[sel] = integral, e, True
        v = cap_speed(c.kp * e + c.ki * integral + c.kd * de, c.max_speed)
        o = np.nan_to_num(np.asarray(obs, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        v = brake_velocity(v, o, self.spec, c.obstacle_margin, c.neighbour_margin).cmd_vel
        v[~ok] = 0.0
        return v, np.zeros(p.shape[0])
