"""PNG plots of a run (matplotlib, Agg canvas; no pyplot, no display, no global state).

Each function takes arrays, writes one PNG and returns its path. Callers decide whether the data
is present; every function copes with NaN gaps (absent drones) on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from numpy.typing import NDArray

from wm_agent.evaluation.run_data import (
    SUB_NAMES,
    EventLog,
    PlannerStats,
    PredictionErrors,
    TaskTransitions,
    Trajectories,
    cumulative_tasks,
)

#: At most this many points per drone path are drawn (long runs are subsampled evenly).
MAX_PATH_POINTS = 1500


def _figure(width: float = 8.0, height: float = 5.0) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def draw_map(ax: Any, scenario: Any, ids: NDArray[np.int64] | None = None, labels: bool = True) -> None:
    """Shelves (filled), walls (dark), geofence (dashed), stations (labelled unless not
    `labels`: a name on a white box beside the marker), top-down [m]; the home pads of drones
    `ids` (drone i starts on pad i; None: every pad)."""
    layers = ((scenario.shelves, "#d9c9a3", "#8c7a55"), (scenario.walls, "#444444", "none"))
    for boxes, face, edge in layers:       # one collection per layer: 10^3 boxes draw in milliseconds
        b = np.asarray(boxes).reshape(-1, 2, 3)
        rects = [Rectangle(tuple(x[0, :2]), *(x[1, :2] - x[0, :2])) for x in b]
        ax.add_collection(PatchCollection(rects, facecolor=face, edgecolor=edge, linewidth=0.4, zorder=1))
    lo, hi = np.asarray(scenario.geofence_min), np.asarray(scenario.geofence_max)
    ax.add_patch(Rectangle(tuple(lo[:2]), *(hi[:2] - lo[:2]), fill=False, linestyle="--",
                           edgecolor="#c0392b", linewidth=0.8, zorder=2, label="geofence"))
    pads = np.asarray(scenario.home_pads).reshape(-1, 3)
    if ids is not None:
        pads = pads[np.asarray(ids)[(ids >= 0) & (ids < pads.shape[0])]]
    if pads.size:
        ax.scatter(pads[:, 0], pads[:, 1], s=4 if pads.shape[0] <= 200 else 0.5, c="#b3b6b7", marker="s",
                   zorder=2, label="home pads")
    for kind, stations, marker, colour in (("pick", scenario.pick_stations, "^", "#2471a3"),
                                           ("drop", scenario.drop_stations, "v", "#1e8449")):
        for i, (name, pos) in enumerate(stations.items()):
            ax.scatter([pos[0]], [pos[1]], s=40, marker=marker, c=colour, zorder=4,
                       label=f"{kind} stations" if i == 0 else None)
            if labels:  # inward, towards the floor's middle, on a white box: readable over paths
                inward = -1 if pos[0] > np.asarray(scenario.world_size)[0] / 2 else 1
                ax.annotate(name, (pos[0], pos[1]), xytext=(6 * inward, 4), textcoords="offset points",
                            ha="left" if inward > 0 else "right", fontsize=8, color=colour, zorder=7,
                            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.85,
                                  "edgecolor": "none"})
    size = np.asarray(scenario.world_size)
    ax.set_xlim(-0.5, size[0] + 0.5)
    ax.set_ylim(-0.5, size[1] + 0.5)


def plot_trajectories(path: Path, traj: Trajectories, scenario: Any | None,
                      events: EventLog | None = None) -> Path:
    """Top-down paths of every drone over the warehouse map; collisions as red crosses."""
    fig = _figure(10.0, 7.5)
    ax = fig.add_subplot(1, 1, 1)
    if scenario is not None:
        draw_map(ax, scenario, traj.ids)
    stride = max(1, int(np.ceil(traj.t.size / MAX_PATH_POINTS)))
    pos = traj.position[::stride]
    n = traj.ids.size
    segments, colours = path_segments(pos)
    ax.add_collection(LineCollection(segments, colors=[f"C{c % 10}" for c in colours],
                                     linewidths=1.0 if n <= 50 else 0.5,
                                     alpha=0.9 if n <= 20 else max(0.15, 20.0 / n), zorder=3))
    first = np.array([_first_finite(traj.position[:, j]) for j in range(n)]).reshape(-1, 3)
    last = np.array([_first_finite(traj.position[::-1, j]) for j in range(n)]).reshape(-1, 3)
    ax.scatter(first[:, 0], first[:, 1], s=8 if n <= 50 else 1, c="black", marker="o", zorder=4,
               label="start")
    ax.scatter(last[:, 0], last[:, 1], s=18 if n <= 50 else 2, facecolors="none",
               edgecolors=[f"C{j % 10}" for j in range(n)], marker="s", linewidths=1.0, zorder=5,
               label="end")
    if events is not None and not events.empty:
        col = events.collisions()
        p = np.asarray(events.position)[col]
        if p.size:
            ax.scatter(p[:, 0], p[:, 1], s=60, c="red", marker="x", linewidths=2, zorder=6,
                       label=f"collisions ({int(col.sum())})")
    ax.set_aspect("equal")
    ax.set_xlabel("x [m] (east)")
    ax.set_ylabel("y [m] (north)")
    ax.set_title(f"Top-down trajectories, {n} drones")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0.0)
    return _save(fig, path)


def path_segments(pos: NDArray[np.float64]) -> tuple[list[NDArray[np.float64]], list[int]]:
    """(T, N, 3) positions with NaN gaps → the (k, 2) x/y runs of each drone and its column."""
    segments: list[NDArray[np.float64]] = []
    owners: list[int] = []
    ok = np.asarray(np.isfinite(pos).all(axis=2), bool)
    for j in range(pos.shape[1]):      # per drone: split at gaps (one LineCollection draws them all)
        rows = np.flatnonzero(ok[:, j])
        if rows.size < 2:
            continue
        for run in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1):
            if run.size >= 2:
                segments.append(pos[run, j, :2])
                owners.append(j)
    return segments, owners


def _first_finite(track: NDArray[np.float64]) -> NDArray[np.float64]:
    ok = np.flatnonzero(np.isfinite(track).all(axis=1))
    return track[ok[0]] if ok.size else np.full(3, np.nan)


def plot_tasks(path: Path, tasks: TaskTransitions, duration_s: float) -> Path:
    """Cumulative accepted, delivered and failed tasks over time."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    end = max(duration_s, float(np.max(tasks.t)) if np.asarray(tasks.t).size else 0.0)
    for name, colour in (("accepted", "C0"), ("delivered", "C2"), ("failed", "C3")):
        t, c = cumulative_tasks(tasks)[name]
        ax.step(np.concatenate([[0.0], t, [end]]), np.concatenate([[0], c, [c[-1] if c.size else 0]]),
                where="post", color=colour, label=f"{name} ({c.size})")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("tasks (cumulative)")
    ax.set_title("Tasks over time")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_latency(path: Path, planner: PlannerStats, budget_ms: float | None = None) -> Path:
    """Histogram of the planner latency with p50/p95/p99 lines and, given `budget_ms`, the plan
    period every plan must fit in (red)."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    lat = np.asarray(planner.latency_ms, np.float64)
    lat = lat[np.isfinite(lat)]
    ax.hist(lat, bins=min(60, max(10, lat.size // 10)), color="C0", alpha=0.8)
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        v = float(np.percentile(lat, q))
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"p{q} {v:.2f} ms")
    if budget_ms is not None:
        over = int((lat > budget_ms).sum())
        ax.axvline(budget_ms, color="#c0392b", linewidth=2,
                   label=f"plan period {budget_ms:.1f} ms ({over} over)")
    ax.set_xlabel("plan latency [ms]")
    ax.set_ylabel("planning steps")
    ax.set_title(f"Planner latency ({lat.size} steps)")
    ax.legend()
    return _save(fig, path)


def plot_substitutions(path: Path, planner: PlannerStats) -> Path:
    """Safety-filter substitutions per SUB_* kind as a fraction of the planned commands so far
    (cumulative substitutions / cumulative drones planned), over time."""
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    subs = np.nan_to_num(np.asarray(planner.substitutions, np.float64)).reshape(-1, len(SUB_NAMES))
    t = np.asarray(planner.t, np.float64)
    planned = np.cumsum(np.maximum(np.asarray(planner.batch_size, np.float64), 0.0))
    for i, name in enumerate(SUB_NAMES):
        c = np.cumsum(subs[:, i])
        share = 100.0 * c / np.maximum(planned, 1.0)
        total = 100.0 * c[-1] / max(planned[-1], 1.0) if c.size else 0.0
        ax.step(t, share, where="post", label=f"{name} ({int(c[-1]) if c.size else 0}, {total:.2f} %)")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("% of planned commands (cumulative)")
    ax.set_title(f"Safety-filter substitutions ({int(planned[-1]) if planned.size else 0} commands planned)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_prediction(path: Path, pred: PredictionErrors) -> Path:
    """Grouped bars: position [m] and velocity [m/s] error per k, one bar per model."""
    fig = _figure(10.0, 4.5)
    x = np.arange(len(pred.k))
    models = list(pred.position_m)
    width = 0.8 / max(1, len(models))
    for col, (table, unit) in enumerate(((pred.position_m, "position error [m]"),
                                         (pred.velocity_mps, "velocity error [m/s]"))):
        ax = fig.add_subplot(1, 2, col + 1)
        for i, name in enumerate(models):
            ax.bar(x + (i - (len(models) - 1) / 2) * width, table[name], width, label=name)
        ax.set_xticks(x, [f"k={k}\n({k * pred.dt:.2f} s)" for k in pred.k])
        ax.set_ylabel(unit)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Open-loop k-step prediction error ({pred.windows} windows)")
    return _save(fig, path)
