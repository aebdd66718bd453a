"""Replay a recording through the world model: resample at its dt, build observations and actions,
k-step open-loop prediction error beside constant velocity, and offline re-planning.

Pure (numpy + the runtimes; no rclpy). Steps:

1. :func:`resample` — states onto a grid of ``dt`` = 1/12 s (the world-model step) from the first
   state sample: linear interpolation of position, velocity and body rates, normalised lerp of the
   quaternion, between two samples of the same drone at most ``max_gap_s`` apart.
2. :func:`step_actions` — the action of step j is the **time average of the recorded velocity
   command over [t_j, t_j + dt)** (commands held until the next one, as the simulator and PX4
   do), normalised by the model's :class:`ActionSpec`. A step is usable when a command younger
   than ``stale_s`` (0.5 s, the failsafe's hold threshold) covers all of it in velocity mode.
3. goals — ``goal_rel`` is the only observation block a goal changes. ``auto``: the drone's
   assignment goal (``/fleet/assignments``) when recorded, else its recorded position
   ``goal_steps`` steps (default 20 = 1.67 s) after the window start; ``future`` / ``assignment``
   force one.
4. :func:`prediction_errors` — windows of max(k) usable steps of a flying drone; encode once, step
   the latent with the recorded actions, integrate ``dpos``; velocity from the decoded
   observation. Constant velocity: ``p0 + k·dt·v0``, ``v0``. Mean and p95 Euclidean errors.
5. :func:`replan` — the planner run offline on the recorded observations of up to ``batch``
   drones along consecutive steps (warm start carried, as the planner node does), compared after
   ``warmup`` steps with the recorded command of the same step.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.evaluation.bag_data import CommandSeries, GoalSeries, StateSeries
from wm_agent.evaluation.run_data import PredictionErrors, ReplanStats
from wm_agent.world_model.spaces import ActionSpec, NeighbourPool, ObservationSpec, build_observations

KS = (1, 5, 10, 20)
GOAL_SOURCES = ("auto", "assignment", "future")


class Grid(NamedTuple):
    """States of N drones on G steps of ``dt`` (NaN where unusable).

    Attributes:
        t: (G,) [s]. ids: (N,). position, velocity, body_rates: (G, N, 3). orientation: (G, N, 4).
        ok: (G, N) state interpolated from two close samples. flying: (G, N).
    """

    t: NDArray[np.float64]
    ids: NDArray[np.int64]
    position: NDArray[np.float64]
    velocity: NDArray[np.float64]
    orientation: NDArray[np.float64]
    body_rates: NDArray[np.float64]
    ok: NDArray[np.bool_]
    flying: NDArray[np.bool_]


class Actions(NamedTuple):
    """Per step j and drone: mean command over [t_j, t_j + dt) and whether it is usable.

    Attributes: velocity (G, N, 3) [m/s], yaw_rate (G, N) [rad/s], normalised (G, N, 4), ok (G, N).
    """

    velocity: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    normalised: NDArray[np.float32]
    ok: NDArray[np.bool_]


@dataclass(frozen=True)
class Geometry:
    """Obstacles as the observation builder wants them (see ``collect.Obstacles``)."""

    boxes_min: NDArray[np.float64]
    boxes_max: NDArray[np.float64]
    floor_z: float
    ceiling_z: float


def resample(s: StateSeries, dt: float, max_gap_s: float = 0.25) -> Grid:
    """States onto ``t_0 + j·dt`` (see the module doc); vectorised over drones and steps."""
    if dt <= 0:
        raise ConfigError(f"resample: dt must be > 0, got {dt}")
    t = s.t
    n_t, n = s.position.shape[:2]
    if n_t == 0:
        z3 = np.zeros((0, n, 3))
        return Grid(np.zeros(0), s.ids, z3, z3, np.zeros((0, n, 4)), z3, np.zeros((0, n), bool),
                    np.zeros((0, n), bool))
    valid = (np.isfinite(s.position).all(2) & np.isfinite(s.velocity).all(2)
             & np.isfinite(s.orientation).all(2) & np.isfinite(s.body_rates).all(2))
    rows = np.arange(n_t)[:, None]
    last = np.maximum.accumulate(np.where(valid, rows, -1), axis=0)              # (T, N)
    nxt = np.minimum.accumulate(np.where(valid, rows, n_t)[::-1], axis=0)[::-1]   # (T, N)
    g = np.arange(int(np.floor((t[-1] - t[0]) / dt + 1e-9)) + 1)
    tg = t[0] + g * dt
    k = np.searchsorted(t, tg + 1e-9, side="right") - 1                          # (G,)
    left = last[k]                                                               # (G, N)
    right = np.where(k[:, None] + 1 < n_t, nxt[np.minimum(k + 1, n_t - 1)], n_t)
    li, ri = left.clip(0), right.clip(0, n_t - 1)
    tl, tr = t[li], t[ri]
    exact = (left >= 0) & (np.abs(tg[:, None] - tl) < 1e-6)
    w = np.where(exact, 0.0, np.clip((tg[:, None] - tl) / np.maximum(tr - tl, 1e-12), 0.0, 1.0))
    ok = (left >= 0) & (exact | ((right < n_t) & (tr - tl <= max_gap_s)))
    cols = np.arange(n)[None, :]

    def lerp(x: NDArray[np.float64]) -> NDArray[np.float64]:
        a, b = x[li, cols], x[ri, cols]
        out = np.where(exact[..., None], a, (1.0 - w[..., None]) * a + w[..., None] * b)
        return np.where(ok[..., None], out, np.nan)

    qa, qb = s.orientation[li, cols], s.orientation[ri, cols]
    qb = np.where((np.sum(qa * qb, axis=-1) < 0)[..., None], -qb, qb)
    q = np.where(exact[..., None], qa, (1.0 - w[..., None]) * qa + w[..., None] * qb)
    q = np.where(ok[..., None], q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12), np.nan)
    flying = ok & s.flying[li, cols] & (exact | s.flying[ri, cols])
    return Grid(tg, s.ids, lerp(s.position), lerp(s.velocity), q, lerp(s.body_rates), ok, flying)


def _zoh_integral(ct: NDArray[np.float64], values: NDArray[np.float64], x: NDArray[np.float64]
                  ) -> NDArray[np.float64]:
    """∫ from ct[0] to x of the zero-order hold of `values` (C, k) at times ct (C,), for x (G,)."""
    seg = np.diff(ct)[:, None] * values[:-1]
    cum = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(seg, axis=0)])
    k = (np.searchsorted(ct, x, side="right") - 1).clip(0)
    return np.asarray(cum[k] + values[k] * (x - ct[k])[:, None])


def by_column(column: NDArray[np.integer], t: NDArray[np.floating]
              ) -> Iterator[tuple[int, NDArray[np.intp]]]:
    """(drone column, its rows in time order) for every column, from one sort by (column, time)
    (ties keep their order). Selecting each drone's rows with a mask over all rows was
    quadratic: a 10,000-drone, 2-minute bag has 58 M command rows."""
    order = np.lexsort((t, column))
    by_col = np.asarray(column)[order]
    if not order.size:
        return
    bounds = np.flatnonzero(np.r_[True, by_col[1:] != by_col[:-1], True]).tolist()
    for lo, hi in itertools.pairwise(bounds):
        yield int(by_col[lo]), order[lo:hi]


def step_actions(commands: CommandSeries | None, grid: Grid, dt: float, spec: ActionSpec,
                 stale_s: float = 0.5) -> Actions:
    """Mean command of every grid step (see the module doc); loops over drones with commands."""
    n_g, n = grid.ok.shape
    vel = np.full((n_g, n, 3), np.nan)
    yaw = np.full((n_g, n), np.nan)
    ok = np.zeros((n_g, n), bool)
    if commands is not None and commands.t.size:
        a, b = grid.t, grid.t + dt
        for col, sel in by_column(commands.column, commands.t):
            ct = commands.t[sel]
            raw = np.concatenate([commands.velocity[sel], commands.yaw_rate[sel, None]], axis=1)
            bad = ~commands.velocity_mode[sel] | ~np.isfinite(raw).all(axis=1)
            vals = np.concatenate([np.where(bad[:, None], 0.0, raw), bad[:, None].astype(np.float64)], 1)
            mean = (_zoh_integral(ct, vals, b) - _zoh_integral(ct, vals, a)) / dt
            held = np.searchsorted(ct, a, side="right") - 1      # command held when the step starts
            last = np.searchsorted(ct, b, side="left") - 1       # last command before it ends
            fresh = ((held >= 0) & (a - ct[held.clip(0)] <= stale_s) & (b - ct[last.clip(0)] <= stale_s)
                     & (mean[:, 4] < 1e-9))                       # velocity mode, finite throughout
            vel[:, col] = mean[:, :3]
            yaw[:, col] = mean[:, 3]
            ok[:, col] = fresh
    norm = np.zeros((n_g, n, 4), np.float32)
    if ok.any():
        norm[ok] = spec.normalise(vel[ok], yaw[ok])
    return Actions(vel, yaw, norm, ok)


def assignment_goals(goals: GoalSeries | None, grid: Grid) -> NDArray[np.float64]:
    """(G, N, 3) the latest assignment goal at each step [m] (NaN: none yet)."""
    n_g, n = grid.ok.shape
    out = np.full((n_g, n, 3), np.nan)
    if goals is None:
        return out
    for col, sel in by_column(goals.column, goals.t):
        k = np.searchsorted(goals.t[sel], grid.t + 1e-9, side="right") - 1
        have = k >= 0
        out[have, col] = goals.goal[sel[k[have]]]
    return out


def _window_ok(flag: NDArray[np.bool_], length: int) -> NDArray[np.bool_]:
    """(G, N) → (G, N): flag true at j..j+length-1 (False where the window runs past the end)."""
    n_g = flag.shape[0]
    c = np.concatenate([np.zeros((1, flag.shape[1]), np.int64), np.cumsum(flag, axis=0)])
    out = np.zeros_like(flag)
    if n_g >= length:
        out[: n_g - length + 1] = (c[length:] - c[: n_g - length + 1]) == length
    return out


def goals_for(grid: Grid, assigned: NDArray[np.float64], source: str, goal_steps: int
              ) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(G, N, 3) goal per step and (G, N) whether it is the assignment goal (else future position)."""
    if source not in GOAL_SOURCES:
        raise ConfigError(f"goal source must be one of {GOAL_SOURCES}, got {source!r}")
    future = np.full_like(grid.position, np.nan)
    if grid.t.size > goal_steps:
        future[: grid.t.size - goal_steps] = grid.position[goal_steps:]
    have = np.asarray(np.isfinite(assigned).all(axis=2), bool)
    use_assigned = have if source in ("auto", "assignment") else np.zeros_like(have)
    goal = np.where(use_assigned[..., None], assigned, future if source != "assignment" else np.nan)
    return goal, use_assigned


