"""``wm-agent eval BAG``: replay a recorded run through the world model and the planner offline.

Reads any rosbag2 bag (MCAP or sqlite3) with the fleet topics or per-drone Odometry + cmd_vel,
computes the world model's k-step open-loop prediction error beside constant velocity, the
re-planned actions vs the recorded commands, planner latency, task throughput, collisions and
the eval's own throughput, writes the report (``report.md``, ``metrics.json``, PNGs) and prints a
summary. A truncated or corrupt bag is evaluated up to the damage: a ``BagTruncatedWarning``
saying how much was lost is issued, printed, and put at the top of report.md. See
docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wm_agent import topics
from wm_agent.bags.reader import BagTruncatedWarning, open_bag
from wm_agent.errors import ConfigError, ModelError, WmAgentError
from wm_agent.evaluation.bag_data import BagData, read_bag
from wm_agent.evaluation.prediction import (
    GOAL_SOURCES,
    KS,
    Geometry,
    assignment_goals,
    goals_for,
    prediction_errors,
    replan,
    resample,
    select_windows,
    step_actions,
)
from wm_agent.evaluation.report import ReportFiles, write_report
from wm_agent.evaluation.run_data import RunData, Trajectories, summarise
from wm_agent.evaluation.scenario_fit import ScenarioFitWarning, scenario_fit
from wm_agent.world_model.spaces import WM_DT, ActionSpec, ObservationSpec

BACKENDS = ("onnxruntime", "torch")
NO_SCENARIO = "none"
"""``--scenario none``: no obstacle features (no walls, shelves or ceiling; floor at z = 0)."""
FENCE_MARGIN_M = 10.0
"""Without a scenario the re-planner's geofence is the recorded extent widened by this [m]."""
WARNINGS = (BagTruncatedWarning, ScenarioFitWarning)


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation.

    Attributes:
        backend: world-model and planner backend. model: model folder (None: the shipped model).
        scenario: scenario name or YAML (None: metadata.yaml custom_data ``wm_agent.scenario``,
            else ``warehouse``), or ``none``: no obstacle features.
        max_drones: evaluate the first N drone ids only (None: all).
        replan_samples: (drone, step) pairs re-planned offline (0: skip re-planning).
        replan_batch: drones re-planned together. max_windows: prediction windows at most.
        goal_source: ``auto`` | ``assignment`` | ``future`` (see prediction.py).
        goal_steps: steps ahead of the future-position goal. ks: prediction horizons [steps].
        threads: CPU threads of the backends (0: library default). seed: window subsampling and
        planner noise. max_gap_s: largest gap between two state samples interpolated across [s].
    """

    backend: str = "onnxruntime"
    model: Path | None = None
    scenario: str | None = None
    max_drones: int | None = None
    replan_samples: int = 256
    replan_batch: int = 32
    max_windows: int = 4096
    goal_source: str = "auto"
    goal_steps: int = 20
    ks: tuple[int, ...] = KS
    threads: int = 1
    seed: int = 0
    max_gap_s: float = 0.25

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"eval: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.goal_source not in GOAL_SOURCES:
            raise ConfigError(f"eval: goal source must be one of {GOAL_SOURCES}, got {self.goal_source!r}")
        if self.max_drones is not None and self.max_drones < 1:
            raise ConfigError(f"eval: max_drones must be >= 1, got {self.max_drones}")
        if self.replan_samples < 0 or self.replan_batch < 1 or self.max_windows < 1 or self.goal_steps < 1:
            raise ConfigError(
                "eval: expected replan_samples >= 0, replan_batch >= 1, max_windows >= 1, goal_steps >= 1; "
                f"got {self.replan_samples}, {self.replan_batch}, {self.max_windows}, {self.goal_steps}")
        if not self.ks or min(self.ks) < 1:
            raise ConfigError(f"eval: ks must be positive step counts, got {self.ks}")


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate_bag` produced: the run's arrays, its metrics (as in metrics.json) and
    the report files (None when no output folder was given)."""

    run: RunData
    metrics: dict[str, Any]
    files: ReportFiles | None


