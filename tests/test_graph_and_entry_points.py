"""The node graph is one source of truth: launch files and the CLI read it; every executable it
or a launch file names is a real console_scripts entry point that imports."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest

from wm_agent import topics
from wm_agent.errors import ConfigError
from wm_agent.graph import (
    EXECUTABLES,
    DroneArgs,
    FleetSimArgs,
    NodeSpec,
    ReplayArgs,
    drone_graph,
    fleet_sim_graph,
    replay_eval_graph,
)
from wm_agent.launcher import command_for
from wm_agent.paths import share_dir

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def console_scripts() -> dict[str, str]:
    dist = importlib.metadata.distribution("wm_agent")
    return {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}


def test_every_console_script_imports_and_is_callable() -> None:
    scripts = console_scripts()
    assert "wm-agent" in scripts
    for name, value in scripts.items():
        module_name, _, attr = value.partition(":")
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attr)), f"{name} -> {value} is not callable"


def test_setup_py_declares_what_is_installed() -> None:
    text = (REPO / "setup.py").read_text()
    declared = dict(re.findall(r'"([\w-]+) = ([\w.:]+)"', text))
    assert declared == console_scripts(), "setup.py and the installed entry points differ: make setup"


def test_graph_executables_are_entry_points_of_the_same_module() -> None:
    scripts = console_scripts()
    for executable, module in EXECUTABLES.items():
        assert executable in scripts, f"graph executable {executable} is not a console script"
        assert scripts[executable] == f"{module}:main"


@pytest.mark.parametrize("drones, scenario", [(1, "warehouse"), (50, "warehouse"),
                                              (10_000, "warehouse_10k")])
def test_fleet_sim_graph_is_complete(drones: int, scenario: str) -> None:
    specs = fleet_sim_graph(FleetSimArgs(drones=drones, scenario=scenario))
    names = [s.name for s in specs]
    assert len(names) == len(set(names)), "node names must be unique"
    assert {"sim_bridge", "fleet_coordinator"} <= set(names)
    config = share_dir() / "config"
    for spec in specs:
        for f in spec.param_files:
            assert (config / f).is_file(), f"{spec.name}: missing parameter file {f}"
        cmd = command_for(spec)
        assert cmd[1:3] == ["-m", spec.module]
        assert f"__node:={spec.name}" in cmd
    bridge = next(s for s in specs if s.name == "sim_bridge")
    assert bridge.parameters["drones"] == drones
    assert {"fleet_planner", "task_feeder"} <= set(names)


def test_lockstep_graph_waits_for_the_whole_fleet_and_record_adds_a_recorder() -> None:
    specs = fleet_sim_graph(FleetSimArgs(drones=7, mode="lockstep", record="/tmp/bag"))
    assert specs[0].name == "recorder", "the recorder starts first so it misses nothing"
    bridge = next(s for s in specs if s.name == "sim_bridge")
    assert bridge.parameters["lockstep_min_commanders"] == 7
    assert bridge.parameters["lockstep_timeout_s"] == 0.5  # a small fleet: the bridge's default
    big = fleet_sim_graph(FleetSimArgs(drones=10_000, scenario="warehouse_10k", mode="lockstep"))
    # 10,000 drones: a step's work on 2 cores is 0.1-1 s; 0.5 s made the bridge advance alone
    assert next(s for s in big if s.name == "sim_bridge").parameters["lockstep_timeout_s"] == 5.0
    for spec in specs:
        if spec.name != "sim_bridge":
            assert spec.parameters.get("use_sim_time") is True, spec.name
    # lockstep is deterministic end to end: the coordinator runs the task stream in-band and the
    # planner waits for the assignments stamped with each state
    assert "task_feeder" not in {s.name for s in specs}
    coordinator = next(s for s in specs if s.name == "fleet_coordinator")
    assert coordinator.parameters["lockstep"] is True and coordinator.parameters["task_rate_per_min"] > 0
    planner = next(s for s in specs if s.name == "fleet_planner")
    assert planner.parameters["lockstep"] is True
    assert specs[0].parameters["rates"] == [""]  # every message by default
    assert bridge.parameters["start_command_subscribers"] == 2  # itself and the recorder
    unrecorded = fleet_sim_graph(FleetSimArgs(drones=7, mode="lockstep"))
    assert "start_command_subscribers" not in next(
        s for s in unrecorded if s.name == "sim_bridge").parameters


def test_state_rate_reaches_the_recorder_and_the_cli() -> None:
    from wm_agent.cli import build_parser

    specs = fleet_sim_graph(FleetSimArgs(drones=7, record="/tmp/bag", state_rate_hz=5.0))
    assert specs[0].parameters["rates"] == [f"{topics.FLEET_STATE}=5"]
    ns = build_parser().parse_args(["sim", "--state-rate", "2.5"])
    assert ns.state_rate == 2.5
    with pytest.raises(ConfigError, match="state_rate_hz"):
        FleetSimArgs(state_rate_hz=-1.0)


def test_planner_shards_start_one_planner_process_each() -> None:
    from wm_agent.cli import build_parser
    from wm_agent.graph import args_from_launch, launch_arguments

    specs = fleet_sim_graph(FleetSimArgs(drones=7, mode="lockstep", record="/tmp/bag",
                                         planner_shards=3))
    planners = [s for s in specs if s.executable == "fleet_planner"]
    assert [s.name for s in planners] == ["fleet_planner_0", "fleet_planner_1", "fleet_planner_2"]
    assert [(s.parameters["shards"], s.parameters["shard"]) for s in planners] == [(3, 0), (3, 1), (3, 2)]
    bridge = next(s for s in specs if s.name == "sim_bridge")
    # t = 0 waits for every shard, the coordinator, the monitor and the recorder
    assert bridge.parameters["start_subscribers"] == 3 + 2 + 1
    assert bridge.parameters["start_command_publishers"] == 3
    assert bridge.parameters["lockstep_min_commanders"] == 7, "all shards' drones together"
    one = fleet_sim_graph(FleetSimArgs(drones=7))
    assert [s.name for s in one if s.executable == "fleet_planner"] == ["fleet_planner"]
    assert "shards" not in next(s for s in one if s.name == "fleet_planner").parameters
    assert "planner_shards" in [name for name, _, _ in launch_arguments()]
    assert args_from_launch({"planner_shards": "2"}).planner_shards == 2
    assert build_parser().parse_args(["sim", "--planner-shards", "2"]).planner_shards == 2
    with pytest.raises(ConfigError, match="planner_shards"):
        fleet_sim_graph(FleetSimArgs(drones=2, planner_shards=3))


def test_drone_and_replay_graphs() -> None:
    (planner,) = drone_graph(DroneArgs(namespace="/drone_3", drone_id=3, backend="tensorrt"))
    assert planner.namespace == "/drone_3" and planner.parameters["backend"] == "tensorrt"
    assert (share_dir() / "config" / "planner.yaml").is_file()
    specs = replay_eval_graph(ReplayArgs(bag="/tmp/bag", record="/tmp/out", drones=7))
    assert [s.name for s in specs] == ["replayer", "fleet_planner", "recorder"]
    planner_spec = specs[1]
    assert ("/fleet/cmd", "/replay/fleet/cmd") in planner_spec.remappings
    assert planner_spec.parameters["drones"] == 7
    with pytest.raises(ConfigError, match="bag"):
        ReplayArgs(bag="")
    with pytest.raises(ConfigError, match="namespace"):
        DroneArgs(namespace="drone_3")


@pytest.mark.parametrize(
    "kwargs, field",
    [({"drones": -1}, "drones"), ({"mode": "warp"}, "mode"), ({"fidelity": "x"}, "fidelity"),
     ({"seed": -1}, "seed"), ({"odom_drones": -1}, "odom_drones"), ({"mode": "fast"}, "lockstep"),
     ({"task_rate_per_min": float("inf")}, "task_rate_per_min")],
)
def test_bad_graph_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        FleetSimArgs(**kwargs)  # type: ignore[arg-type]


def test_the_graph_takes_the_scenarios_fleet_and_refuses_one_it_cannot_hold() -> None:
    """drones 0 (the default) is the scenario's fleet; more drones than pads is refused by the
    scenario's own check, before any node exists."""
    bridge = next(s for s in fleet_sim_graph(FleetSimArgs()) if s.name == "sim_bridge")
    assert bridge.parameters["drones"] == 50 and bridge.parameters["fidelity"] == "motor"
    with pytest.raises(ConfigError, match="152 pads, but 200 drones need 200 pads"):
        fleet_sim_graph(FleetSimArgs(drones=200))


