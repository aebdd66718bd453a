"""The node graph of wm_agent, defined once.

Both the launch files in launch/ (robots with ROS 2 installed) and the ``wm-agent`` CLI (plain
venv, no launch_ros) read these definitions, so node names, executables, namespaces, parameter
files and remappings never drift apart. Pure Python: no rclpy, no launch import.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from wm_agent import topics
from wm_agent.errors import ConfigError
from wm_agent.planning.config import PlannerBackend
from wm_agent.sim.modes import AUTO_MOTOR_MAX_DRONES, CLOSED_LOOP_MODES, Fidelity, SimMode, resolve_fidelity

ParamValue = bool | int | float | str | list[int] | list[float] | list[str]

#: executable name (console_scripts entry, installed to lib/wm_agent by colcon) -> module with main()
EXECUTABLES: Mapping[str, str] = {
    "sim_bridge": "wm_agent.nodes.sim_bridge",
    "fleet_coordinator": "wm_agent.nodes.fleet_coordinator",
    "fleet_monitor": "wm_agent.nodes.fleet_monitor",
    "fleet_planner": "wm_agent.nodes.fleet_planner",
    "planner": "wm_agent.nodes.planner",
    "task_feeder": "wm_agent.nodes.task_feeder",
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
    """Encode a parameter value for ``-p name:=value`` (ROS parses it as YAML); the empty
    string as ``""`` (quoted for a shell as ``'name:=""'``, readable)."""
    if value == "":
        return '""'
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20)
    return text.removesuffix("\n...\n").strip()


DEFAULT_ODOM_DRONES = 16
"""Drones (ids below this) that get per-drone topics from the sim bridge: /drone_<id>/odom, their
TF on /tf and /drone_<id>/cmd_vel (the bridge's ``odom_max_drones``; ``wm-agent sim
--odom-drones``, launch ``odom_drones:=``). The fleet topics carry every drone whatever this is;
per-drone messages cost a Python message per drone and state, so a large fleet keeps it small."""

GRAPH_MODES = tuple(m.value for m in CLOSED_LOOP_MODES)
"""Clock modes of the fleet graph (:data:`wm_agent.sim.modes.CLOSED_LOOP_MODES`)."""
FIDELITY_CHOICES = tuple(f.value for f in Fidelity)
BACKEND_CHOICES = tuple(b.value for b in PlannerBackend)


def _arg(default: Any, description: str) -> Any:
    """A FleetSimArgs field with its description (the CLI's help and the launch argument's)."""
    return field(default=default, metadata={"description": description})


#: FleetSimArgs fields a launch file declares as arguments (the rest are the CLI runner's own).
LAUNCH_ARGUMENTS = ("drones", "scenario", "seed", "mode", "fidelity", "backend", "model",
                    "record", "odom_drones", "planner_shards")


LOCKSTEP_TIMEOUT_PER_DRONE_S = 0.5e-3
"""Lockstep: how long the bridge waits for a late planner, per drone of the fleet [s] (at least
the bridge's own 0.5 s). A 10,000-drone step costs the graph 0.1-1 s of work on 2 cores: with
a fixed 0.5 s the bridge advanced without commands on most steps (the run was no longer
lockstep); a dead planner now costs 5 s a step there before the bridge moves on."""


def lockstep_timeout_s(drones: int) -> float:
    """The lockstep bridge's wait for late commanders [s] for a fleet of ``drones``."""
    return max(0.5, LOCKSTEP_TIMEOUT_PER_DRONE_S * drones)


def arg_help(name: str) -> str:
    """The description of FleetSimArgs field ``name`` (one text for the CLI and launch files) as
    an argparse help string ('%' escaped: argparse formats help with %-style specifiers)."""
    text = str(next(f for f in fields(FleetSimArgs) if f.name == name).metadata["description"])
    return text.replace("%", "%%")


def launch_arguments() -> list[tuple[str, str, str]]:
    """(name, default as text, description) of each launch argument of the fleet graph."""
    return [(f.name, str(f.default), str(f.metadata["description"]))
            for f in fields(FleetSimArgs) if f.name in LAUNCH_ARGUMENTS]


def args_from_launch(values: Mapping[str, str]) -> FleetSimArgs:
    """FleetSimArgs from launch-argument texts (ints converted; validated by the dataclass)."""
    ints = {"drones", "seed", "odom_drones", "planner_shards"}
    return FleetSimArgs(**{k: int(v) if k in ints else v for k, v in values.items()})  # type: ignore[arg-type]


@dataclass(frozen=True)
class FleetSimArgs:
    """Arguments of the simulated fleet graph (`wm-agent sim`, fleet_sim.launch.py)."""

    drones: int = _arg(0, "number of drones (0 = the scenario's `drones`, 50 in warehouse)")
    scenario: str = _arg("warehouse", "scenario name (sim/scenarios/NAME.yaml) or YAML path")
    seed: int = _arg(0, "random seed of the run, >= 0")
    mode: str = _arg(SimMode.REALTIME.value, "sim clock: realtime (sim time follows the wall "
                     "clock) or lockstep (every control period waits for the planner: as fast "
                     "as it answers, deterministic)")
    fidelity: str = _arg(Fidelity.AUTO.value, "physics: motor (PyBullet), fleet (vectorised), "
                         f"auto: motor up to {AUTO_MOTOR_MAX_DRONES} drones")
    record: str = _arg("", "bag folder to record the run into ('' = no recorder)")
    backend: str = _arg(PlannerBackend.ONNXRUNTIME.value,
                        "fleet planner backend (classical = PID baseline)")
    model: str = _arg("", "planning world-model folder ('' = the shipped models/wm_plan)")
    ledger: str = _arg("", "coordinator ledger ('' = $ROS_HOME/wm_agent/ledger.sqlite)")
    task_rate_per_min: float | None = _arg(None, "task arrivals per minute (the scenario's "
                                           "unless given; 0 = no tasks)")
    watchers: int = _arg(0, "fleet-state subscribers outside the graph that must see t = 0")
    odom_drones: int = _arg(DEFAULT_ODOM_DRONES, "drones with ids below this get "
                            "/drone_<id>/odom, TF on /tf and /drone_<id>/cmd_vel (0 = none)")
    state_rate_hz: float = _arg(0.0, "record /fleet/state at most this often per sim second "
                                "(0 = every state; e.g. 5 keeps a 10,000-drone bag small); "
                                "the other topics in full")
    planner_shards: int = _arg(1, "fleet planner processes, each planning the drones with "
                               "id % K == its index (one core each; docs/ARCHITECTURE.md)")

    def __post_init__(self) -> None:
        if self.watchers < 0:
            raise ConfigError(f"watchers must be >= 0, got {self.watchers}")
        if self.drones < 0:
            raise ConfigError(f"drones must be >= 1 (or 0: the scenario's), got {self.drones}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        if self.odom_drones < 0:
            raise ConfigError(f"odom_drones must be >= 0, got {self.odom_drones}")
        if self.planner_shards < 1:
            raise ConfigError(f"planner_shards must be >= 1, got {self.planner_shards}")
        if not (math.isfinite(self.state_rate_hz) and self.state_rate_hz >= 0):
            raise ConfigError(f"state_rate_hz must be a finite number >= 0, got "
                              f"{self.state_rate_hz}")
        if self.mode == SimMode.FAST:
            raise ConfigError(
                "mode fast was removed: the sim outran the planner (most states unanswered, drones "
                "colliding); use lockstep, which runs as fast as the planner answers every state")
        if self.mode not in GRAPH_MODES:
            raise ConfigError(f"mode must be one of {', '.join(GRAPH_MODES)}, got {self.mode!r}")
        if self.fidelity not in FIDELITY_CHOICES:
            raise ConfigError(f"fidelity must be one of {', '.join(FIDELITY_CHOICES)}, got "
                              f"{self.fidelity!r}")
        rate = self.task_rate_per_min
        if rate is not None and not (math.isfinite(rate) and rate >= 0):
            raise ConfigError(f"task_rate_per_min must be a finite number >= 0, got {rate}")
        if self.backend not in BACKEND_CHOICES:
            raise ConfigError(
                f"backend must be one of {', '.join(BACKEND_CHOICES)}, got {self.backend!r}"
            )


    def resolved(self) -> FleetSimArgs:
        """These arguments as the run uses them: the scenario's defaults filled in (drone count,
        task rate; the scenario validated for that fleet, ConfigError names the file and the
        field) and ``fidelity auto`` decided (:func:`resolve_fidelity`)."""
        if not self.drones or self.task_rate_per_min is None:
            from wm_agent.sim.scenario import load_scenario  # lazily: the graph stays light

            sc = load_scenario(self.scenario, drones=self.drones or None)
            rate = self.task_rate_per_min
            return replace(self, drones=sc.drones,
                           task_rate_per_min=float(sc.task_rate_per_min) if rate is None else rate
                           ).resolved()
        if self.planner_shards > self.drones:
            raise ConfigError(f"planner_shards {self.planner_shards} is more than the "
                              f"{self.drones} drones: a shard would plan none; use at most "
                              f"{self.drones}")
        return replace(self, fidelity=resolve_fidelity(self.fidelity, self.drones).value)


PLANNER = "fleet_planner"
"""The fleet planner's node name (with K > 1 shards: ``fleet_planner_<k>``, k = 0..K-1)."""


def planner_names(shards: int) -> list[str]:
    """Node names of the fleet planner's ``shards`` processes."""
    return [PLANNER] if shards == 1 else [f"{PLANNER}_{k}" for k in range(shards)]


def fleet_sim_graph(args: FleetSimArgs) -> list[NodeSpec]:
    """The whole simulated graph: sim bridge (the hardware), fleet planner, coordinator, a
    monitor, and a recorder when asked. Scenario defaults are filled in first
    (:meth:`FleetSimArgs.resolved`)."""
    args = args.resolved()
    task_rate = float(args.task_rate_per_min or 0.0)
    sim: dict[str, ParamValue] = {
        "scenario": args.scenario,
        "drones": args.drones,
        "seed": args.seed,
        "mode": args.mode,
        "fidelity": args.fidelity,
        "odom_max_drones": args.odom_drones,
    }
    lockstep = args.mode == SimMode.LOCKSTEP
    if lockstep:
        sim["lockstep_min_commanders"] = args.drones  # wait for the fleet planner before step 1
        sim["lockstep_timeout_s"] = lockstep_timeout_s(args.drones)
    # hold t = 0 until planner(s), coordinator, monitor (the recorder, watchers) have subscribed
    shards = args.planner_shards
    sim["start_subscribers"] = 2 + shards + (1 if args.record else 0) + args.watchers
    if args.record:  # and until the recorder has subscribed to the commands (beside the bridge)
        sim["start_command_subscribers"] = 2
        # ... with every planner (shard) publishing them, so the recorder has discovered each
        sim["start_command_publishers"] = shards
    specs = [
        NodeSpec(
            name="sim_bridge",
            executable="sim_bridge",
            description="PyBullet/numpy drone fleet standing in for hardware",
            param_files=("sim_bridge.yaml",),
            parameters=sim,
        ),
        *(NodeSpec(
            name=name,
            executable="fleet_planner",
            description="world-model MPPI for every drone in one batched call + safety filter"
            if shards == 1 else f"world-model MPPI + safety filter for the drones with id % "
            f"{shards} == {k}, in one batched call",
            param_files=("fleet_planner.yaml",),
            parameters={"scenario": args.scenario, "drones": args.drones, "backend": args.backend,
                        "model_path": args.model, "seed": args.seed, "use_sim_time": True,
                        "lockstep": lockstep,
                        **({"shards": shards, "shard": k} if shards > 1 else {})},
        ) for k, name in enumerate(planner_names(shards))),
        NodeSpec(
            name="fleet_coordinator",
            executable="fleet_coordinator",
            description="task intake, assignment, health, SQLite ledger",
            param_files=("fleet_coordinator.yaml",),
            parameters={"scenario": args.scenario, "drones": args.drones, "use_sim_time": True,
                        "ledger_path": args.ledger, "lockstep": lockstep,
                        # lockstep: the coordinator runs the seeded task stream in-band
                        "task_rate_per_min": task_rate if lockstep else 0.0, "task_seed": args.seed},
        ),
        NodeSpec(
            name="fleet_monitor",
            executable="fleet_monitor",
            description="prints a fleet summary (state, events, metrics)",
            param_files=("fleet_monitor.yaml",),
            parameters={"use_sim_time": True},
        ),
    ]
    if not lockstep:  # lockstep: the coordinator feeds the same stream in-band (deterministic)
        specs.append(NodeSpec(
            name="task_feeder",
            executable="task_feeder",
            description="feeds the scenario's seeded task stream to the coordinator",
            parameters={"scenario": args.scenario, "seed": args.seed, "use_sim_time": True,
                        "rate_per_min": task_rate},
        ))
    if args.record:
        # first, so that it is subscribed before the bridge publishes; bag time = sim time
        specs.insert(0, NodeSpec(
            name="recorder",
            executable="recorder",
            description="records the fleet topics into a rosbag2 MCAP bag (docs/BAGS.md)",
            param_files=("recorder.yaml",),
            parameters={"output": args.record, "use_sim_time": True, "time_source": "ros",
                        "scenario": args.scenario,
                        "rates": [f"{topics.FLEET_STATE}={args.state_rate_hz:g}"
                                  if args.state_rate_hz else ""]},
        ))
    return specs


@dataclass(frozen=True)
class NodeTopics:
    """What a node of the fleet graph offers and takes (``wm-agent graph`` prints it; a run's
    metrics.json holds the live graph's, and tests/test_sim_run.py compares the two)."""

    publishes: tuple[str, ...] = ()
    subscribes: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    clients: tuple[str, ...] = ()


#: A per-drone topic in NODE_TOPICS: ``/drone_<id>/odom`` for every id below the bridge's
#: ``odom_max_drones`` (and below the fleet size).
PER_DRONE = "/drone_<id>/"
#: The recorder's subscriptions: whatever of wm_agent.bags.recording.PROJECT_TOPICS has a publisher.
RECORDED = "<every project topic with a publisher>"

NODE_TOPICS: Mapping[str, NodeTopics] = {
    "sim_bridge": NodeTopics(
        publishes=(topics.CLOCK, topics.FLEET_STATE, topics.FLEET_EVENTS, topics.FLEET_MARKERS,
                   topics.WORLD_MARKERS, topics.TF, topics.STAGE_TIMES, PER_DRONE + "odom"),
        subscribes=(topics.FLEET_COMMAND, PER_DRONE + "cmd_vel"),
        clients=(topics.REGISTER_DRONE,)),
    "fleet_planner": NodeTopics(
        publishes=(topics.FLEET_COMMAND, topics.PLANNER_STATUS, topics.STAGE_TIMES),
        subscribes=(topics.FLEET_STATE, topics.FLEET_ASSIGNMENTS)),
    "fleet_coordinator": NodeTopics(
        publishes=(topics.FLEET_ASSIGNMENTS, topics.FLEET_METRICS, topics.TASK_STATUS,
                   topics.TASK_BULK_ACK, topics.STAGE_TIMES),
        subscribes=(topics.FLEET_STATE, topics.TASK_BULK),
        services=(topics.REGISTER_DRONE, topics.SUBMIT_TASK, topics.CANCEL_TASK)),
    "fleet_monitor": NodeTopics(
        subscribes=(topics.FLEET_STATE, topics.FLEET_EVENTS, topics.FLEET_METRICS,
                    topics.STAGE_TIMES)),
    "task_feeder": NodeTopics(publishes=(topics.TASK_BULK,), subscribes=(topics.TASK_BULK_ACK,)),
    "recorder": NodeTopics(publishes=(topics.STAGE_TIMES,), subscribes=(RECORDED,)),
}
"""Topics and services of the fleet graph's executables (besides /rosout, /parameter_events and
each node's parameter services; a node with ``use_sim_time`` also subscribes to /clock)."""


def topics_of(spec: NodeSpec, expand: bool = False) -> NodeTopics:
    """The topics of one node of the fleet graph as its parameters make them: /clock for sim
    time; per-drone topics as ``/drone_<id>/odom (id < 16)``, or every one (``expand``)."""
    base = NODE_TOPICS[spec.executable]
    drones = spec.parameters.get("drones", 0)
    limit = spec.parameters.get("odom_max_drones", DEFAULT_ODOM_DRONES)
    n = limit if isinstance(limit, int) else DEFAULT_ODOM_DRONES
    if isinstance(drones, int) and drones > 0:
        n = min(n, drones)

    def per_drone(names: tuple[str, ...]) -> tuple[str, ...]:
        out: list[str] = []
        for name in names:
            if not name.startswith(PER_DRONE):
                out.append(name)
            elif expand:
                out += [name.replace("<id>", str(i)) for i in range(n)]
            elif n:
                out.append(f"{name} (id < {n})")
        return tuple(out)

    subs = per_drone(base.subscribes)
    if spec.parameters.get("use_sim_time") is True and base.subscribes != (RECORDED,):
        subs = (*subs, topics.CLOCK)
    return NodeTopics(per_drone(base.publishes), subs, base.services, base.clients)


@dataclass(frozen=True)
class DroneArgs:
    """Arguments of one real drone's graph (drone.launch.py)."""

    namespace: str = "/drone_0"
    drone_id: int = 0
    backend: str = "tensorrt"         # tensorrt on a Jetson/GPU; onnxruntime on a CPU
    model: str = ""                   # world-model folder ("" = the installed model)
    engine_cache: str = ""            # plan-graph / TensorRT engine cache ("" = default)
    scenario: str = "warehouse"       # the site map (obstacles, geofence)

    def __post_init__(self) -> None:
        if not self.namespace.startswith("/"):
            raise ConfigError(f"namespace must start with /, got {self.namespace!r}")
        if self.drone_id < 0:
            raise ConfigError(f"drone_id must be >= 0, got {self.drone_id}")


def drone_graph(args: DroneArgs) -> list[NodeSpec]:
    """One drone: the planner node under the drone's namespace (odom + goal in, cmd_vel out)."""
    return [
        NodeSpec(
            name="planner",
            executable="planner",
            description="world-model planner + safety filter for one drone",
            namespace=args.namespace,
            param_files=("planner.yaml",),
            parameters={"drone_id": args.drone_id, "backend": args.backend, "model_path": args.model,
                        "engine_cache": args.engine_cache, "scenario": args.scenario, "drones": 1},
        )
    ]


@dataclass(frozen=True)
class ReplayArgs:
    """Arguments of the replay-evaluation graph (replay_eval.launch.py)."""

    bag: str
    rate: float = 1.0                 # bag speed factor (0 = as fast as possible)
    backend: str = "onnxruntime"
    model: str = ""
    scenario: str = "warehouse"
    record: str = ""                  # bag folder for the planner's replies ("" = none)
    drones: int = 0                   # fleet size the planner is sized for (0 = from the bag)

    def __post_init__(self) -> None:
        if not self.bag:
            raise ConfigError("bag must name a recorded bag folder or .mcap file")
        if not self.rate >= 0:
            raise ConfigError(f"rate must be >= 0, got {self.rate}")
        if self.drones < 0:
            raise ConfigError(f"drones must be >= 0 (0 = from the bag), got {self.drones}")


def bag_fleet_size(bag: str, states: int = 100) -> int:
    """The largest fleet among the first ``states`` fleet states of a bag (0: it has none)."""
    from wm_agent.bags import open_bag

    size = 0
    with open_bag(bag) as reader:
        if topics.FLEET_STATE not in reader.topics:
            return 0
        for k, m in enumerate(reader.decoded([topics.FLEET_STATE])):
            size = max(size, len(m.msg.ids))
            if k + 1 >= states:
                break
    return size


def replay_eval_graph(args: ReplayArgs) -> list[NodeSpec]:
    """Replays a bag's fleet state (with /clock) into the fleet planner, whose commands go to
    /replay/fleet/cmd so that they never mix with the recorded ones; optionally recorded. The
    planner is sized for the bag's fleet (its TensorRT batch profile), read from the bag unless
    ``args.drones`` says."""
    drones = args.drones or bag_fleet_size(args.bag)
    if drones == 0:
        raise ConfigError(f"bag {args.bag} holds no {topics.FLEET_STATE} to replay")
    specs = [
        NodeSpec(
            name="replayer",
            executable="replayer",
            description="republishes the bag's topics with /clock",
            parameters={"bag": args.bag, "rate": args.rate, "topics": ["/fleet/state",
                        "/fleet/assignments"]},
        ),
        NodeSpec(
            name="fleet_planner",
            executable="fleet_planner",
            description="re-plans every recorded fleet state",
            param_files=("fleet_planner.yaml",),
            parameters={"scenario": args.scenario, "backend": args.backend, "model_path": args.model,
                        "drones": drones, "use_sim_time": True},
            remappings=(("/fleet/cmd", "/replay/fleet/cmd"),
                        ("/fleet/planner_status", "/replay/fleet/planner_status")),
        ),
    ]
    if args.record:
        specs.append(NodeSpec(
            name="recorder",
            executable="recorder",
            description="records the re-planned commands",
            param_files=("recorder.yaml",),
            parameters={"output": args.record, "use_sim_time": True, "time_source": "ros",
                        "scenario": args.scenario,
                        "topics": ["/replay/fleet/cmd", "/replay/fleet/planner_status",
                                   "/fleet/state"]},
        ))
    return specs
