"""One simulator interface, several fidelities.

``make_simulator(scenario, fidelity="fleet" | "motor")`` returns a :class:`FleetSimulator`.
Both fidelities share the failsafe, the controller (one vectorised call per control period),
collision detection, status flags and events; they differ only in the physics backend:

* ``"fleet"`` — :class:`wm_agent.sim.dynamics.FleetDynamics`, numpy, all drones at once.
* ``"motor"`` — PyBullet (``p.DIRECT``), one URDF body per drone, per-rotor forces
  (:mod:`wm_agent.sim.pybullet_physics`; imported only when this fidelity is chosen).

Timeline of :meth:`Simulator.step` (one control period ``1 / control_hz``):
failsafe gate and arming → controller → ``physics_hz / control_hz`` physics steps with the rotor
speeds held → floor contact (landing or crash) → collisions → events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError, SimError
from wm_agent.sim.collisions import CollisionDetector
from wm_agent.sim.controller import CascadeController
from wm_agent.sim.dynamics import FleetDynamics, RigidBodyState, settle_on_floor
from wm_agent.sim.failsafe import Failsafe
from wm_agent.sim.options import SimOptions
from wm_agent.sim.scenario import Scenario
from wm_agent.sim.types import EventKind, FleetStateArrays, FlightMode, SimEvent, StatusFlag

# Plain ints: IntEnum attribute lookups are slow in per-period code.
_OFFBOARD, _HOLD, _LAND = int(FlightMode.OFFBOARD), int(FlightMode.HOLD), int(FlightMode.LAND)

GROUND_TOLERANCE = 0.005  # [m] origin within this of its rest height counts as on the floor


class PhysicsBackend(Protocol):
    """What a fidelity provides: advance rigid bodies under rotor speeds."""

    def reset(self, state: RigidBodyState) -> None:
        """Place every body at ``state``."""

    def advance(
        self,
        state: RigidBodyState,
        rpm: NDArray[np.float64],
        substeps: int,
        dt: float,
        touchdown_speed: NDArray[np.float64],
        accel_noise: NDArray[np.float64] | None,
    ) -> None:
        """Run ``substeps`` physics steps of ``dt`` [s] with rotor speeds (N, 4) [RPM] held;
        update ``state`` in place and ``touchdown_speed`` (N,) [m/s] (see FleetDynamics)."""

    def settle(self, state: RigidBodyState, idx: NDArray[np.intp]) -> None:
        """Put drones ``idx`` at rest on the floor (level, yaw kept) in ``state`` and the engine."""

    def readout_seconds(self) -> float:
        """Wall time spent reading state back from the engine so far [s]."""

    def close(self) -> None:
        """Release engine resources."""


class NumpyPhysics:
    """"fleet" fidelity backend: :class:`FleetDynamics` on the simulator's own arrays."""

    def __init__(self, scenario: Scenario, options: SimOptions):
        self.dynamics = FleetDynamics(
            scenario.airframe, drag=options.drag, ground_effect=options.ground_effect
        )

    def reset(self, state: RigidBodyState) -> None:
        """Nothing to do: the state arrays are the physics state."""

    def advance(
        self,
        state: RigidBodyState,
        rpm: NDArray[np.float64],
        substeps: int,
        dt: float,
        touchdown_speed: NDArray[np.float64],
        accel_noise: NDArray[np.float64] | None,
    ) -> None:
        """See :class:`PhysicsBackend`."""
        self.dynamics.integrate(state, rpm, dt, substeps, touchdown_speed, accel_noise)

    def settle(self, state: RigidBodyState, idx: NDArray[np.intp]) -> None:
        """See :class:`PhysicsBackend`."""
        settle_on_floor(state, idx, self.dynamics.rest_z)

    def readout_seconds(self) -> float:
        """No engine to read from."""
        return 0.0

    def close(self) -> None:
        """Nothing to release."""


