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

from wm_agent.errors import ConfigError
from wm_agent.evaluation import plots
from wm_agent.evaluation.run_data import (
    SUB_NAMES,
    RunData,
    summarise,
)

__all__ = ["ReportFiles", "render_markdown", "write_report"]

#: Section name → (file name, title) of each plot.
PLOTS = {
    "trajectories": ("trajectories.png", "Top-down trajectories"),
    "tasks": ("tasks.png", "Tasks delivered over time"),
    "latency": ("planner_latency.png", "Planner latency"),
    "substitutions": ("substitutions.png", "Safety-filter substitutions"),
    "prediction": ("prediction_error.png", "k-step prediction error"),
}


#: Section name → what it needs, as the Markdown names it.
SECTION_TEXT = {
    "trajectories": "trajectories (`/fleet/state` or `/drone_<id>/odom`)",
    "tasks": "tasks (`/tasks/status`)",
    "latency": "planner latency (`/fleet/planner_status`)",
    "substitutions": "safety-filter substitutions (`/fleet/planner_status`)",
    "prediction": "k-step prediction error (states with velocity commands)",
    "events": "collisions and events (`/fleet/events`)",
    "replan": "offline re-planning (states with velocity commands)",
}


class ReportFiles(NamedTuple):
    """What :func:`write_report` wrote: ``report.md``, ``metrics.json``, section → PNG path."""

    markdown: Path
    metrics: Path
    plots: dict[str, Path]
    missing: tuple[str, ...]          # sections without data


def _plot_jobs(run: RunData, scenario: Any | None) -> dict[str, Callable[[Path], Path] | None]:
    """Section → a function writing its PNG, or None when the run has no data for it."""
    tr, tasks, pl, ev, pred = run.trajectories, run.tasks, run.planner, run.events, run.prediction
    return {
        "trajectories": (None if tr is None or tr.empty
                         else lambda p: plots.plot_trajectories(p, tr, scenario, ev)),
        "tasks": (None if tasks is None or tasks.empty
                  else lambda p: plots.plot_tasks(p, tasks, run.duration_s)),
        "latency": None if pl is None or pl.empty else lambda p: plots.plot_latency(p, pl),
        "substitutions": None if pl is None or pl.empty else lambda p: plots.plot_substitutions(p, pl),
        "prediction": None if pred is None or pred.windows == 0 else lambda p: plots.plot_prediction(p, pred),
    }


def write_report(run: RunData, folder: str | Path, scenario: Any | None = None) -> ReportFiles:
    """Write the plots, ``report.md`` and ``metrics.json`` of `run` into `folder` (created).

    Args:
        run: the run's arrays. folder: output folder. scenario: a :class:`wm_agent.sim.Scenario`
            for the map under the trajectories (None: paths only).

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
    for name, job in _plot_jobs(run, scenario).items():
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
    metrics = summarise(run)
    metrics["plots"] = {k: v.name for k, v in written.items()}
    metrics["sections_without_data"] = missing
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
    if run.warnings:
        lines += ["", "## Warnings", ""] + [f"* **{w}**" for w in run.warnings]
    if run.notes:
        lines += ["", "## Notes", ""] + [f"* {n}" for n in run.notes]

    def image(name: str) -> list[str]:
        return [f"![{PLOTS[name][1]}]({written[name].name})", ""] if name in written else []

    lines += ["", "## Trajectories", "", *image("trajectories")]
    if m["collisions"] is not None:
        lines.append(f"Collisions (FleetEvent COLLISION): **{m['collisions']}**.")
        other = {k: v for k, v in (m["events"] or {}).items() if v and k != "collision"}
        if other:
            lines.append("Other events: " + ", ".join(f"{k} {v}" for k, v in other.items()) + ".")
        lines.append("")
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
            "| steps | mean [ms] | p50 [ms] | p95 [ms] | p99 [ms] | max [ms] |", "|---|---|---|---|---|---|",
            f"| {m['planner']['steps']} | {_fmt(lat['mean'], 2)} | {_fmt(lat['p50'], 2)} | "
            f"{_fmt(lat['p95'], 2)} | {_fmt(lat['p99'], 2)} | {_fmt(lat['max'], 2)} |", ""]
        lines += [
            *image("substitutions"), "| " + " | ".join(SUB_NAMES) + " |", "|---" * len(SUB_NAMES) + "|",
            "| " + " | ".join(str(subs[n]) for n in SUB_NAMES) + " |", ""]
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
