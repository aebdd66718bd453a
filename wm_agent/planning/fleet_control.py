"""From fleet state + assignments to fleet commands: the core behind the planner nodes.

Per drone: no assignment → HOLD (stays on its pad); IDLE → LAND; TO_HOME → fly to the pad at
cruise altitude, LAND once above it; TO_PICKUP / TO_DROPOFF → fly to the goal. Flying drones are
planned together in ONE batched call of the world-model planner (or the PID baseline when the
backend is "classical"), towards carrots on their global routes (`routes.NavGrid`); over the
home-pad field commands are capped at ``pad_zone_speed`` (drones land and take off 0.5 m
apart there); then the safety filter clamps, brakes and substitutes. Every airborne drone —
flying, landing or holding — is a neighbour of the flying ones (only drones on the floor are
not). The command period (how long a command is held) is the safety filter's ``dt``; the PID
baseline keeps its integral and derivative state per drone id across calls. Pure numpy/torch:
no rclpy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from wm_agent.errors import ConfigError
from wm_agent.planning.pid import PidConfig, PidController
from wm_agent.planning.planner import Planner, stagger_step
from wm_agent.planning.routes import NavGrid
from wm_agent.planning.safety import SafetyFilter
from wm_agent.sim.command_buffer import CommandMode
from wm_agent.sim.scenario import Obstacles, Scenario
from wm_agent.world_model.spaces import NeighbourPool, build_observations

PHASE_IDLE, PHASE_TO_PICKUP, PHASE_TO_DROPOFF, PHASE_TO_HOME = 0, 1, 2, 3


def _p(default: float, description: str) -> Any:
    """A config field with its description (what a planner node's ROS parameter says)."""
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class FleetControlConfig:
    """Fleet-control settings, each defined here once with its description (the planner nodes
    declare them as ROS parameters from these fields)."""

    cruise_altitude: float = _p(1.0, "altitude of home/pad goals [m]")
    min_altitude: float = _p(0.5, "lowest altitude of any goal [m]")
    land_radius: float = _p(0.25, "horizontal distance to the pad that starts a landing [m]")
    lookahead: float = _p(2.0, "distance of the route carrot ahead of the drone [m]")
    route_clearance: float = _p(0.9, "shelf inflation of the route grid [m]")
    cell: float = _p(0.25, "route grid cell [m]")
    pad_zone_speed: float = _p(1.0, "speed limit over the home-pad field, where drones take off "
                               "and land next to each other [m/s] (0 = off)")
    pad_zone_margin: float = _p(0.5, "the pad field grown by this for the speed limit [m]")
    pad_route_spacing: float = _p(6.0, "routes to a home pad lead to the nearest of route "
                                  "anchors this far apart over its pad field, the last metres "
                                  "straight (one distance field per anchor, not per pad) [m]")
    replan_groups: int = _p(1, "staggered replanning: the flying drones replan in this many "
                            "groups, one group per planning step (spread by a hash of the id); "
                            "the others fly their previous plan advanced one step (1 = every "
                            "drone every step)")

    def __post_init__(self) -> None:
        if not (isinstance(self.replan_groups, int) and 1 <= self.replan_groups <= 64):
            raise ConfigError(f"fleet control: replan_groups must be an integer in 1..64, got "
                              f"{self.replan_groups!r}")
        if not (np.isfinite(self.pad_zone_speed) and self.pad_zone_speed >= 0
                and np.isfinite(self.pad_zone_margin) and self.pad_zone_margin >= 0):
            raise ConfigError("fleet control: pad_zone_speed and pad_zone_margin must be >= 0")
        for name in ("cruise_altitude", "min_altitude", "land_radius", "lookahead", "cell",
                     "pad_route_spacing"):
            if not (np.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"fleet control: {name} must be > 0, got {getattr(self, name)}")


def _field_boxes(pads: NDArray[np.float64], field_of: NDArray[np.int64]
                 ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """The pad fields (F,) and each one's box over its pads: min (F, 2), max (F, 2) [m]."""
    fields = np.unique(field_of)
    lo = np.array([pads[field_of == f].min(axis=0) for f in fields]).reshape(-1, 2)
    hi = np.array([pads[field_of == f].max(axis=0) for f in fields]).reshape(-1, 2)
    return fields, lo, hi


def _pad_anchors(pads: NDArray[np.float64], field_of: NDArray[np.int64],
                 boxes: tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]],
                 spacing: float) -> NDArray[np.float64]:
    """(P, 2) each pad's route anchor: the nearest point of a grid ``spacing`` m apart laid over
    its own pad field's box (cell centres inside it, ``boxes`` from :func:`_field_boxes`), so a
    route never leads to another field."""
    out = np.empty((pads.shape[0], 2))
    for f, lo, hi in zip(*boxes, strict=True):
        rows = np.flatnonzero(field_of == f)
        cells = np.maximum(np.ceil((hi - lo) / spacing), 1).astype(np.int64)
        step = (hi - lo) / cells
        idx = np.clip(np.floor((pads[rows] - lo) / np.maximum(step, 1e-9)), 0, cells - 1)
        out[rows] = lo + (idx + 0.5) * step
    return out