class FleetSimulator(Protocol):
    """The interface the ROS sim-bridge node drives (lockstep: one :meth:`step` per period)."""

    @property
    def n(self) -> int:
        """Number of drones."""

    @property
    def sim_time(self) -> float:
        """Sim time [s] (an integer number of control periods)."""

    def reset(self, seed: int | None = None) -> None:
        """All drones back on their home pads, disarmed; clears events; seeds the RNG."""

    def step(
        self,
        cmd_vel: NDArray[np.float64],
        yaw_rate: NDArray[np.float64],
        fresh: NDArray[np.bool_],
        t: float | None = None,
    ) -> None:
        """Advance one control period with the given commands."""

    def state(self) -> FleetStateArrays:
        """Read-only snapshot of the fleet."""

    def commands_stale(self) -> NDArray[np.bool_]:
        """(N,) drones that had an accepted command, but none for longer than the failsafe's
        ``land_after_s``."""

    def attitude(self, rows: NDArray[np.intp]) -> NDArray[np.float64]:
        """(k, 4) attitude quaternions (x, y, z, w) of the drones at ``rows`` (copies)."""

    def drain_events(self) -> list[SimEvent]:
        """Events since the last call, in time order."""

    def timings(self) -> dict[str, float]:
        """Accumulated wall time per stage [s]."""

    def close(self) -> None:
        """Release resources."""


