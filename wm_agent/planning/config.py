"""Planner settings: one frozen config (TD-MPC2 style) and the two presets.

:class:`PlannerConfig` holds every setting of one planning step (search size, cost weights,
geofence); :data:`FULL` plans one drone thoroughly, :data:`FLEET` a thousand drones per call.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from typing import Any

from wm_agent.errors import ConfigError
from wm_agent.inference import Backend
from wm_agent.sim.scenario import Scenario


class PlannerBackend(StrEnum):
    """What plans for a drone: a world-model backend, or the PID baseline (the user's choice
    of ``--backend`` / the planner nodes' ``backend`` parameter)."""

    TORCH = Backend.TORCH.value
    ONNXRUNTIME = Backend.ONNXRUNTIME.value
    TENSORRT = Backend.TENSORRT.value
    CLASSICAL = "classical"



ACTION_DIM = 4
ACTION_SPACES = ("raw", "latent")


@dataclass(frozen=True)
class PlannerConfig:
    """All planner settings (one config, TD-MPC2 style).

    Attributes:
        samples: S candidate plans per drone and iteration (sample 0 is the current mean).
        elites: K best samples the mean/std are refit to.
        iterations: refits per planning step.
        horizon: H world-model steps (1/12 s each).
        temperature: softmax temperature of the elite weights [cost units].
        min_std, max_std: bounds of the sampling std (normalised action units, or latent units).
        max_plan_speed: candidates are projected to this speed [m/s].
        plan_yaw: plan the yaw rate too (False: yaw rate 0).
        action_space: "raw" (H·4 actions) or "latent" (the action autoencoder's latent).
        shared_noise: one noise tensor for all drones (saves drawing B× the noise; per-drone
            samples stay i.i.d., only correlated across drones).
        w_goal, w_terminal, w_collision, w_progress, w_smooth, w_fence, w_speed, w_neighbour:
            cost weights. neighbour_margin: distance below which neighbours cost [m].
        fence_min, fence_max: geofence box [m], map ENU.
    """

    samples: int = 256
    elites: int = 32
    iterations: int = 4
    horizon: int = 8
    temperature: float = 0.5
    min_std: float = 0.03
    max_std: float = 0.25
    max_plan_speed: float = 3.0
    plan_yaw: bool = False
    action_space: str = "latent"
    shared_noise: bool = False
    w_goal: float = 1.0
    w_terminal: float = 2.0
    w_collision: float = 20.0
    w_progress: float = 0.5
    w_smooth: float = 0.05
    w_fence: float = 20.0
    w_speed: float = 0.0
    w_neighbour: float = 200.0
    neighbour_margin: float = 0.8
    fence_min: tuple[float, float, float] = (0.3, 0.3, 0.0)
    fence_max: tuple[float, float, float] = (39.7, 29.7, 5.5)

    def __post_init__(self) -> None:
        for name in ("samples", "elites", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"planner config: {name}: expected >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ConfigError(f"planner config: iterations: expected >= 0, got {self.iterations}")
        if self.elites > self.samples:
            raise ConfigError(
                f"planner config: elites ({self.elites}) must not exceed samples ({self.samples})"
            )
        if not (self.temperature > 0 and 0 <= self.min_std <= self.max_std and self.max_plan_speed > 0):
            raise ConfigError(
                "planner config: expected temperature > 0, 0 <= min_std <= max_std, "
                f"max_plan_speed > 0; got {self.temperature}, {self.min_std}, {self.max_std}, "
                f"{self.max_plan_speed}"
            )
        if self.action_space not in ACTION_SPACES:
            raise ConfigError(
                f"planner config: action_space: expected one of {ACTION_SPACES}, got {self.action_space!r}"
            )
        for name in ("fence_min", "fence_max"):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f"planner config: {name}: expected 3 numbers, got {getattr(self, name)}")
        if not all(lo <= hi for lo, hi in zip(self.fence_min, self.fence_max, strict=True)):
            raise ConfigError(
                f"planner config: fence_min {self.fence_min} must not exceed fence_max {self.fence_max}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def with_scenario(self, scenario: Scenario) -> PlannerConfig:
        """This config with the geofence of a :class:`wm_agent.sim.Scenario`."""
        return replace(
            self,
            fence_min=tuple(float(x) for x in scenario.geofence_min),  # type: ignore[arg-type]
            fence_max=tuple(float(x) for x in scenario.geofence_max),  # type: ignore[arg-type]
        )


FULL = PlannerConfig()
"""The single-drone configuration: 256 samples × 4 iterations × 8 steps in the latent action space
(latent actions won the closed-loop check on time to goal and clearance at a lower cost; see
docs/PLANNER.md)."""

FLEET = PlannerConfig(samples=16, elites=4, iterations=1, action_space="latent", shared_noise=True)
"""The fleet configuration (1,000 drones per call): 16 samples × 1 iteration × 8 steps in the
latent action space; the warm start carries the optimisation across steps (one refit per step
instead of four), one noise tensor for all drones."""



def describe_config(config: PlannerConfig) -> str:
    """Short label such as ``256x4x8 raw``."""
    return f"{config.samples}x{config.iterations}x{config.horizon} {config.action_space}"
