"""`wm-agent sim`: one simulated fleet run, from bring-up to report.

Brings up the graph of wm_agent.graph.fleet_sim_graph as real rclpy nodes (one process each),
records the run into a rosbag2 MCAP bag, follows it with a supervisor node in this process
(progress bar in sim time, fault injection, end-to-end latency), stops every node on SIGINT /
SIGTERM or at the end (SIGINT, then SIGTERM/SIGKILL after 5 s), and writes the run folder:
`bag/`, `ledger.sqlite`, `logs/`, `metrics.json` and the report (`report.md` + PNG plots).
"""

from __future__ import annotations

import json
import signal
import sys
import time
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

    def __post_init__(self) -> None:
        if not (np.isfinite(self.duration_s) and self.duration_s > 0):
            raise ConfigError(f"--duration must be > 0 s, got {self.duration_s}")


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


def run_fleet(opts: RunOptions) -> dict[str, Any]:
    """Run the graph and write the run folder; returns the metrics written to metrics.json."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from tqdm import tqdm

    from wm_agent.nodes.supervisor import RunSupervisor

    run_dir = opts.out.resolve()
    if (run_dir / "bag").exists():
        raise ConfigError(f"{run_dir} already holds a run; choose another --out or remove it")
    run_dir.mkdir(parents=True, exist_ok=True)
    graph_args = replace(opts.graph, record=str(run_dir / "bag"), ledger=str(run_dir / "ledger.sqlite"),
                         watchers=opts.graph.watchers + 1)  # + this process's RunSupervisor
    specs = fleet_sim_graph(graph_args)
    specs = [replace(s, parameters={**s.parameters, "duration_s": opts.duration_s})
             if s.name == "sim_bridge" else s for s in specs]
    plan = FaultPlan.for_run(opts.duration_s) if opts.faults else None
    if plan is not None:
        specs = _with_faults(specs, plan)
    env = ros_env(opts.domain_id)
    graph = GraphProcess(specs, env=env, log_dir=run_dir / "logs")
    stop = {"signal": ""}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["signal"] = signal.Signals(signum).name

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=int(env.get("ROS_DOMAIN_ID", "0")))
    supervisor = RunSupervisor(context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(supervisor)
    seen = supervisor.seen
    faults = FaultLog(asdict(plan)) if plan is not None else None
    wall0 = time.monotonic()
    graph.start()
    failed: list[str] = []
    bar = tqdm(total=round(opts.duration_s, 1), unit="sim s", disable=not opts.progress,
               mininterval=0.5 if sys.stderr.isatty() else 10.0,
               bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} sim s [{elapsed}<{remaining}]{postfix}")
    sim_started_wall: float | None = None
    try:
        while not stop["signal"] and seen.sim_time < opts.duration_s - 1e-6:
            executor.spin_once(timeout_sec=0.05)
            if sim_started_wall is None and seen.sim_time > 0:
                sim_started_wall = time.monotonic()
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
                failed = [f"{n.spec.name} (exit {n.process.returncode})" for n in exited]
                break
        if faults is not None and faults.stall.get("stopped_wall") and not faults.stall.get("resumed_wall"):
            graph.send("fleet_planner", signal.SIGCONT)
        if not stop["signal"] and not failed:
            grace = time.monotonic() + 0.5  # the bridge has stopped stepping: let the last
            while time.monotonic() < grace:  # messages reach the recorder and the supervisor
                executor.spin_once(timeout_sec=0.05)
    finally:
        bar.close()
        wall_run = time.monotonic() - (sim_started_wall or wall0)
        reports = graph.stop(stop_timeout_s=opts.stop_timeout_s)
        executor.shutdown()
        supervisor.destroy_node()
        context.try_shutdown()
        for s, h in old.items():
            signal.signal(s, h)
    metrics = _metrics(opts, seen, reports, wall_run, time.monotonic() - wall0, failed, stop["signal"],
                       faults, run_dir)
    if opts.report and (run_dir / "bag").exists():
        _write_report(run_dir, opts, metrics)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_json_default))
    return metrics


def _inject(graph: GraphProcess, plan: FaultPlan, log: FaultLog, seen: Any) -> None:
    now, t = time.monotonic(), seen.sim_time
    if t >= plan.dropout_start_s and "start_wall" not in log.dropout:
        log.dropout["start_wall"] = now
        log.dropout["lost_before"] = seen.lost_by_wall[-1][1] if seen.lost_by_wall else 0
    if t >= plan.stall_start_s and "stopped_wall" not in log.stall:
        graph.send("fleet_planner", signal.SIGSTOP)
        log.stall["stopped_wall"] = now
        log.stall["stopped_sim"] = t
    if "stopped_wall" in log.stall and "resumed_wall" not in log.stall \
            and now - log.stall["stopped_wall"] >= plan.stall_s:
        graph.send("fleet_planner", signal.SIGCONT)
        log.stall["resumed_wall"] = now
        log.stall["resumed_sim"] = t
    if t >= plan.kill_start_s and "killed_wall" not in log.coordinator:
        graph.send("fleet_coordinator", signal.SIGKILL)
        log.coordinator["killed_wall"] = now
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
            "failsafe_hold_after_s": (min(holds) - t0) if holds else None,
            "drones_held": len({d for t, kind, d in seen.events if kind == 1 and t >= t0
                                and (t1 is None or t <= t1 + 0.5)}),
            "recovered_after_resume_s": (min(recovered) - t1) if recovered and t1 is not None else None,
        }
    if "restarted_wall" in log.coordinator:
        t0 = log.coordinator["restarted_wall"]
        out["coordinator_restart"] = {
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


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _metrics(opts: RunOptions, seen: Any, reports: list[StopReport], wall_run: float, wall_total: float,
             failed: list[str], signal_name: str, faults: FaultLog | None, run_dir: Path) -> dict[str, Any]:
    sim_t = float(seen.sim_time)
    collisions = sum(1 for _t, kind, _d in seen.events if kind == 0)
    ledger = _ledger_check(run_dir / "ledger.sqlite", run_dir / "bag")
    bag_bytes = sum(p.stat().st_size for p in (run_dir / "bag").glob("*") if p.is_file()) \
        if (run_dir / "bag").is_dir() else 0
    return {
        "options": {**asdict(opts.graph), "duration_s": opts.duration_s, "faults": opts.faults},
        "completed": not failed and not signal_name and sim_t >= opts.duration_s - 1e-6,
        "stopped_by": signal_name or None,
        "failed_nodes": failed,
        "sim_time_s": sim_t,
        "wall_time_s": wall_total,
        "real_time_factor": sim_t / wall_run if wall_run > 0 else None,
        "state_to_command_latency_ms": {
            "p50": _pct(seen.latencies_ms, 50),
            "p99": _pct(seen.latencies_ms, 99),
            "samples": len(seen.latencies_ms),
        },
        "collisions": collisions,
        "tasks": ledger,
        "delivered_fraction": (ledger["delivered"] / ledger["accepted"]) if ledger.get("accepted") else None,
        "bag_bytes": bag_bytes,
        "bag_mb_per_sim_minute": bag_bytes / 1e6 / (sim_t / 60.0) if sim_t > 0 else None,
        "node_stops": [asdict(r) for r in reports],
        "faults": _fault_summary(faults, seen) if faults is not None else None,
    }


def _write_report(run_dir: Path, opts: RunOptions, metrics: dict[str, Any]) -> None:
    """report/ (report.md, PNG plots, its metrics.json) from the run's bag."""
    from wm_agent.evaluation.bag_eval import report_bag

    files = report_bag(run_dir / "bag", run_dir / "report", scenario=opts.graph.scenario)
    metrics["report"] = str(files.markdown)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_summary(metrics: dict[str, Any], run_dir: Path, stream: Any = sys.stdout) -> None:
    """Human summary of a run (the figures the README and closing notes quote)."""
    lat = metrics["state_to_command_latency_ms"]
    tasks = metrics["tasks"]
    rtf = metrics["real_time_factor"]
    lines = [
        f"run folder: {run_dir}",
        f"sim time {metrics['sim_time_s']:.1f} s in {metrics['wall_time_s']:.1f} s wall"
        + (f" (real-time factor {rtf:.2f})" if rtf else ""),
        f"state->command latency p50 {lat['p50'] or float('nan'):.1f} ms, "
        f"p99 {lat['p99'] or float('nan'):.1f} ms ({lat['samples']} samples)",
        f"tasks: {tasks.get('submitted', 0)} submitted, {tasks.get('accepted', 0)} accepted, "
        f"{tasks.get('rejected', 0)} rejected, {tasks.get('delivered', 0)} delivered, "
        f"{tasks.get('in_progress', 0)} in progress, {len(tasks.get('lost', []))} lost; "
        f"exactly once: {tasks.get('exactly_once')}",
        f"collisions: {metrics['collisions']}; bag {metrics['bag_bytes'] / 1e6:.1f} MB",
    ]
    for r in metrics["node_stops"]:
        lines.append(f"  {r['name']}: stopped in {r['seconds']:.2f} s, exit {r['returncode']}"
                     + (" (forced)" if r["forced"] else ""))
    if metrics.get("faults"):
        lines.append("faults: " + json.dumps({k: v for k, v in metrics["faults"].items() if k != "plan"}))
    print("\n".join(lines), file=stream)