class GoalTable(NamedTuple):
    """The coordinator's assignments as arrays sorted by drone id: goal [m] and phase."""

    ids: NDArray[np.int64]        # (M,) sorted
    goals: NDArray[np.float64]    # (M, 3) [m]
    phases: NDArray[np.uint8]     # (M,)

    @staticmethod
    def of(ids: NDArray[np.integer], goals: NDArray[np.floating], phases: NDArray[np.integer]
           ) -> GoalTable:
        """A table from unsorted arrays (a repeated id: the last row wins)."""
        i = np.asarray(ids, np.int64)
        last = i.size - 1 - np.unique(i[::-1], return_index=True)[1]  # sorted ids' last rows
        return GoalTable(i[last], np.asarray(goals, np.float64).reshape(-1, 3)[last],
                         np.asarray(phases, np.uint8)[last])

    @staticmethod
    def empty() -> GoalTable:
        return GoalTable(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.uint8))

    def lookup(self, ids: NDArray[np.integer]
               ) -> tuple[NDArray[np.float64], NDArray[np.uint8], NDArray[np.bool_]]:
        """Goals (N, 3), phases (N,) and whether the table has each of ``ids`` (zeros if not)."""
        q = np.asarray(ids, np.int64)
        if not self.ids.size:
            return np.zeros((q.size, 3)), np.zeros(q.size, np.uint8), np.zeros(q.size, bool)
        k = np.minimum(np.searchsorted(self.ids, q), self.ids.size - 1)
        has = self.ids[k] == q
        goals = np.where(has[:, None], self.goals[k], 0.0)
        phases = np.where(has, self.phases[k], 0).astype(np.uint8)
        return goals, phases, has


