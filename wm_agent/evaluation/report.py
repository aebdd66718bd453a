"""Run report: PNG plots, ``report.md`` and ``metrics.json`` from a :class:`RunData` (arrays only).

Shared by ``wm-agent sim`` run folders and ``wm-agent eval BAG``. Pure: no rclpy, no ROS
messages. Each plot is written only when its data is present; the Markdown lists the sections
that had no data. Usage::

    from wm_agent.evaluation import RunData, Trajectories
    from wm_agent.evaluation.report import write_report
    files = write_report(RunData(scenario="warehouse", duration_s=20.0,
                                 trajectories=Trajectories(t, ids, position)),
                         "runs/sim1/report", load_scenario("warehouse"))
    files.markdown, files.metrics, files.plots     # Path, Path, {name: Path}
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from wm_agent.errors import ConfigError
from wm_agent.evaluation import plots
from wm_agent.evaluation.run_data import (
    SUB_NAMES,
    RunData,
    summarise,
)
from wm_agent.world_model.spaces import WM_DT

__all__ = ["ReportFiles", "render_markdown", "write_report"]

#: Section name → (file name, title) of each plot.
PLOTS = {
    "trajectories": ("trajectories.png", "Top-down trajectories"),
    "tasks": ("tasks.png", "Tasks delivered over time"),
    "latency": ("planner_latency.png", "Planner latency"),
    "substitutions": ("substitutions.png", "Safety-filter substitutions"),
    "prediction": ("prediction_error.png", "k-step prediction error"),
    "animation": ("fleet.gif", "The fleet over the warehouse"),
}

PLAN_PERIOD_MS = WM_DT * 1e3
"""The planners' period (one world-model step, 1/12 s): the budget line of the latency plot."""
MAX_EVENT_ROWS = 30
"""Collisions listed in report.md at most (all are in the bag and counted)."""


#: Section name → what it needs, as the Markdown names it.
SECTION_TEXT = {
    "trajectories": "trajectories (`/fleet/state` or `/drone_<id>/odom`)",
    "tasks": "tasks (`/tasks/status`)",
    "latency": "planner latency (`/fleet/planner_status`)",
    "substitutions": "safety-filter substitutions (`/fleet/planner_status`)",
    "prediction": "k-step prediction error (states with velocity commands)",
    "events": "collisions and events (`/fleet/events`)",
    "animation": "animation (`/fleet/state` or `/drone_<id>/odom`)",
    "replan": "offline re-planning (states with velocity commands)",
}


class ReportFiles(NamedTuple):
    """What :func:`write_report` wrote: ``report.md``, ``metrics.json``, section → PNG path."""

    markdown: Path
    metrics: Path
    plots: dict[str, Path]
    missing: tuple[str, ...]          # sections without data


def _plot_jobs(run: RunData, scenario: Any | None, animation: bool, animation_interval_s: float | None
               ) -> dict[str, Callable[[Path], Path] | None]:
    """Section → a function writing its file, or None when the run has no data for it."""
    from wm_agent.evaluation.animation import write_animation

    tr, tasks, pl, ev, pred = run.trajectories, run.tasks, run.planner, run.events, run.prediction
    moving = tr is not None and not tr.empty and tr.t.size > 1
    return {
        "trajectories": (None if tr is None or tr.empty
                         else lambda p: plots.plot_trajectories(p, tr, scenario, ev)),
        "animation": (None if not moving or tr is None or not animation
                      else lambda p: write_animation(p, tr, scenario, ev, animation_interval_s).path),
        "tasks": (None if tasks is None or tasks.empty
                  else lambda p: plots.plot_tasks(p, tasks, run.duration_s)),
        "latency": None if pl is None or pl.empty else lambda p: plots.plot_latency(p, pl, PLAN_PERIOD_MS),
        "substitutions": None if pl is None or pl.empty else lambda p: plots.plot_substitutions(p, pl),
        "prediction": None if pred is None or pred.windows == 0 else lambda p: plots.plot_prediction(p, pred),
    }