class Simulator:
    """:class:`FleetSimulator` implementation shared by all fidelities.

    Args:
        scenario: validated scenario (drone count, geometry, rates, airframe).
        physics: factory building the physics backend.
        options: simulator options.
        fidelity: the fidelity name (for messages).
    """

    def __init__(
        self,
        scenario: Scenario,
        physics: Callable[[Scenario, SimOptions], PhysicsBackend],
        options: SimOptions | None = None,
        fidelity: str = "fleet",
    ):
        self.scenario = scenario
        self.options = options or SimOptions()
        self.fidelity = fidelity
        if not (np.isfinite(self.options.accel_noise_std) and self.options.accel_noise_std >= 0):
            raise ConfigError(
                f"sim options: accel_noise_std: expected >= 0, got {self.options.accel_noise_std}"
            )
        af = scenario.airframe
        self._n = scenario.drones
        self._dt_physics = scenario.rates.physics_dt
        self._dt_control = scenario.rates.control_dt
        self._substeps = scenario.rates.substeps
        self._rest_z = af.body_half_height
        self.controller = CascadeController(af, self._dt_control, self._n, self.options.gains)
        self.failsafe = Failsafe(self.options.failsafe, af.max_speed, af.max_yaw_rate, self._n)
        self.detector = CollisionDetector(scenario)
        self.physics = physics(scenario, self.options)
        self._ids = np.arange(self._n, dtype=np.int32)
        self.reset(scenario.seed)

    @property
    def n(self) -> int:
        """Number of drones."""
        return self._n

    @property
    def sim_time(self) -> float:
        """Sim time [s]."""
        return self._tick * self._dt_control

    def reset(self, seed: int | None = None) -> None:
        """All drones on their home pads (origin at ``body_half_height``), disarmed, yaw 0."""
        n = self._n
        self._seed = self.scenario.seed if seed is None else int(seed)
        self._rng = np.random.default_rng(self._seed)
        pads = np.array(self.scenario.home_pads, dtype=np.float64)
        pads[:, 2] += self._rest_z
        self.body = RigidBodyState.at_rest(pads)
        self.physics.reset(self.body)
        self.controller.reset(n)
        self.failsafe.reset(n)
        self._tick = 0
        self._armed = np.zeros(n, dtype=bool)
        self._collided = np.zeros(n, dtype=bool)
        self._on_ground = np.ones(n, dtype=bool)
        self._mode = np.zeros(n, dtype=np.int8)
        self._touchdown = np.zeros(n)
        self._events: list[SimEvent] = []
        self._timing = {"controller": 0.0, "physics": 0.0, "collisions": 0.0, "readout": 0.0}
        self._readout_base = self.physics.readout_seconds()

    def _event(
        self, kind: EventKind, drone: int, t: float, other: int = -1, detail: str = "",
        where: NDArray[np.float64] | None = None,
    ) -> None:
        p = self.body.pos[drone] if where is None else where
        self._events.append(
            SimEvent(kind, drone, other, (float(p[0]), float(p[1]), float(p[2])), t, detail)
        )

    def _check_inputs(
        self,
        cmd_vel: NDArray[np.float64],
        yaw_rate: NDArray[np.float64],
        fresh: NDArray[np.bool_],
        t: float | None,
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        n = self._n
        cmd = np.asarray(cmd_vel, dtype=np.float64)
        yaw = np.asarray(yaw_rate, dtype=np.float64)
        fr = np.asarray(fresh)
        if cmd.shape != (n, 3) or yaw.shape != (n,) or fr.shape != (n,):
            raise SimError(
                f"step: expected cmd_vel (N, 3), yaw_rate (N,), fresh (N,) with N = {n}, got "
                f"{cmd.shape}, {yaw.shape}, {fr.shape}"
            )
        if fr.dtype != np.bool_:
            raise SimError(f"step: fresh must be a bool array, got dtype {fr.dtype}")
        if t is not None and abs(t - self.sim_time) > 1e-9:
            raise SimError(
                f"step: lockstep violation: caller is at t = {t} s, simulator at "
                f"{self.sim_time} s; call step() once per control period"
            )
        return cmd, yaw, fr

    def step(
        self,
        cmd_vel: NDArray[np.float64],
        yaw_rate: NDArray[np.float64],
        fresh: NDArray[np.bool_],
        t: float | None = None,
    ) -> None:
        """Advance one control period.

        Args:
            cmd_vel: (N, 3) velocity command [m/s], ENU map frame (may hold NaN/inf: rejected).
            yaw_rate: (N,) yaw-rate command [rad/s].
            fresh: (N,) bool, True where a new command arrived since the previous step; stale
                rows are ignored (the failsafe ages them).
            t: optional sim time [s] the caller believes it is at; a mismatch raises (lockstep).

        Raises:
            SimError: wrong shapes/dtypes or a lockstep mismatch.
        """
        cmd, yaw_rate_arr, fresh_arr = self._check_inputs(cmd_vel, yaw_rate, fresh, t)
        now = self.sim_time
        t0 = time.perf_counter()
        active = ~self._collided
        fs = self.failsafe
        accepted, _ = fs.validate(cmd, yaw_rate_arr, fresh_arr)
        self._armed |= accepted & active
        out = fs.update(cmd, yaw_rate_arr, fresh_arr, now, self.body.pos, self._armed)
        self._mode = out.mode
        for d in np.flatnonzero(out.rejected).tolist():
            self._event(
                EventKind.INVALID_COMMAND, d, now,
                detail=f"rejected cmd_vel={cmd[d].tolist()} yaw_rate={float(yaw_rate_arr[d])} "
                f"(count {int(fs.invalid_count[d])})",
            )
        for mask, kind in (
            (out.entered_hold, EventKind.FAILSAFE_HOLD),
            (out.entered_land, EventKind.FAILSAFE_LAND),
            (out.recovered, EventKind.RECOVERED),
        ):
            for d in np.flatnonzero(mask).tolist():
                self._event(kind, d, now)
        rpm = self.controller.compute(
            self.body, out.mode, out.cmd_vel, out.yaw_rate, fs.hold_pos,
            self._armed & active, self._on_ground,
        )
        t1 = time.perf_counter()

        p0 = self.body.pos.copy()
        self._touchdown.fill(0.0)
        noise = None
        if self.options.accel_noise_std > 0.0:
            noise = self._rng.normal(0.0, self.options.accel_noise_std, (self._substeps, self._n, 3))
        self.physics.advance(
            self.body, rpm, self._substeps, self._dt_physics, self._touchdown, noise
        )
        self._tick += 1
        t2 = time.perf_counter()
        self._after_physics(p0, now)
        t3 = time.perf_counter()
        self._timing["controller"] += t1 - t0
        self._timing["physics"] += t2 - t1
        self._timing["collisions"] += t3 - t2

    def _after_physics(self, p0: NDArray[np.float64], t_start: float) -> None:
        """Floor contact (landing / crash), LAND disarm, collisions, grounding."""
        t_end = self.sim_time
        active = ~self._collided
        was_on_ground = self._on_ground
        on_ground = self.body.pos[:, 2] <= self._rest_z + GROUND_TOLERANCE
        crash = active & (self._touchdown > self.scenario.airframe.max_touchdown_speed)
        touched = active & on_ground & ~was_on_ground & ~crash
        land_disarm = active & on_ground & self._armed & (self._mode == _LAND)
        for d in np.flatnonzero(touched | land_disarm).tolist():
            detail = "disarmed (LAND)" if land_disarm[d] else "touchdown"
            self._event(EventKind.LANDED, d, t_end, detail=detail)
        self._armed &= ~land_disarm
        self._on_ground = on_ground

        new = np.zeros(self._n, dtype=bool)
        for d in np.flatnonzero(crash).tolist():
            self._event(
                EventKind.COLLISION, d, t_end,
                detail=f"floor (touchdown {float(self._touchdown[d]):.2f} m/s)",
            )
        new |= crash
        hits = self.detector.detect(p0, self.body.pos, active & ~crash)
        for k in range(hits.drone.shape[0]):
            d, o = int(hits.drone[k]), int(hits.other[k])
            t_hit = t_start + float(hits.fraction[k]) * self._dt_control
            self._event(EventKind.COLLISION, d, t_hit, other=o, detail=hits.detail[k],
                        where=hits.where[k])
            new[d] = True
            if o >= 0:
                new[o] = True
        if new.any():
            idx = np.flatnonzero(new)
            self._collided[idx] = True
            self._armed[idx] = False
            self._on_ground[idx] = True
            self.physics.settle(self.body, idx)

    def commands_stale(self) -> NDArray[np.bool_]:
        """(N,) drones that had an accepted command, but none for longer than the failsafe's
        ``land_after_s`` (none without a land delay)."""
        land_after = self.failsafe.config.land_after_s
        last = self.failsafe.last_accept
        if land_after is None:
            return np.zeros(last.shape, bool)
        out: NDArray[np.bool_] = np.isfinite(last) & (self.sim_time - last > land_after)
        return out

    def attitude(self, rows: NDArray[np.intp]) -> NDArray[np.float64]:
        """(k, 4) attitude quaternions of the drones at ``rows`` (copies; no fleet snapshot)."""
        out: NDArray[np.float64] = self.body.quat[rows].copy()
        return out

    def state(self) -> FleetStateArrays:
        """Read-only snapshot (copies)."""
        t0 = time.perf_counter()
        status = np.zeros(self._n, dtype=np.uint16)
        grounded = self._on_ground | self._collided
        status[grounded] |= np.uint16(StatusFlag.GROUNDED)
        status[~grounded] |= np.uint16(StatusFlag.FLYING)
        status[self._collided] |= np.uint16(StatusFlag.COLLIDED)
        status[self._armed] |= np.uint16(StatusFlag.ARMED)
        status[self._armed & (self._mode == _HOLD)] |= np.uint16(StatusFlag.FAILSAFE_HOLD)
        # FAILSAFE_LAND while the failsafe lands a drone and after it disarmed it, until a
        # command is accepted again (a drone whose planner died stays marked on the floor)
        landed = ~self._armed & self.commands_stale()
        status[(self._armed & (self._mode == _LAND)) | landed] |= np.uint16(StatusFlag.FAILSAFE_LAND)
        arrays: list[NDArray[np.generic]] = [
            self._ids.copy(),
            self.body.pos.copy(),
            self.body.vel.copy(),
            self.body.quat.copy(),
            self.body.rates.copy(),
            status,
            self.failsafe.invalid_count.copy(),
        ]
        for a in arrays:
            a.setflags(write=False)
        snap = FleetStateArrays(self.sim_time, *arrays)  # type: ignore[arg-type]
        self._timing["readout"] += time.perf_counter() - t0
        return snap

    def drain_events(self) -> list[SimEvent]:
        """Events since the last call, ordered by time (stable)."""
        events = sorted(self._events, key=lambda e: e.time)
        self._events = []
        return events

    def timings(self) -> dict[str, float]:
        """Accumulated wall time since reset [s]: controller (incl. failsafe), physics, collisions
        (incl. floor contact and events), readout (engine reads + state snapshots)."""
        engine_reads = self.physics.readout_seconds() - self._readout_base
        out = dict(self._timing)
        out["physics"] -= engine_reads
        out["readout"] += engine_reads
        return out

    def close(self) -> None:
        """Release the physics backend."""
        self.physics.close()


def _numpy_backend(scenario: Scenario, options: SimOptions) -> PhysicsBackend:
    return NumpyPhysics(scenario, options)


def _pybullet_backend(scenario: Scenario, options: SimOptions) -> PhysicsBackend:
    from wm_agent.sim.pybullet_physics import PyBulletPhysics  # PyBullet only for this fidelity

    return PyBulletPhysics(scenario, options)


FIDELITIES: dict[str, Callable[[Scenario, SimOptions], PhysicsBackend]] = {
    "fleet": _numpy_backend,
    "motor": _pybullet_backend,
}


def make_simulator(
    scenario: Scenario, fidelity: str = "fleet", options: SimOptions | None = None
) -> Simulator:
    """Build the simulator for ``fidelity`` (one of :data:`FIDELITIES`).

    Raises:
        ConfigError: unknown fidelity (the message lists the known ones).
    """
    if fidelity not in FIDELITIES:
        raise ConfigError(
            f"sim fidelity: unknown fidelity {fidelity!r}; choose one of {sorted(FIDELITIES)}"
        )
    return Simulator(scenario, FIDELITIES[fidelity], options, fidelity)