def test_unknown_executable_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown executable"):
        NodeSpec(name="x", executable="no_such_node", description="")


def test_parameter_encoding_survives_yaml() -> None:
    spec = NodeSpec(
        name="sim_bridge", executable="sim_bridge", description="",
        parameters={"scenario": "0", "drones": 3, "rate": 2.5, "on": True, "xs": [1.0, 2.0]},
    )
    import yaml

    args = spec.ros_args(Path("/cfg"))
    values = dict(a.split(":=", 1) for a in args if ":=" in a and not a.startswith("__"))
    decoded = {k: yaml.safe_load(v) for k, v in values.items()}
    assert decoded == {"scenario": "0", "drones": 3, "rate": 2.5, "on": True, "xs": [1.0, 2.0]}


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_reads_the_shared_graph(path: Path) -> None:
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.name} needs a usage docstring"
    imports = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "wm_agent.graph" in imports, f"{path.name} must build its nodes from wm_agent.graph"
    funcs = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    declared = [
        n for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"
    ]
    assert declared, f"{path.name} declares no arguments"
    for call in declared:
        keywords = {k.arg: k.value for k in call.keywords}
        assert "description" in keywords, f"{path.name}: argument without a description"
        desc = keywords["description"]
        # a literal text, or the graph's own (launch_arguments(): FleetSimArgs' descriptions)
        assert (isinstance(desc, ast.Constant) and str(desc.value).strip()) or \
            (isinstance(desc, ast.Name) and "launch_arguments()" in ast.unparse(tree))
    # executables named literally in the launch file must be real entry points
    literal_execs = [
        k.value.value for n in ast.walk(tree) if isinstance(n, ast.Call)
        for k in n.keywords if k.arg == "executable" and isinstance(k.value, ast.Constant)
    ]
    for exe in literal_execs:
        assert exe in console_scripts(), f"{path.name} names unknown executable {exe}"