def observe(grid: Grid, j: int, rows: NDArray[np.int64], goals: NDArray[np.float64], geo: Geometry,
            spec: ObservationSpec) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """Observations of drones `rows` at step j; every drone present at j is a possible neighbour."""
    present = np.flatnonzero(grid.ok[j])
    pool = NeighbourPool(grid.position[j, present], grid.velocity[j, present], grid.ids[present])
    b = build_observations(
        grid.position[j, rows], grid.velocity[j, rows], grid.orientation[j, rows], grid.body_rates[j, rows],
        goals[j, rows], geo.boxes_min, geo.boxes_max, pool, self_ids=grid.ids[rows],
        floor_z=geo.floor_z, ceiling_z=geo.ceiling_z, spec=spec,
    )
    return b.obs, b.valid


class Windows(NamedTuple):
    """B evaluation windows: start step, drone column, start observation."""

    start: NDArray[np.int64]
    column: NDArray[np.int64]
    obs: NDArray[np.float32]


def select_windows(grid: Grid, actions: Actions, goals: NDArray[np.float64], geo: Geometry,
                   spec: ObservationSpec, horizon: int, max_windows: int, seed: int = 0) -> Windows:
    """Windows of `horizon` steps of a flying drone with usable commands and a goal; at most
    `max_windows`, spread evenly over the start times (observations built per start time)."""
    usable = _window_ok(grid.flying, horizon + 1) & _window_ok(actions.ok, horizon)
    usable &= np.isfinite(goals).all(axis=2)
    times = np.flatnonzero(usable.any(axis=1))
    total = int(usable.sum())
    if total > max_windows > 0:
        stride = int(np.ceil(total / max_windows))
        times = times[::stride]
    starts, cols, obs = [], [], []
    for j in times:
        rows = np.flatnonzero(usable[j])
        o, v = observe(grid, int(j), rows, goals, geo, spec)
        starts.append(np.full(int(v.sum()), j))
        cols.append(rows[v])
        obs.append(o[v])
    if not starts:
        return Windows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, spec.size), np.float32))
    w = Windows(np.concatenate(starts).astype(np.int64), np.concatenate(cols).astype(np.int64),
                np.concatenate(obs))
    if w.start.size > max_windows > 0:
        keep = np.sort(np.random.default_rng(seed).permutation(w.start.size)[:max_windows])
        w = Windows(w.start[keep], w.column[keep], w.obs[keep])
    return w