def _scenario_name(bag_metadata: dict[str, Any], requested: str | None) -> str:
    if requested:
        return requested
    custom = bag_metadata.get("custom_data") or {}
    return str(custom.get("wm_agent.scenario") or "warehouse")


def _rate_notes(bag_metadata: dict[str, Any], cfg: EvalConfig) -> list[str]:
    """What a rate-limited fleet state (recorder ``rates``, ``wm-agent sim --state-rate``)
    means for this evaluation."""
    custom = bag_metadata.get("custom_data") or {}
    rate = custom.get(f"wm_agent.rate.{topics.FLEET_STATE}")
    if not rate:
        return []
    note = (f"{topics.FLEET_STATE} was recorded at most {rate} Hz (rate-limited, "
            f"{custom.get(f'wm_agent.decimated.{topics.FLEET_STATE}', '?')} states not recorded): "
            "the prediction errors compare with states interpolated between samples")
    if float(rate) < 1.0 / cfg.max_gap_s:
        note += (f"; samples are more than max_gap_s = {cfg.max_gap_s:g} s apart, so only the "
                 "recorded instants count (few or no prediction windows)")
    return [note]


def _scenario(bag: Any, requested: str | None, data: BagData, run: RunData) -> Any | None:
    """The scenario to evaluate in (None for ``none``); warns (ScenarioFitWarning, also in the
    report) when the recorded positions do not fit it."""
    from wm_agent.sim import load_scenario

    name = _scenario_name(bag.metadata, requested)
    if name == NO_SCENARIO:
        run.notes.append("scenario none: no obstacle features (no walls, shelves or ceiling; floor at "
                         "z = 0); re-planning geofence = the recorded extent widened by "
                         f"{FENCE_MARGIN_M:g} m")
        return None
    scenario = load_scenario(name)
    fit = scenario_fit(data.states.position, scenario)
    if not fit.fits():
        named = requested or (bag.metadata.get("custom_data") or {}).get("wm_agent.scenario")
        text = fit.describe("" if named else " (the bag names no scenario: the default was used)")
        warnings.warn(ScenarioFitWarning(text), stacklevel=3)
        run.warnings.append(text)
    return scenario


def _geometry(scenario: Any | None) -> Geometry:
    from wm_agent.sim.scenario import Obstacles

    if scenario is None:
        return Geometry(np.zeros((0, 3)), np.zeros((0, 3)), 0.0, math.inf)
    obstacles = Obstacles.from_scenario(scenario)
    return Geometry(obstacles.boxes_min, obstacles.boxes_max, obstacles.floor_z, obstacles.ceiling_z)


def _model_specs(folder: Path) -> tuple[ObservationSpec, ActionSpec, float]:
    from wm_agent.world_model.artifacts import read_card

    card = read_card(folder)
    try:
        spec = ObservationSpec.from_dict(card["observation_spec"])
        act = ActionSpec.from_dict(card["action_spec"])
        dt = float(card.get("dt", WM_DT))
    except KeyError as exc:
        raise ModelError(f"model card of {folder} lacks {exc}; re-export the model") from None
    if abs(dt - WM_DT) > 1e-9:
        raise ModelError(f"model {folder} has dt {dt} s; this evaluation resamples at {WM_DT} s")
    return spec, act, dt


