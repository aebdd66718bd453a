"""Open-loop physics: the two fidelities' rigid-body models agree on identical rotor speeds.

The closed-loop agreement tests (test_sim_control.py) fly with zero yaw rate, where the
gyroscopic term Ω × JΩ vanishes; these drive both backends with the same motor speeds and no
controller, with roll and yaw rates together, so a wrong sign or a missing term shows up as
divergence.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from wm_agent.sim import SimOptions, load_scenario
from wm_agent.sim.airframe import load_airframe
from wm_agent.sim.dynamics import FleetDynamics, RigidBodyState, ground_effect_gain
from wm_agent.sim.pybullet_physics import PyBulletPhysics
from wm_agent.sim.rotations import quat_to_matrix
from wm_agent.sim.simulator import NumpyPhysics

AGREE_POS_M = 0.001
AGREE_ANGLE_RAD = 0.02


def _open_loop(backend: str, scale: list[float], seconds: float, height: float,
               ground_effect: bool = True, drag: bool = True) -> RigidBodyState:
    """One drone at ``height`` [m], rotor speeds = hover × ``scale`` held for ``seconds``."""
    sc = load_scenario("warehouse", drones=1)
    opts = SimOptions(ground_effect=ground_effect, drag=drag)
    physics = NumpyPhysics(sc, opts) if backend == "fleet" else PyBulletPhysics(sc, opts)
    state = RigidBodyState.at_rest(np.array([[5.0, 5.0, height]]))
    physics.reset(state)
    rpm = sc.airframe.hover_rpm * np.array([scale], dtype=np.float64)
    touchdown = np.zeros(1)
    steps = round(seconds * sc.rates.control_hz)
    for _ in range(steps):
        physics.advance(state, rpm, sc.rates.substeps, sc.rates.physics_dt, touchdown, None)
    physics.close()
    return state


def _body_z(state: RigidBodyState) -> NDArray[np.float64]:
    out: NDArray[np.float64] = quat_to_matrix(state.quat)[0, :, 2]
    return out


@pytest.mark.parametrize(
    "scale",
    [
        [1.01, 1.0, 1.0, 0.99],      # roll and yaw torque together (the reported case)
        [1.0, 1.01, 0.99, 1.0],      # pitch and yaw together
        [1.004, 1.0, 0.998, 1.0],    # roll, pitch and yaw
    ],
)
def test_fleet_and_motor_fidelity_agree_with_combined_rates(scale: list[float]) -> None:
    """The rigid body alone (no drag): measured 0.03–0.09 mm after 2 s of tumbling."""
    fleet = _open_loop("fleet", scale, 2.0, 20.0, drag=False)
    motor = _open_loop("motor", scale, 2.0, 20.0, drag=False)
    assert np.abs(fleet.rates).max() > 1.0  # the case really spins about several axes
    assert np.abs(fleet.pos - motor.pos).max() < AGREE_POS_M
    angle = np.arccos(np.clip(_body_z(fleet) @ _body_z(motor), -1.0, 1.0))
    assert angle < AGREE_ANGLE_RAD
    assert np.abs(fleet.rates - motor.rates).max() < 1e-4


def test_fidelities_agree_with_drag_while_tumbling() -> None:
    """With drag: the motor fidelity evaluates it once per control period, the fleet fidelity
    every physics step, so at 13 m/s they part by centimetres (measured 6 cm after 2 s)."""
    fleet = _open_loop("fleet", [1.01, 1.0, 1.0, 0.99], 2.0, 20.0)
    motor = _open_loop("motor", [1.01, 1.0, 1.0, 0.99], 2.0, 20.0)
    assert np.linalg.norm(fleet.vel) > 10.0
    assert np.abs(fleet.pos - motor.pos).max() < 0.1
    assert np.abs(fleet.rates - motor.rates).max() < 1e-4


def test_gyroscopic_term_matches_eulers_equations() -> None:
    """No torque, spinning about x and z: dΩ/dt = −J⁻¹(Ω × JΩ) (Euler's equations)."""
    af = load_airframe("crazyflie2x")
    dyn = FleetDynamics(af, drag=False, ground_effect=False)
    state = RigidBodyState.at_rest(np.array([[0.0, 0.0, 50.0]]))
    omega = np.array([3.0, 0.0, 4.0])
    state.rates[0] = omega
    dt = 1e-4
    dyn.integrate(state, np.zeros((1, 4)), dt, 1, np.zeros(1))
    j = np.array([af.ixx, af.iyy, af.izz])
    expected = -np.cross(omega, j * omega) / j
    np.testing.assert_allclose((state.rates[0] - omega) / dt, expected, rtol=1e-9, atol=1e-9)


def test_ground_effect_scales_the_roll_torque_as_in_the_motor_fidelity() -> None:
    """Near the floor each rotor's thrust gains (1 + ground effect); so does its moment arm's
    torque. Low hover with unequal rotors: both fidelities tilt alike over 0.2 s."""
    scale = [1.0, 1.0, 0.995, 0.995]  # roll torque, no yaw
    fleet = _open_loop("fleet", scale, 0.2, 0.05)
    motor = _open_loop("motor", scale, 0.2, 0.05)
    no_ge = _open_loop("fleet", scale, 0.2, 0.05, ground_effect=False)
    # The ground-effect gain at this height is large enough to matter.
    af = load_airframe("crazyflie2x")
    assert ground_effect_gain(af, np.array([0.05]))[0] > 1.05
    assert abs(fleet.rates[0, 0] - motor.rates[0, 0]) < 0.02 * abs(motor.rates[0, 0])
    assert abs(no_ge.rates[0, 0] - motor.rates[0, 0]) > 0.03 * abs(motor.rates[0, 0])


def test_pybullet_world_uses_the_airframe_gravity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Free fall in the motor fidelity follows the gravity the fleet fidelity uses."""
    import wm_agent.sim.pybullet_physics as pbp

    monkeypatch.setattr(pbp, "GRAVITY", 5.0)
    state = _open_loop("motor", [0.0, 0.0, 0.0, 0.0], 0.5, 20.0)
    assert state.vel[0, 2] == pytest.approx(-5.0 * 0.5, rel=0.01)


def test_ground_effect_coefficient_is_the_cited_value() -> None:
    """crazyflie2x.yaml cites gym-pybullet-drones' cf2x.urdf gnd_eff_coeff="11.36859"."""
    assert load_airframe("crazyflie2x").ground_effect_coeff == 11.36859
