"""`wm-agent`: the command line of wm_agent (run `wm-agent --help`).

One error style: every mistake a user can make ends in one line on stderr,
``wm-agent <command>: error: <what was wrong and what to do>``, and exit status 2, before any
node starts. `wm-agent sim` exits 0 for a valid run, 1 for an invalid one (the verdict says
why), 128 + n when signal n interrupted it.
"""

from __future__ import annotations

import argparse
import importlib
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from wm_agent import __version__
from wm_agent.bags.replay import add_replay_arguments
from wm_agent.errors import WmAgentError
from wm_agent.graph import (
    BACKEND_CHOICES,
    FIDELITY_CHOICES,
    GRAPH_MODES,
    FleetSimArgs,
    arg_help,
    topics_of,
)
from wm_agent.launcher import command_for
from wm_agent.paths import RETRAINED_MODEL_DIR
from wm_agent.preflight import MAX_DOMAIN_ID
from wm_agent.run import MAX_DURATION_S

#: Where `wm-agent train`, `export` and `eval-model` work without --out / --model (their own
#: parsers' default, defined once in wm_agent.world_model.artifacts): under runs/ (ignored by
#: git), never the tracked models/. The shipped models change only when named explicitly.
TRAINED_MODEL = str(RETRAINED_MODEL_DIR)


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's error style: one line, ``<prog>: error: <message>``, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(text: str) -> str:
    """A message on one line (e.g. a YAML parser's error spans several)."""
    return " ".join(text.split())


def _number(kind: type, low: float | None = None, high: float | None = None,
            low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a finite `kind` in [low, high] (low excluded when `low_open`)."""
    lo_text = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi_text = "" if high is None else f"<= {high:g}"
    want = " and ".join(t for t in (lo_text, hi_text) if t)

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}"
                                             f"{' ' + want if want else ''}, got {text!r}") from None
        ok = math.isfinite(value) and (low is None or (value > low if low_open else value >= low)) \
            and (high is None or value <= high)
        if not ok:
            raise argparse.ArgumentTypeError(f"must be {want}, got {text}")
        return value

    return parse


def _mode(text: str) -> str:
    """--mode: realtime | lockstep; fast names why it is gone."""
    try:
        FleetSimArgs(drones=1, task_rate_per_min=0.0, mode=text)
    except WmAgentError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("mode ")) from None
    return text


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The options of a run (`wm-agent sim`; `wm-agent graph` takes the same)."""
    p.add_argument("--drones", type=_number(int, 1), default=None, metavar="N",
                   help=arg_help("drones").replace("0 = ", "default: "))
    p.add_argument("--duration", type=_number(float, 0.0, MAX_DURATION_S, low_open=True), default=60.0,
                   metavar="SECONDS",
                   help="sim time to run [s] (default 60, at most a day)")
    d = FleetSimArgs  # defaults and descriptions: the graph's arguments (one home, launch files too)
    p.add_argument("--scenario", default=d.scenario, metavar="NAME_OR_YAML",
                   help=f"{arg_help('scenario')} (default {d.scenario})")
    p.add_argument("--seed", type=_number(int, 0), default=d.seed, metavar="N",
                   help=f"{arg_help('seed')} (default {d.seed})")
    p.add_argument("--mode", type=_mode, default=d.mode, metavar="{" + ",".join(GRAPH_MODES) + "}",
                   help=f"{arg_help('mode')} (default {d.mode})")
    p.add_argument("--fidelity", choices=FIDELITY_CHOICES, default=d.fidelity,
                   help=f"{arg_help('fidelity')} (default {d.fidelity})")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=d.backend,
                   help=f"{arg_help('backend')} (default {d.backend})")
    p.add_argument("--model", default=d.model, metavar="FOLDER", help=arg_help("model"))
    p.add_argument("--task-rate", type=_number(float, 0.0), default=None, metavar="PER_MIN",
                   help=arg_help("task_rate_per_min"))
    p.add_argument("--odom-drones", type=_number(int, 0), default=d.odom_drones, metavar="N",
                   help=f"{arg_help('odom_drones')} (default {d.odom_drones})")
    p.add_argument("--state-rate", type=_number(float, 0.0), default=d.state_rate_hz,
                   metavar="HZ", help=f"{arg_help('state_rate_hz')} (default {d.state_rate_hz:g})")
    p.add_argument("--planner-shards", type=_number(int, 1), default=d.planner_shards,
                   metavar="K", help=f"{arg_help('planner_shards')} (default {d.planner_shards})")
    p.add_argument("--faults", action="store_true",
                   help="inject a drone dropout, a planner stall and a coordinator kill+restart "
                   "(needs --duration >= 20)")
    p.add_argument("--out", default="", metavar="FOLDER",
                   help="run folder, new or empty (default runs/sim-<date>-<time>)")
    p.add_argument("--domain-id", type=_number(int, 0, MAX_DOMAIN_ID), default=None, metavar="ID",
                   help="ROS_DOMAIN_ID of the run (default: $ROS_DOMAIN_ID, else 0); refused when "
                   "another graph runs there")


