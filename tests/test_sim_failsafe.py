"""Failsafe timeline (PX4 semantics) and the command gate (NaN / inf / absurd commands)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wm_agent.sim import EventKind, load_scenario, make_simulator
from wm_agent.sim.controller import CascadeController
from wm_agent.sim.dynamics import RigidBodyState
from wm_agent.sim.failsafe import Failsafe, FailsafeConfig
from wm_agent.sim.simulator import Simulator
from wm_agent.sim.types import StatusFlag

HZ = 48
PERIOD = 1.0 / HZ


def _airborne(fidelity: str = "fleet") -> Simulator:
    sim = make_simulator(load_scenario("warehouse", drones=2), fidelity)
    for k in range(4 * HZ):  # climb 2 s, then hover 2 s
        vz = 0.5 if k < 2 * HZ else 0.0
        sim.step(np.tile([0.0, 0.0, vz], (2, 1)), np.zeros(2), np.ones(2, bool))
    sim.drain_events()
    return sim


def test_timeline_hold_then_land_then_disarm() -> None:
    sim = _airborne()
    last_cmd = sim.sim_time - PERIOD  # the last fresh command was accepted at this time
    events = []
    for _ in range(10 * HZ):
        sim.step(np.zeros((2, 3)), np.zeros(2), np.zeros(2, bool))
        events += sim.drain_events()
    mine = [e for e in events if e.drone_id == 0]
    kinds = [e.kind for e in mine]
    assert kinds == [EventKind.FAILSAFE_HOLD, EventKind.FAILSAFE_LAND, EventKind.LANDED]
    hold, land, landed = mine
    assert 0.5 < hold.time - last_cmd <= 0.5 + PERIOD + 1e-9
    assert 1.5 < land.time - last_cmd <= 1.5 + PERIOD + 1e-9
    assert landed.detail == "disarmed (LAND)"
    # Descent at ~0.5 m/s from ~1 m: touchdown 2-3 s after LAND started.
    assert 1.5 < landed.time - land.time < 3.5
    st = sim.state()
    assert st.has(StatusFlag.GROUNDED)[0] and not st.has(StatusFlag.ARMED)[0]
    assert not st.has(StatusFlag.COLLIDED)[0]
    assert abs(st.pos[0, 2] - 0.0125) < 0.005


def test_a_drone_whose_commands_stopped_stays_marked_after_the_failsafe_landed_it() -> None:
    """FAILSAFE_LAND holds from the failsafe's LAND through touchdown and disarm until a command
    is accepted again (a drone whose planner shard died must not look available on the
    floor); a drone that never had a command is not marked, nor is one still commanded."""
    sim = _airborne()
    only_1 = np.array([False, True])
    for _ in range(6 * HZ):  # drone 0 gets no command: hold, land, disarm
        sim.step(np.zeros((2, 3)), np.zeros(2), only_1)
    st = sim.state()
    assert not st.has(StatusFlag.ARMED)[0] and st.has(StatusFlag.GROUNDED)[0]
    assert st.has(StatusFlag.FAILSAFE_LAND).tolist() == [True, False]
    assert sim.commands_stale().tolist() == [True, False]
    sim.step(np.zeros((2, 3)), np.zeros(2), np.ones(2, bool))  # commanded again
    assert not sim.state().has(StatusFlag.FAILSAFE_LAND).any()
    fresh = make_simulator(load_scenario("warehouse", drones=2), "fleet")
    for _ in range(3 * HZ):
        fresh.step(np.zeros((2, 3)), np.zeros(2), np.zeros(2, bool))
    assert not fresh.state().has(StatusFlag.FAILSAFE_LAND).any(), "never commanded: not marked"


def test_hold_keeps_the_entry_position_and_recovers() -> None:
    sim = _airborne()
    for _ in range(HZ):  # 1 s without commands: in HOLD
        sim.step(np.zeros((2, 3)), np.zeros(2), np.zeros(2, bool))
    hold = next(e for e in sim.drain_events() if e.kind is EventKind.FAILSAFE_HOLD)
    st = sim.state()
    assert st.has(StatusFlag.FAILSAFE_HOLD)[0]
    assert np.abs(st.pos[0] - np.asarray(hold.position)).max() < 0.02
    sim.step(np.zeros((2, 3)), np.zeros(2), np.ones(2, bool))
    kinds = {e.kind for e in sim.drain_events()}
    assert kinds == {EventKind.RECOVERED}
    assert not sim.state().has(StatusFlag.FAILSAFE_HOLD).any()


def test_invalid_commands_are_rejected_counted_and_hold() -> None:
    sim = _airborne()
    z0 = sim.state().pos[:, 2].copy()
    bad = np.array([[np.nan, 0.0, 0.0], [0.0, 0.0, 1e6]])
    for _ in range(HZ // 2):
        sim.step(bad, np.zeros(2), np.ones(2, bool))
    events = sim.drain_events()
    invalid = [e for e in events if e.kind is EventKind.INVALID_COMMAND]
    assert len(invalid) == 2 * (HZ // 2)
    assert {e.kind for e in events} == {EventKind.INVALID_COMMAND, EventKind.FAILSAFE_HOLD}
    st = sim.state()
    assert list(st.invalid_commands) == [HZ // 2, HZ // 2]
    assert st.has(StatusFlag.FAILSAFE_HOLD).all()
    assert np.all(np.isfinite(st.pos)) and np.abs(st.pos[:, 2] - z0).max() < 0.1
    # Still rejected after 1.5 s: the failsafe lands them.
    for _ in range(HZ * 2):
        sim.step(bad, np.zeros(2), np.ones(2, bool))
    assert sim.state().has(StatusFlag.FAILSAFE_LAND).all()


def test_commands_are_clamped_to_airframe_limits() -> None:
    scenario = load_scenario("warehouse", drones=1)
    af = scenario.airframe
    fs = Failsafe(FailsafeConfig(), af.max_speed, af.max_yaw_rate, 1)
    out = fs.update(
        np.array([[30.0, 40.0, 0.0]]), np.array([5.0]), np.ones(1, bool), 0.0,
        np.zeros((1, 3)), np.ones(1, bool),
    )
    assert out.accepted[0]
    np.testing.assert_allclose(np.linalg.norm(out.cmd_vel[0]), af.max_speed)
    np.testing.assert_allclose(out.cmd_vel[0, 0] / out.cmd_vel[0, 1], 0.75)
    assert out.yaw_rate[0] == af.max_yaw_rate


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)


@settings(max_examples=150, deadline=None)
@given(
    cmd=arrays(np.float64, (6, 3), elements=finite_or_not),
    yaw=arrays(np.float64, (6,), elements=finite_or_not),
    fresh=arrays(np.bool_, (6,)),
    vel=arrays(np.float64, (6, 3), elements=st.floats(-20, 20)),
    rates=arrays(np.float64, (6, 3), elements=st.floats(-30, 30)),
    quat=arrays(np.float64, (6, 4), elements=st.floats(-1, 1)),
)
def test_controller_and_failsafe_never_emit_non_finite_rotor_speeds(
    cmd: np.ndarray, yaw: np.ndarray, fresh: np.ndarray, vel: np.ndarray,
    rates: np.ndarray, quat: np.ndarray,
) -> None:
    scenario = load_scenario("warehouse", drones=6)
    af = scenario.airframe
    norm = np.linalg.norm(quat, axis=1, keepdims=True)
    quat = np.where(norm > 1e-3, quat / np.maximum(norm, 1e-3), [0.0, 0.0, 0.0, 1.0])
    body = RigidBodyState(np.tile([5.0, 5.0, 1.0], (6, 1)), vel, quat, rates)
    fs = Failsafe(FailsafeConfig(), af.max_speed, af.max_yaw_rate, 6)
    ctrl = CascadeController(af, 1.0 / HZ, 6)
    armed = np.ones(6, bool)
    for k in range(3):
        out = fs.update(cmd, yaw, fresh, k * PERIOD, body.pos, armed)
        assert np.all(np.isfinite(out.cmd_vel)) and np.all(np.isfinite(out.yaw_rate))
        assert np.all(np.linalg.norm(out.cmd_vel, axis=1) <= af.max_speed * (1 + 1e-9))
        rpm = ctrl.compute(body, out.mode, out.cmd_vel, out.yaw_rate, fs.hold_pos, armed,
                           np.zeros(6, bool))
        assert rpm.shape == (6, 4)
        assert np.all(np.isfinite(rpm))
        assert np.all((rpm >= 0.0) & (rpm <= af.max_rpm * (1 + 1e-9)))
    bad = fresh & ~(np.isfinite(cmd).all(axis=1) & np.isfinite(yaw))
    assert np.all(out.rejected[bad])


@settings(max_examples=25, deadline=None)
@given(cmd=arrays(np.float64, (2, 3), elements=finite_or_not))
def test_simulator_state_stays_finite_under_garbage(cmd: np.ndarray) -> None:
    sim = make_simulator(load_scenario("warehouse", drones=2), "fleet")
    for _ in range(6):
        sim.step(cmd, np.zeros(2), np.ones(2, bool))
    st_ = sim.state()
    assert np.all(np.isfinite(st_.pos)) and np.all(np.isfinite(st_.quat))
