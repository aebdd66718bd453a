"""Simulator options beyond the scenario (physics switches, noise, failsafe timing, gains): one
frozen value shared by the simulator and its physics backends."""

from __future__ import annotations

from dataclasses import dataclass, field

from wm_agent.sim.controller import ControllerGains
from wm_agent.sim.failsafe import FailsafeConfig


@dataclass(frozen=True)
class SimOptions:
    """Simulator options beyond the scenario.

    Attributes:
        drag: rotor drag on. ground_effect: ground effect on.
        accel_noise_std: white acceleration disturbance per physics step [m/s²] (0 = none;
            drawn from the seeded RNG, so runs stay reproducible).
        failsafe: command-loss timing.
        gains: controller gains.
        per_rotor_forces: "motor" fidelity applies each rotor's thrust at its hub (True) or the
            equivalent net force and torque at the centre of mass (False, ~3× fewer PyBullet calls).
    """

    drag: bool = True
    ground_effect: bool = True
    accel_noise_std: float = 0.0
    failsafe: FailsafeConfig = field(default_factory=FailsafeConfig)
    gains: ControllerGains = field(default_factory=ControllerGains)
    per_rotor_forces: bool = True
