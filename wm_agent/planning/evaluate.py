"""Closed-loop goal reaching in the cluttered warehouse: latent planner vs the PID baseline.

Same scenario, seed, starts (the home pads), goals (inside shelf aisles on the far side of a
shelf row, so the straight line crosses shelves) and simulator (``"fleet"`` fidelity, 48 Hz,
acceleration noise) for both controllers. Both follow the same global route: a shortest path on
a 2-D grid of the shelf map (shelves inflated by ``route_clearance``), of which each controller
is given the point ``lookahead`` metres ahead as its (local) goal — the local controllers are
compared, not the route. Commands are recomputed every world-model step (1/12 s = 4 control
periods) and held in between; the planner's commands pass the safety filter.

Metrics per controller: success rate (within ``goal_tolerance`` of the final goal before the
time limit, no collision), mean time to goal [s] and path length [m] of the successful drones,
collisions, min clearance to shelves/walls/other drones while flying [m], safety-filter
substitutions, and mean planning latency [ms].

    python -m wm_agent.planning.evaluate --model models/wm_plan --drones 6
"""

from __future__ import annotations

import argparse
import heapq
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import WmAgentError
from wm_agent.planning.config import PlannerConfig
from wm_agent.planning.pid import PidConfig, PidController
from wm_agent.planning.planner import Planner, stagger_step
from wm_agent.planning.safety import Envelope, SafetyConfig, SafetyFilter
from wm_agent.sim.scenario import Scenario
from wm_agent.world_model.spaces import WM_DT, ObservationSpec, build_observations, min_clearance

EVAL_CONFIG = PlannerConfig(samples=64, elites=8, iterations=3, horizon=8, action_space="raw")
"""Planner settings of the closed-loop check (lighter than the full 256 × 4 to keep it quick)."""

AISLE_XS = (11.0, 14.0, 17.0)
"""x of the goals inside the aisles [m]."""


@dataclass(frozen=True)
class EvalConfig:
    """Closed-loop settings.

    Attributes:
        drones: N. seed: sim seed. seconds: time limit [s]. altitude: route height [m].
        goal_tolerance: success radius [m]. lookahead: carrot distance along the route [m].
        route_clearance: shelf inflation of the route grid [m]. cell: grid cell [m].
        accel_noise_std: sim disturbance [m/s²].
    """

    drones: int = 6
    seed: int = 0
    seconds: float = 30.0
    altitude: float = 1.5
    goal_tolerance: float = 0.3
    lookahead: float = 2.0
    route_clearance: float = 0.7
    cell: float = 0.25
    accel_noise_std: float = 0.3


def goals_for(scenario: Scenario, n: int, altitude: float) -> NDArray[np.float64]:
    """(n, 3) goals at the centres of the aisles between shelf rows, cycling over aisles and x."""
    shelves = np.asarray(scenario.shelves)
    rows = np.unique(np.round(shelves[:, 0, 1], 3))
    tops = np.array([shelves[np.isclose(shelves[:, 0, 1], r), 1, 1].max() for r in rows])
    centres = 0.5 * (tops[:-1] + rows[1:])
    out = np.zeros((n, 3))
    for i in range(n):
        out[i] = (AISLE_XS[i % len(AISLE_XS)], centres[(i * 2 + 1) % centres.size], altitude)
    return out


