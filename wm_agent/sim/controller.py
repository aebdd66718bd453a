"""PX4-offboard-style cascaded multicopter controller, vectorised over the fleet.

Per control period (``control_dt``), for every drone at once:

1. mode → velocity setpoint: OFFBOARD uses the (failsafe-checked) command; HOLD runs a position
   P loop towards the stored hold point; LAND holds x/y and descends at ``land_speed``.
2. velocity PI → acceleration setpoint → thrust vector m·(a + g·e_z), tilt clamped to
   ``max_tilt`` (x/y shrunk, vertical kept, as PX4's thrust-vector limiting).
3. collective thrust = thrust vector projected on the current body z; desired attitude from the
   thrust direction and the integrated yaw setpoint.
4. attitude P (geometric SO(3) error) → body-rate setpoint, clamped.
5. rate P with gyroscopic feed-forward → body torque; mixer (inverse allocation matrix) → rotor
   thrusts clamped to [0, max/4] → rotor speeds [RPM].

The rate loop runs once per control period too, so both fidelities close every loop at the same
rate (PyBullet state reads cost ~2 µs per drone, see docs/SIM.md); gains keep ``k·dt < 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.sim.airframe import Airframe
from wm_agent.sim.dynamics import RigidBodyState, allocation_matrix
from wm_agent.sim.rotations import wrap_angle
from wm_agent.sim.types import FlightMode

# Plain ints: IntEnum attribute lookups are slow in per-period code.
_OFFBOARD, _HOLD, _LAND = int(FlightMode.OFFBOARD), int(FlightMode.HOLD), int(FlightMode.LAND)

_MAX_YAW_LEAD = 0.5  # [rad] the yaw setpoint never runs further ahead of the actual yaw

_Vec = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]


def _dot(a: _Vec, b: _Vec) -> NDArray[np.float64]:
    """Row-wise dot product of two vectors given as (x, y, z) columns."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@dataclass(frozen=True)
class ControllerGains:
    """Cascade gains (x, y, z components where three are given).

    Attributes:
        pos_p: position P gain [1/s] (HOLD / LAND).
        vel_p: velocity P gain [1/s].
        vel_i: velocity I gain [1/s²].
        vel_i_limit: integrator clamp [m/s²].
        vel_i_zone: the integrator sees the velocity error clipped to ±this [m/s], so large
            transients barely wind it up while persistent errors (drag, ground effect, bias)
            are still integrated away.
        att_p: attitude P gain [1/s].
        rate_p: body-rate P gain [1/s] (torque = J·rate_p·error).
        min_thrust_ratio: thrust-vector z floor as a fraction of the weight [-] (keeps attitude
            authority when descending hard).
    """

    pos_p: tuple[float, float, float] = (1.0, 1.0, 1.5)
    vel_p: tuple[float, float, float] = (2.5, 2.5, 6.0)
    vel_i: tuple[float, float, float] = (2.0, 2.0, 3.0)
    vel_i_limit: float = 2.0
    vel_i_zone: float = 0.15
    att_p: tuple[float, float, float] = (7.0, 7.0, 3.0)
    rate_p: tuple[float, float, float] = (26.0, 26.0, 20.0)
    min_thrust_ratio: float = 0.3

    def validate(self, control_dt: float) -> None:
        """Raise ConfigError for non-positive gains or a rate gain that makes the loop unstable."""
        for name in ("pos_p", "vel_p", "vel_i", "att_p", "rate_p"):
            vals = np.asarray(getattr(self, name), dtype=np.float64)
            if vals.shape != (3,) or not np.all(np.isfinite(vals)) or np.any(vals <= 0.0):
                raise ConfigError(f"controller gains: {name}: expected 3 positive numbers, got {vals}")
        if max(self.rate_p) * control_dt >= 1.0:
            raise ConfigError(
                f"controller gains: rate_p: {max(self.rate_p)}·{control_dt:.4f} s >= 1; the rate "
                "loop runs once per control period and would oscillate; lower rate_p"
            )
        if not 0.0 < self.min_thrust_ratio < 1.0 or not (self.vel_i_limit > 0 and self.vel_i_zone > 0):
            raise ConfigError(
                "controller gains: min_thrust_ratio must be in (0, 1), vel_i_limit and vel_i_zone > 0"
            )