def write_report(run: RunData, folder: str | Path, scenario: Any | None = None, *,
                 run_info: dict[str, Any] | None = None,
                 animation: bool = False, animation_interval_s: float | None = None) -> ReportFiles:
    """Write the plots, the animation, ``report.md`` and ``metrics.json`` of `run` into
    `folder` (created).

    Args:
        run: the run's arrays. folder: output folder. scenario: a :class:`wm_agent.sim.Scenario`
            for the map under the trajectories (None: paths only).
        run_info: what a live run adds (``wm-agent sim``'s metrics: its options as used,
            verdict, real-time factor, latency, tasks, faults); shown first, kept in
            metrics.json under ``run``.
        animation: also write ``fleet.gif``, the fleet over the map (``wm-agent sim`` does;
            ``wm-agent eval`` does not). animation_interval_s: sim time between its frames
            (None: :func:`wm_agent.evaluation.animation.default_interval`).

    Raises:
        ConfigError: the folder cannot be created or written.
    """
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"report: cannot create {out}: {exc}") from None
    written: dict[str, Path] = {}
    missing: list[str] = []
    for name, job in _plot_jobs(run, scenario, animation, animation_interval_s).items():
        if job is None:
            missing.append(name)
        else:
            written[name] = job(out / PLOTS[name][0])
    if run.events is None:
        missing.append("events")
    if run.replay:
        if run.replan is None:
            missing.append("replan")
    else:                              # a live run has no prediction / re-planning sections
        missing.remove("prediction")
    if not animation:
        missing.remove("animation")
    metrics = summarise(run)
    metrics["plots"] = {k: v.name for k, v in written.items()}
    metrics["sections_without_data"] = missing
    if run_info is not None:
        metrics["run"] = run_info
    md = out / "report.md"
    js = out / "metrics.json"
    try:
        js.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        md.write_text(render_markdown(run, metrics, written, missing))
    except OSError as exc:
        raise ConfigError(f"report: cannot write into {out}: {exc}") from None
    return ReportFiles(md, js, written, tuple(missing))


def _fmt(x: Any, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _md_prediction(m: dict[str, Any]) -> list[str]:
    p = m["prediction"]
    lines = [f"Open loop from the recorded state with the recorded commands, {p['windows']} windows "
             f"(dt = {p['dt_s']:.4f} s):", "",
             "| model | " + " | ".join(f"pos@{k} [m]" for k in p["k"]) + " | "
             + " | ".join(f"vel@{k} [m/s]" for k in p["k"]) + " |",
             "|---" * (1 + 2 * len(p["k"])) + "|"]
    for name, pos in p["position_error_m"].items():
        vel = p["velocity_error_mps"][name]
        lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in pos) + " | "
                     + " | ".join(_fmt(v) for v in vel) + " |")
    if p.get("wm_to_cv_position_ratio_at_10") is not None:
        lines += ["", f"World model / constant velocity position error at k = 10: "
                      f"**{p['wm_to_cv_position_ratio_at_10']:.3f}**"]
    return lines


