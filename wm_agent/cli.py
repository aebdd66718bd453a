"""`wm-agent`: the command line of wm_agent (run `wm-agent --help`)."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType

from wm_agent import __version__
from wm_agent.bags.replay import add_replay_arguments
from wm_agent.errors import WmAgentError
from wm_agent.graph import FleetSimArgs, fleet_sim_graph
from wm_agent.launcher import GraphProcess, command_for, ros_env


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
    """Bring up the simulated fleet graph, run it for --duration seconds, stop it cleanly."""
    args = FleetSimArgs(
        drones=ns.drones, scenario=ns.scenario, seed=ns.seed, mode=ns.mode, fidelity=ns.fidelity,
        record=ns.record,
    )
    graph = GraphProcess(fleet_sim_graph(args), env=ros_env(ns.domain_id))
    stop = {"requested": False}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop["requested"] = True
        print(f"\n[wm-agent] {signal.Signals(signum).name}: stopping the graph", flush=True)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"[wm-agent] starting {len(graph.specs)} nodes: {', '.join(s.name for s in graph.specs)}")
    graph.start()
    t_end = time.monotonic() + ns.duration
    failed: list[str] = []
    while not stop["requested"] and time.monotonic() < t_end:
        exited = graph.poll()
        if exited:
            failed = [f"{n.spec.name} (exit {n.process.returncode})" for n in exited]
            print(f"[wm-agent] node(s) exited early: {', '.join(failed)}", flush=True)
            break
        time.sleep(0.1)
    reports = graph.stop(stop_timeout_s=5.0)
    for r in reports:
        forced = " (forced)" if r.forced else ""
        print(f"[wm-agent] {r.name} stopped in {r.seconds:.2f} s, exit {r.returncode}{forced}")
    return 1 if failed or any(r.forced for r in reports) else 0


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

    p = sub.add_parser("sim", help="run the simulated fleet graph (the main job)")
    p.add_argument("--drones", type=int, default=50, help="number of drones (default 50)")
    p.add_argument("--duration", type=float, default=20.0, help="run time [s] (default 20)")
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
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID for the graph")
    p.add_argument("--record", default="", metavar="BAG", help="record the run into this bag folder")
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
