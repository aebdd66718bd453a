"""Vectorised rigid-body quadrotor dynamics (the "fleet" fidelity's physics).

State arrays (N drones): pos (N, 3) [m], vel (N, 3) [m/s], quat (N, 4) xyzw body→map,
rates (N, 3) body angular velocity [rad/s]. Input: rotor speeds (N, 4) [RPM], X configuration
as gym-pybullet-drones' cf2x (see :class:`wm_agent.sim.airframe.Airframe`).

Model, per rotor i:  f_i = kf·ω_i² (·(1 + ground effect)),  yaw torque ±km·ω_i²; roll and pitch
torque are the rotors' f_i about the body axes (so ground effect scales them too).
  m·dv/dt = R·[0, 0, Σf_i] + R·(−kd ⊙ (Rᵀ v))·Σ(2π ω_i/60) − m·g·e_z
  J·dΩ/dt = τ − Ω × JΩ
Integrated with semi-implicit Euler (velocity first, then position with the new velocity),
quaternion by first-order update and renormalisation. The floor (z = 0) is a unilateral contact:
a drone whose origin goes below ``body_half_height`` is put back on it at rest and levelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.sim.airframe import GRAVITY, Airframe
from wm_agent.sim.rotations import quat_from_yaw, yaw_of

RPM_TO_RAD_S = 2.0 * math.pi / 60.0

# Rotor layout signs (front-right, back-right, back-left, front-left).
ROTOR_SX = np.array([1.0, -1.0, -1.0, 1.0])
ROTOR_SY = np.array([-1.0, -1.0, 1.0, 1.0])
ROTOR_YAW = np.array([-1.0, 1.0, -1.0, 1.0])


@dataclass(slots=True)
class RigidBodyState:
    """Mutable fleet state buffers (the simulators update them in place).

    Attributes:
        pos: (N, 3) [m]. vel: (N, 3) [m/s]. quat: (N, 4) xyzw. rates: (N, 3) body [rad/s].
    """

    pos: NDArray[np.float64]
    vel: NDArray[np.float64]
    quat: NDArray[np.float64]
    rates: NDArray[np.float64]

    @classmethod
    def at_rest(cls, pos: NDArray[np.float64]) -> RigidBodyState:
        """Drones at ``pos`` (N, 3), level, yaw 0, not moving."""
        n = pos.shape[0]
        quat = np.zeros((n, 4))
        quat[:, 3] = 1.0
        return cls(np.array(pos, dtype=np.float64), np.zeros((n, 3)), quat, np.zeros((n, 3)))


def rotor_positions(airframe: Airframe) -> NDArray[np.float64]:
    """(4, 3) rotor hub positions in the body frame [m]."""
    c = airframe.arm_length / math.sqrt(2.0)
    return np.stack([ROTOR_SX * c, ROTOR_SY * c, np.zeros(4)], axis=1)


def allocation_matrix(airframe: Airframe) -> NDArray[np.float64]:
    """(4, 4) matrix A with [T, τx, τy, τz] = A @ f for rotor thrusts f [N]."""
    c = airframe.arm_length / math.sqrt(2.0)
    return np.stack(
        [np.ones(4), c * ROTOR_SY, -c * ROTOR_SX, (airframe.km / airframe.kf) * ROTOR_YAW]
    )


def body_wrench(
    rpm: NDArray[np.float64], airframe: Airframe
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Collective thrust and body torque of rotor speeds (no ground effect).

    Args:
        rpm: (N, 4) rotor speeds [RPM].

    Returns:
        thrust (N,) [N] along body z, torque (N, 3) [N·m] in the body frame.
    """
    rpm2 = rpm * rpm
    f = airframe.kf * rpm2
    c = airframe.arm_length / math.sqrt(2.0)
    torque = np.empty((rpm.shape[0], 3))
    torque[:, 0] = c * (f @ ROTOR_SY)
    torque[:, 1] = -c * (f @ ROTOR_SX)
    torque[:, 2] = airframe.km * (rpm2 @ ROTOR_YAW)
    return f.sum(axis=1), torque


def ground_effect_gain(airframe: Airframe, height: NDArray[np.float64]) -> NDArray[np.float64]:
    """Thrust multiplier ``1 + c_ge·(r_prop / (4 h))²`` with h clipped below (gym-pybullet-drones).

    Args:
        height: (N,) rotor height above the floor [m].
    """
    h = np.maximum(height, airframe.ground_effect_clip_height)
    return 1.0 + airframe.ground_effect_coeff * (airframe.prop_radius / (4.0 * h)) ** 2


