"""The node graph of wm_agent, defined once.

Both the launch files in launch/ (robots with ROS 2 installed) and the ``wm-agent`` CLI (plain
venv, no launch_ros) read these definitions, so node names, executables, namespaces, parameter
files and remappings never drift apart. Pure Python: no rclpy, no launch import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wm_agent.errors import ConfigError

ParamValue = bool | int | float | str | list[int] | list[float] | list[str]

#: executable name (console_scripts entry, installed to lib/wm_agent by colcon) -> module with main()
EXECUTABLES: Mapping[str, str] = {
    "sim_bridge": "wm_agent.nodes.sim_bridge",
    "fleet_coordinator": "wm_agent.nodes.fleet_coordinator",
    "fleet_monitor": "wm_agent.nodes.fleet_monitor",
    "recorder": "wm_agent.nodes.recorder",
    "replayer": "wm_agent.nodes.replayer",
}


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, as launch_ros.actions.Node would take it."""

    name: str
    executable: str
    description: str
    package: str = "wm_agent"
    namespace: str = ""
    param_files: tuple[str, ...] = ()            # file names under config/
    parameters: Mapping[str, ParamValue] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.executable not in EXECUTABLES:
            raise ConfigError(
                f"node {self.name!r}: unknown executable {self.executable!r}; "
                f"known: {', '.join(sorted(EXECUTABLES))}"
            )
        if not self.name.isidentifier():
            raise ConfigError(f"node name {self.name!r} is not a valid ROS node name")
        if self.namespace and not self.namespace.startswith("/"):
            raise ConfigError(f"node {self.name!r}: namespace {self.namespace!r} must start with /")

    @property
    def module(self) -> str:
        return EXECUTABLES[self.executable]

    def ros_args(self, config_dir: Path) -> list[str]:
        """The ``--ros-args`` list that starts this node as specified."""
        args = ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            args += ["-r", f"__ns:={self.namespace}"]
        for name in self.param_files:
            args += ["--params-file", str(config_dir / name)]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_yaml_scalar(value)}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


def _yaml_scalar(value: ParamValue) -> str:
    """Encode a parameter value for ``-p name:=value`` (ROS parses it as YAML)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20)
    return text.removesuffix("\n...\n").strip()


@dataclass(frozen=True)
class FleetSimArgs:
    """Arguments of the simulated fleet graph (`wm-agent sim`, fleet_sim.launch.py)."""

    drones: int = 50
    scenario: str = "warehouse"
    seed: int = 0
    mode: str = "realtime"            # realtime | fast | lockstep
    fidelity: str = "auto"            # auto | motor | fleet
    record: str = ""                  # bag folder to record the run into ("" = no recorder)

    def __post_init__(self) -> None:
        if self.drones < 1:
            raise ConfigError(f"drones must be >= 1, got {self.drones}")
        if self.mode not in ("realtime", "fast", "lockstep"):
            raise ConfigError(f"mode must be realtime, fast or lockstep, got {self.mode!r}")
        if self.fidelity not in ("auto", "motor", "fleet"):
            raise ConfigError(f"fidelity must be auto, motor or fleet, got {self.fidelity!r}")


def fleet_sim_graph(args: FleetSimArgs) -> list[NodeSpec]:
    """The whole simulated graph: sim bridge (the hardware), coordinator and a monitor."""
    sim: dict[str, ParamValue] = {
        "scenario": args.scenario,
        "drones": args.drones,
        "seed": args.seed,
        "mode": args.mode,
        "fidelity": args.fidelity,
    }
    specs = [
        NodeSpec(
            name="sim_bridge",
            executable="sim_bridge",
            description="PyBullet/numpy drone fleet standing in for hardware",
            param_files=("sim_bridge.yaml",),
            parameters=sim,
        ),
        NodeSpec(
            name="fleet_coordinator",
            executable="fleet_coordinator",
            description="task intake, assignment, health, SQLite ledger",
            param_files=("fleet_coordinator.yaml",),
            parameters={"scenario": args.scenario, "drones": args.drones, "use_sim_time": True},
        ),
        NodeSpec(
            name="fleet_monitor",
            executable="fleet_monitor",
            description="prints a fleet summary (state, events, metrics)",
            param_files=("fleet_monitor.yaml",),
            parameters={"use_sim_time": True},
        ),
    ]
    if args.record:
        # first, so that it is subscribed before the bridge publishes; bag time = sim time
        specs.insert(0, NodeSpec(
            name="recorder",
            executable="recorder",
            description="records the fleet topics into a rosbag2 MCAP bag (docs/BAGS.md)",
            param_files=("recorder.yaml",),
            parameters={"output": args.record, "use_sim_time": True, "time_source": "ros"},
        ))
    return specs
