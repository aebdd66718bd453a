"""Safety filter between the planner and the drones (pure numpy, vectorised over drones).

Applied in this order to every drone's command; each substitution is counted per kind
(:class:`Substitution`, = ``wm_agent_msgs/PlannerStatus`` ``SUB_*``) at most once per drone:

1. NON_FINITE — a NaN/inf velocity or yaw rate from the planner → hold position (zero velocity).
2. FALLBACK — the model is outside its training envelope (the observation is invalid, non-finite,
   or a feature lies outside the dataset's per-feature range ± margin) → the classical P
   controller to the goal (:func:`wm_agent.planning.pid.p_command`, same brake). Rows whose
   observation itself is unusable hold position.
3. SPEED_CLAMP — speed above ``max_speed``, yaw rate above ``max_yaw_rate``, or a change from the
   previous command above ``max_accel · dt`` → scaled down to the limit.
4. BRAKE — an obstacle sector / the up clearance / a neighbour closer than its margin (sector
   margins grow with the measured speed towards the sector: reaction + stopping distance) → the
   velocity component towards it is removed; a predicted min clearance (from the planner) below
   ``clearance_margin`` → speed capped at ``brake_speed``. Braking may exceed the acceleration
   limit (stopping wins).

Whatever the input (NaN, inf, huge values), the output is finite, ‖cmd_vel‖ ≤ ``max_speed`` and
|yaw_rate| ≤ ``max_yaw_rate``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError, ModelError
from wm_agent.planning.brake import brake_velocity
from wm_agent.planning.pid import PidConfig, cap_speed, p_command
from wm_agent.world_model.spaces import WM_DT, ObservationSpec


class Substitution(enum.IntEnum):
    """Kinds of substitution, indexed like ``PlannerStatus.SUB_*``."""

    NON_FINITE = 0
    SPEED_CLAMP = 1
    BRAKE = 2
    FALLBACK = 3


@dataclass(frozen=True)
class Envelope:
    """Per-feature observation range the model was trained on (already including a margin).

    Attributes:
        lo, hi: (D,) bounds [feature units].
    """

    lo: NDArray[np.float64]
    hi: NDArray[np.float64]

    def inside(self, obs: NDArray[np.floating]) -> NDArray[np.bool_]:
        """(N, D) → (N,) True where every feature is finite and inside [lo, hi]."""
        o = np.asarray(obs, np.float64)
        with np.errstate(invalid="ignore"):
            return np.asarray(((o >= self.lo) & (o <= self.hi)).all(axis=1))

    @classmethod
    def from_card(cls, folder: Path | str) -> Envelope:
        """From the ``envelope`` of the latent-action card beside a model (dataset range ± margin).

        Raises:
            ModelError: no card or no envelope in it.
        """
        from wm_agent.planning.latent_actions import read_latent_card

        card = read_latent_card(folder)
        env = card.get("envelope")
        if not isinstance(env, dict) or "lo" not in env or "hi" not in env:
            raise ModelError(f"latent actions card in {folder}: no 'envelope' section; retrain it")
        return cls(np.asarray(env["lo"], np.float64), np.asarray(env["hi"], np.float64))

    @classmethod
    def unbounded(cls, size: int) -> Envelope:
        """Accepts every finite observation."""
        return cls(np.full(size, -np.inf), np.full(size, np.inf))


@dataclass(frozen=True)
class SafetyConfig:
    """Limits and margins.

    Attributes:
        max_speed: speed limit [m/s] (airframe ``max_speed``). max_yaw_rate: [rad/s].
        max_accel: largest change of the setpoint per second [m/s²]; dt: time between two
            commands the filter sees [s] (default one world-model step).
        obstacle_margin: sector / up-clearance distance that triggers the brake [m].
        neighbour_margin: neighbour distance that triggers the brake [m].
        clearance_margin: predicted min clearance below which speed is capped [m].
        brake_decel: deceleration counted on when braking [m/s²]: each obstacle sector's margin
            grows by the reaction distance (``brake_reaction_s``) plus the stopping distance
            v²/(2·brake_decel) of the measured velocity towards it, so a fast drone brakes early
            enough (0 = fixed margins). 5 m/s²: a 30° tilt gives g·tan 30° = 5.7 m/s²; the lag of
            the velocity loop is covered by the reaction time.
        brake_reaction_s: time before a braking command acts [s] (one command period).
        brake_lag_s: time constant of the vehicle's velocity loop [s]: a drone commanded to stop
            still covers about (its speed × this) — the margins grow by it as by the reaction
            time. Default: the simulator's cascade, 1 / vel_p = 1 / (2.5 1/s) = 0.4 s
            (``wm_agent.sim.controller.ControllerGains``); measured stopping distances there,
            fleet fidelity: 0.40 m from 1 m/s, 0.86 m from 2, 1.44 m from 3, 2.18 m from 4 — the
            v²/(2·brake_decel) term alone counted 0.1-1.6 m, and a drone flew into a shelf
            corner at 2 m/s (issue 12, warehouse_1k). Set it to the real autopilot's.
        brake_speed: that cap [m/s].
        ground_band: altitude below which descents are limited to ``ground_descent_speed`` [m];
            above it the limit grows by 1 m/s per metre (a drone at altitude h may descend at
            ground_descent_speed + (h − ground_band)).
        ground_descent_speed: descent limit inside the ground band [m/s] (below the airframe's
            1 m/s crash touchdown speed).
        fallback: P controller of the FALLBACK substitution.
    """

    max_speed: float = 8.333
    max_yaw_rate: float = math.radians(200.0)
    max_accel: float = 6.0
    dt: float = WM_DT
    obstacle_margin: float = 0.35
    neighbour_margin: float = 0.6
    clearance_margin: float = 0.15
    brake_decel: float = 5.0
    brake_reaction_s: float = WM_DT
    brake_lag_s: float = 0.4
    brake_speed: float = 0.5
    ground_band: float = 0.5
    ground_descent_speed: float = 0.5
    fallback: PidConfig = field(default_factory=PidConfig)

    def __post_init__(self) -> None:
        for name in ("max_speed", "max_yaw_rate", "max_accel", "dt"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"safety filter: {name}: expected > 0, got {value!r}")
        for name in ("obstacle_margin", "neighbour_margin", "clearance_margin", "brake_speed",
                     "ground_band", "ground_descent_speed", "brake_decel", "brake_reaction_s",
                     "brake_lag_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"safety filter: {name}: expected >= 0, got {value!r}")

    @classmethod
    def from_airframe(cls, airframe: Any, **overrides: Any) -> SafetyConfig:
        """Limits from a :class:`wm_agent.sim.Airframe` (``max_speed``, ``max_yaw_rate_deg``)."""
        return cls(max_speed=float(airframe.max_speed),
                   max_yaw_rate=math.radians(float(airframe.max_yaw_rate_deg)), **overrides)


class SafetyResult(NamedTuple):
    """Filtered commands.

    Attributes:
        cmd_vel: (N, 3) float64 [m/s]. yaw_rate: (N,) float64 [rad/s].
        counts: (4,) int64 drones substituted per :class:`Substitution` kind.
        substituted: (N,) bool — any substitution on that drone (which ones: the filter's
            ``last_kinds`` (N, 4)).
    """

    cmd_vel: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    counts: NDArray[np.int64]
    substituted: NDArray[np.bool_]


def _rows(name: str, arr: Any, width: int | None, n: int | None) -> NDArray[np.float64]:
    a = np.asarray(arr, dtype=np.float64)
    want = (n if n is not None else "N",) + ((width,) if width is not None else ())
    if a.ndim != len(want) or (n is not None and a.shape[0] != n) or (
        width is not None and a.shape[1] != width
    ):
        raise ModelError(f"safety filter: {name}: expected shape {want}, got {a.shape}")
    return a


class SafetyFilter:
    """See the module docstring.

    Args:
        config: limits and margins. envelope: training envelope (None: every finite observation
            counts as inside). spec: observation layout.
    """

    def __init__(self, config: SafetyConfig | None = None, envelope: Envelope | None = None,
                 spec: ObservationSpec | None = None):
        self.config = config or SafetyConfig()
        self.spec = spec or ObservationSpec()
        self.envelope = envelope
        self.total = np.zeros(len(Substitution), np.int64)
        self.last_kinds = np.zeros((0, len(Substitution)), bool)

    @np.errstate(over="ignore", invalid="ignore")  # huge inputs are handled explicitly
    def apply(
        self,
        cmd_vel: NDArray[np.floating],
        yaw_rate: NDArray[np.floating],
        obs: NDArray[np.floating],
        valid: NDArray[np.bool_] | None,
        prev_cmd: NDArray[np.floating] | None,
        pos: NDArray[np.floating],
        goal: NDArray[np.floating],
        predicted_clearance: NDArray[np.floating] | None = None,
    ) -> SafetyResult:
        """Filter N drones' commands.

        Args:
            cmd_vel: (N, 3) planner velocity setpoints [m/s]. yaw_rate: (N,) [rad/s].
            obs: (N, D) observations. valid: (N,) bool (None: all valid).
            prev_cmd: (N, 3) previous filtered setpoints [m/s] (None: no acceleration limit).
            pos, goal: (N, 3) [m] for the fallback controller.
            predicted_clearance: (N,) planner's predicted min clearance [m] (None: unused).

        Returns:
            :class:`SafetyResult` ``(cmd_vel, yaw_rate, counts, substituted)``; ``counts`` is also
            added to ``self.total``, the per-drone kinds (N, 4) are in ``self.last_kinds``.

        Raises:
            ModelError: an input of the wrong shape (names it and the expected shape).
        """
        c = self.config
        v = _rows("cmd_vel", cmd_vel, 3, None).copy()
        n = v.shape[0]
        w = _rows("yaw_rate", yaw_rate, None, n).copy()
        o = _rows("obs", obs, self.spec.size, n)
        p = _rows("pos", pos, 3, n)
        g = _rows("goal", goal, 3, n)
        ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
        if ok.shape != (n,):
            raise ModelError(f"safety filter: valid: expected shape ({n},), got {ok.shape}")
        kinds = np.zeros((n, len(Substitution)), bool)

        # 1. Non-finite planner output → hold (zero velocity, zero yaw rate).
        bad = ~(np.isfinite(v).all(1) & np.isfinite(w))
        v[bad] = 0.0
        w[bad] = 0.0
        kinds[:, Substitution.NON_FINITE] = bad

        # 2. Outside the training envelope → P controller to the goal (hold if obs is unusable).
        obs_ok = np.asarray(np.isfinite(o).all(1), bool)
        inside = np.asarray(ok & obs_ok, bool)
        if self.envelope is not None:
            inside &= self.envelope.inside(np.where(obs_ok[:, None], o, 0.0))
        fb = ~inside
        if fb.any():
            o_fb = np.where((ok & obs_ok)[:, None], o, np.nan)[fb]
            v[fb] = p_command(p[fb], g[fb], o_fb, c.fallback, self.spec)
            w[fb] = 0.0
        kinds[:, Substitution.FALLBACK] = fb

        # 3. Speed, yaw-rate and acceleration limits.
        v0, w0 = v.copy(), w.copy()
        w = np.clip(w, -c.max_yaw_rate, c.max_yaw_rate)
        v = cap_speed(v, c.max_speed)
        if prev_cmd is not None:
            prev = _rows("prev_cmd", prev_cmd, 3, n)
            prev_ok = np.asarray(np.isfinite(prev).all(1), bool)
            prev = np.where(prev_ok[:, None], cap_speed(np.nan_to_num(prev), c.max_speed), v)
            v = prev + cap_speed(v - prev, c.max_accel * c.dt)
        kinds[:, Substitution.SPEED_CLAMP] = (np.abs(v - v0).max(1) > 1e-9) | (np.abs(w - w0) > 1e-12)

        # 4. Brake against measured obstacles/neighbours; slow down on a low predicted clearance.
        o_safe = np.where((ok & obs_ok)[:, None], o, 0.0)
        braked = brake_velocity(v, o_safe, self.spec, c.obstacle_margin, c.neighbour_margin,
                                brake_decel=c.brake_decel or None,
                                reaction_s=c.brake_reaction_s + c.brake_lag_s)
        v = braked.cmd_vel
        br = braked.braked & ok & obs_ok
        if predicted_clearance is not None:
            pc = _rows("predicted_clearance", predicted_clearance, None, n)
            low = np.isfinite(pc) & (pc < c.clearance_margin) & ~fb
            slow = cap_speed(v, c.brake_speed)
            br |= low & (np.abs(slow - v).max(1) > 1e-12)
            v = np.where(low[:, None], slow, v)
        # Near the floor, descend no faster than the touchdown limit allows: a neighbour push or a
        # plan can otherwise drive a low drone into the floor (a crash above 1 m/s touchdown).
        altitude = o_safe[:, self.spec.slice("altitude")][:, 0]
        floor_limit = -(c.ground_descent_speed + np.clip(altitude - c.ground_band, 0.0, None))
        low_alt = (altitude < c.ground_band + c.max_speed) & (v[:, 2] < floor_limit) & ok & obs_ok
        v[:, 2] = np.where(low_alt, floor_limit, v[:, 2])
        br |= low_alt
        kinds[:, Substitution.BRAKE] = br

        # Final guarantee: finite and within limits whatever happened above.
        v = cap_speed(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0), c.max_speed)
        w = np.clip(np.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0), -c.max_yaw_rate, c.max_yaw_rate)
        counts = kinds.sum(0).astype(np.int64)
        self.total += counts
        self.last_kinds = kinds
        return SafetyResult(v, w, counts, np.asarray(kinds.any(1), bool))