def render_markdown(run: RunData, m: dict[str, Any], written: dict[str, Path],
                    missing: list[str]) -> str:
    """The text of ``report.md`` (metrics from :func:`summarise`)."""
    lines = [f"# Run report: {run.scenario or 'unknown scenario'}", "",
             f"* source: `{run.source}`" if run.source else "* source: —",
             f"* duration: {_fmt(m['duration_s'], 2)} s"]
    if m["trajectories"]:
        t = m["trajectories"]
        lines.append(f"* drones: {t['drones']}, {t['samples']} samples, "
                     f"{_fmt(t['distance_m_total'], 1)} m flown in total")
    if m.get("run"):
        lines += _md_run(m["run"])
    if run.warnings:
        lines += ["", "## Warnings", ""] + [f"* **{w}**" for w in run.warnings]
    if run.notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in run.notes]

    def image(name: str) -> list[str]:
        return [f"![{PLOTS[name][1]}]({written[name].name})", ""] if name in written else []

    lines += ["", "## Trajectories", "", *image("trajectories")]
    if "animation" in written:
        lines += ["## Animation", "", *image("animation"), _animation_caption(written["animation"]), ""]
    if m["collisions"] is not None:
        lines.append(f"Collisions (FleetEvent COLLISION): **{m['collisions']}**.")
        other = {k: v for k, v in (m["events"] or {}).items() if v and k != "collision"}
        if other:
            lines.append("Other events: " + ", ".join(f"{k} {v}" for k, v in other.items()) + ".")
        lines += ["", *_md_collisions(run)]
    if m.get("run") and m["run"].get("faults"):
        lines += _md_faults(m["run"]["faults"])
    if m["tasks"]:
        t = m["tasks"]
        lines += [
            "## Tasks", "", *image("tasks"),
            "| accepted | assigned | picked | delivered | failed | cancelled | rejected | delivered/min |",
            "|---|---|---|---|---|---|---|---|",
            f"| {t['accepted']} | {t['assigned']} | {t['picked']} | {t['delivered']} | {t['failed']} | "
            f"{t['cancelled']} | {t['rejected']} | {_fmt(t['delivered_per_min'], 2)} |", ""]
    if m["planner"]:
        lat, subs = m["planner"]["latency_ms"], m["planner"]["substitutions_total"]
        lines += [
            "## Planner", "", *image("latency"),
            "| steps | mean [ms] | p50 [ms] | p95 [ms] | p99 [ms] | max [ms] | plan period [ms] |",
            "|---|---|---|---|---|---|---|",
            f"| {m['planner']['steps']} | {_fmt(lat['mean'], 2)} | {_fmt(lat['p50'], 2)} | "
            f"{_fmt(lat['p95'], 2)} | {_fmt(lat['p99'], 2)} | {_fmt(lat['max'], 2)} | "
            f"{PLAN_PERIOD_MS:.1f} |", ""]
        planned = int(np.nansum(np.asarray(run.planner.batch_size, np.float64))) if run.planner else 0
        lines += [
            *image("substitutions"),
            f"Of {planned} planned drone commands (share in brackets):", "",
            "| " + " | ".join(SUB_NAMES) + " |", "|---" * len(SUB_NAMES) + "|",
            "| " + " | ".join(f"{subs[n]} ({100.0 * subs[n] / max(planned, 1):.2f} %)" for n in SUB_NAMES)
            + " |", ""]
    if m["prediction"]:
        lines += ["## World-model prediction error", "", *image("prediction"), *_md_prediction(m), ""]
    if m["replan"]:
        r = m["replan"]
        lines += ["## Offline re-planning vs recorded commands", "",
                  f"{r['samples']} (drone, step) pairs, planner `{r['backend']}` {r['config']}, "
                  f"{r['batch']} drones per call, {_fmt(r['latency_ms_mean'], 2)} ms per call.", "",
                  "| mean ‖Δv‖ [m/s] | p50 [m/s] | p95 [m/s] | max [m/s] |", "|---|---|---|---|",
                  f"| {_fmt(r['dv_mean_mps'])} | {_fmt(r['dv_p50_mps'])} | {_fmt(r['dv_p95_mps'])} | "
                  f"{_fmt(r['dv_max_mps'])} |", ""]
    th = m["throughput"] or {}
    if th.get("messages") is not None and th.get("messages_per_s") is not None:
        lines += ["## Evaluation throughput", "",
                  f"{int(th['messages'])} messages read in {_fmt(th.get('read_s'), 2)} s "
                  f"(**{th['messages_per_s']:,.0f} messages/s**)"
                  + (f"; prediction {_fmt(th['prediction_s'], 2)} s" if th.get("prediction_s") else "")
                  + (f"; re-planning {_fmt(th['replan_s'], 2)} s" if th.get("replan_s") else "")
                  + ".", ""]
    if missing:
        lines += ["## Sections without data", "",
                  "No data in this run (topic not recorded, or empty) for: "
                  + ", ".join(f"{SECTION_TEXT[s]}" for s in missing) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"


def _animation_caption(path: Path) -> str:
    """Frames, sim time per frame and size of the GIF (read back from the file)."""
    from PIL import Image

    from wm_agent.evaluation.animation import FRAME_MS

    with Image.open(path) as gif:
        frames, (w, h) = getattr(gif, "n_frames", 1), gif.size
    return (f"{frames} frames ({w} × {h} px, {path.stat().st_size / 1e6:.1f} MB), played at "
            f"{1000 / FRAME_MS:g} frames/s; open `{path.name}` for the full-size GIF.")


def _md_run(r: dict[str, Any]) -> list[str]:
    """The live run's section: verdict, options as used, speed, latency, tasks."""
    o = r.get("options") or {}
    v = r.get("verdict") or {}
    lat = r.get("state_to_command_latency_ms") or {}
    t = r.get("tasks") or {}
    lines = ["", "## Run", ""]
    if v:
        lines += [f"**{v.get('summary', '')}**", ""]
        lines += [f"* {p}" for p in v.get("problems", [])] + ([""] if v.get("problems") else [])
    rows = [("scenario", o.get("scenario")), ("drones", o.get("drones")), ("seed", o.get("seed")),
            ("mode", o.get("mode")), ("fidelity", o.get("fidelity")), ("backend", o.get("backend")),
            ("model", f"`{o['model']}`" if o.get("model") else "— (classical)"),
            ("task rate [1/min]", o.get("task_rate_per_min")), ("faults", o.get("faults")),
            ("duration [sim s]", o.get("duration_s")), ("ROS domain", o.get("domain_id")),
            ("per-drone odom / TF", f"ids < {o['odom_drones']}" if "odom_drones" in o else None),
            ("sim time reached [s]", _fmt(r.get("sim_time_s"), 2)),
            ("wall time [s]", _fmt(r.get("wall_time_s"), 1)),
            ("real-time factor (while stepping)", _fmt(r.get("real_time_factor"), 2)),
            ("state → command latency p50 / p99 [ms]",
             f"{_fmt(lat.get('p50'), 1)} / {_fmt(lat.get('p99'), 1)} ({lat.get('samples', 0)} samples)"),
            ("planner answered", _answered(r.get("planner_answered"))),
            ("tasks submitted / accepted / delivered",
             f"{t.get('submitted', '—')} / {t.get('accepted', '—')} / {t.get('delivered', '—')}"),
            ("delivered fraction (of accepted)", _fmt(r.get("delivered_fraction"), 3)),
            ("exactly once", t.get("exactly_once"))]
    lines += ["| | |", "|---|---|"] + [f"| {k} | {_fmt(v)} |" for k, v in rows if v is not None]
    return lines


def _answered(a: dict[str, Any] | None) -> str | None:
    if not a or not a.get("states"):
        return None
    return f"{a['answered']} of {a['states']} fleet states ({100.0 * a['fraction']:.1f} %)"


def _md_collisions(run: RunData) -> list[str]:
    """Where and when each collision happened (the first :data:`MAX_EVENT_ROWS`)."""
    ev = run.events
    if ev is None or ev.empty or not ev.collisions().any():
        return []
    rows = np.flatnonzero(ev.collisions())
    t, d, o = np.asarray(ev.t), np.asarray(ev.drone), np.asarray(ev.other)
    pos = np.asarray(ev.position, np.float64).reshape(-1, 3)
    lines = ["| t [s] | drone | with | x [m] | y [m] | z [m] |", "|---|---|---|---|---|---|"]
    for k in rows[:MAX_EVENT_ROWS]:
        other = f"drone {int(o[k])}" if int(o[k]) >= 0 else "obstacle / floor"
        lines.append(f"| {t[k]:.2f} | {int(d[k])} | {other} | {pos[k, 0]:.2f} | {pos[k, 1]:.2f} | "
                     f"{pos[k, 2]:.2f} |")
    if rows.size > MAX_EVENT_ROWS:
        lines.append(f"| … {rows.size - MAX_EVENT_ROWS} more | | | | | |")
    return [*lines, ""]


def _md_faults(f: dict[str, Any]) -> list[str]:
    """The injected faults and what followed, as a timeline (sim seconds, reactions in s)."""
    plan = f.get("plan") or {}
    lines = ["## Faults", "", "| fault | injected [sim s] | what followed |", "|---|---|---|"]
    d = f.get("dropout")
    if d:
        lines.append(f"| radio dropout of drone {d['drone']} | {plan.get('dropout_start_s', 0):.1f} – "
                     f"{plan.get('dropout_start_s', 0) + plan.get('dropout_s', 0):.1f} | marked lost after "
                     f"{_fmt(d.get('marked_lost_after_s'), 2)} s; its task re-queued after "
                     f"{_fmt(d.get('task_requeued_after_s'), 2)} s, re-assigned after "
                     f"{_fmt(d.get('task_reassigned_after_s'), 2)} s |")
    s = f.get("planner_stall")
    if s:
        lines.append(f"| fleet planner stalled (SIGSTOP) for {s['stall_s']:g} s | "
                     f"{_fmt(s.get('stopped_sim_s'), 1)} – {_fmt(s.get('resumed_sim_s'), 1)} | "
                     f"failsafe hold after {_fmt(s.get('failsafe_hold_after_s'), 2)} s "
                     f"({s.get('drones_held')} drones held); recovered "
                     f"{_fmt(s.get('recovered_after_resume_s'), 2)} s after resuming |")
    c = f.get("coordinator_restart")
    if c:
        lines.append(f"| coordinator killed (SIGKILL), restarted | {_fmt(c.get('killed_sim_s'), 1)} | "
                     f"down {_fmt(c.get('down_s'), 2)} s (wall); first assignments "
                     f"{_fmt(c.get('first_assignments_after_restart_s'), 2)} s and metrics "
                     f"{_fmt(c.get('first_metrics_after_restart_s'), 2)} s after the restart |")
    return [*lines, ""]
