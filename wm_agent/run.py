"""`wm-agent sim`: one simulated fleet run, from the checks to the verdict.

Checks everything it can before a node starts (wm_agent.preflight: scenario, fleet size, model,
backend, output folder, ROS domain), brings up the graph of wm_agent.graph.fleet_sim_graph as
real rclpy nodes (one process each, tied to this one: wm_agent.launcher), records the run into a
rosbag2 MCAP bag, follows it with a supervisor node in this process (progress bar in sim time,
fault injection, end-to-end latency), stops every node on SIGINT / SIGTERM / SIGHUP or at the end
(SIGINT, then SIGTERM/SIGKILL after 5 s), and writes the run folder: `bag/`, `ledger.sqlite`,
`logs/`, `metrics.json` and the report (`report.md`, PNG plots, an animated GIF).

Every number of the summary, of metrics.json and of the report comes from the bag (one source);
the verdict says whether the run is valid: not interrupted, every node up to the end, the planner
answered the fleet states (:data:`MIN_ANSWERED`), the recorder lost no message that counts
(:func:`losses_that_count`).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from wm_agent import topics
from wm_agent.errors import ConfigError
from wm_agent.faults import FaultPlan
from wm_agent.graph import FleetSimArgs, NodeSpec, fleet_sim_graph
from wm_agent.launcher import GraphProcess, StopReport, ros_env

MAX_DURATION_S = 24 * 3600.0
"""Longest run [sim s]: a day (the bag of a default run grows by ~60 MB per sim minute)."""
MIN_ANSWERED = 0.95
"""A valid run's planner answered at least this fraction of the recorded fleet states (outside
an injected planner stall): below it the drones flew on stale commands."""
STALL_SLACK_S = 1.0
"""After an injected planner stall, states this long [sim s] after the resume are not counted
(the planner works through its backlog)."""
MAX_LOST_FRACTION = 0.01
"""A valid run's recorder lost at most this share of a topic's messages. Latest-wins topics
(the latched /fleet/assignments: depth 1) can drop a sample that a newer one replaced
in the publisher's history before delivery, as every subscriber does; a slow recorder loses far
more (fast mode lost 29 % of /clock, 12 % of /fleet/state)."""
EVERY_MESSAGE_TOPICS = (topics.TASK_BULK, topics.TASK_BULK_ACK, topics.TASK_STATUS, topics.FLEET_EVENTS)
"""Topics whose every message the run's checks read (submitted tasks, rejections, lifecycles,
collisions): one lost message makes the run invalid."""
VIEW_ONLY_TOPICS = (topics.FLEET_MARKERS, topics.WORLD_MARKERS)
"""Topics for viewers only (Foxglove, RViz): no figure of the run reads them, so a lost frame
(best effort; a 10,000-drone fleet frame is ~230 kB) does not make the run invalid."""
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True)
class RunOptions:
    """Options of one run (see `wm-agent sim --help`)."""

    graph: FleetSimArgs
    duration_s: float = 60.0          # sim time [s]
    out: Path = Path("runs/sim")
    faults: bool = False
    domain_id: int | None = None
    stop_timeout_s: float = 5.0
    report: bool = True
    progress: bool = True
    animation_interval_s: float | None = None  # sim s between GIF frames (None: by duration)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.duration_s) and 0 < self.duration_s <= MAX_DURATION_S):
            raise ConfigError(f"--duration must be in (0, {MAX_DURATION_S:g}] sim seconds "
                              f"(a day), got {self.duration_s:g}")
        a = self.animation_interval_s
        if a is not None and not (np.isfinite(a) and a >= 0):
            raise ConfigError(f"--animation-interval must be >= 0 s (0 = none), got {a}")


@dataclass
class FaultLog:
    """What happened to each injected fault (times in seconds)."""

    plan: dict[str, Any]
    dropout: dict[str, Any] = field(default_factory=dict)
    stall: dict[str, Any] = field(default_factory=dict)
    coordinator: dict[str, Any] = field(default_factory=dict)


def _with_faults(specs: list[NodeSpec], plan: FaultPlan) -> list[NodeSpec]:
    out = []
    for spec in specs:
        if spec.name == "sim_bridge":
            params = {**spec.parameters, "dropout_drone": plan.dropout_drone,
                      "dropout_start_s": plan.dropout_start_s, "dropout_end_s": plan.dropout_end_s}
            spec = replace(spec, parameters=params)
        out.append(spec)
    return out


def run_specs(graph: FleetSimArgs, run_dir: Path, duration_s: float, faults: bool) -> list[NodeSpec]:
    """The nodes of a run into `run_dir`: the fleet graph with its recorder (``bag/``) and
    ledger, the bridge stopping at `duration_s`, the fault plan's dropout (``wm-agent graph``
    prints these)."""
    graph_args = replace(graph, record=str(run_dir / "bag"), ledger=str(run_dir / "ledger.sqlite"),
                         watchers=graph.watchers + 1)  # + the runner's RunSupervisor
    specs = [replace(s, parameters={**s.parameters, "duration_s": duration_s})
             if s.name == "sim_bridge" else s for s in fleet_sim_graph(graph_args)]
    return _with_faults(specs, FaultPlan.for_run(duration_s)) if faults else specs


def run_fleet(opts: RunOptions) -> dict[str, Any]:
    """Check, run the graph and write the run folder; returns the metrics of metrics.json.

    Raises:
        WmAgentError: a check failed (nothing was started; the message is one line).
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tqdm import tqdm

    from wm_agent.nodes.supervisor import RunSupervisor, graph_of
    from wm_agent.preflight import check_run

    checked = check_run(opts.graph, opts.out, opts.domain_id, opts.duration_s, opts.faults)
    opts = replace(opts, graph=checked.graph, domain_id=checked.domain_id)
    run_dir = checked.run_dir
    specs = run_specs(opts.graph, run_dir, opts.duration_s, opts.faults)
    plan = FaultPlan.for_run(opts.duration_s) if opts.faults else None
    env = ros_env(opts.domain_id)
    graph = GraphProcess(specs, env=env, log_dir=run_dir / "logs")
    stop = {"signal": ""}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signal.Signals(signum).name

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env["ROS_DOMAIN_ID"]))
    supervisor = RunSupervisor(context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(supervisor)
    seen = supervisor.seen
    faults = FaultLog(asdict(plan)) if plan is not None else None
    wall0 = time.monotonic()
    graph.start()
    failed: list[tuple[str, int | None]] = []
    live: dict[str, Any] = {}
    bar = tqdm(total=round(opts.duration_s, 1), unit="sim s", disable=not opts.progress,
               mininterval=0.5 if sys.stderr.isatty() else 10.0,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} sim s [{elapsed}<{remaining}]{postfix}")
    try:
        while not stop["signal"] and seen.sim_time < opts.duration_s - 1e-6:
            executor.spin_once(timeout_sec=0.05)
            m = seen.metrics
            if m is not None:
                bar.set_postfix_str(f"delivered {m.delivered} queued {m.queued} lost {m.lost_drones}",
                                    refresh=False)
            bar.n = min(seen.sim_time, bar.total)  # set, not summed: never past the total
            bar.update(0)
            if faults is not None and plan is not None:
                _inject(graph, plan, faults, seen)
            # the coordinator killed by the fault scenario and not restarted yet has not failed
            killed = faults is not None and "killed_wall" in faults.coordinator \
                and "restarted_wall" not in faults.coordinator
            exited = [n for n in graph.poll() if not (killed and n.spec.name == "fleet_coordinator")]
            if exited:
                failed = [(n.spec.name, n.process.returncode) for n in exited]
                break
        if faults is not None and faults.stall.get("stopped_wall") and not faults.stall.get("resumed_wall"):
            _send_planners(graph, signal.SIGCONT)
        if not stop["signal"] and not failed:
            grace = time.monotonic() + 0.5  # the bridge has stopped stepping: let the last
            while time.monotonic() < grace:  # messages reach the recorder and the supervisor
                executor.spin_once(timeout_sec=0.05)
            live = graph_of(supervisor, [s.name for s in specs])
    finally:
        bar.close()
        reports = graph.stop(stop_timeout_s=opts.stop_timeout_s)
        executor.shutdown()
        supervisor.destroy_node()
        context.try_shutdown()
        for s, h in old.items():
            signal.signal(s, h)
    metrics = _metrics(opts, seen, reports, time.monotonic() - wall0, failed, stop["signal"],
                       faults, run_dir, live, checked.model)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
    return metrics


def _send_planners(graph: GraphProcess, sig: signal.Signals) -> None:
    """Send ``sig`` to every fleet-planner process (all shards: the planner stalls as one)."""
    for node in graph.nodes:
        if node.spec.executable == "fleet_planner":
            graph.send(node.spec.name, sig)


def _inject(graph: GraphProcess, plan: FaultPlan, log: FaultLog, seen: Any) -> None:
    now, t = time.monotonic(), seen.sim_time
    if t >= plan.dropout_start_s and "start_wall" not in log.dropout:
        log.dropout["start_wall"] = now
        log.dropout["lost_before"] = seen.lost_by_wall[-1][1] if seen.lost_by_wall else 0
    if t >= plan.stall_start_s and "stopped_wall" not in log.stall:
        _send_planners(graph, signal.SIGSTOP)
        log.stall["stopped_wall"] = now
        log.stall["stopped_sim"] = t
    if "stopped_wall" in log.stall and "resumed_wall" not in log.stall \
            and now - log.stall["stopped_wall"] >= plan.stall_s:
        _send_planners(graph, signal.SIGCONT)
        log.stall["resumed_wall"] = now
        log.stall["resumed_sim"] = t
    if t >= plan.kill_start_s and "killed_wall" not in log.coordinator:
        graph.send("fleet_coordinator", signal.SIGKILL)
        log.coordinator["killed_wall"] = now
        log.coordinator["killed_sim"] = t
    if "killed_wall" in log.coordinator and "restarted_wall" not in log.coordinator \
            and now - log.coordinator["killed_wall"] >= plan.restart_after_s:
        graph.node("fleet_coordinator").process.wait(timeout=5.0)
        graph.restart("fleet_coordinator")
        log.coordinator["restarted_wall"] = now


def _first_after(walls: list[float], t0: float) -> float | None:
    later = [w for w in walls if w >= t0]
    return min(later) - t0 if later else None


def _fault_summary(log: FaultLog, seen: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"plan": log.plan}
    plan = log.plan
    if "start_wall" in log.dropout:
        t0 = log.dropout["start_wall"]
        lost = [w for w, n in seen.lost_by_wall if w >= t0 and n > log.dropout["lost_before"]]
        requeued = [w for w, _tid, prev, new, reason in seen.transitions
                    if w >= t0 and new == 0 and prev in (1, 2) and "lost" in reason]
        reassigned = [w for w, _tid, prev, new, _r in seen.transitions
                      if requeued and w >= min(requeued) and prev == 0 and new == 1]
        out["dropout"] = {
            "drone": plan["dropout_drone"],
            "marked_lost_after_s": (min(lost) - t0) if lost else None,
            "task_requeued_after_s": (min(requeued) - t0) if requeued else None,
            "task_reassigned_after_s": (min(reassigned) - t0) if reassigned else None,
        }
    if "stopped_sim" in log.stall:
        t0 = log.stall["stopped_sim"]
        holds = [t for t, kind, _d in seen.events if kind == 1 and t >= t0]   # FAILSAFE_HOLD
        t1 = log.stall.get("resumed_sim")
        recovered = [t for t, kind, _d in seen.events if kind == 6 and t1 is not None and t >= t1]
        out["planner_stall"] = {
            "stall_s": plan["stall_s"],
            "stopped_sim_s": t0,
            "resumed_sim_s": t1,
            "failsafe_hold_after_s": (min(holds) - t0) if holds else None,
            "drones_held": len({d for t, kind, d in seen.events if kind == 1 and t >= t0
                                and (t1 is None or t <= t1 + 0.5)}),
            "recovered_after_resume_s": (min(recovered) - t1) if recovered and t1 is not None else None,
        }
    if "restarted_wall" in log.coordinator:
        t0 = log.coordinator["restarted_wall"]
        out["coordinator_restart"] = {
            "killed_sim_s": log.coordinator.get("killed_sim"),
            "down_s": log.coordinator["restarted_wall"] - log.coordinator["killed_wall"],
            "first_assignments_after_restart_s": _first_after(seen.assignment_walls, t0),
            "first_metrics_after_restart_s": _first_after(seen.metrics_walls, t0),
        }
    return out


def _ledger_check(path: Path, bag: Path) -> dict[str, Any]:
    """Exactly-once against what was submitted: every task fed on /tasks/bulk (recorded in the
    bag) is in the ledger or was answered with a rejection, and none was delivered twice."""
    from wm_agent.fleet.ledger import Ledger

    if not path.is_file():
        return {"error": f"no ledger at {path}"}
    ledger = Ledger.open(path)
    try:
        state = ledger.restore()
        deliveries: dict[str, int] = {}
        for tr in ledger.transitions():
            if tr.to_state.name == "DELIVERED":
                deliveries[tr.task_id] = deliveries.get(tr.task_id, 0) + 1
    finally:
        ledger.close()
    states = [t.state.name for t in state.tasks.values()]
    submitted, rejected = _submitted(bag)
    lost = sorted(submitted - set(state.tasks) - rejected)
    return {
        "submitted": len(submitted),
        "rejected": len(rejected),
        "accepted": len(states),
        "delivered": states.count("DELIVERED"),
        "in_progress": sum(s in ("QUEUED", "ASSIGNED", "PICKED") for s in states),
        "failed": states.count("FAILED"),
        "cancelled": states.count("CANCELLED"),
        "delivered_twice": sorted(k for k, v in deliveries.items() if v > 1),
        "lost": lost,
        "exactly_once": all(v == 1 for v in deliveries.values()) and not lost,
    }


def _submitted(bag: Path) -> tuple[set[str], set[str]]:
    """Ids of the tasks fed on /tasks/bulk and of those answered with a rejection on
    /tasks/bulk_ack, as the bag recorded them (empty without a bag: lockstep feeds in-band)."""
    from wm_agent.bags import open_bag

    submitted: set[str] = set()
    rejected: set[str] = set()
    if not bag.is_dir():
        return submitted, rejected
    with open_bag(bag) as reader:
        wanted = [t for t in (topics.TASK_BULK, topics.TASK_BULK_ACK) if t in reader.topics]
        for d in reader.decoded(wanted):
            if d.topic == topics.TASK_BULK:
                submitted.update(str(t.task_id) for t in d.msg.tasks)
            else:
                rejected.update(str(tid) for tid, code in zip(d.msg.task_ids, d.msg.codes,
                                                              strict=False) if int(code) != 0)
    return submitted, rejected


def planner_answered(bag: Path, exclude: tuple[float, float] | None = None) -> dict[str, Any]:
    """How many of the recorded fleet states the planner answered: FleetCommands for step
    k + 1 recorded for every drone of the FleetState of step k (with planner shards, the
    partial commands of all of them). Counted from the state the first recorded
    command answers (the recorder subscribes to /fleet/cmd only once it has discovered the
    planner's publisher, and the bridge waits for its fleet-state subscribers only: in lockstep
    the first few steps' commands pass before; no command at all counts every state), to the
    last state but one (the run stopped after it); states stamped inside `exclude` ([t0, t1]
    sim s: an injected stall) do not count."""
    from wm_agent.bags import open_bag

    states: dict[int, tuple[float, int]] = {}  # step -> (stamp, drones)
    commanded: dict[int, int] = {}  # step -> drones commanded
    if bag.is_dir():
        with open_bag(bag) as reader:
            wanted = [t for t in (topics.FLEET_STATE, topics.FLEET_COMMAND) if t in reader.topics]
            for d in reader.decoded(wanted):
                stamp = d.msg.header.stamp.sec + d.msg.header.stamp.nanosec * 1e-9
                if d.topic == topics.FLEET_STATE:
                    states[int(d.msg.step)] = (stamp, len(d.msg.ids))
                else:
                    step = int(d.msg.step)
                    commanded[step] = commanded.get(step, 0) + len(d.msg.ids)
    if states:
        del states[max(states)]
    first = min(commanded) - 1 if commanded else min(states, default=0)
    counted = [k for k, (t, _) in states.items() if k >= first
               and (exclude is None or not exclude[0] <= t <= exclude[1])]
    answered = sum(commanded.get(k + 1, 0) >= states[k][1] for k in counted)
    return {"states": len(counted), "answered": answered,
            "fraction": answered / len(counted) if counted else None}


def stage_budget(bag: Path) -> list[dict[str, Any]]:
    """Wall ms per sim second of each node's stages (/fleet/stage_times in the bag,
    wm_agent.stages), biggest first; malformed reports are skipped."""
    from wm_agent.bags import open_bag
    from wm_agent.conversions import stage_report_from_msg
    from wm_agent.errors import MessageError
    from wm_agent.stages import per_sim_second

    reports = []
    if bag.is_dir():
        with open_bag(bag) as reader:
            if topics.STAGE_TIMES in reader.topics:
                for d in reader.decoded([topics.STAGE_TIMES]):
                    try:
                        reports.append(stage_report_from_msg(d.msg))
                    except MessageError:
                        continue
    return [asdict(b) for b in per_sim_second(reports)]


def recorder_losses(bag: Path) -> dict[str, dict[str, int]]:
    """Topic → ``{"lost", "received"}`` for the topics on which the recorder lost messages
    (sequence gaps and middleware events it counted: metadata.yaml ``custom_data``
    ``wm_agent.lost.<topic>`` / ``wm_agent.received.<topic>``)."""
    from wm_agent.bags import open_bag

    if not bag.is_dir():
        return {}
    with open_bag(bag) as reader:
        custom = reader.metadata.get("custom_data") or {}
    out = {}
    for key, value in sorted(custom.items()):
        if key.startswith("wm_agent.lost.") and int(value) > 0:
            topic = key.removeprefix("wm_agent.lost.")
            out[topic] = {"lost": int(value), "received": int(custom.get(f"wm_agent.received.{topic}", 0))}
    return out


def losses_that_count(lost: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The recorder's losses that make a run invalid: any on :data:`EVERY_MESSAGE_TOPICS`, over
    :data:`MAX_LOST_FRACTION` of the messages elsewhere — and more than one (in a short run one
    superseded sample of a latest-wins topic is already over 1 %) — except on
    :data:`VIEW_ONLY_TOPICS` (the summary still lists those)."""
    return {t: n for t, n in lost.items() if t not in VIEW_ONLY_TOPICS and (
            t in EVERY_MESSAGE_TOPICS
            or n["lost"] > max(1.0, MAX_LOST_FRACTION * (n["lost"] + n["received"])))}


def node_failure(log: Path) -> str:
    """Why a node exited, from its log: its ``[fatal]`` line (the message run_node prints for
    a WmAgentError), else the last line of a Python traceback, else the log's last line."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"no log at {log}"
    fatal = [ln for ln in lines if ln.startswith("[fatal]")]
    if fatal:
        return fatal[-1].removeprefix("[fatal]").strip()
    if any(ln.startswith("Traceback") for ln in lines):
        errors = [ln for ln in lines if not ln.startswith(("File ", "^", "~")) and ":" in ln
                  and ln.split(":", 1)[0].replace(".", "").isidentifier()]
        if errors:
            return f"{errors[-1]} (traceback in {log})"
    return (lines[-1] if lines else "no output") + f" (log: {log})"


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _recorded(run_dir: Path, scenario: str) -> tuple[Any, Any, list[str]]:
    """The run as the bag recorded it (RunData, scenario, warnings), or Nones without states."""
    from wm_agent.errors import BagError
    from wm_agent.evaluation.bag_eval import WARNINGS, read_run

    bag = run_dir / "bag"
    if not bag.is_dir():
        return None, None, []
    with warnings.catch_warnings(record=True) as caught:
        for category in WARNINGS:
            warnings.simplefilter("always", category)
        try:
            run, sc = read_run(bag, scenario)
        except BagError:
            return None, None, []
    return run, sc, [str(w.message) for w in caught if issubclass(w.category, WARNINGS)]


def _metrics(opts: RunOptions, seen: Any, reports: list[StopReport], wall_total: float,
             failed: list[tuple[str, int | None]], signal_name: str, faults: FaultLog | None,
             run_dir: Path, live: dict[str, Any], model: Path | None) -> dict[str, Any]:
    from wm_agent.evaluation.run_data import summarise

    sim_t = float(seen.sim_time)
    bag = run_dir / "bag"
    run, scenario, bag_warnings = _recorded(run_dir, opts.graph.scenario)
    recorded = summarise(run) if run is not None else None
    fault_summary = _fault_summary(faults, seen) if faults is not None else None
    stall = (fault_summary or {}).get("planner_stall")
    exclude = (stall["stopped_sim_s"], (stall["resumed_sim_s"] or sim_t) + STALL_SLACK_S) if stall else None
    ledger = _ledger_check(run_dir / "ledger.sqlite", bag) if sim_t > 0 else {}
    bag_bytes = sum(p.stat().st_size for p in bag.glob("*") if p.is_file()) if bag.is_dir() else 0
    metrics: dict[str, Any] = {
        "options": {**asdict(opts.graph), "model": str(model or ""), "duration_s": opts.duration_s,
                    "faults": opts.faults, "domain_id": opts.domain_id},
        "completed": not failed and not signal_name and sim_t >= opts.duration_s - 1e-6,
        "stopped_by": signal_name or None,
        "failed_nodes": [f"{name} (exit {code})" for name, code in failed],
        "failures": {name: {"exit": code, "why": node_failure(run_dir / "logs" / f"{name}.log")}
                     for name, code in failed},
        "sim_time_s": sim_t,
        "wall_time_s": wall_total,
        "real_time_factor": seen.real_time_factor,
        "state_to_command_latency_ms": {
            "p50": _pct(seen.latencies_ms, 50),
            "p99": _pct(seen.latencies_ms, 99),
            "samples": len(seen.latencies_ms),
        },
        "planner_answered": planner_answered(bag, exclude) if sim_t > 0 else None,
        "recorder_lost": recorder_losses(bag),
        "wall_s_per_sim_s": 1.0 / seen.real_time_factor if seen.real_time_factor else None,
        "stages": stage_budget(bag) if sim_t > 0 else [],
        "bag_warnings": bag_warnings,
        "collisions": recorded["collisions"] if recorded else None,
        "tasks": ledger,
        "delivered_fraction": (ledger["delivered"] / ledger["accepted"]) if ledger.get("accepted") else None,
        "bag_bytes": bag_bytes,
        "bag_mb_per_sim_minute": bag_bytes / 1e6 / (sim_t / 60.0) if sim_t > 0 else None,
        "node_stops": [asdict(r) for r in reports],
        "faults": fault_summary,
        "graph": live or None,
        "recorded": recorded,
    }
    metrics["verdict"] = verdict(metrics, opts.duration_s)
    if opts.report and run is not None and sim_t > 0:  # a run that never started has nothing to show
        from wm_agent.evaluation.report import write_report

        info = {k: v for k, v in metrics.items() if k not in ("recorded", "graph", "node_stops")}
        files = write_report(run, run_dir / "report", scenario, run_info=_finite(info),
                             animation=opts.animation_interval_s != 0,
                             animation_interval_s=opts.animation_interval_s)
        metrics["report"] = str(files.markdown)
        if "animation" in files.plots:
            metrics["animation"] = str(files.plots["animation"])
    return metrics


def verdict(m: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """Whether the run is valid, why not, and the exit status of `wm-agent sim`: 0 valid,
    1 invalid, 2 a node refused its configuration before the sim started, 128 + n interrupted
    by signal n."""
    problems: list[str] = []
    sim_t = m["sim_time_s"]
    for name, f in m["failures"].items():
        problems.append(f"{name} exited (status {f['exit']}): {f['why']}")
    forced = [r["name"] for r in m["node_stops"] if r["forced"]]
    if forced:
        problems.append(f"node(s) needed SIGTERM/SIGKILL to stop: {', '.join(forced)}")
    a = m.get("planner_answered")
    if a and a["fraction"] is not None and a["fraction"] < MIN_ANSWERED:
        problems.append(f"the planner answered {a['answered']} of {a['states']} fleet states "
                        f"({100 * a['fraction']:.0f} %, a valid run needs {100 * MIN_ANSWERED:.0f} %)")
    if a and sim_t > 0 and not a["states"]:
        problems.append("the bag holds no fleet state")
    counted = losses_that_count(m["recorder_lost"])
    if counted:
        total = sum(n["lost"] for n in counted.values())
        shown = ", ".join(f"{t} {n['lost']} of {n['lost'] + n['received']}"
                          for t, n in list(counted.items())[:4])
        problems.append(f"the recorder lost {total} message(s) ({shown}{', …' if len(counted) > 4 else ''})")
    problems += [f"the bag is damaged: {w}" for w in m["bag_warnings"]]
    if m["stopped_by"]:
        code = 128 + int(getattr(signal, m["stopped_by"]))
        summary = (f"interrupted by {m['stopped_by']} at {sim_t:.1f} / {duration_s:g} s of sim "
                   "time: the run is incomplete")
    elif m["failures"] and sim_t <= 0:  # a node refused its configuration (run_node: exit 2)
        code = EXIT_USAGE if any(f["exit"] == 2 for f in m["failures"].values()) else EXIT_INVALID
        summary = f"the run did not start: {problems[0]}"
    elif problems:
        code = EXIT_INVALID
        summary = "invalid run: " + "; ".join(problems)
    else:
        code = 0
        summary = f"valid run: {sim_t:.1f} s of sim time"
    return {"valid": code == 0, "exit_code": code, "summary": summary, "problems": problems}


def _finite(o: Any) -> Any:
    """JSON-ready copy: numpy scalars as Python numbers, non-finite floats as None."""
    return json.loads(json.dumps(o, default=_json_default),
                      parse_constant=lambda _c: None)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_summary(metrics: dict[str, Any], run_dir: Path, stream: Any = sys.stdout) -> None:
    """Human summary of a run, from the metrics (the same numbers as metrics.json and the
    report): what was measured, then where the report is and the verdict."""
    lat = metrics["state_to_command_latency_ms"]
    tasks = metrics["tasks"]
    rtf = metrics["real_time_factor"]
    ans = metrics.get("planner_answered") or {}
    lines = [
        f"run folder: {run_dir}",
        f"sim time {metrics['sim_time_s']:.1f} s in {metrics['wall_time_s']:.1f} s wall"
        + (f" (real-time factor {rtf:.2f} while stepping)" if rtf else ""),
        f"state->command latency p50 {lat['p50'] or float('nan'):.1f} ms, "
        f"p99 {lat['p99'] or float('nan'):.1f} ms ({lat['samples']} samples)"
        + (f"; planner answered {ans['answered']} of {ans['states']} fleet states"
           if ans.get("states") else ""),
        f"tasks: {tasks.get('submitted', 0)} submitted, {tasks.get('accepted', 0)} accepted, "
        f"{tasks.get('rejected', 0)} rejected, {tasks.get('delivered', 0)} delivered"
        + (f" ({100 * metrics['delivered_fraction']:.0f} % of accepted)"
           if metrics.get("delivered_fraction") is not None else "")
        + f", {tasks.get('in_progress', 0)} in progress, {len(tasks.get('lost', []))} lost; "
        f"exactly once: {tasks.get('exactly_once')}",
        f"collisions: {metrics['collisions'] if metrics['collisions'] is not None else '—'}; "
        f"bag {metrics['bag_bytes'] / 1e6:.1f} MB",
    ]
    if metrics.get("stages"):
        from wm_agent.stages import StageBudget, format_budget

        lines.append(format_budget([StageBudget(**b) for b in metrics["stages"]], top=8))
    for r in metrics["node_stops"]:
        lines.append(f"  {r['name']}: stopped in {r['seconds']:.2f} s, exit {r['returncode']}"
                     + (" (forced)" if r["forced"] else ""))
    lost = metrics.get("recorder_lost") or {}
    if lost:
        lines.append("recorder lost: " + ", ".join(
            f"{t} {n['lost']} of {n['lost'] + n['received']}" for t, n in lost.items())
            + f" (a valid run: none on {', '.join(EVERY_MESSAGE_TOPICS)}, at most "
            f"{100 * MAX_LOST_FRACTION:g} % elsewhere; {', '.join(VIEW_ONLY_TOPICS)} not counted)")
    f = metrics.get("faults") or {}
    for name, text in (("dropout", "radio dropout: drone marked lost after {marked_lost_after_s}"),
                       ("planner_stall", "planner stall: failsafe hold after {failsafe_hold_after_s}"),
                       ("coordinator_restart",
                        "coordinator restart: first assignments after {first_assignments_after_restart_s}")):
        if f.get(name):
            lines.append("faults: " + text.format(**{k: _sec(v) for k, v in f[name].items()}))
    if metrics.get("report"):
        gif = metrics.get("animation")
        lines.append(f"report: {metrics['report']}" + (f" (animation {Path(gif).name})" if gif else ""))
    print("\n".join(lines), file=stream)


def _sec(v: Any) -> str:
    return f"{v:.2f} s" if isinstance(v, float) else "—" if v is None else str(v)