def _graph_args(ns: argparse.Namespace) -> FleetSimArgs:
    return FleetSimArgs(
        drones=ns.drones or 0, scenario=ns.scenario, seed=ns.seed, mode=ns.mode,
        fidelity=ns.fidelity, backend=ns.backend, model=ns.model, task_rate_per_min=ns.task_rate,
        odom_drones=ns.odom_drones, state_rate_hz=ns.state_rate, planner_shards=ns.planner_shards)


def _out(ns: argparse.Namespace) -> Path:
    """--out, or a new runs/sim-<date>-<time>[-k]."""
    if ns.out:
        return Path(ns.out)
    base = Path("runs") / time.strftime("sim-%Y%m%d-%H%M%S")
    out, k = base, 1
    while out.exists():
        k += 1
        out = base.with_name(f"{base.name}-{k}")
    return out


def _cmd_check(_: argparse.Namespace) -> int:
    """Import every runtime dependency and the interface packages; report versions."""
    ok = True
    for module in ("rclpy", "wm_agent_msgs.msg", "tf2_msgs.msg", "numpy", "scipy", "pybullet", "torch",
                   "onnxruntime"):
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
    """Print the nodes `wm-agent sim` with these options would start: each with its topics and
    its command line (quoted: it pastes into a shell)."""
    from wm_agent.run import run_specs

    graph = _graph_args(ns).resolved()
    out = Path(ns.out or "runs/sim-<date>-<time>")
    for spec in run_specs(graph, out, ns.duration, ns.faults):
        t = topics_of(spec)
        print(f"{spec.name}: {spec.description}")
        for label, names in (("publishes", t.publishes), ("subscribes", t.subscribes),
                             ("serves", t.services), ("calls", t.clients)):
            if names:
                print(f"  {label + ':':<12}{', '.join(names)}")
        print("  " + shlex.join(command_for(spec)))
    return 0


def _cmd_sim(ns: argparse.Namespace) -> int:
    """Run the simulated fleet graph for --duration sim seconds and write the run folder."""
    from wm_agent.run import RunOptions, print_summary, run_fleet

    out = _out(ns)
    opts = RunOptions(graph=_graph_args(ns), duration_s=ns.duration, out=out, faults=ns.faults,
                      domain_id=ns.domain_id, report=not ns.no_report, progress=not ns.no_progress,
                      animation_interval_s=ns.animation_interval)
    metrics = run_fleet(opts)
    verdict = metrics["verdict"]
    if metrics["sim_time_s"] <= 0 and metrics["failures"]:    # a node refused to start
        name, failure = next(iter(metrics["failures"].items()))
        print(f"wm-agent sim: error: {name}: {one_line(failure['why'])}", file=sys.stderr)
        return int(verdict["exit_code"])
    print_summary(metrics, out.resolve())
    if verdict["valid"]:
        print(verdict["summary"])
    else:
        print(f"wm-agent sim: {one_line(verdict['summary'])}", file=sys.stderr)
    return int(verdict["exit_code"])


def _cmd_replay(ns: argparse.Namespace) -> int:
    """Replay a bag with /clock (rclpy imported only now)."""
    from wm_agent.nodes.replayer import replay_from_namespace

    return replay_from_namespace(ns)