class CascadeController:
    """Velocity / hold / land controller for N drones producing rotor speeds.

    Args:
        airframe: constants (mass, inertia, limits, rotor coefficients).
        control_dt: control period [s].
        n: number of drones.
        gains: loop gains.
    """

    def __init__(
        self,
        airframe: Airframe,
        control_dt: float,
        n: int,
        gains: ControllerGains | None = None,
    ):
        self.airframe = airframe
        self.gains = gains or ControllerGains()
        self.gains.validate(control_dt)
        self.dt = control_dt
        self._pos_p = np.asarray(self.gains.pos_p)
        self._vel_p = np.asarray(self.gains.vel_p)
        self._vel_i = np.asarray(self.gains.vel_i)
        self._att_p = np.asarray(self.gains.att_p)
        self._rate_p = np.asarray(self.gains.rate_p)
        self._inertia = np.array([airframe.ixx, airframe.iyy, airframe.izz])
        self._mixer = np.linalg.inv(allocation_matrix(airframe))
        self._max_rotor_thrust = airframe.max_thrust / 4.0
        self._rate_limit = np.array(
            [airframe.max_body_rate, airframe.max_body_rate, airframe.max_yaw_rate]
        )
        self.reset(n)

    def reset(self, n: int) -> None:
        """Clear integrators and yaw setpoints for ``n`` drones."""
        self.integ = np.zeros((n, 3))
        self.yaw_sp = np.zeros(n)
        self._yaw_init = np.zeros(n, dtype=bool)

    def velocity_setpoint(
        self,
        mode: NDArray[np.int8],
        cmd_vel: NDArray[np.float64],
        hold_pos: NDArray[np.float64],
        pos: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """(N, 3) velocity setpoint [m/s] for each drone's mode (norm ≤ max_speed)."""
        af = self.airframe
        to_hold = (hold_pos - pos) * self._pos_p
        speed = np.sqrt((to_hold * to_hold).sum(axis=1))
        scale = np.minimum(1.0, af.max_speed / np.maximum(speed, 1e-12))
        to_hold *= scale[:, None]
        v_sp = np.where((mode == _OFFBOARD)[:, None], cmd_vel, to_hold)
        landing = mode == _LAND
        v_sp[landing, 2] = -af.land_speed
        return v_sp

    def compute(
        self,
        s: RigidBodyState,
        mode: NDArray[np.int8],
        cmd_vel: NDArray[np.float64],
        yaw_rate: NDArray[np.float64],
        hold_pos: NDArray[np.float64],
        armed: NDArray[np.bool_],
        on_ground: NDArray[np.bool_],
    ) -> NDArray[np.float64]:
        """One control period for all drones.

        Args:
            s: current state.
            mode: (N,) :class:`FlightMode` values.
            cmd_vel: (N, 3) commanded velocity [m/s], ENU, finite and clamped (OFFBOARD only).
            yaw_rate: (N,) commanded yaw rate [rad/s] (OFFBOARD only).
            hold_pos: (N, 3) hold point [m] (HOLD / LAND).
            armed: (N,) motors may spin; disarmed drones get 0 RPM.
            on_ground: (N,) resting on the floor: integrators and yaw setpoint are reset, and
                thrust stays 0 unless the velocity setpoint climbs (vz > 0 takes off).

        Returns:
            (N, 4) rotor speeds [RPM] in [0, max_rpm], always finite.
        """
        af, dt, g = self.airframe, self.dt, self.gains
        mass = af.mass
        x, y, z, w = (np.ascontiguousarray(c) for c in s.quat.T)
        xx, yy, zz = x * x, y * y, z * z
        xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
        # Current body axes in the map frame (columns of R).
        bx = (1.0 - 2.0 * (yy + zz), 2.0 * (xy + wz), 2.0 * (xz - wy))
        by = (2.0 * (xy - wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz + wx))
        bz = (2.0 * (xz + wy), 2.0 * (yz - wx), 1.0 - 2.0 * (xx + yy))
        yaw = np.arctan2(bx[1], bx[0])

        # 1. Velocity setpoint and yaw setpoint.
        v_sp = self.velocity_setpoint(mode, cmd_vel, hold_pos, s.pos)
        offboard = mode == _OFFBOARD
        yaw_rate_sp = np.where(offboard, yaw_rate, 0.0)
        reset = on_ground | ~self._yaw_init
        self.yaw_sp = np.where(reset, yaw, self.yaw_sp + yaw_rate_sp * dt)
        self._yaw_init[:] = True
        lead = np.clip(wrap_angle(self.yaw_sp - yaw), -_MAX_YAW_LEAD, _MAX_YAW_LEAD)
        self.yaw_sp = yaw + lead

        # 2. Velocity PI (conditional integration) → thrust vector with tilt limit.
        err = v_sp - s.vel
        self.integ += np.clip(err, -g.vel_i_zone, g.vel_i_zone) * (self._vel_i * dt)
        np.clip(self.integ, -g.vel_i_limit, g.vel_i_limit, out=self.integ)
        self.integ[on_ground] = 0.0
        force = (err * self._vel_p + self.integ) * mass
        fx, fy = force[:, 0], force[:, 1]
        fz = np.clip(force[:, 2] + af.weight, g.min_thrust_ratio * af.weight, af.max_thrust)
        horiz = np.sqrt(fx * fx + fy * fy)
        shrink = np.minimum(1.0, fz * np.tan(af.max_tilt) / np.maximum(horiz, 1e-12))
        fx, fy = fx * shrink, fy * shrink

        # 3. Collective thrust (projection on the current body z) and desired axes.
        thrust = np.clip(fx * bz[0] + fy * bz[1] + fz * bz[2], 0.0, af.max_thrust)
        # Landed and not asked to climb: motors idle (PX4 stays landed until a climb setpoint).
        thrust[on_ground & (v_sp[:, 2] <= 0.0)] = 0.0
        inv = 1.0 / np.sqrt(fx * fx + fy * fy + fz * fz)
        zd = (fx * inv, fy * inv, fz * inv)
        cy, sy = np.cos(self.yaw_sp), np.sin(self.yaw_sp)
        # y_d = z_d × (cos ψ, sin ψ, 0), normalised; x_d = y_d × z_d.
        yd0, yd1, yd2 = -zd[2] * sy, zd[2] * cy, zd[0] * sy - zd[1] * cy
        inv = 1.0 / np.sqrt(yd0 * yd0 + yd1 * yd1 + yd2 * yd2)
        yd = (yd0 * inv, yd1 * inv, yd2 * inv)
        xd = (
            yd[1] * zd[2] - yd[2] * zd[1],
            yd[2] * zd[0] - yd[0] * zd[2],
            yd[0] * zd[1] - yd[1] * zd[0],
        )

        # 4. Attitude P on e_R = ½·vee(R_dᵀR − RᵀR_d) → body-rate setpoint (+ yaw feed-forward).
        rate_sp = np.empty((x.shape[0], 3))
        rate_sp[:, 0] = -0.5 * self._att_p[0] * (_dot(zd, by) - _dot(yd, bz)) + bx[2] * yaw_rate_sp
        rate_sp[:, 1] = -0.5 * self._att_p[1] * (_dot(xd, bz) - _dot(zd, bx)) + by[2] * yaw_rate_sp
        rate_sp[:, 2] = -0.5 * self._att_p[2] * (_dot(yd, bx) - _dot(xd, by)) + bz[2] * yaw_rate_sp
        np.clip(rate_sp, -self._rate_limit, self._rate_limit, out=rate_sp)

        # 5. Rate P + gyroscopic feed-forward → torque → mixer → rotor speeds.
        om = s.rates
        jw = om * self._inertia
        wrench = np.empty((x.shape[0], 4))
        wrench[:, 0] = thrust
        wrench[:, 1:] = (rate_sp - om) * (self._rate_p * self._inertia)
        wrench[:, 1] += om[:, 1] * jw[:, 2] - om[:, 2] * jw[:, 1]
        wrench[:, 2] += om[:, 2] * jw[:, 0] - om[:, 0] * jw[:, 2]
        wrench[:, 3] += om[:, 0] * jw[:, 1] - om[:, 1] * jw[:, 0]
        return self.mix(wrench, armed)

    def mix(self, wrench: NDArray[np.float64], armed: NDArray[np.bool_]) -> NDArray[np.float64]:
        """(N, 4) [T, τx, τy, τz] → (N, 4) rotor speeds [RPM]; 0 where disarmed or non-finite."""
        f = wrench @ self._mixer.T
        np.clip(f, 0.0, self._max_rotor_thrust, out=f)
        rpm = np.sqrt(f / self.airframe.kf)
        ok = armed[:, None] & np.isfinite(rpm)
        return np.where(ok, rpm, 0.0)