def prediction_errors(runtime: Any, grid: Grid, actions: Actions, windows: Windows, dt: float,
                      ks: tuple[int, ...] = KS, chunk: int = 4096) -> PredictionErrors:
    """Open-loop errors of the world model (`runtime`: encode/step) and constant velocity."""
    h = max(ks)
    b = windows.start.size
    steps = windows.start[:, None] + np.arange(h + 1)[None, :]           # (B, H+1)
    cols = windows.column[:, None]
    true_pos = grid.position[steps, cols]                                # (B, H+1, 3)
    true_vel = grid.velocity[steps, cols]
    acts = actions.normalised[steps[:, :h], cols]                        # (B, H, 4)
    wm_off = np.zeros((b, h, 3))
    wm_vel = np.zeros((b, h, 3))
    for i in range(0, b, chunk):
        sl = slice(i, min(b, i + chunk))
        z = runtime.encode(np.ascontiguousarray(windows.obs[sl])).z
        off = np.zeros((z.shape[0], 3))
        for k in range(h):
            r = runtime.step(z, np.ascontiguousarray(acts[sl, k]))
            off = off + r.dpos
            wm_off[sl, k] = off
            wm_vel[sl, k] = r.next_obs[:, 0:3]
            z = r.z_next
    v0 = true_vel[:, :1]
    kk = np.arange(1, h + 1)[None, :, None]
    preds = {"world_model": (wm_off, wm_vel), "constant_velocity": (v0 * kk * dt, np.repeat(v0, h, 1))}
    true_off = true_pos[:, 1:] - true_pos[:, :1]
    pos_m: dict[str, list[float]] = {}
    pos95: dict[str, list[float]] = {}
    vel_m: dict[str, list[float]] = {}
    for name, (off, vel) in preds.items():
        pe = np.linalg.norm(off - true_off, axis=-1)
        ve = np.linalg.norm(vel - true_vel[:, 1:], axis=-1)
        pos_m[name] = [float(pe[:, k - 1].mean()) if b else float("nan") for k in ks]
        pos95[name] = [float(np.percentile(pe[:, k - 1], 95)) if b else float("nan") for k in ks]
        vel_m[name] = [float(ve[:, k - 1].mean()) if b else float("nan") for k in ks]
    return PredictionErrors(tuple(ks), dt, b, pos_m, vel_m, pos95)


