"""`wm-agent`: the command line of wm_agent (run `wm-agent --help`)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from wm_agent import __version__
from wm_agent.bags.replay import add_replay_arguments
from wm_agent.errors import WmAgentError
from wm_agent.graph import FleetSimArgs, fleet_sim_graph
from wm_agent.launcher import command_for


def _cmd_check(_: argparse.Namespace) -> int:
    """Import every runtime dependency and the interface package; report versions."""
    ok = True
    for module in ("rclpy", "wm_agent_msgs.msg", "numpy", "scipy", "pybullet", "torch", "onnxruntime"):
        try:
            mod = importlib.import_module(module)
            version = getattr(mod, "__version__", "") or getattr(
                sys.modules.get(module.split(".")[0]), "__version__", ""
            )
            print(f"  ok   {module} {version}")
        except ImportError as exc:
            ok = False
            print(f"  FAIL {module}: {exc}")
    if not ok:
        print("some dependencies are missing: run `make setup` in the wm_agent checkout")
    return 0 if ok else 1


def _cmd_graph(ns: argparse.Namespace) -> int:
    """Print the node graph and the command line of each node."""
    for spec in fleet_sim_graph(FleetSimArgs(drones=ns.drones, scenario=ns.scenario)):
        print(f"{spec.name}: {spec.description}")
        print("   " + " ".join(command_for(spec)))
    return 0


def _cmd_sim(ns: argparse.Namespace) -> int:
    """Run the simulated fleet graph for --duration sim seconds and write the run folder."""
    from pathlib import Path

    from wm_agent.run import RunOptions, print_summary, run_fleet

    graph = FleetSimArgs(
        drones=ns.drones, scenario=ns.scenario, seed=ns.seed, mode=ns.mode, fidelity=ns.fidelity,
        backend=ns.backend, model=ns.model, task_rate_per_min=ns.task_rate,
    )
    out = Path(ns.out) if ns.out else Path("runs") / time.strftime("sim-%Y%m%d-%H%M%S")
    opts = RunOptions(graph=graph, duration_s=ns.duration, out=out, faults=ns.faults,
                      domain_id=ns.domain_id, report=not ns.no_report, progress=not ns.no_progress)
    metrics = run_fleet(opts)
    print_summary(metrics, out.resolve())
    if metrics["failed_nodes"]:
        print(f"[wm-agent] node(s) exited early: {', '.join(metrics['failed_nodes'])}; "
              f"see {out / 'logs'}", file=sys.stderr)
    forced = [r["name"] for r in metrics["node_stops"] if r["forced"]]
    if forced:
        print(f"[wm-agent] node(s) needed SIGTERM/SIGKILL to stop: {', '.join(forced)}", file=sys.stderr)
    return 1 if metrics["failed_nodes"] or forced else 0


def _cmd_replay(ns: argparse.Namespace) -> int:
    """Replay a bag with /clock (rclpy imported only now)."""
    from wm_agent.nodes.replayer import replay_from_namespace

    return replay_from_namespace(ns)


#: `wm-agent <name> ...` hands the rest of the command line to these (each has its own --help).
PASSTHROUGH = {
    "collect": ("wm_agent.world_model.collect", "collect_main",
                "fly the sim with a scripted policy and write a world-model dataset"),
    "train": ("wm_agent.world_model.train", "train_main", "train the world model on a dataset"),
    "export": ("wm_agent.world_model.export", "export_main",
               "export a trained world model to ONNX (with a roundtrip check)"),
    "eval": ("wm_agent.evaluation.bag_eval", "eval_main",
             "evaluate a recorded bag: world-model k-step error vs constant velocity, offline "
             "re-planning, planner latency, tasks, collisions; writes report.md, metrics.json, plots"),
    "eval-model": ("wm_agent.world_model.evaluate", "evaluate_main",
                   "k-step prediction error of a world model vs baselines on held-out data"),
}


def _passthrough(name: str, argv: Sequence[str]) -> int:
    module, func, _ = PASSTHROUGH[name]
    return int(getattr(importlib.import_module(module), func)(list(argv)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-agent",
        description="World-model drone planning, fleet coordination and simulation for ROS 2.",
    )
    parser.add_argument("--version", action="version", version=f"wm_agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "sim", help="run the simulated fleet graph (the main job)",
        description="Bring up sim bridge, fleet planner, coordinator, task feeder and recorder as "
        "ROS 2 nodes, run for --duration sim seconds and write a run folder (bag, metrics.json, "
        "report.md with plots).",
    )
    p.add_argument("--drones", type=int, default=50, help="number of drones (default 50)")
    p.add_argument("--duration", type=float, default=60.0, help="sim time to run [s] (default 60)")
    p.add_argument("--scenario", default="warehouse", help="scenario name or YAML path")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--mode", choices=("realtime", "fast", "lockstep"), default="realtime",
        help="sim clock mode (default realtime)",
    )
    p.add_argument(
        "--fidelity", choices=("auto", "motor", "fleet"), default="auto",
        help="physics fidelity: motor (PyBullet), fleet (vectorised), auto by drone count",
    )
    p.add_argument(
        "--backend", choices=("onnxruntime", "torch", "tensorrt", "classical"), default="onnxruntime",
        help="fleet planner backend (default onnxruntime; classical = PID baseline)",
    )
    p.add_argument("--model", default="", help="planning world-model folder (default: the shipped wm_plan)")
    p.add_argument("--task-rate", type=float, default=None,
                   help="task arrivals per minute (default: the scenario's; 0 = no tasks)")
    p.add_argument("--faults", action="store_true",
                   help="inject a drone dropout, a planner stall and a coordinator kill+restart")
    p.add_argument("--out", default="", help="run folder (default runs/sim-<date>-<time>)")
    p.add_argument("--no-report", action="store_true", help="skip the report (metrics.json only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for the graph")
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser("replay", help="replay a recorded bag (rosbag2 MCAP or sqlite3) with /clock")
    add_replay_arguments(p)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser("graph", help="print the node graph and each node's command line")
    p.add_argument("--drones", type=int, default=50)
    p.add_argument("--scenario", default="warehouse")
    p.set_defaults(func=_cmd_graph)

    p = sub.add_parser("check", help="check that every dependency imports")
    p.set_defaults(func=_cmd_check)
    for name, (_, _, text) in PASSTHROUGH.items():
        sub.add_parser(name, help=f"{text} (see wm-agent {name} --help)", add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PASSTHROUGH:
        try:
            return _passthrough(args[0], args[1:])
        except WmAgentError as exc:
            print(f"wm-agent {args[0]}: error: {exc}", file=sys.stderr)
            return 2
    ns = parser.parse_args(args)
    try:
        return int(ns.func(ns))
    except WmAgentError as exc:
        print(f"wm-agent: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """console_scripts entry: exit with main()'s status."""
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