class FleetDynamics:
    """Numpy integrator for N quadrotors; no Python loop over drones.

    Args:
        airframe: constants.
        drag: apply rotor drag.
        ground_effect: apply ground effect.
    """

    def __init__(self, airframe: Airframe, *, drag: bool = True, ground_effect: bool = True):
        self.airframe = airframe
        self.drag = drag
        self.ground_effect = ground_effect
        self._inertia = np.array([airframe.ixx, airframe.iyy, airframe.izz])
        self._inv_inertia = 1.0 / self._inertia
        self._kd = np.array([airframe.kd_xy, airframe.kd_xy, airframe.kd_z])
        self.rest_z = airframe.body_half_height

    def integrate(
        self,
        s: RigidBodyState,
        rpm: NDArray[np.float64],
        dt: float,
        substeps: int,
        touchdown_speed: NDArray[np.float64],
        accel_noise: NDArray[np.float64] | None = None,
    ) -> None:
        """Advance ``substeps`` physics steps of ``dt`` with rotor speeds held constant.

        Args:
            s: state, updated in place.
            rpm: (N, 4) rotor speeds [RPM].
            dt: physics step [s].
            substeps: number of steps.
            touchdown_speed: (N,) updated in place with the fastest downward speed [m/s] at
                which a drone met the floor in this call (0 if it did not).
            accel_noise: optional (substeps, N, 3) extra acceleration [m/s²] (turbulence).
        """
        af = self.airframe
        thrust0, torque = body_wrench(rpm, af)
        inv_m = 1.0 / af.mass
        thrust0 *= inv_m
        # Structure-of-arrays copies: contiguous (N,) columns make every numpy op cheaper.
        px, py, pz = (np.ascontiguousarray(c) for c in s.pos.T)
        vx, vy, vz = (np.ascontiguousarray(c) for c in s.vel.T)
        x, y, z, w = (np.ascontiguousarray(c) for c in s.quat.T)
        wp, wq, wr = (np.ascontiguousarray(c) for c in s.rates.T)
        ixx, iyy, izz = self._inertia
        ax_t, ay_t, az_t = (torque[:, k] * self._inv_inertia[k] for k in range(3))
        # −J⁻¹(Ω × JΩ) per axis: (Ω × JΩ)_x = (izz − iyy)·q·r, so the x gain is (iyy − izz)/ixx.
        ga, gb, gc = (iyy - izz) / ixx, (izz - ixx) / iyy, (ixx - iyy) / izz
        omega_sum = rpm.sum(axis=1) * (-RPM_TO_RAD_S * inv_m)
        kdx, kdy, kdz = (self._kd[k] * omega_sum for k in range(3))
        rest_z, h = self.rest_z, 0.5 * dt
        for k in range(substeps):
            xx, yy, zz = x * x, y * y, z * z
            xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
            # Body z axis in the map frame (third column of R).
            r02, r12, r22 = 2.0 * (xz + wy), 2.0 * (yz - wx), 1.0 - 2.0 * (xx + yy)
            thrust, roll_t, pitch_t = thrust0, ax_t, ay_t
            if self.ground_effect:
                # Each rotor's thrust gains alike, and so does the roll/pitch torque of its
                # moment arm (the rotors' drag torque about z does not: as the motor fidelity).
                gain = np.where(r22 > 0.0, ground_effect_gain(af, pz), 1.0)
                thrust, roll_t, pitch_t = thrust0 * gain, ax_t * gain, ay_t * gain
            ax, ay, az = r02 * thrust, r12 * thrust, r22 * thrust
            if self.drag:
                r00, r10, r20 = 1.0 - 2.0 * (yy + zz), 2.0 * (xy + wz), 2.0 * (xz - wy)
                r01, r11, r21 = 2.0 * (xy - wz), 1.0 - 2.0 * (xx + zz), 2.0 * (yz + wx)
                # Body-frame velocity (Rᵀv), scaled drag, rotated back to the map frame.
                fx = (r00 * vx + r10 * vy + r20 * vz) * kdx
                fy = (r01 * vx + r11 * vy + r21 * vz) * kdy
                fz = (r02 * vx + r12 * vy + r22 * vz) * kdz
                ax += r00 * fx + r01 * fy + r02 * fz
                ay += r10 * fx + r11 * fy + r12 * fz
                az += r20 * fx + r21 * fy + r22 * fz
            az -= GRAVITY
            if accel_noise is not None:
                ax += accel_noise[k, :, 0]
                ay += accel_noise[k, :, 1]
                az += accel_noise[k, :, 2]
            vx += ax * dt
            vy += ay * dt
            vz += az * dt
            px += vx * dt
            py += vy * dt
            pz += vz * dt
            # Euler's equations, diagonal inertia: dΩ/dt = J⁻¹τ − J⁻¹(Ω × JΩ).
            dp = (roll_t + ga * wq * wr) * dt
            dq = (pitch_t + gb * wr * wp) * dt
            dr = (az_t + gc * wp * wq) * dt
            wp += dp
            wq += dq
            wr += dr
            qx = x + h * (w * wp + y * wr - z * wq)
            qy = y + h * (w * wq + z * wp - x * wr)
            qz = z + h * (w * wr + x * wq - y * wp)
            qw = w - h * (x * wp + y * wq + z * wr)
            inv = 1.0 / np.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
            x, y, z, w = qx * inv, qy * inv, qz * inv, qw * inv
            below = pz < rest_z
            if below.any():
                idx = np.flatnonzero(below)
                touchdown_speed[idx] = np.maximum(touchdown_speed[idx], -vz[idx])
                yaw = np.arctan2(2.0 * (w[idx] * z[idx] + x[idx] * y[idx]),
                                 1.0 - 2.0 * (y[idx] ** 2 + z[idx] ** 2))
                pz[idx] = rest_z
                vx[idx] = vy[idx] = vz[idx] = 0.0
                wp[idx] = wq[idx] = wr[idx] = 0.0
                x[idx] = y[idx] = 0.0
                z[idx] = np.sin(0.5 * yaw)
                w[idx] = np.cos(0.5 * yaw)
        s.pos[:, 0], s.pos[:, 1], s.pos[:, 2] = px, py, pz
        s.vel[:, 0], s.vel[:, 1], s.vel[:, 2] = vx, vy, vz
        s.quat[:, 0], s.quat[:, 1], s.quat[:, 2], s.quat[:, 3] = x, y, z, w
        s.rates[:, 0], s.rates[:, 1], s.rates[:, 2] = wp, wq, wr


def settle_on_floor(s: RigidBodyState, idx: NDArray[np.intp], rest_z: float) -> None:
    """Put drones ``idx`` at rest on the floor: z = ``rest_z``, level (yaw kept), not moving."""
    s.pos[idx, 2] = rest_z
    s.vel[idx] = 0.0
    s.rates[idx] = 0.0
    s.quat[idx] = quat_from_yaw(yaw_of(s.quat[idx]))