def replan_group(ids: NDArray[np.integer], groups: int) -> NDArray[np.int64]:
    """The staggered-replanning group (0..groups-1) of each drone id: a multiplicative hash of
    the id (Knuth's 2654435761), so that the groups stay even inside any id % K planner shard
    and do not depend on K (2 shards replan the same drones at the same step as one planner)."""
    h = (np.asarray(ids, np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)
    out: NDArray[np.int64] = ((h >> np.uint64(16)) % np.uint64(groups)).astype(np.int64)
    return out


class FleetCommandOut(NamedTuple):
    """Commands for the N drones of the call: velocity [m/s] (N,3), yaw rate [rad/s] (N,), mode
    (N,) CommandMode, plus the planning step's latency [ms], substitution counts (4,) indexed by
    PlannerStatus.SUB_*, how many drones were planned, and the step's wall time per stage [ms]
    (targets, observations, plan, safety: wm_agent.stages)."""

    velocity: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    mode: NDArray[np.uint8]
    latency_ms: float
    substitutions: NDArray[np.int64]
    planned: int
    stages: dict[str, float]


class FleetController:
    """Plans all flying drones of a fleet in one call; keeps warm starts per drone id (arrays
    by row of a sorted id table: no per-drone Python work)."""

    def __init__(self, scenario: Scenario, planner: Planner | None, safety: SafetyFilter,
                 config: FleetControlConfig | None = None, pid: PidConfig | None = None) -> None:
        self.config = config or FleetControlConfig()
        self.planner = planner
        self.safety = safety
        self.obstacles = Obstacles.from_scenario(scenario)
        self.grid = NavGrid(scenario, self.config.route_clearance, self.config.cell)
        self.pid_config = pid or PidConfig()
        self.pid = PidController(0, self.pid_config)  # rows = the id table below
        # one box per pad field (scenario.pad_field), grown by pad_zone_margin: (F, 2) each
        pads = np.asarray(scenario.home_pads, np.float64)[:, :2]
        field_of = np.asarray(scenario.pad_field, np.int64)
        if field_of.shape != (pads.shape[0],):
            field_of = np.zeros(pads.shape[0], np.int64)
        boxes = _field_boxes(pads, field_of)
        self._pad_lo = boxes[1] - self.config.pad_zone_margin
        self._pad_hi = boxes[2] + self.config.pad_zone_margin
        # Station bays (scenario ``stations.bays``): routes lead to the station, one distance
        # field for all its bays; the last metres go straight to the bay.
        self._stations = np.array([np.asarray(p, np.float64) for p in scenario.stations.values()]
                                  ).reshape(-1, 3)
        self._bays = np.asarray(scenario.station_bays, np.float64)
        # Home pads: the route leads to the pad's anchor (a grid pad_route_spacing apart over
        # its field); a distance field costs ~0.1 s on a 200 x 120 m floor, and a field per pad
        # (10,000 goals) stalled a 10,000-drone planner for seconds at a time.
        self._pad_anchor = _pad_anchors(pads, field_of, boxes, self.config.pad_route_spacing)
        self._pad_tree = cKDTree(pads)
        # the stations' distance fields now, before the run (~0.15 s each on a 200 x 120 m
        # floor: computed on first use, 34 of them stalled the first steps for seconds); the
        # pad anchors' (up to a few hundred) as drones head home
        for xy in self._stations[:, :2]:
            self.grid.field(int(self.grid.cell_of(xy[None])[0]))
        h = planner.config.horizon if planner is not None else 1
        self._ids = np.zeros(0, np.int64)  # sorted drone ids of the rows below
        self._plans = np.zeros((0, h, 4), np.float32)  # warm starts (zeros = cold)
        self._warm = np.zeros(0, bool)  # has a plan since it started flying (staggering)
        self._prev_cmd = np.zeros((0, 3))  # last safe velocity command [m/s]

    def pad_zone_limit(self, pos: NDArray[np.float64], cmd: NDArray[np.float64]
                       ) -> NDArray[np.float64]:
        """Velocity commands (N, 3) [m/s] scaled to ``pad_zone_speed`` for drones over the pad
        field (before the safety filter, so its acceleration limit smooths the change)."""
        limit = self.config.pad_zone_speed
        if limit <= 0.0:
            return cmd
        xy = pos[:, None, :2]
        inside = np.all((xy >= self._pad_lo) & (xy <= self._pad_hi), axis=2).any(axis=1)
        speed = np.linalg.norm(cmd, axis=1)
        scale = np.where(inside & (speed > limit), limit / np.maximum(speed, 1e-9), 1.0)
        out: NDArray[np.float64] = cmd * scale[:, None]
        return out

    def route_goals(self, goals: NDArray[np.float64]
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Where the route of each goal (N, 3) leads: the station for a goal at one of a
        station's bays, the pad's route anchor for a goal at a home pad (horizontally within
        1 cm), else the goal; and the horizontal distance from there to the goal [m]."""
        via = goals.copy()
        if self._pad_anchor.shape[0]:
            d, k = self._pad_tree.query(goals[:, :2], distance_upper_bound=0.01)
            at_pad = np.isfinite(d)
            via[at_pad, :2] = self._pad_anchor[k[at_pad]]
        if self._bays.shape[0] > 1 and self._stations.size:
            # nearest station (N, S), then is the offset one of the K bays (N, K)
            st = np.argmin(((goals[:, None, :2] - self._stations[None, :, :2]) ** 2).sum(-1), axis=1)
            off = goals[:, :2] - self._stations[st, :2]
            at_bay = (((off[:, None, :] - self._bays[None, :, :2]) ** 2).sum(-1) <= 1e-4).any(1)
            via[at_bay, :2] = self._stations[st[at_bay], :2]
        approach: NDArray[np.float64] = np.linalg.norm(goals[:, :2] - via[:, :2], axis=1)
        return via, approach

    def _rows(self, ids: NDArray[np.int64]) -> NDArray[np.intp]:
        """Rows of ``ids`` in the warm-start tables; unknown ids get cold rows."""
        new = np.setdiff1d(ids, self._ids)
        if new.size:
            all_ids = np.union1d(self._ids, new)
            keep = np.searchsorted(all_ids, self._ids)
            plans = np.zeros((all_ids.size, *self._plans.shape[1:]), np.float32)
            prev = np.zeros((all_ids.size, 3))
            warm = np.zeros(all_ids.size, bool)
            plans[keep], prev[keep], warm[keep] = self._plans, self._prev_cmd, self._warm
            self._ids, self._plans, self._prev_cmd, self._warm = all_ids, plans, prev, warm
            self.pid.resize(all_ids.size, keep)
        rows: NDArray[np.intp] = np.searchsorted(self._ids, ids)
        return rows

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

    def _plan(self, obs: NDArray[np.float32], valid: NDArray[np.bool_], pos: NDArray[np.float64],
              carrot: NDArray[np.float64], fr: NDArray[np.intp], ids: NDArray[np.int64],
              step: int | None) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float32]]:
        """World-model commands for the flying drones at table rows ``fr``: this step's group
        (and every drone without a plan yet) is planned in one call, the others advance their
        plan one step and fly its first action (``replan_groups``; predicted clearance unknown:
        inf). Returns velocity (n, 3), yaw rate (n,) and predicted clearance (n,)."""
        assert self.planner is not None
        groups = self.config.replan_groups
        if groups > 1:
            turn = (step or 0) % groups
            now = (replan_group(ids, groups) == turn) | ~self._warm[fr]
        else:
            now = np.ones(fr.size, bool)
        sel = np.flatnonzero(now)
        noise = None if step is None else self.planner.draw_noise(sel.size, key=step)
        r = self.planner.plan(obs[sel], pos[sel], carrot[sel], self._plans[fr[sel]], valid[sel], noise)
        if sel.size == fr.size:
            self._plans[fr] = r.plan
            self._warm[fr] = True
            return r.cmd_vel, r.yaw_rate, r.min_clearance
        plans, clearance = stagger_step(self._plans[fr], r.plan, sel)
        clearance[sel] = r.min_clearance
        self._plans[fr] = plans
        self._warm[fr[sel]] = True
        cmd, yr = self.planner.action_spec.denormalise(plans[:, 0])
        cmd[sel], yr[sel] = r.cmd_vel, r.yaw_rate
        return cmd, yr, clearance

    def command(self, ids: NDArray[np.integer], pos: NDArray[np.floating], vel: NDArray[np.floating],
                quat: NDArray[np.floating], body_rates: NDArray[np.floating],
                grounded: NDArray[np.bool_], goals: NDArray[np.floating],
                phases: NDArray[np.integer], has_goal: NDArray[np.bool_],
                mine: NDArray[np.bool_] | None = None, step: int | None = None
                ) -> FleetCommandOut:
        """One planning step for N drones (arrays in map ENU, SI units).

        ``mine``: (N,) the drones this call plans (a planner shard's; default all); the others
        are still neighbours, and their rows of the result are HOLD. ``step``: the planning
        step; given, the planner's sampling noise is the step's (:meth:`Planner.draw_noise`),
        so shards planning the same step draw the same noise as one planner would.
        """
        t0 = time.perf_counter()
        id64: NDArray[np.int64] = np.asarray(ids, np.int64)
        ids = id64
        p64: NDArray[np.float64] = np.asarray(pos, np.float64)
        pos = p64
        v64: NDArray[np.float64] = np.asarray(vel, np.float64)
        n = ids.size
        on_floor = np.asarray(grounded, bool)
        target, mode, fly = self.targets(p64, np.asarray(goals, np.float64), np.asarray(phases),
                                         np.asarray(has_goal, bool), on_floor)
        if mine is not None:
            mine = np.asarray(mine, bool)
            mode[~mine] = CommandMode.HOLD
            plan_rows = fly & mine
        else:
            plan_rows = fly
        velocity = np.zeros((n, 3))
        yaw = np.zeros(n)
        subs = np.zeros(4, np.int64)
        rows = np.flatnonzero(plan_rows)
        table = self._rows(id64)
        stages: dict[str, float] = {}
        t1 = time.perf_counter()
        stages["targets"] = (t1 - t0) * 1e3
        if rows.size:
            fr = table[rows]
            via, approach = self.route_goals(target[rows])
            carrot = self.grid.carrots(pos[rows], target[rows], self.config.lookahead, via, approach)
            # Neighbours: every drone in the air (landing and holding ones too), not only the
            # planned ones; drones on the floor are left out (take-off next to parked drones).
            seen = np.flatnonzero(~on_floor | fly)
            ob = build_observations(
                pos[rows], v64[rows], np.asarray(quat, np.float64)[rows],
                np.asarray(body_rates, np.float64)[rows], carrot, self.obstacles.boxes_min,
                self.obstacles.boxes_max, NeighbourPool(pos[seen], v64[seen], id64[seen]),
                self_ids=id64[rows], floor_z=self.obstacles.floor_z,
                ceiling_z=self.obstacles.ceiling_z,
            )
            prev_cmd = self._prev_cmd[fr]
            clearance = None
            t2 = time.perf_counter()
            stages["observations"] = (t2 - t1) * 1e3
            if self.planner is not None:
                cmd, yr, clearance = self._plan(ob.obs, ob.valid, pos[rows], carrot, fr, id64[rows],
                                                step)
            else:
                cmd, yr = self.pid.command(pos[rows], carrot, ob.obs, self.safety.config.dt, fr)
            t3 = time.perf_counter()
            stages["plan"] = (t3 - t2) * 1e3
            cmd = self.pad_zone_limit(pos[rows], cmd)
            out = self.safety.apply(cmd, yr, ob.obs, ob.valid, prev_cmd, pos[rows], carrot, clearance)
            velocity[rows], yaw[rows] = out.cmd_vel, out.yaw_rate
            subs += out.counts
            self._prev_cmd[fr] = out.cmd_vel
            stages["safety"] = (time.perf_counter() - t3) * 1e3
        idle = table[~plan_rows]  # a drone that stops flying starts its next plan cold
        self._plans[idle] = 0.0
        self._warm[idle] = False
        self._prev_cmd[idle] = 0.0
        self.pid.reset(idle)
        return FleetCommandOut(velocity, yaw, mode, (time.perf_counter() - t0) * 1e3, subs, rows.size,
                               stages)
