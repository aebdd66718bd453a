"""The "motor" fidelity's physics: PyBullet (``p.DIRECT``), one URDF body per drone.

Per physics step every armed or airborne drone gets each rotor's thrust kf·ω²·(1 + ground
effect) applied at its hub (``LINK_FRAME``), the rotors' yaw torque km·Σ±ω², and the rotor drag
at the centre of mass; PyBullet integrates gravity, contacts with the floor plane and the rigid
body. PyBullet forces a Python loop over drones for applying forces and reading state (~0.4 µs
per apply call, ~2 µs per read, measured with pybullet 3.2.7); the state is read once per
control period, and drag / ground effect use that state. Drone–drone and drone–shelf contacts
are disabled in PyBullet (only the floor collides): collisions are detected by
:mod:`wm_agent.sim.collisions`, identically for both fidelities.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import starmap

import numpy as np
import pybullet as p
from numpy.typing import NDArray

from wm_agent.errors import SimError
from wm_agent.sim.airframe import GRAVITY
from wm_agent.sim.dynamics import (
    ROTOR_SX,
    ROTOR_SY,
    ROTOR_YAW,
    RPM_TO_RAD_S,
    RigidBodyState,
    ground_effect_gain,
    rotor_positions,
)
from wm_agent.sim.options import SimOptions
from wm_agent.sim.rotations import quat_from_yaw, quat_to_matrix, yaw_of
from wm_agent.sim.scenario import Scenario

_DRONE_GROUP, _FLOOR_GROUP = 1, 2


class PyBulletPhysics:
    """PyBullet backend of :class:`wm_agent.sim.simulator.Simulator` (see module docstring).

    Args:
        scenario: drone count, rates and airframe (URDF path, constants).
        options: drag / ground effect / per-rotor-force switches.
    """

    def __init__(self, scenario: Scenario, options: SimOptions):
        self.airframe = scenario.airframe
        self.options = options
        self.n = scenario.drones
        self.client = p.connect(p.DIRECT)
        if self.client < 0:
            raise SimError("pybullet: could not start a DIRECT physics client")
        self._rotors = [tuple(r) for r in rotor_positions(self.airframe).tolist()]
        self._kd = np.array([self.airframe.kd_xy, self.airframe.kd_xy, self.airframe.kd_z])
        self._read_s = 0.0
        self.bodies: list[int] = []
        self._physics_hz = scenario.rates.physics_hz

    def _build(self, state: RigidBodyState) -> None:
        c = self.client
        af = self.airframe
        p.resetSimulation(physicsClientId=c)
        p.setGravity(0.0, 0.0, -GRAVITY, physicsClientId=c)
        p.setPhysicsEngineParameter(
            fixedTimeStep=1.0 / self._physics_hz, numSubSteps=0, deterministicOverlappingPairs=1,
            physicsClientId=c,
        )
        plane = p.createCollisionShape(p.GEOM_PLANE, physicsClientId=c)
        floor = p.createMultiBody(0.0, plane, -1, [0.0, 0.0, 0.0], physicsClientId=c)
        p.setCollisionFilterGroupMask(floor, -1, _FLOOR_GROUP, _DRONE_GROUP, physicsClientId=c)
        self.bodies = []
        for i in range(self.n):
            body = p.loadURDF(
                str(af.urdf), state.pos[i].tolist(), state.quat[i].tolist(),
                flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=c,
            )
            # The airframe YAML is the source of truth; no damping (drag is modelled explicitly).
            p.changeDynamics(
                body, -1, mass=af.mass, localInertiaDiagonal=[af.ixx, af.iyy, af.izz],
                linearDamping=0.0, angularDamping=0.0, physicsClientId=c,
            )
            p.setCollisionFilterGroupMask(body, -1, _DRONE_GROUP, _FLOOR_GROUP, physicsClientId=c)
            self.bodies.append(body)

    def reset(self, state: RigidBodyState) -> None:
        """Rebuild the world (bit-identical restarts) with every body at ``state``."""
        self._build(state)

    def _read(self, state: RigidBodyState) -> None:
        t0 = time.perf_counter()
        c = self.client
        get_pose, get_vel = p.getBasePositionAndOrientation, p.getBaseVelocity
        poses = [get_pose(b, c) for b in self.bodies]
        vels = [get_vel(b, c) for b in self.bodies]
        # One conversion per array (assigning tuples row by row costs ~1 µs each).
        state.pos[:] = [pose[0] for pose in poses]
        state.quat[:] = [pose[1] for pose in poses]
        state.vel[:] = [v[0] for v in vels]
        ang = np.array([v[1] for v in vels], dtype=np.float64).reshape(-1, 3)
        quat = state.quat
        rot = quat_to_matrix(quat)
        state.rates[:] = np.einsum("nji,nj->ni", rot, ang)  # map → body
        self._read_s += time.perf_counter() - t0

    def advance(
        self,
        state: RigidBodyState,
        rpm: NDArray[np.float64],
        substeps: int,
        dt: float,
        touchdown_speed: NDArray[np.float64],
        accel_noise: NDArray[np.float64] | None,
    ) -> None:
        """See :class:`wm_agent.sim.simulator.PhysicsBackend`. PyBullet steps by the fixed time
        step it was built with (1 / physics_hz); ``dt`` must be that step.

        Raises:
            SimError: ``dt`` is not the engine's time step.
        """
        if abs(dt * self._physics_hz - 1.0) > 1e-9:
            raise SimError(f"pybullet: advance(dt={dt}) but the engine steps by "
                           f"{1.0 / self._physics_hz} s (1 / physics_hz)")
        af, c = self.airframe, self.client
        rest_z = af.body_half_height
        rot = quat_to_matrix(state.quat)
        f = af.kf * rpm * rpm
        if self.options.ground_effect:
            gain = np.where(rot[:, 2, 2] > 0.0, ground_effect_gain(af, state.pos[:, 2]), 1.0)
            f = f * gain[:, None]
        v_body = np.einsum("nji,nj->ni", rot, state.vel)
        com = np.zeros((self.n, 3))
        if self.options.drag:
            com -= self._kd * v_body * (rpm.sum(axis=1) * RPM_TO_RAD_S)[:, None]
        yaw_torque = af.km * ((rpm * rpm) @ ROTOR_YAW)
        arm = af.arm_length / np.sqrt(2.0)
        thrust = f.sum(axis=1)
        torque = np.stack([arm * (f @ ROTOR_SY), -arm * (f @ ROTOR_SX), yaw_torque], axis=1)
        # Drones at rest on the floor with motors off need no forces (gravity + contact).
        moving = (rpm.max(axis=1) > 0.0) | (state.pos[:, 2] > rest_z + 1e-3)
        moving |= np.abs(state.vel).max(axis=1) > 1e-6
        active = np.flatnonzero(moving).tolist()
        vz_before = state.vel[:, 2].copy()
        link = p.LINK_FRAME
        act = np.asarray(active, dtype=np.intp)
        bodies = [self.bodies[i] for i in active]
        per_rotor = self.options.per_rotor_forces
        if per_rotor:
            torques = [
                (b, -1, (0.0, 0.0, t), link, c)
                for b, t in zip(bodies, yaw_torque[act].tolist(), strict=True)
            ]
        else:
            torques = [
                (b, -1, tuple(t), link, c) for b, t in zip(bodies, torque[act].tolist(), strict=True)
            ]
        apply_force, apply_torque = p.applyExternalForce, p.applyExternalTorque
        forces: list[tuple[object, ...]] = []
        for k in range(substeps):
            if k == 0 or accel_noise is not None:
                com_k = com if accel_noise is None else (
                    com + np.einsum("nji,nj->ni", rot, accel_noise[k]) * af.mass
                )
                forces = self._force_args(bodies, act, f, thrust, com_k, per_rotor)
            # Argument tuples are built once per control period (forces are held for all
            # substeps) and replayed with starmap: the per-call cost is PyBullet's own (~0.4 µs).
            deque(starmap(apply_force, forces), maxlen=0)
            deque(starmap(apply_torque, torques), maxlen=0)
            p.stepSimulation(physicsClientId=c)
        self._read(state)
        landed = (state.pos[:, 2] <= rest_z + 0.005) & (vz_before < 0.0)
        touchdown_speed[landed] = np.maximum(touchdown_speed[landed], -vz_before[landed])

    def _force_args(
        self,
        bodies: list[int],
        act: NDArray[np.intp],
        f: NDArray[np.float64],
        thrust: NDArray[np.float64],
        com: NDArray[np.float64],
        per_rotor: bool,
    ) -> list[tuple[object, ...]]:
        """applyExternalForce argument tuples (body frame) for the active drones.

        Per-rotor mode applies rotor i's thrust at its hub plus a quarter of the centre-of-mass
        force (drag, noise): the hubs sum to zero, so this adds no torque and saves one call.
        """
        link, c = p.LINK_FRAME, self.client
        if not per_rotor:
            net = com[act].copy()
            net[:, 2] += thrust[act]
            return [
                (b, -1, tuple(v), (0.0, 0.0, 0.0), link, c)
                for b, v in zip(bodies, net.tolist(), strict=True)
            ]
        quarter = (0.25 * com[act]).tolist()
        out: list[tuple[object, ...]] = []
        for b, fi, q in zip(bodies, f[act].tolist(), quarter, strict=True):
            for r in range(4):
                out.append((b, -1, (q[0], q[1], q[2] + fi[r]), self._rotors[r], link, c))
        return out

    def settle(self, state: RigidBodyState, idx: NDArray[np.intp]) -> None:
        """Put drones ``idx`` at rest on the floor, level, yaw kept (state and engine)."""
        c = self.client
        state.pos[idx, 2] = self.airframe.body_half_height
        state.vel[idx] = 0.0
        state.rates[idx] = 0.0
        state.quat[idx] = quat_from_yaw(yaw_of(state.quat[idx]))
        for i in idx.tolist():
            b = self.bodies[i]
            p.resetBasePositionAndOrientation(
                b, state.pos[i].tolist(), state.quat[i].tolist(), physicsClientId=c
            )
            p.resetBaseVelocity(b, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], physicsClientId=c)

    def readout_seconds(self) -> float:
        """Wall time spent in PyBullet state reads [s]."""
        return self._read_s

    def close(self) -> None:
        """Disconnect the PyBullet client."""
        if self.client >= 0 and p.isConnected(physicsClientId=self.client):
            p.disconnect(physicsClientId=self.client)
        self.client = -1