def evaluate_bag(bag_path: str | Path, out: str | Path | None = None, config: EvalConfig | None = None
                 ) -> EvalResult:
    """Evaluate one bag and (when `out` is given) write the report there.

    Warns:
        BagTruncatedWarning: the bag is truncated or corrupt (the message says how much was lost);
            the readable part is evaluated.

    Raises:
        BagError: the bag is missing, unreadable or has no usable topic (the message names what
            was looked for). ModelError: bad model folder. ConfigError: bad settings or scenario.
    """
    from wm_agent.world_model.artifacts import default_model_dir

    cfg = config or EvalConfig()
    bag = open_bag(bag_path)
    data = read_bag(bag, max_drones=cfg.max_drones)
    for line in data.damage:
        warnings.warn(BagTruncatedWarning(line), stacklevel=2)
    run = _recorded_run(data, "")
    scenario = _scenario(bag, cfg.scenario, data, run)
    run.scenario = scenario.name if scenario is not None else NO_SCENARIO
    model = Path(cfg.model) if cfg.model else default_model_dir()
    spec, act_spec, dt = _model_specs(model)
    geo = _geometry(scenario)
    grid = resample(data.states, dt, cfg.max_gap_s)
    actions = step_actions(data.commands, grid, dt, act_spec)
    goals, assigned = goals_for(grid, assignment_goals(data.goals, grid), cfg.goal_source, cfg.goal_steps)
    run.notes += _notes(data, cfg, assigned, bool(actions.ok.any()))
    run.notes += _rate_notes(bag.metadata, cfg)
    if data.commands is not None and actions.ok.any():
        t0 = time.perf_counter()
        windows = select_windows(grid, actions, goals, geo, spec, max(cfg.ks), cfg.max_windows, cfg.seed)
        if windows.start.size:
            runtime = _open_runtime(cfg, model)
            run.prediction = prediction_errors(runtime, grid, actions, windows, dt, cfg.ks)
        else:
            run.notes.append(f"no window of {max(cfg.ks)} steps of a flying drone with usable commands: "
                             "no prediction error")
        run.throughput["prediction_s"] = time.perf_counter() - t0
        if cfg.replan_samples > 0:
            t0 = time.perf_counter()
            planner = _open_planner(cfg, model, scenario, data.states.position)
            run.replan = replan(planner, grid, actions, goals, geo, spec, cfg.replan_samples,
                                cfg.replan_batch)
            run.throughput["replan_s"] = time.perf_counter() - t0
    files = write_report(run, out, scenario) if out is not None else None
    metrics = summarise(run) if files is None else _read_json(files.metrics)
    return EvalResult(run, metrics, files)


def read_run(bag_path: str | Path, scenario: str | None = None) -> tuple[RunData, Any | None]:
    """The recorded run of a bag without the model (e.g. a ``wm-agent sim`` run folder's
    ``bag/``) and its scenario (None for ``none``): trajectories, tasks, planner latency,
    substitutions, events. Warns (BagTruncatedWarning) like :func:`evaluate_bag`; raises
    BagError when nothing is usable."""
    bag = open_bag(bag_path)
    data = read_bag(bag)
    for line in data.damage:
        warnings.warn(BagTruncatedWarning(line), stacklevel=2)
    run = _recorded_run(data, "")
    sc = _scenario(bag, scenario, data, run)
    run.scenario = sc.name if sc is not None else NO_SCENARIO
    run.replay = False
    return run, sc


def report_bag(bag_path: str | Path, out: str | Path, scenario: str | None = None) -> ReportFiles:
    """The run report of a recorded run without the model (:func:`read_run`, then the report)."""
    run, sc = read_run(bag_path, scenario)
    return write_report(run, out, sc)


def _read_json(path: Path) -> dict[str, Any]:
    import json

    return dict(json.loads(path.read_text()))


def _open_runtime(cfg: EvalConfig, model: Path) -> Any:
    from wm_agent.inference import InferenceOptions
    from wm_agent.world_model.runtime import open_runtime

    device = "cpu" if cfg.backend == "torch" else None
    return open_runtime(cfg.backend, model, InferenceOptions(threads=cfg.threads, device=device))


