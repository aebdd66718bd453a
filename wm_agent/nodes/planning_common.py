"""Parameters and construction shared by the `planner` and `fleet_planner` nodes (no rclpy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wm_agent.errors import ConfigError
from wm_agent.inference import InferenceOptions
from wm_agent.planning.backends import open_planner
from wm_agent.planning.config import FLEET, FULL, PlannerBackend
from wm_agent.planning.fleet_control import FleetControlConfig, FleetController
from wm_agent.planning.planner import Planner
from wm_agent.planning.safety import Envelope, SafetyConfig, SafetyFilter
from wm_agent.planning.shards import ShardSpec
from wm_agent.sim.scenario import Scenario, load_scenario
from wm_agent.world_model.artifacts import default_plan_model_dir

BACKENDS = tuple(b.value for b in PlannerBackend)
PRESETS = {"fleet": FLEET, "full": FULL}


@dataclass(frozen=True)
class PlannerNodeConfig:
    """The planner nodes' own parameters; the fleet controller's (altitudes, routes, pad-field
    speed limit) come from :class:`FleetControlConfig`, declared under their own names."""

    scenario: str = field(default="warehouse", metadata={"description": "scenario (obstacles, geofence)"})
    drones: int = field(default=0, metadata={"description": "drone count (0 = scenario's)"})
    backend: str = field(
        default="onnxruntime", metadata={"description": "onnxruntime | torch | tensorrt | classical (PID)"}
    )
    model_path: str = field(
        default="", metadata={"description": "model folder ('' = the shipped planning model wm_plan)"}
    )
    engine_cache: str = field(
        default="", metadata={"description": "inference cache folder: plan graphs in plan/, TensorRT "
                              "engines in trt/ ('' = $WM_AGENT_CACHE or ~/.cache/wm_agent)"}
    )
    preset: str = field(default="fleet", metadata={"description": "planner settings: fleet | full"})
    replan_every: int = field(
        default=4, metadata={"description": "control periods per planning step (4 = world-model dt)"}
    )
    seed: int = field(default=0, metadata={"description": "planner noise seed"})
    threads: int = field(default=1, metadata={"description": "inference threads"})
    lockstep: bool = field(
        default=False, metadata={"description": "fleet_planner: answer a fleet state only with the "
                                 "assignments stamped with it (deterministic lockstep runs)"}
    )
    shards: int = field(
        default=1, metadata={"description": "fleet_planner: planner processes sharing the fleet "
                             "(this one plans the drones with id % shards == shard)"}
    )
    shard: int = field(default=0, metadata={"description": "fleet_planner: this process's shard, "
                                            "0..shards-1"})
    control: FleetControlConfig = field(default_factory=FleetControlConfig)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"planner: backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.preset not in PRESETS:
            raise ConfigError(f"planner: preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.replan_every < 1 or self.threads < 1 or self.drones < 0:
            raise ConfigError("planner: replan_every and threads must be >= 1, drones >= 0")
        ShardSpec(self.shards, self.shard)  # raises ConfigError when out of range

    @property
    def shard_spec(self) -> ShardSpec:
        """Which drones this planner plans."""
        return ShardSpec(self.shards, self.shard)


def build_controller(cfg: PlannerNodeConfig, period_s: float | None = None
                     ) -> tuple[Scenario, FleetController]:
    """Scenario + planner (or PID) + safety filter, as the parameters say.

    ``period_s``: how long each command is held [s] (the safety filter's acceleration limit and
    reaction time, the PID's dt); default ``replan_every`` control periods of the scenario.
    """
    scenario = load_scenario(cfg.scenario, drones=cfg.drones or None)
    period = cfg.replan_every * scenario.rates.control_dt if period_s is None else period_s
    folder = Path(cfg.model_path) if cfg.model_path else default_plan_model_dir()
    planner: Planner | None = None
    envelope = None
    if cfg.backend != PlannerBackend.CLASSICAL:
        fleet = max(scenario.drones, 1)  # TensorRT's batch profile: the shard's drones per call
        options = InferenceOptions(threads=cfg.threads,
                                   cache=Path(cfg.engine_cache) if cfg.engine_cache else None,
                                   opt_batch=-(-fleet // cfg.shards), max_batch=fleet)
        config = PRESETS[cfg.preset].with_scenario(scenario)
        planner = open_planner(cfg.backend, folder, config, options, seed=cfg.seed)
        envelope = Envelope.from_card(folder)
    safety = SafetyFilter(
        SafetyConfig.from_airframe(scenario.airframe, dt=period, brake_reaction_s=period), envelope
    )
    control = FleetController(scenario, planner, safety, cfg.control)
    return scenario, control