def replan(planner: Any, grid: Grid, actions: Actions, goals: NDArray[np.float64], geo: Geometry,
           spec: ObservationSpec, samples: int, batch: int = 32, warmup: int = 3) -> ReplanStats | None:
    """Re-plan up to `batch` drones step by step (warm start carried) and compare the first action's
    velocity [m/s] with the recorded mean command of the same step, after `warmup` steps."""
    usable = grid.flying & actions.ok & np.isfinite(goals).all(axis=2)
    if samples <= 0 or not usable.any():
        return None
    chosen = np.argsort(-usable.sum(axis=0), kind="stable")[: max(1, batch)]
    chosen = chosen[usable[:, chosen].any(axis=0)]
    horizon = int(planner.config.horizon)
    prev = np.zeros((grid.ids.size, horizon, 4), np.float32)
    streak = np.zeros(grid.ids.size, np.int64)
    dv: list[NDArray[np.float64]] = []
    latency: list[float] = []
    for j in range(grid.t.size):
        rows = chosen[usable[j, chosen]]
        streak[np.setdiff1d(chosen, rows)] = 0
        if rows.size == 0:
            continue
        obs, valid = observe(grid, j, rows, goals, geo, spec)
        r = planner.plan(obs, grid.position[j, rows], goals[j, rows], prev[rows], valid)
        latency.append(float(r.latency_ms))
        prev[rows] = r.plan
        streak[rows] = np.where(valid & r.valid, streak[rows] + 1, 0)
        cmp = streak[rows] > warmup
        if cmp.any():
            dv.append(np.linalg.norm(r.cmd_vel[cmp] - actions.velocity[j, rows[cmp]], axis=1))
        if sum(x.size for x in dv) >= samples:
            break
    if not dv:
        return None
    d = np.concatenate(dv)[:samples]
    desc = planner.describe().get("config", {})
    config = (f"{desc.get('samples')}×{desc.get('iterations')}×{desc.get('horizon')} "
              f"{desc.get('action_space')}") if desc else ""
    return ReplanStats(
        samples=int(d.size), dv_mean=float(d.mean()), dv_p50=float(np.percentile(d, 50)),
        dv_p95=float(np.percentile(d, 95)), dv_max=float(d.max()), backend=str(planner.name),
        config=config, latency_ms_mean=float(np.mean(latency)) if latency else float("nan"),
        batch=int(chosen.size),
    )