#: `wm-agent <name> ...` hands the rest of the command line to these (each has its own --help).
PASSTHROUGH = {
    "collect": ("wm_agent.world_model.collect", "collect_main",
                "fly the sim with a scripted policy and write a world-model dataset"),
    "train": ("wm_agent.world_model.train", "train_main",
              f"train the world model on a dataset (into {TRAINED_MODEL} unless --out)"),
    "export": ("wm_agent.world_model.export", "export_main",
               f"export a trained world model to ONNX with a roundtrip check ({TRAINED_MODEL} "
               "unless --model)"),
    "eval": ("wm_agent.evaluation.bag_eval", "eval_main",
             "evaluate a recorded bag: world-model k-step error vs constant velocity, offline "
             "re-planning, planner latency, tasks, collisions; writes report.md, metrics.json, plots"),
    "eval-model": ("wm_agent.world_model.evaluate", "evaluate_main",
                   "k-step prediction error of a world model vs baselines on held-out data "
                   f"({TRAINED_MODEL} unless --model)"),
}


def _passthrough(name: str, argv: Sequence[str]) -> int:
    module, func, _ = PASSTHROUGH[name]
    return int(getattr(importlib.import_module(module), func)(list(argv)))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="wm-agent",
        description="World-model drone planning, fleet coordination and simulation for ROS 2.",
    )
    parser.add_argument("--version", action="version", version=f"wm_agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "sim", help="run the simulated fleet graph (the main job)",
        description="Check the options, bring up sim bridge, fleet planner, coordinator, task "
        "feeder, monitor and recorder as ROS 2 nodes, run for --duration sim seconds and write a "
        "run folder (bag, metrics.json, report.md with plots and an animation). Exit status: 0 a "
        "valid run, 1 an invalid one (the last line says why), 2 a mistake in the options, 128+n "
        "interrupted by signal n.",
    )
    add_run_arguments(p)
    p.add_argument("--no-report", action="store_true", help="skip the report (metrics.json only)")
    p.add_argument("--animation-interval", type=_number(float, 0.0), default=None, metavar="SECONDS",
                   help="sim seconds between the report's animation frames (default 0.5, longer "
                   "for runs over 2 minutes: at most 240 frames; 0 = no animation)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sim)

    p = sub.add_parser("replay", help="replay a recorded bag (rosbag2 MCAP or sqlite3) with /clock")
    add_replay_arguments(p)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser(
        "graph", help="print the nodes `wm-agent sim` starts: topics and command lines",
        description="Print every node `wm-agent sim` would start with the same options: what it "
        "publishes, subscribes to, serves and calls, and its command line (quoted, it pastes into "
        "a shell).")
    add_run_arguments(p)
    p.set_defaults(func=_cmd_graph)

    p = sub.add_parser("check", help="check that every dependency imports")
    p.set_defaults(func=_cmd_check)
    for name, (_, _, text) in PASSTHROUGH.items():
        sub.add_parser(name, help=f"{text} (see wm-agent {name} --help)", add_help=False)
    return parser


def options_markdown(parser: argparse.ArgumentParser, command: str) -> str:
    """The Markdown table of a subcommand's options (README's table is this; a test checks)."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    rows = ["| option | meaning |", "| --- | --- |"]
    for action in sub.choices[command]._actions:
        if not action.option_strings or "--help" in action.option_strings:
            continue
        name = action.option_strings[-1]
        if action.nargs != 0:
            choices = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else ""
            name += f" {action.metavar or choices or action.dest.upper()}"
        rows.append(f"| `{name}` | {(action.help or '').replace('%%', '%').replace('|', '/')} |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in PASSTHROUGH:
        try:
            return _passthrough(args[0], args[1:])
        except WmAgentError as exc:
            print(f"wm-agent {args[0]}: error: {one_line(str(exc))}", file=sys.stderr)
            return 2
    ns = parser.parse_args(args)
    try:
        return int(ns.func(ns))
    except WmAgentError as exc:
        print(f"wm-agent {ns.command}: error: {one_line(str(exc))}", file=sys.stderr)
        return 2


def entry() -> None:
    """console_scripts entry: exit with main()'s status."""
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
