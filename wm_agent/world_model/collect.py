"""Collect world-model transitions by flying the simulator core with a scripted exploration policy.

The whole fleet is stepped at once (``fidelity="fleet"``, vectorised numpy). Each world-model step
(:data:`WM_DT` = 1/12 s) holds one velocity/yaw-rate command for ``control_hz · WM_DT`` control
periods (4 at 48 Hz). Drones switch between exploration behaviours, each drawn per drone:

* waypoint: fly to a random free point at a random speed cap;
* random velocity: piecewise-constant random setpoints (turned back at the geofence);
* obstacle pass: fly to a point 0.15–0.7 m beside a shelf face (sometimes too close: collisions);
* neighbour pass: chase a point next to the nearest other drone;
* dropout: stop sending commands for 0.3–2.5 s so the failsafe holds and then lands the drone.

Run ``python -m wm_agent.world_model.collect --help`` (or ``wm-agent collect --help``).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from wm_agent.errors import ConfigError, WmAgentError
from wm_agent.sim.scenario import Obstacles
from wm_agent.world_model.dataset import FIELDS, TransitionDataset, new_meta
from wm_agent.world_model.spaces import (
    WM_DT,
    ActionSpec,
    ObservationSpec,
    build_observations,
    goal_relative,
    min_clearance,
)

DEFAULT_DATA = Path("runs/wm/data/warehouse.npz")

WAYPOINT, RANDOM_VEL, OBSTACLE_PASS, NEIGHBOUR_PASS, DROPOUT = range(5)
MODE_NAMES = ("waypoint", "random_velocity", "obstacle_pass", "neighbour_pass", "dropout")


@dataclass(frozen=True)
class CollectConfig:
    """What to collect.

    Attributes:
        scenario: scenario name or YAML path. drones: fleet size flown at once.
        runs: sim resets (each with its own seed). run_seconds: sim time per run [s].
        seed: base seed (run r uses seed·1000 + r for the sim and the policy).
        fidelity: simulator fidelity ("fleet" is the fast vectorised one).
        accel_noise_std: sim acceleration disturbance [m/s²].
        mode_probs: probabilities of waypoint, random velocity, obstacle pass, neighbour pass,
            dropout when a drone picks its next behaviour.
        max_cmd_speed: largest commanded speed [m/s].
        spec: observation spec.
    """

    scenario: str = "warehouse"
    drones: int = 64
    runs: int = 8
    run_seconds: float = 60.0
    seed: int = 0
    fidelity: str = "fleet"
    accel_noise_std: float = 0.3
    mode_probs: tuple[float, ...] = (0.38, 0.25, 0.17, 0.12, 0.08)
    max_cmd_speed: float = 3.0
    spec: ObservationSpec = field(default_factory=ObservationSpec)

    def __post_init__(self) -> None:
        if self.drones < 1 or self.runs < 1 or not self.run_seconds > 0:
            raise ConfigError(
                f"collect: drones, runs and run_seconds must be positive, got {self.drones}, "
                f"{self.runs}, {self.run_seconds}"
            )
        if len(self.mode_probs) != 5 or abs(sum(self.mode_probs) - 1.0) > 1e-6 or min(
            self.mode_probs
        ) < 0:
            raise ConfigError(
                f"collect: mode_probs: expected 5 non-negative numbers summing to 1 (for "
                f"{', '.join(MODE_NAMES)}), got {self.mode_probs}"
            )


class ExplorationPolicy:
    """Vectorised scripted exploration over N drones (see the module docstring).

    Args:
        n: drones. obstacles: scenario geometry. config: probabilities and limits.
        rng: the run's random generator.
    """

    def __init__(self, n: int, obstacles: Obstacles, config: CollectConfig, rng: np.random.Generator):
        self.n = n
        self.obs = obstacles
        self.config = config
        self.rng = rng
        self.lo = obstacles.fence_min + np.array([0.7, 0.7, 0.5])
        self.hi = np.minimum(obstacles.fence_max - np.array([0.7, 0.7, 0.0]),
                             [np.inf, np.inf, min(4.5, obstacles.ceiling_z - 1.0)])
        self.mode = np.full(n, WAYPOINT, dtype=np.int64)
        self.timer = np.zeros(n, dtype=np.int64)  # world-model steps left in the mode
        self.goal = self._free_points(n)
        self.speed = np.full(n, 1.0)
        self.rand_vel = np.zeros((n, 3))
        self.vel_timer = np.zeros(n, dtype=np.int64)
        self.yaw_rate = np.zeros(n)
        self.offset = np.zeros((n, 3))
        self.careful = np.ones(n, dtype=bool)
        self.timer[:] = self._steps(1.0, 4.0, n)  # start with a take-off to a waypoint
        angles = np.arange(8) * (math.pi / 4.0)
        self._sector_dirs = np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def _steps(self, lo_s: float, hi_s: float, k: int) -> NDArray[np.int64]:
        return np.maximum(1, np.round(self.rng.uniform(lo_s, hi_s, k) / WM_DT)).astype(np.int64)

    def _free_points(self, k: int) -> NDArray[np.float64]:
        """k random points inside the flight box, ≥ 0.4 m from every shelf (rejection)."""
        pts = self.rng.uniform(self.lo, self.hi, (k, 3))
        shelves = self.obs.shelves
        for _ in range(20):
            if shelves.size == 0:
                break
            inside = np.any(np.all((pts[:, None] > shelves[None, :, 0] - 0.4)
                                   & (pts[:, None] < shelves[None, :, 1] + 0.4), axis=2), axis=1)
            if not inside.any():
                break
            pts[inside] = self.rng.uniform(self.lo, self.hi, (int(inside.sum()), 3))
        return pts

    def _shelf_side_points(self, k: int) -> NDArray[np.float64]:
        """k points 0.15–0.7 m beside a random face of a random shelf unit."""
        shelves = self.obs.shelves
        if shelves.shape[0] == 0:
            return self._free_points(k)
        box = shelves[self.rng.integers(0, shelves.shape[0], k)]
        lo, hi = box[:, 0], box[:, 1]
        pts = self.rng.uniform(lo, hi)
        axis = self.rng.integers(0, 2, k)
        side = self.rng.integers(0, 2, k)
        gap = self.rng.uniform(0.15, 0.7, k)
        rows = np.arange(k)
        face = np.where(side == 0, lo[rows, axis] - gap, hi[rows, axis] + gap)
        pts[rows, axis] = face
        pts[:, 2] = self.rng.uniform(0.5, np.minimum(hi[:, 2] + 0.6, self.hi[2]))
        return np.clip(pts, self.lo, self.hi)

    def _new_modes(self, idx: NDArray[np.int64]) -> None:
        k = idx.size
        mode = self.rng.choice(5, size=k, p=np.asarray(self.config.mode_probs))
        self.mode[idx] = mode
        self.speed[idx] = self.rng.uniform(0.4, self.config.max_cmd_speed, k)
        self.speed[idx[mode == OBSTACLE_PASS]] *= 0.6  # slower, closer passes
        # Careful drones slide along obstacles and neighbours; careless ones may hit them.
        p_careful = np.where(mode == OBSTACLE_PASS, 0.8, np.where(mode == NEIGHBOUR_PASS, 0.85, 0.97))
        self.careful[idx] = self.rng.random(k) < p_careful
        self.yaw_rate[idx] = np.where(self.rng.random(k) < 0.3, self.rng.uniform(-1.5, 1.5, k), 0.0)
        timer = self._steps(1.5, 6.0, k)
        timer[mode == DROPOUT] = self._steps(0.3, 2.5, int((mode == DROPOUT).sum()))
        self.timer[idx] = timer
        wp = idx[mode == WAYPOINT]
        self.goal[wp] = self._free_points(wp.size)
        ob = idx[mode == OBSTACLE_PASS]
        self.goal[ob] = self._shelf_side_points(ob.size)
        nb = idx[mode == NEIGHBOUR_PASS]
        off = self.rng.normal(0.0, 1.0, (nb.size, 3))
        off /= np.maximum(np.linalg.norm(off, axis=1, keepdims=True), 1e-9)
        self.offset[nb] = off * self.rng.uniform(0.25, 1.0, (nb.size, 1))
        self.vel_timer[idx[mode == RANDOM_VEL]] = 0

    def _avoid(self, cmd: NDArray[np.float64], obs: NDArray[np.float32]) -> None:
        """Reactive avoidance for careful drones, in place: remove the command's component into
        obstacle sectors closer than 1.2 m, push away inside 0.6 m, climb when blocked ahead;
        the same against neighbours closer than 0.8 m."""
        spec = self.config.spec
        idx = np.flatnonzero(self.careful)
        if idx.size == 0:
            return
        c = cmd[idx]
        sect = obs[idx, spec.slice("sectors")].astype(np.float64)
        u = self._sector_dirs  # (8, 2)
        into = c[:, :2] @ u.T  # (n, 8) speed towards each sector [m/s]
        w = np.clip((1.2 - sect) / 0.9, 0.0, 1.0)
        blocked = w * np.maximum(into, 0.0)
        c[:, :2] -= blocked @ u
        c[:, :2] -= (np.clip(0.6 - sect, 0.0, None) * 1.5) @ u
        c[:, 2] += np.clip(blocked.sum(axis=1), 0.0, 1.0)
        if spec.neighbours:
            nb = obs[idx, spec.slice("neighbours")].astype(np.float64).reshape(idx.size, -1, 7)
            rel, mask = nb[..., :3], nb[..., 6] > 0.5
            dist = np.linalg.norm(rel, axis=2)
            unit = rel / np.maximum(dist, 1e-6)[..., None]
            w_nb = np.where(mask, np.clip((0.8 - dist) / 0.5, 0.0, 1.0), 0.0)
            towards = np.einsum("nd,nkd->nk", c, unit)
            c -= np.einsum("nk,nkd->nd", w_nb * np.maximum(towards, 0.0) + w_nb * 0.8, unit)
        cmd[idx] = c

    def act(
        self, pos: NDArray[np.float64], flying: NDArray[np.bool_], obs: NDArray[np.float32]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
        """One world-model step of commands.

        Args:
            pos: (N, 3) positions [m]. flying: (N,) drones in the air.
            obs: (N, D) current observations (for the reactive avoidance).

        Returns:
            cmd_vel (N, 3) [m/s], yaw_rate (N,) [rad/s], fresh (N,) (False = dropout).
            ``self.goal`` holds each drone's goal for this step.
        """
        self.timer -= 1
        expired = np.flatnonzero(self.timer <= 0)
        if expired.size:
            self._new_modes(expired)
        mode = self.mode
        # Neighbour pass: the goal follows the nearest other drone (N ≤ a few hundred here).
        nb = np.flatnonzero(mode == NEIGHBOUR_PASS)
        if nb.size and self.n > 1:
            d = np.linalg.norm(pos[nb, None, :] - pos[None, :, :], axis=2)
            d[np.arange(nb.size), nb] = np.inf
            target = pos[np.argmin(d, axis=1)] + self.offset[nb]
            self.goal[nb] = np.clip(target, self.lo, self.hi)
        # Waypoint reached: next one.
        reached = (mode == WAYPOINT) & (np.linalg.norm(self.goal - pos, axis=1) < 0.3)
        if reached.any():
            self.goal[reached] = self._free_points(int(reached.sum()))
        # Goal seeking (waypoint, obstacle and neighbour passes).
        err = self.goal - pos
        cmd = 1.2 * err
        norm = np.linalg.norm(cmd, axis=1, keepdims=True)
        cmd *= np.minimum(1.0, self.speed[:, None] / np.maximum(norm, 1e-9))
        # Random velocity: piecewise constant, turned back near the fence / floor / ceiling.
        rv = np.flatnonzero(mode == RANDOM_VEL)
        if rv.size:
            self.vel_timer[rv] -= 1
            new = rv[self.vel_timer[rv] <= 0]
            if new.size:
                heading = self.rng.uniform(-math.pi, math.pi, new.size)
                speed = self.rng.uniform(0.0, self.speed[new])
                self.rand_vel[new, 0] = speed * np.cos(heading)
                self.rand_vel[new, 1] = speed * np.sin(heading)
                self.rand_vel[new, 2] = self.rng.uniform(-0.8, 0.8, new.size)
                self.vel_timer[new] = self._steps(0.3, 1.5, new.size)
            v = self.rand_vel[rv]
            p = pos[rv]
            out_lo = (p < self.lo + 0.5) & (v < 0)
            out_hi = (p > self.hi - 0.5) & (v > 0)
            v = np.where(out_lo | out_hi, -v, v)
            self.rand_vel[rv] = v
            cmd[rv] = v
        cmd += self.rng.normal(0.0, 0.08, cmd.shape)
        self._avoid(cmd, obs)
        # On the ground: take off first.
        grounded = ~flying
        cmd[grounded, 2] = np.maximum(cmd[grounded, 2], 0.6)
        norm = np.linalg.norm(cmd, axis=1, keepdims=True)
        cmd *= np.minimum(1.0, self.config.max_cmd_speed / np.maximum(norm, 1e-9))
        fresh = mode != DROPOUT
        return cmd, self.yaw_rate.copy(), fresh


class _EpisodeLog:
    """The transitions recorded so far: every flying drone's step, cut into episodes (one per
    flight: take-off to landing, crash or the end of the run)."""

    def __init__(self, n: int, spec: ObservationSpec, act_spec: ActionSpec) -> None:
        self.spec, self.act_spec = spec, act_spec
        self.parts: dict[str, list[NDArray[Any]]] = {k: [] for k in FIELDS}
        self.episodes = 0
        self.ep_id = np.full(n, -1, dtype=np.int64)
        self.in_episode = np.zeros(n, dtype=bool)
        self.mode_counts = np.zeros(5, dtype=np.int64)
        self.collisions = 0

    def new_run(self) -> None:
        """A run starts: nobody is in an episode."""
        self.in_episode[:] = False

    def record(self, rec: NDArray[np.intp], st: Any, st1: Any, obs: NDArray[np.float32],
               obs1: NDArray[np.float32], goal: NDArray[np.float64], cmd: NDArray[np.float64],
               yaw: NDArray[np.float64], collided: NDArray[np.bool_], failsafe: NDArray[np.bool_],
               done: NDArray[np.bool_], modes: NDArray[np.int64]) -> None:
        """One world-model step of the drones ``rec`` (flying at its start): st → st1."""
        new = rec[~self.in_episode[rec]]
        self.ep_id[new] = self.episodes + np.arange(new.size)
        self.episodes += new.size
        self.in_episode[new] = True
        d0 = np.linalg.norm(goal[rec] - st.pos[rec], axis=1)
        d1 = np.linalg.norm(goal[rec] - st1.pos[rec], axis=1)
        row = {
            "obs": obs[rec],
            "action": self.act_spec.normalise(cmd[rec], yaw[rec]),
            "next_obs": obs1[rec],
            "position": st.pos[rec].astype(np.float64),
            "next_position": st1.pos[rec].astype(np.float64),
            "goal": goal[rec],
            "progress": (d0 - d1).astype(np.float32),
            "clearance": min_clearance(obs1[rec], self.spec).astype(np.float32),
            "collided": collided[rec],
            "failsafe": failsafe[rec],
            "done": done,
            "episode": self.ep_id[rec].copy(),
            "drone": rec.astype(np.int32),
            "time": np.full(rec.size, st.time),
        }
        for key, value in row.items():
            self.parts[key].append(value)
        self.in_episode[rec[done]] = False
        self.mode_counts += np.bincount(modes[rec], minlength=5)
        self.collisions += int(collided[rec].sum())

    def arrays(self) -> dict[str, NDArray[Any]]:
        """Every field, episodes contiguous and time-ordered within."""
        arrays = {k: np.concatenate(v) if v else np.zeros((0, *(_shape(k, self.spec, self.act_spec))),
                                                         dtype=FIELDS[k][0])
                  for k, v in self.parts.items()}
        order = np.argsort(arrays["episode"], kind="stable")
        return {k: v[order] for k, v in arrays.items()}


def collect(config: CollectConfig, progress: bool = True) -> TransitionDataset:
    """Fly ``config.runs`` runs and return the transitions (episodes contiguous, time-ordered).

    Raises:
        ConfigError: invalid config or scenario. SimError: the simulator refused a command.
    """
    from wm_agent.sim import SimOptions, StatusFlag, load_scenario, make_simulator

    scenario = load_scenario(config.scenario, drones=config.drones)
    sim = make_simulator(scenario, fidelity=config.fidelity,
                         options=SimOptions(accel_noise_std=config.accel_noise_std))
    spec = config.spec
    act_spec = ActionSpec.from_airframe(scenario.airframe)
    obstacles = Obstacles.from_scenario(scenario)
    substeps = round(WM_DT * scenario.rates.control_hz)
    if abs(substeps / scenario.rates.control_hz - WM_DT) > 1e-9:
        raise ConfigError(
            f"collect: world-model step {WM_DT} s is not a whole number of control periods at "
            f"{scenario.rates.control_hz} Hz"
        )
    steps = round(config.run_seconds / WM_DT)
    n = scenario.drones
    log = _EpisodeLog(n, spec, act_spec)
    flag_fly = np.uint16(StatusFlag.FLYING)
    flag_col = np.uint16(StatusFlag.COLLIDED)
    flag_fs = np.uint16(StatusFlag.FAILSAFE_HOLD | StatusFlag.FAILSAFE_LAND)
    t_start = time.perf_counter()
    bar = tqdm(total=config.runs * steps, desc="collect", unit="step", disable=not progress)

    def observe(st: Any, goals: NDArray[np.float64]) -> NDArray[np.float32]:
        return build_observations(
            st.pos, st.vel, st.quat, st.body_rates, goals, obstacles.boxes_min,
            obstacles.boxes_max, floor_z=obstacles.floor_z, ceiling_z=obstacles.ceiling_z,
            spec=spec,
        ).obs

    gs = spec.slice("goal_rel")
    no_cmd = np.zeros(n, dtype=bool)
    for run in range(config.runs):
        sim.reset(seed=config.seed * 1000 + run)
        policy = ExplorationPolicy(n, obstacles, config, np.random.default_rng([config.seed, run]))
        log.new_run()
        st = sim.state()
        obs = observe(st, policy.goal)
        for k in range(steps):
            # 1. The policy acts; the command is held for one world-model step.
            flying0 = ((st.status & flag_fly) != 0) & ((st.status & flag_col) == 0)
            cmd, yaw, fresh = policy.act(st.pos, flying0, obs)
            goal = policy.goal.copy()
            obs[:, gs] = goal_relative(st.pos, goal, spec)
            for c in range(substeps):
                sim.step(cmd, yaw, fresh if c == 0 else no_cmd)
            st1 = sim.state()
            sim.drain_events()
            obs1 = observe(st1, goal)
            # 2. Record the drones that were flying at its start.
            flying1 = ((st1.status & flag_fly) != 0) & ((st1.status & flag_col) == 0)
            collided = ((st1.status & flag_col) != 0) & ((st.status & flag_col) == 0)
            failsafe = ~fresh | ((st.status & flag_fs) != 0) | ((st1.status & flag_fs) != 0)
            rec = np.flatnonzero(flying0)
            if rec.size:
                log.record(rec, st, st1, obs, obs1, goal, cmd, yaw, collided, failsafe,
                           ~flying1[rec] | (k == steps - 1), policy.mode)
            st, obs = st1, obs1
            bar.update(1)
    bar.close()
    sim.close()
    meta = new_meta(
        scenario.name, config.seed, spec, act_spec.to_dict(),
        drones=n, runs=config.runs, run_seconds=config.run_seconds, fidelity=config.fidelity,
        accel_noise_std=config.accel_noise_std, control_hz=scenario.rates.control_hz,
        control_periods_per_step=substeps, dt=WM_DT,
        policy={"mode_probs": list(config.mode_probs), "max_cmd_speed": config.max_cmd_speed,
                "transitions_per_mode": dict(zip(MODE_NAMES, log.mode_counts.tolist(), strict=True))},
        collisions=log.collisions, wall_seconds=round(time.perf_counter() - t_start, 2),
    )
    return TransitionDataset(log.arrays(), meta)


def _shape(key: str, spec: ObservationSpec, act: ActionSpec) -> tuple[int, ...]:
    trailing = FIELDS[key][1]
    return tuple(spec.size if s == "D" else act.size if s == "A" else int(s) for s in trailing)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wm-agent collect``."""
    d = CollectConfig()
    p = argparse.ArgumentParser(
        prog="wm-agent collect",
        description="Fly the simulator with a scripted exploration policy and save world-model "
        "transitions (.npz + .json).",
    )
    p.add_argument("--scenario", default=d.scenario, help=f"scenario name or YAML (default {d.scenario})")
    p.add_argument("--drones", type=int, default=d.drones, help=f"drones flown at once (default {d.drones})")
    p.add_argument("--runs", type=int, default=d.runs, help=f"sim resets (default {d.runs})")
    p.add_argument("--run-seconds", type=float, default=d.run_seconds,
                   help=f"sim time per run [s] (default {d.run_seconds})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"base seed (default {d.seed})")
    p.add_argument("--accel-noise", type=float, default=d.accel_noise_std,
                   help=f"sim acceleration noise [m/s²] (default {d.accel_noise_std})")
    p.add_argument("--out", type=Path, default=DEFAULT_DATA, help=f"output .npz (default {DEFAULT_DATA})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def collect_main(argv: list[str] | None = None) -> int:
    """CLI: ``wm-agent collect``. Returns the exit status (0 ok, 2 error)."""
    ns = build_parser().parse_args(argv)
    try:
        config = CollectConfig(
            scenario=ns.scenario, drones=ns.drones, runs=ns.runs, run_seconds=ns.run_seconds,
            seed=ns.seed, accel_noise_std=ns.accel_noise,
        )
        ds = collect(config, progress=not ns.no_progress)
        path = ds.save(ns.out)
    except WmAgentError as exc:
        print(f"wm-agent collect: error: {exc}")
        return 2
    m = ds.meta
    print(
        f"wrote {path} ({len(ds)} transitions, {ds.episodes.size} episodes, "
        f"{int(ds.arrays['collided'].sum())} collisions, "
        f"{int(ds.arrays['failsafe'].sum())} failsafe steps) in {m['wall_seconds']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(collect_main())