def _open_planner(cfg: EvalConfig, model: Path, scenario: Any | None, position: np.ndarray) -> Any:
    from dataclasses import replace

    from wm_agent.inference import InferenceOptions
    from wm_agent.planning.backends import open_planner
    from wm_agent.planning.config import FLEET

    if scenario is not None:
        config = FLEET.with_scenario(scenario)
    else:
        flat = np.asarray(position, np.float64).reshape(-1, 3)
        flat = flat[np.isfinite(flat).all(axis=1)]
        lo, hi = flat.min(axis=0) - FENCE_MARGIN_M, flat.max(axis=0) + FENCE_MARGIN_M
        config = replace(FLEET, fence_min=tuple(float(x) for x in lo),  # type: ignore[arg-type]
                         fence_max=tuple(float(x) for x in hi))  # type: ignore[arg-type]
    return open_planner(cfg.backend, model, config, InferenceOptions(threads=cfg.threads),
                        seed=cfg.seed)


def _recorded_run(data: BagData, scenario: str) -> RunData:
    s = data.states
    return RunData(
        scenario=scenario, source=data.source, duration_s=data.duration_s,
        trajectories=Trajectories(s.t, s.ids, s.position), tasks=data.tasks, planner=data.planner,
        events=data.events,
        throughput={"messages": float(data.messages), "read_s": data.read_s,
                    "messages_per_s": data.messages / max(data.read_s, 1e-9)},
        warnings=[f"{line} — the report covers the readable part only" for line in data.damage],
        replay=True,
    )


def _notes(data: BagData, cfg: EvalConfig, assigned: np.ndarray, have_actions: bool) -> list[str]:
    notes = [f"layout: {data.layout} topics ({data.states.ids.size} drones, {data.states.t.size} state "
             f"samples), timed by {data.timing}; resampled at the world-model dt {WM_DT:.4f} s; "
             "actions = time-mean of the "
             "recorded velocity command over each step, normalised by the model's action spec"]
    if data.commands is None or not have_actions:
        notes.append("no usable velocity commands recorded: no prediction error and no re-planning")
    share = float(assigned.mean()) if assigned.size else 0.0
    notes.append(f"goals ({cfg.goal_source}): assignment goal for {100 * share:.0f} % of the steps, "
                 f"else the recorded position {cfg.goal_steps} steps ({cfg.goal_steps * WM_DT:.2f} s) "
                 "ahead; the goal only changes the observation's goal_rel block")
    return notes