def grid_route(scenario: Scenario, start: NDArray[np.float64], goal: NDArray[np.float64],
               clearance: float, cell: float) -> NDArray[np.float64]:
    """Shortest 8-connected path on the x/y grid with shelves inflated by ``clearance``; returns
    (P, 2) waypoints [m] from start to goal (Dijkstra; straight segments kept as grid points)."""
    lo = np.asarray(scenario.geofence_min[:2], np.float64)
    hi = np.asarray(scenario.geofence_max[:2], np.float64)
    nx, ny = int((hi[0] - lo[0]) / cell) + 1, int((hi[1] - lo[1]) / cell) + 1
    xs = lo[0] + np.arange(nx) * cell
    ys = lo[1] + np.arange(ny) * cell
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    blocked = np.zeros((nx, ny), bool)
    for box in np.asarray(scenario.shelves):
        blocked |= ((gx > box[0, 0] - clearance) & (gx < box[1, 0] + clearance)
                    & (gy > box[0, 1] - clearance) & (gy < box[1, 1] + clearance))

    def idx(p: NDArray[np.float64]) -> tuple[int, int]:
        return (int(np.clip(round((p[0] - lo[0]) / cell), 0, nx - 1)),
                int(np.clip(round((p[1] - lo[1]) / cell), 0, ny - 1)))

    s, g = idx(start), idx(goal)
    blocked[s] = blocked[g] = False
    dist = np.full((nx, ny), np.inf)
    prev = np.full((nx, ny, 2), -1, np.int64)
    dist[s] = 0.0
    heap = [(0.0, s)]
    steps = [(dx, dy, math.hypot(dx, dy)) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    while heap:
        d, (i, j) = heapq.heappop(heap)
        if (i, j) == g:
            break
        if d > dist[i, j]:
            continue
        for dx, dy, w in steps:
            a, b = i + dx, j + dy
            if 0 <= a < nx and 0 <= b < ny and not blocked[a, b] and d + w < dist[a, b]:
                dist[a, b] = d + w
                prev[a, b] = (i, j)
                heapq.heappush(heap, (d + w, (a, b)))
    path = [g]
    while path[-1] != s and prev[path[-1]][0] >= 0:
        path.append((int(prev[path[-1]][0]), int(prev[path[-1]][1])))
    pts = np.array([[xs[i], ys[j]] for i, j in reversed(path)])
    pts[0], pts[-1] = start[:2], goal[:2]
    return pts


class Routes:
    """Carrot goals along each drone's route, progress kept monotone."""

    def __init__(self, routes: list[NDArray[np.float64]], goals: NDArray[np.float64],
                 altitude: float, lookahead: float):
        self.routes = routes
        self.goals = goals
        self.altitude = altitude
        self.lookahead = lookahead
        self.arc = [np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(r, axis=0), axis=1))])
                    for r in routes]
        self.progress = np.zeros(len(routes))

    def carrots(self, pos: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, 3) local goals [m]: the route point ``lookahead`` beyond the closest point."""
        out = np.zeros((len(self.routes), 3))
        for i, (r, s) in enumerate(zip(self.routes, self.arc, strict=True)):
            d = np.linalg.norm(r - pos[i, :2], axis=1)
            near = np.flatnonzero(s <= self.progress[i] + 3.0)
            k = near[np.argmin(d[near])]
            self.progress[i] = max(self.progress[i], s[k])
            target = min(s[-1], self.progress[i] + self.lookahead)
            xy = np.array([np.interp(target, s, r[:, 0]), np.interp(target, s, r[:, 1])])
            out[i] = (*xy, self.altitude)
            if target >= s[-1] - 1e-9:
                out[i] = self.goals[i]
        return out


def run_closed_loop(controller: str, config: EvalConfig, planner: Planner | None = None,
                    safety: SafetyFilter | None = None, stagger: int = 1,
                    pid_config: PidConfig | None = None) -> dict[str, Any]:
    """Fly ``config.drones`` drones to their goals with ``controller`` ("planner" or "pid").

    ``stagger`` = k: each world-model step only the drones with ``i % k == step % k`` are
    replanned; the others execute the next action of their shifted previous plan
    (:func:`wm_agent.planning.planner.stagger_step`)."""
    from wm_agent.sim import SimOptions, StatusFlag, load_scenario, make_simulator
    from wm_agent.sim.scenario import Obstacles

    sc = load_scenario("warehouse", drones=config.drones)
    sim = make_simulator(sc, "fleet", options=SimOptions(accel_noise_std=config.accel_noise_std))
    sim.reset(seed=config.seed)
    spec = ObservationSpec()
    obstacles = Obstacles.from_scenario(sc)
    n = config.drones
    substeps = round(WM_DT * sc.rates.control_hz)
    goals = goals_for(sc, n, config.altitude)
    st = sim.state()
    routes = Routes([grid_route(sc, st.pos[i], goals[i], config.route_clearance, config.cell)
                     for i in range(n)], goals, config.altitude, config.lookahead)
    pid = PidController(n, pid_config or PidConfig())
    plan_prev: NDArray[np.float32] | None = None
    prev_cmd = np.zeros((n, 3))
    reached_t = np.full(n, np.nan)
    path_len = np.zeros(n)
    min_clear = np.full(n, np.inf)
    latencies: list[float] = []
    subs = np.zeros(4, np.int64)
    flag_col = np.uint16(StatusFlag.COLLIDED)
    flag_fly = np.uint16(StatusFlag.FLYING)
    steps = round(config.seconds / WM_DT)
    for tick in range(steps):
        st = sim.state()
        carrot = routes.carrots(st.pos)
        ob = build_observations(st.pos, st.vel, st.quat, st.body_rates, carrot, obstacles.boxes_min,
                                obstacles.boxes_max, floor_z=obstacles.floor_z,
                                ceiling_z=obstacles.ceiling_z, spec=spec)
        flying = (st.status & flag_fly) != 0
        clear = min_clearance(ob.obs, spec)
        min_clear = np.where(flying & ob.valid, np.minimum(min_clear, clear), min_clear)
        if controller == "pid":
            cmd, yaw = pid.command(st.pos, carrot, ob.obs, WM_DT)
        else:
            assert planner is not None and safety is not None
            if plan_prev is None or stagger <= 1:
                r = planner.plan(ob.obs, st.pos, carrot, plan_prev, ob.valid)
                plan_prev, clearance = r.plan, r.min_clearance
            else:
                idx = np.flatnonzero(np.arange(n) % stagger == tick % stagger)
                r = planner.plan(ob.obs[idx], st.pos[idx], carrot[idx], plan_prev[idx], ob.valid[idx])
                plan_prev, clearance = stagger_step(plan_prev, r.plan, idx)
            latencies.append(r.latency_ms)
            act_cmd, act_yaw = planner.action_spec.denormalise(plan_prev[:, 0])
            out = safety.apply(act_cmd, act_yaw, ob.obs, ob.valid, prev_cmd, st.pos, carrot,
                               clearance if stagger <= 1 else None)
            cmd, yaw = out.cmd_vel, out.yaw_rate
            subs += out.counts
        prev_cmd = cmd
        p0 = st.pos.copy()
        fresh = np.ones(n, bool)
        for c in range(substeps):
            sim.step(cmd, yaw, fresh if c == 0 else np.zeros(n, bool))
        st1 = sim.state()
        sim.drain_events()
        moving = np.isnan(reached_t)
        path_len += np.where(moving, np.linalg.norm(st1.pos - p0, axis=1), 0.0)
        ok = (np.linalg.norm(st1.pos - goals, axis=1) < config.goal_tolerance) & moving
        ok &= (st1.status & flag_col) == 0
        reached_t[ok] = st1.time
        if not np.isnan(reached_t).any():
            break
    st = sim.state()
    collided = (st.status & flag_col) != 0
    success = ~np.isnan(reached_t) & ~collided
    sim.close()
    return {
        "controller": controller,
        "drones": n,
        "success_rate": float(success.mean()),
        "time_to_goal_s": float(reached_t[success].mean()) if success.any() else math.nan,
        "path_length_m": float(path_len[success].mean()) if success.any() else math.nan,
        "collisions": int(collided.sum()),
        "min_clearance_m": float(min_clear.min()),
        "substitutions": subs.tolist(),
        "plan_latency_ms": float(np.mean(latencies)) if latencies else 0.0,
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`run_closed_loop` results."""
    head = ("| controller | success | time to goal [s] | path [m] | collisions | min clearance [m] "
            "| substitutions (nonfinite, clamp, brake, fallback) | plan latency [ms] |")
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['controller']} | {r['success_rate']:.2f} | {r['time_to_goal_s']:.2f} | "
            f"{r['path_length_m']:.2f} | {r['collisions']} | {r['min_clearance_m']:.2f} | "
            f"{r['substitutions']} | {r['plan_latency_ms']:.1f} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the closed-loop evaluation."""
    d = EvalConfig()
    p = argparse.ArgumentParser(
        prog="python -m wm_agent.planning.evaluate",
        description="Closed-loop goal reaching in the warehouse: latent planner (+ safety filter) "
        "vs PID, same starts/goals/seed; prints a table.",
    )
    p.add_argument("--model", type=Path, default=None, help="model folder (default models/wm_plan)")
    p.add_argument("--backend", default="onnxruntime", help="planner backend (default onnxruntime)")
    p.add_argument("--drones", type=int, default=d.drones, help=f"drones (default {d.drones})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"sim seed (default {d.seed})")
    p.add_argument("--seconds", type=float, default=d.seconds, help=f"time limit [s] (default {d.seconds})")
    p.add_argument("--samples", type=int, default=EVAL_CONFIG.samples, help="planner samples S")
    p.add_argument("--iterations", type=int, default=EVAL_CONFIG.iterations, help="planner iterations")
    p.add_argument("--elites", type=int, default=0, help="planner elites (default S / 8, >= 2)")
    p.add_argument("--action-space", choices=("raw", "latent"), default="raw",
                   help="search space of the planner (default raw; --compare-latent adds latent)")
    p.add_argument("--compare-latent", action="store_true", help="also run the latent-action planner")
    p.add_argument("--stagger", type=int, default=1,
                   help="replan 1/k of the drones per step, the others follow their plan (default 1)")
    p.add_argument("--pid-speed", type=float, default=PidConfig().max_speed,
                   help=f"PID speed cap [m/s] (default {PidConfig().max_speed})")
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """CLI. Returns 0 when the planner meets the targets (success ≥ PID, 0 collisions, shorter
    mean time to goal), 1 when it misses one, 2 on an error."""
    from wm_agent.inference import InferenceOptions
    from wm_agent.planning.backends import open_planner

    ns = build_parser().parse_args(argv)
    cfg = EvalConfig(drones=ns.drones, seed=ns.seed, seconds=ns.seconds)
    try:
        from wm_agent.sim import load_scenario

        sc = load_scenario("warehouse", drones=cfg.drones)
        spaces = [ns.action_space] + (["latent"] if ns.compare_latent and ns.action_space == "raw" else [])
        rows = [run_closed_loop("pid", cfg, pid_config=PidConfig(max_speed=ns.pid_speed))]
        rows[0]["controller"] = f"pid {ns.pid_speed} m/s"
        for space in spaces:
            pc = replace(EVAL_CONFIG, samples=ns.samples, elites=ns.elites or max(2, ns.samples // 8),
                         iterations=ns.iterations, action_space=space).with_scenario(sc)
            planner = open_planner(ns.backend, ns.model, pc, InferenceOptions(threads=1), seed=ns.seed)
            folder = ns.model or Path("models/wm_plan")
            try:
                env = Envelope.from_card(folder)
            except WmAgentError:
                env = None
            safety = SafetyFilter(SafetyConfig.from_airframe(sc.airframe), env)
            t0 = time.perf_counter()
            row = run_closed_loop("planner", cfg, planner, safety, stagger=ns.stagger)
            row["controller"] = (f"planner {pc.samples}x{pc.iterations}x{pc.horizon} {space}"
                                 + (f" stagger {ns.stagger}" if ns.stagger > 1 else ""))
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            rows.append(row)
    except WmAgentError as exc:
        print(f"planner evaluate: error: {exc}")
        return 2
    print(format_table(rows))
    pid_row, plan_row = rows[0], rows[1]
    ok = (plan_row["success_rate"] >= pid_row["success_rate"] and plan_row["collisions"] == 0
          and (math.isnan(pid_row["time_to_goal_s"])
               or plan_row["time_to_goal_s"] < pid_row["time_to_goal_s"]))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(evaluate_main())
