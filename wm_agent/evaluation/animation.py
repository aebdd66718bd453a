"""An animated GIF of the fleet over the warehouse, from the recorded positions (no ROS).

One frame every ``interval_s`` of sim time (:func:`frame_times`): each drone where it last was
reported at that time, coloured like its path in ``trajectories.png``, with a short tail, the
collisions so far as red crosses, and the time in the corner. The map is drawn once and each
frame only redraws the fleet (matplotlib blitting on the Agg canvas); Pillow writes the GIF
(every frame differs: the clock in the corner changes, so none is merged away).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.evaluation.plots import draw_map
from wm_agent.evaluation.run_data import EventLog, Trajectories

MAX_FRAMES = 240
"""At most this many frames: a longer run gets a longer interval (:func:`default_interval`)."""
MIN_INTERVAL_S = 0.5
"""Default frame interval of a short run [s of sim time]."""
FRAME_MS = 100
"""Each frame is shown this long [ms]: 10 frames per second."""
TAIL_S = 2.0
"""Length of each drone's tail [s]."""


class Animation(NamedTuple):
    """The GIF written: path, frame count, sim time between frames [s], size [px]."""

    path: Path
    frames: int
    interval_s: float
    size: tuple[int, int]


def default_interval(duration_s: float) -> float:
    """:data:`MIN_INTERVAL_S`, or longer so that a run of `duration_s` has at most
    :data:`MAX_FRAMES` frames; rounded up to a tenth of a second."""
    need = duration_s / max(MAX_FRAMES - 1, 1)
    return max(MIN_INTERVAL_S, math.ceil(need * 10.0 - 1e-9) / 10.0)


def frame_times(t0: float, t1: float, interval_s: float) -> NDArray[np.float64]:
    """``t0, t0 + interval_s, …`` up to `t1` (included when it falls on the grid): one frame per
    interval of the run."""
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ConfigError(f"animation: interval must be > 0 s, got {interval_s}")
    n = math.floor((t1 - t0) / interval_s + 1e-9) + 1 if t1 >= t0 else 0
    return t0 + interval_s * np.arange(max(n, 0), dtype=np.float64)


def positions_at(traj: Trajectories, times: NDArray[np.float64]) -> NDArray[np.float64]:
    """(F, N, 3): each drone's last reported position at or before each time (NaN before its
    first report)."""
    t = traj.t
    out = np.full((times.size, traj.ids.size, 3), np.nan)
    ok = np.asarray(np.isfinite(traj.position).all(axis=2), bool)    # (T, N)
    for j in range(traj.ids.size):                                   # per drone: searchsorted
        rows = np.flatnonzero(ok[:, j])
        if rows.size == 0:
            continue
        k = np.searchsorted(t[rows], times, side="right") - 1
        have = k >= 0
        out[have, j] = traj.position[rows[k[have]], j]
    return out


def write_animation(path: Path, traj: Trajectories, scenario: Any | None,
                    events: EventLog | None = None, interval_s: float | None = None,
                    dpi: int = 80) -> Animation:
    """Write the GIF of `traj` (one frame per `interval_s`, default :func:`default_interval`)
    over the map of `scenario` (None: paths only) and return what was written."""
    from PIL import Image

    t0, t1 = float(traj.t[0]), float(traj.t[-1])
    step = default_interval(t1 - t0) if interval_s is None else float(interval_s)
    times = frame_times(t0, t1, step)
    pos = positions_at(traj, times)
    tail_frames = max(1, round(TAIL_S / step))
    fig = Figure(figsize=(8.0, 6.0) if scenario is None else _size(scenario), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.06, 0.07, 0.92, 0.86))
    if scenario is not None:
        draw_map(ax, scenario, traj.ids, labels=False)
    else:
        flat = traj.position[np.isfinite(traj.position).all(axis=2)]
        lo, hi = flat.min(axis=0) - 1.0, flat.max(axis=0) + 1.0
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x [m]", fontsize=8)
    ax.set_ylabel("y [m]", fontsize=8)
    ax.tick_params(labelsize=7)
    n = traj.ids.size
    colours = np.array([f"C{j % 10}" for j in range(n)])
    size = 14 if n <= 50 else 4 if n <= 1000 else 1
    fleet = ax.scatter([], [], s=size, zorder=6, edgecolors="black", linewidths=0.3 if n <= 50 else 0)
    tails = LineCollection([], linewidths=0.8, alpha=0.6, zorder=5)
    ax.add_collection(tails)
    crashes = ax.scatter([], [], s=50, c="red", marker="x", linewidths=2, zorder=7)
    clock = ax.text(0.01, 0.99, "", transform=ax.transAxes, va="top", ha="left", fontsize=9,
                    zorder=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    fig.suptitle(f"{n} drones, one frame per {step:g} s of sim time", fontsize=9)
    for artist in (fleet, tails, crashes, clock):
        artist.set_animated(True)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    hits = _collisions(events)
    frames = []
    for f, t in enumerate(times):
        canvas.restore_region(background)
        now = pos[f]
        seen = np.isfinite(now).all(axis=1)
        fleet.set_offsets(now[seen, :2] if seen.any() else np.zeros((0, 2)))
        fleet.set_color(colours[seen])
        lo = max(0, f - tail_frames)
        segs = [pos[lo:f + 1, j, :2][np.isfinite(pos[lo:f + 1, j]).all(axis=1)] for j in range(n)]
        tails.set_segments([s for s in segs if len(s) >= 2])
        tails.set_color([colours[j] for j, s in enumerate(segs) if len(s) >= 2])
        past = hits[hits[:, 0] <= t + 1e-9, 1:3] if hits.size else np.zeros((0, 2))
        crashes.set_offsets(past if past.size else np.zeros((0, 2)))
        clock.set_text(f"t = {t - t0:6.1f} s" + (f"   collisions {past.shape[0]}" if past.size else ""))
        for artist in (tails, fleet, crashes, clock):
            ax.draw_artist(artist)
        canvas.blit(fig.bbox)
        rgba = np.asarray(canvas.buffer_rgba())
        frames.append(Image.fromarray(rgba[..., :3].copy()).quantize(colors=64))
    if not frames:
        raise ConfigError("animation: the run has no time span to animate")
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=FRAME_MS,
                   loop=0, optimize=False)
    return Animation(path, len(frames), step, frames[0].size)


def _size(scenario: Any) -> tuple[float, float]:
    """Figure size [in] with the warehouse's aspect, 8 in wide."""
    w, h = (float(x) for x in np.asarray(scenario.world_size)[:2])
    return 8.0, max(3.0, min(8.0, 8.0 * h / max(w, 1e-9) * 0.92 / 0.86 + 0.5))


def _collisions(events: EventLog | None) -> NDArray[np.float64]:
    """(K, 3): time [s], x, y [m] of the collision events."""
    if events is None or events.empty:
        return np.zeros((0, 3))
    col = events.collisions()
    pos = np.asarray(events.position, np.float64)[col].reshape(-1, 3)
    return np.column_stack([np.asarray(events.t, np.float64)[col], pos[:, :2]])
