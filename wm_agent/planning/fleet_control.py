"""From fleet state + assignments to fleet commands: the core behind the planner nodes.

Per drone: no assignment → HOLD (stays on its pad); IDLE → LAND; TO_HOME → fly to the pad at
cruise altitude, LAND once above it; TO_PICKUP / TO_DROPOFF → fly to the goal. Flying drones are
planned together in ONE batched call of the world-model planner (or the PID baseline when the
backend is "classical"), towards carrots on their global routes (`routes.NavGrid`), then the
safety filter clamps, brakes and substitutes. Pure numpy/torch: no rclpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.planning.mppi import Planner
from wm_agent.planning.pid import PidConfig, PidController
from wm_agent.planning.routes import NavGrid
from wm_agent.planning.safety import SafetyFilter
from wm_agent.sim.command_buffer import CommandMode
from wm_agent.world_model.collect import Obstacles
from wm_agent.world_model.spaces import WM_DT, build_observations

PHASE_IDLE, PHASE_TO_PICKUP, PHASE_TO_DROPOFF, PHASE_TO_HOME = 0, 1, 2, 3


@dataclass(frozen=True)
class FleetControlConfig:
    """Attributes: cruise_altitude [m] for home/pad goals; min_altitude [m] of any goal;
    land_radius [m] horizontal distance to the pad that starts a landing; lookahead [m] of the
    route carrot; route_clearance [m] shelf inflation of the route grid; cell [m] route grid."""

    cruise_altitude: float = 1.0
    min_altitude: float = 0.5
    land_radius: float = 0.25
    lookahead: float = 2.0
    route_clearance: float = 0.9
    cell: float = 0.25

    def __post_init__(self) -> None:
        for name in ("cruise_altitude", "min_altitude", "land_radius", "lookahead", "cell"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"fleet control: {name} must be > 0, got {getattr(self, name)}")


class FleetCommandOut(NamedTuple):
    """Commands for the N drones of the call: velocity [m/s] (N,3), yaw rate [rad/s] (N,), mode
    (N,) CommandMode, plus the planning step's latency [ms], substitution counts (4,) indexed by
    PlannerStatus.SUB_* and how many drones were planned."""

    velocity: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    mode: NDArray[np.uint8]
    latency_ms: float
    substitutions: NDArray[np.int64]
    planned: int


class FleetController:
    """Plans all flying drones of a fleet in one call; keeps warm starts per drone id."""

    def __init__(self, scenario: Any, planner: Planner | None, safety: SafetyFilter,
                 config: FleetControlConfig | None = None, pid: PidConfig | None = None) -> None:
        self.config = config or FleetControlConfig()
        self.planner = planner
        self.safety = safety
        self.obstacles = Obstacles.from_scenario(scenario)
        self.grid = NavGrid(scenario, self.config.route_clearance, self.config.cell)
        self.pid_config = pid or PidConfig()
        self._plans: dict[int, NDArray[np.float32]] = {}
        self._prev_cmd: dict[int, NDArray[np.float64]] = {}

    @property
    def backend(self) -> str:
        return self.planner.name if self.planner is not None else "classical"

    def targets(self, pos: NDArray[np.float64], goals: NDArray[np.float64], phases: NDArray[np.integer],
                has_goal: NDArray[np.bool_], grounded: NDArray[np.bool_]
                ) -> tuple[NDArray[np.float64], NDArray[np.uint8], NDArray[np.bool_]]:
        """Per-drone flight target [m], mode, and which drones fly to their target."""
        cfg = self.config
        n = pos.shape[0]
        target = goals.astype(np.float64).copy()
        target[:, 2] = np.maximum(target[:, 2], cfg.min_altitude)
        mode = np.full(n, CommandMode.HOLD, np.uint8)
        home = has_goal & (phases == PHASE_TO_HOME)
        target[home, 2] = cfg.cruise_altitude
        over_pad = home & (np.linalg.norm(pos[:, :2] - goals[:, :2], axis=1) < cfg.land_radius)
        fly = has_goal & np.isin(phases, (PHASE_TO_PICKUP, PHASE_TO_DROPOFF, PHASE_TO_HOME)) & ~over_pad
        mode[fly] = CommandMode.VELOCITY
        landing = has_goal & ((phases == PHASE_IDLE) | over_pad) & ~grounded
        mode[landing] = CommandMode.LAND
        return target, mode, fly

    def command(self, ids: NDArray[np.integer], pos: NDArray[np.floating], vel: NDArray[np.floating],
                quat: NDArray[np.floating], body_rates: NDArray[np.floating],
                grounded: NDArray[np.bool_], goals: NDArray[np.floating],
                phases: NDArray[np.integer], has_goal: NDArray[np.bool_]) -> FleetCommandOut:
        """One planning step for N drones (arrays in map ENU, SI units)."""
        t0 = time.perf_counter()
        ids = np.asarray(ids, np.int64)
        p64: NDArray[np.float64] = np.asarray(pos, np.float64)
        pos = p64
        n = ids.size
        target, mode, fly = self.targets(p64, np.asarray(goals, np.float64), np.asarray(phases),
                                         np.asarray(has_goal, bool), np.asarray(grounded, bool))
        velocity = np.zeros((n, 3))
        yaw = np.zeros(n)
        subs = np.zeros(4, np.int64)
        rows = np.flatnonzero(fly)
        if rows.size:
            carrot = self.grid.carrots(pos[rows], target[rows], self.config.lookahead)
            ob = build_observations(
                pos[rows], np.asarray(vel, np.float64)[rows], np.asarray(quat, np.float64)[rows],
                np.asarray(body_rates, np.float64)[rows], carrot, self.obstacles.boxes_min,
                self.obstacles.boxes_max, floor_z=self.obstacles.floor_z,
                ceiling_z=self.obstacles.ceiling_z,
            )
            prev_cmd = np.stack([self._prev_cmd.get(int(i), np.zeros(3)) for i in ids[rows]])
            clearance = None
            if self.planner is not None:
                h = self.planner.config.horizon
                prev = np.stack([self._plans.get(int(i), np.zeros((h, 4), np.float32))
                                 for i in ids[rows]])
                r = self.planner.plan(ob.obs, pos[rows], carrot, prev, ob.valid)
                for i, p in zip(ids[rows].tolist(), r.plan, strict=True):
                    self._plans[i] = p
                cmd, yr, clearance = r.cmd_vel, r.yaw_rate, r.min_clearance
            else:
                pid = PidController(rows.size, self.pid_config)
                cmd, yr = pid.command(pos[rows], carrot, ob.obs, WM_DT)
            out = self.safety.apply(cmd, yr, ob.obs, ob.valid, prev_cmd, pos[rows], carrot, clearance)
            velocity[rows], yaw[rows] = out.cmd_vel, out.yaw_rate
            subs += out.counts
            for i, c in zip(ids[rows].tolist(), out.cmd_vel, strict=True):
                self._prev_cmd[i] = c
        for i in ids[~fly].tolist():  # a drone that stops flying starts its next plan cold
            self._plans.pop(i, None)
            self._prev_cmd.pop(i, None)
        return FleetCommandOut(velocity, yaw, mode, (time.perf_counter() - t0) * 1e3, subs, rows.size)