def format_summary(m: dict[str, Any]) -> str:
    """Plain-text summary table of the metrics."""
    def f(x: Any, d: int = 3) -> str:
        return "—" if x is None else f"{x:.{d}f}" if isinstance(x, float) and math.isfinite(x) else str(x)

    lines = [f"eval {m['source']} ({m['scenario']}, {f(m['duration_s'], 1)} s)"]
    p = m.get("prediction")
    if p:
        lines.append(f"{'k-step error':<20}" + "".join(f"  pos@{k:<3}[m] vel@{k:<3}[m/s]" for k in p["k"]))
        for name in p["position_error_m"]:
            lines.append(f"{name:<20}" + "".join(
                f"  {f(a, 4):>10} {f(b, 4):>12}" for a, b in zip(
                    p["position_error_m"][name], p["velocity_error_mps"][name], strict=True)))
        lines.append(f"windows {p['windows']}; world model / constant velocity at k=10: "
                     f"{f(p.get('wm_to_cv_position_ratio_at_10'))}")
    else:
        lines.append("k-step error: no data")
    r = m.get("replan")
    lines.append(f"re-planned vs recorded |dv| [m/s]: mean {f(r['dv_mean_mps'])} p50 {f(r['dv_p50_mps'])} "
                 f"p95 {f(r['dv_p95_mps'])} max {f(r['dv_max_mps'])} ({r['samples']} samples, {r['backend']})"
                 if r else "re-planning: no data")
    pl = m.get("planner")
    lat = pl["latency_ms"] if pl else {}
    lines.append(f"planner latency [ms]: p50 {f(lat['p50'], 2)} p95 {f(lat['p95'], 2)} "
                 f"p99 {f(lat['p99'], 2)} max {f(lat['max'], 2)}; substitutions "
                 + ", ".join(f"{k} {v}" for k, v in pl["substitutions_total"].items())
                 if pl else "planner status: no data")
    t = m.get("tasks")
    lines.append(f"tasks: delivered {t['delivered']} ({f(t['delivered_per_min'], 2)}/min), accepted "
                 f"{t['accepted']}, failed {t['failed']}" if t else "tasks: no data")
    col = m.get("collisions")
    lines.append(f"collisions: {col}" if col is not None else "collisions: no data")
    th = m.get("throughput") or {}
    lines.append(f"read {f(th.get('messages'), 0)} messages at {f(th.get('messages_per_s'), 0)} msg/s")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wm-agent eval``."""
    d = EvalConfig()
    p = argparse.ArgumentParser(
        prog="wm-agent eval",
        description="Evaluate a recorded run (rosbag2 folder, .mcap or sqlite3): world-model k-step "
        "prediction error vs constant velocity, offline re-planning vs the recorded commands, planner "
        "latency, tasks, collisions; writes report.md, metrics.json and plots.")
    p.add_argument("bag", type=Path, help="bag folder, .mcap file, or sqlite3 bag folder")
    p.add_argument("--out", type=Path, default=None,
                   help="report folder (default <bag>_eval next to the bag)")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend, help=f"default {d.backend}")
    p.add_argument("--model", type=Path, default=None, help="model folder (default the shipped wm_default)")
    p.add_argument("--scenario", default=None,
                   help="scenario name or YAML (default: the bag's wm_agent.scenario, else warehouse); "
                   "'none': no obstacle features (a bag from another site). A bag whose drones fly "
                   "outside the scenario's walls or through its shelves is warned about")
    p.add_argument("--max-drones", type=int, default=None, help="evaluate the first N drone ids only")
    p.add_argument("--replan-samples", type=int, default=d.replan_samples,
                   help=f"(drone, step) pairs re-planned offline, 0 = skip (default {d.replan_samples})")
    p.add_argument("--max-windows", type=int, default=d.max_windows,
                   help=f"prediction windows at most (default {d.max_windows})")
    p.add_argument("--goals", choices=GOAL_SOURCES, default=d.goal_source,
                   help="goal of the observations: assignment goal when recorded, else the position "
                   f"--goal-steps ahead (auto); or force one (default {d.goal_source})")
    p.add_argument("--goal-steps", type=int, default=d.goal_steps, help=f"default {d.goal_steps}")
    p.add_argument("--threads", type=int, default=d.threads, help=f"CPU threads (default {d.threads})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    """CLI: ``wm-agent eval BAG``. Exit status 0 ok, 2 error; a truncated bag still exits 0."""
    ns = build_parser().parse_args(argv)
    out = ns.out or ns.bag.parent / f"{ns.bag.name.removesuffix('.mcap')}_eval"
    try:
        cfg = EvalConfig(backend=ns.backend, model=ns.model, scenario=ns.scenario, max_drones=ns.max_drones,
                         replan_samples=ns.replan_samples, max_windows=ns.max_windows, goal_source=ns.goals,
                         goal_steps=ns.goal_steps, threads=ns.threads, seed=ns.seed)
        with warnings.catch_warnings(record=True) as caught:
            for category in WARNINGS:
                warnings.simplefilter("always", category)
            result = evaluate_bag(ns.bag, out, cfg)
    except WmAgentError as exc:
        print(f"wm-agent eval: error: {exc}", file=sys.stderr)
        return 2
    for w in caught:
        if issubclass(w.category, WARNINGS):
            print(f"wm-agent eval: WARNING: {w.message}", file=sys.stderr)
    print(format_summary(result.metrics))
    if result.files is not None:
        print(f"report: {result.files.markdown} (metrics.json, {len(result.files.plots)} plots)")
    return 0


if __name__ == "__main__":
    raise SystemExit(eval_main())