def test_there_are_launch_files() -> None:
    assert {p.name for p in LAUNCH_FILES} >= {
        "fleet_sim.launch.py", "drone.launch.py", "replay_eval.launch.py"}


def test_replay_graph_sizes_the_planner_for_the_bags_fleet(tmp_path: Path) -> None:
    """A TensorRT batch profile sized for the default fleet would fail on a larger bag: the
    replayed fleet planner gets the bag's fleet size (here 120 drones)."""
    import numpy as np

    from wm_agent.bags import BagWriter
    from wm_agent.evaluation.synthetic import Serializer

    ser, bag, n = Serializer(), tmp_path / "big", 120
    with BagWriter(bag) as w:
        w.add_topic("/fleet/state", "wm_agent_msgs/msg/FleetState")
        for k in range(3):
            w.write("/fleet/state", ser.fleet_state(
                k * 0.1, np.arange(n), np.ones((n, 3)), np.zeros((n, 3)),
                np.tile([0.0, 0.0, 0.0, 1.0], (n, 1)), np.zeros((n, 3)), np.zeros(n)),
                int(k * 1e8))
    planner_spec = replay_eval_graph(ReplayArgs(bag=str(bag)))[1]
    assert planner_spec.parameters["drones"] == n
    empty = tmp_path / "empty"
    with BagWriter(empty) as w:
        w.add_topic("/tasks/status", "wm_agent_msgs/msg/TaskStatus")
    with pytest.raises(ConfigError, match="no /fleet/state"):
        replay_eval_graph(ReplayArgs(bag=str(empty)))


def test_launch_arguments_and_cli_options_share_one_definition() -> None:
    """fleet_sim.launch.py's arguments are FleetSimArgs fields with their defaults and
    descriptions, and `wm-agent sim --help` says the same for the shared options."""
    import dataclasses

    from wm_agent.cli import build_parser
    from wm_agent.graph import FleetSimArgs, args_from_launch, launch_arguments

    fields = {f.name: f for f in dataclasses.fields(FleetSimArgs)}
    for name, default, description in launch_arguments():
        assert default == str(fields[name].default) and description
    args = args_from_launch({n: d for n, d, _ in launch_arguments()})
    assert args == FleetSimArgs(task_rate_per_min=None)
    sim = next(a for a in build_parser()._subparsers._group_actions[0].choices["sim"]._actions
               if "--backend" in a.option_strings)
    assert fields["backend"].metadata["description"] in sim.help
    launch_src = (REPO / "launch" / "fleet_sim.launch.py").read_text()
    assert "launch_arguments()" in launch_src and "DeclareLaunchArgument(\n" not in launch_src
