"""Safety filter (properties with hypothesis), brake, PID baseline, closed-loop smoke test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wm_agent.errors import ModelError
from wm_agent.planning.brake import SECTOR_DIRS, brake_velocity
from wm_agent.planning.pid import PidConfig, PidController, p_command
from wm_agent.planning.safety import Envelope, SafetyConfig, SafetyFilter, Substitution
from wm_agent.world_model.spaces import WM_DT, ObservationSpec

SPEC = ObservationSpec()
CFG = SafetyConfig(max_speed=8.333, max_yaw_rate=math.radians(200.0))

wild = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                 st.sampled_from([0.0, 1e300, -1e300, np.nan, np.inf, -np.inf]))


def open_obs(n: int) -> np.ndarray:
    """Observations with nothing near: sectors/clearance at 3 m, altitude 1.5 m, no neighbours."""
    obs = np.zeros((n, 51), np.float32)
    obs[:, SPEC.slice("sectors")] = 3.0
    obs[:, SPEC.slice("clearance")] = 3.0
    obs[:, SPEC.slice("altitude")] = 1.5
    obs[:, SPEC.slice("gravity_body")] = (0, 0, -1)
    return obs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 6),
    data=st.data(),
)
def test_output_is_finite_and_within_limits_whatever_the_input(n: int, data: st.DataObject) -> None:
    cmd = data.draw(arrays(np.float64, (n, 3), elements=wild))
    yaw = data.draw(arrays(np.float64, (n,), elements=wild))
    obs = data.draw(arrays(np.float64, (n, 51), elements=wild))
    prev = data.draw(arrays(np.float64, (n, 3), elements=wild))
    pos = data.draw(arrays(np.float64, (n, 3), elements=wild))
    goal = data.draw(arrays(np.float64, (n, 3), elements=wild))
    valid = data.draw(arrays(np.bool_, (n,)))
    pred = data.draw(arrays(np.float64, (n,), elements=wild))
    env = Envelope(np.full(51, -5.0), np.full(51, 5.0))
    sf = SafetyFilter(CFG, env)
    out = sf.apply(cmd, yaw, obs, valid, prev, pos, goal, pred)
    assert np.isfinite(out.cmd_vel).all() and np.isfinite(out.yaw_rate).all()
    assert np.all(np.linalg.norm(out.cmd_vel, axis=1) <= CFG.max_speed * (1 + 1e-9))
    assert np.all(np.abs(out.yaw_rate) <= CFG.max_yaw_rate)
    assert out.counts.shape == (4,) and out.counts.sum() >= out.substituted.sum()
    assert np.array_equal(out.counts, sf.last_kinds.sum(0))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 5), data=st.data())
def test_brake_removes_every_component_towards_close_sectors(n: int, data: st.DataObject) -> None:
    v = data.draw(arrays(np.float64, (n, 3), elements=st.floats(-8, 8)))
    obs = open_obs(n).astype(np.float64)
    obs[:, SPEC.slice("sectors")] = data.draw(arrays(np.float64, (n, 8), elements=st.floats(0, 3)))
    out = brake_velocity(v, obs, SPEC, 0.5, 0.5)
    close = obs[:, SPEC.slice("sectors")] < 0.5
    towards = out.cmd_vel @ SECTOR_DIRS.T
    assert np.all(towards[close] <= 1e-9)
    assert np.all(np.linalg.norm(out.cmd_vel, axis=1) <= np.linalg.norm(v, axis=1) + 1e-9)


def test_each_substitution_is_counted_by_kind() -> None:
    n = 5
    obs = open_obs(n)
    cmd = np.array([[np.nan, 0, 0], [20.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0.5, 0, 0]])
    yaw = np.zeros(n)
    obs[2, SPEC.slice("sectors")][0] = 0.2  # shelf 0.2 m to the east, flying east: brake
    obs[3, SPEC.slice("altitude").start] = 40.0  # a feature far outside the envelope: fallback
    valid = np.array([True, True, True, True, True])
    pos = np.tile([5.0, 5.0, 1.5], (n, 1))
    goal = pos + np.array([0.0, 2.0, 0.0])
    env = Envelope(np.full(51, -10.0), np.full(51, 10.0))
    sf = SafetyFilter(CFG, env)
    out = sf.apply(cmd, yaw, obs, valid, None, pos, goal)
    k = sf.last_kinds
    assert k[0, Substitution.NON_FINITE] and np.all(out.cmd_vel[0] == 0.0)
    assert k[1, Substitution.SPEED_CLAMP]
    assert np.isclose(np.linalg.norm(out.cmd_vel[1]), CFG.max_speed)
    assert k[2, Substitution.BRAKE] and out.cmd_vel[2, 0] <= 0.0
    assert k[3, Substitution.FALLBACK] and out.cmd_vel[3, 1] > 0.5  # P controller towards the goal
    assert not out.substituted[4] and np.allclose(out.cmd_vel[4], cmd[4])
    assert out.counts.tolist() == [1, 1, 1, 1] and sf.total.tolist() == [1, 1, 1, 1]


def test_acceleration_limit_and_invalid_rows_hold() -> None:
    obs = open_obs(2)
    sf = SafetyFilter(SafetyConfig(max_accel=6.0, dt=0.1))
    cmd, _, counts, sub = sf.apply(np.array([[3.0, 0, 0], [3.0, 0, 0]]), np.zeros(2), obs,
                                   np.array([True, False]), np.zeros((2, 3)), np.zeros((2, 3)),
                                   np.full((2, 3), np.nan))
    assert np.isclose(cmd[0, 0], 0.6)  # 6 m/s² × 0.1 s
    assert sf.last_kinds[0, Substitution.SPEED_CLAMP] and sub.all()
    assert sf.last_kinds[1, Substitution.FALLBACK] and np.all(cmd[1] == 0.0)  # blind: hold
    assert counts.tolist() == [0, 1, 0, 1]


def test_predicted_clearance_slows_down() -> None:
    sf = SafetyFilter(SafetyConfig(clearance_margin=0.2, brake_speed=0.5))
    out = sf.apply(np.array([[2.0, 0, 0]]), np.zeros(1), open_obs(1), None, None, np.zeros((1, 3)),
                   np.ones((1, 3)), predicted_clearance=np.array([0.1]))
    assert np.isclose(np.linalg.norm(out.cmd_vel), 0.5) and sf.last_kinds[0, Substitution.BRAKE]


def test_neighbour_brake_moves_apart() -> None:
    obs = open_obs(1).astype(np.float64)
    nb = SPEC.slice("neighbours")
    obs[0, nb.start:nb.start + 7] = (0.3, 0, 0, 0, 0, 0, 1)  # neighbour 0.3 m east
    out = brake_velocity(np.array([[1.0, 0.5, 0.0]]), obs, SPEC, 0.3, 0.5)
    assert out.braked[0] and out.cmd_vel[0, 0] < 0.0 and np.isclose(out.cmd_vel[0, 1], 0.5)


@pytest.mark.parametrize("bad", [{"cmd_vel": np.zeros((2, 2))}, {"obs": np.zeros((2, 50))},
                                 {"valid": np.ones(3, bool)}])
def test_wrong_shapes_name_the_expected_shape(bad: dict) -> None:
    args = {"cmd_vel": np.zeros((2, 3)), "yaw_rate": np.zeros(2), "obs": open_obs(2), "valid": None,
            "prev_cmd": None, "pos": np.zeros((2, 3)), "goal": np.zeros((2, 3))}
    args.update(bad)
    with pytest.raises(ModelError, match=r"expected shape"):
        SafetyFilter().apply(**args)


def test_pid_reaches_towards_goal_with_cap_and_brake() -> None:
    pid = PidController(2, PidConfig(kp=1.0, max_speed=2.0))
    obs = open_obs(2)
    obs[1, SPEC.slice("sectors")][0] = 0.1
    pos = np.zeros((2, 3))
    goal = np.array([[10.0, 0, 0], [10.0, 0, 0]])
    v, yaw = pid.command(pos, goal, obs, 0.1)
    assert np.allclose(v[0], [2.0, 0, 0]) and np.all(yaw == 0.0)
    assert v[1, 0] <= 0.0
    hold = p_command(np.array([[np.nan, 0, 0]]), goal[:1], obs[:1], PidConfig())
    assert np.all(hold == 0.0)


def test_closed_loop_smoke_with_the_pid_baseline() -> None:
    from wm_agent.planning.evaluate import EvalConfig, format_table, run_closed_loop

    row = run_closed_loop("pid", EvalConfig(drones=2, seconds=1.5))
    assert row["collisions"] == 0 and 0.0 <= row["success_rate"] <= 1.0
    assert "| pid |" in format_table([row])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 12), data=st.data())
def test_descent_near_the_floor_stays_below_the_crash_speed(n: int, data: st.DataObject) -> None:
    """Whatever the plan and the neighbours say, a low drone never descends faster than the
    ground-band limit (a neighbour above used to push drones into the floor at 1.3-1.9 m/s)."""
    cfg = SafetyConfig()
    obs = open_obs(n)
    alt = data.draw(arrays(np.float64, (n,), elements=st.floats(0.0, 3.0)))
    obs[:, SPEC.slice("altitude")] = alt[:, None]
    nb = SPEC.slice("neighbours")
    above = np.zeros((n, 7))
    above[:, 2] = data.draw(arrays(np.float64, (n,), elements=st.floats(-0.5, 0.5)))  # dz [m]
    above[:, 6] = 1.0
    obs[:, nb.start: nb.start + 7] = above
    v = data.draw(arrays(np.float64, (n, 3), elements=st.floats(-8.0, 8.0)))
    out = SafetyFilter(cfg).apply(v, np.zeros(n), obs, None, None, np.zeros((n, 3)), np.zeros((n, 3)))
    limit = -(cfg.ground_descent_speed + np.clip(alt - cfg.ground_band, 0.0, None))
    assert np.all(out.cmd_vel[:, 2] >= limit - 1e-6)


def test_brake_margin_grows_with_the_measured_speed_towards_the_obstacle() -> None:
    obs = open_obs(3)
    obs[:, SPEC.slice("sectors").start] = 0.7  # a shelf face 0.7 m to the east (sector 0)
    obs[0, SPEC.slice("vel")] = (3.0, 0.0, 0.0)  # flying at it at 3 m/s
    obs[1, SPEC.slice("vel")] = (0.0, 3.0, 0.0)  # flying along it
    obs[2, SPEC.slice("vel")] = (-3.0, 0.0, 0.0)  # flying away
    cmd = np.array([[3.0, 0.0, 0.0], [1.0, 3.0, 0.0], [1.0, 0.0, 0.0]])
    args = (np.zeros(3), obs, None, None, np.zeros((3, 3)), np.zeros((3, 3)))
    out = SafetyFilter(SafetyConfig(brake_decel=3.0)).apply(cmd, *args)
    # 0.35 + 3·(WM_DT + 0.4 s lag) + 3²/(2·3) = 3.3 m > 0.7 m: brakes; along / away: the fixed
    # 0.35 m margin (and the open sectors at the 3 m sensor range never brake)
    assert out.cmd_vel[0, 0] <= 0.0 and np.allclose(out.cmd_vel[1:], cmd[1:])
    fixed = SafetyFilter(SafetyConfig(brake_decel=0.0)).apply(cmd, *args)
    assert np.allclose(fixed.cmd_vel, cmd)  # 0.7 m > 0.35 m: no brake with fixed margins


def test_neighbour_margin_grows_with_the_closing_speed() -> None:
    """Two drones flying head-on at 3 m/s each, 2 m apart, must brake now: each needs
    (6 m/s)² / (2 · 2 · 5 m/s²) = 1.8 m to stop the closing (both brake) plus the reaction
    distance — with the fixed 0.6 m margin they braked at 0.6 m, too late (two mid-air
    collisions in a 1,000-drone warehouse_1k minute). A neighbour 2 m away that is not
    closing, or one passing at the side, is left alone."""
    obs = open_obs(3).astype(np.float64)
    nb = SPEC.slice("neighbours")
    obs[0, nb.start:nb.start + 7] = (2.0, 0, 0, -6.0, 0, 0, 1)  # head-on, closing at 6 m/s
    obs[1, nb.start:nb.start + 7] = (2.0, 0, 0, 0.0, 0, 0, 1)  # ahead, same velocity
    obs[2, nb.start:nb.start + 7] = (0.0, 2.0, 0, -6.0, 0, 0, 1)  # at the side, passing
    v = np.array([[3.0, 0.0, 0.0]] * 3)
    out = brake_velocity(v, obs, SPEC, 0.35, 0.6, brake_decel=5.0, reaction_s=WM_DT)
    assert out.braked.tolist() == [True, False, False]
    assert out.cmd_vel[0, 0] <= 1e-9, "no speed left towards the oncoming drone"
    fixed = brake_velocity(v, obs, SPEC, 0.35, 0.6)  # without brake_decel: the fixed margin
    assert not fixed.braked.any()


@pytest.mark.parametrize("speed", [2.0, 3.0, 4.0])
def test_a_drone_sent_at_a_shelf_face_stops_before_it_in_closed_loop(speed: float) -> None:
    """The simulator in the loop: a drone flying straight at a shelf face, every command
    through the safety filter (one command per world-model step, as the planners give them),
    stops short of the face. With the stopping distance counted as v²/(2·5 m/s²) alone it hit
    the face from 3 m/s (the sim's velocity loop has a 0.4 s time constant; in warehouse_1k a
    drone hit a shelf corner from 2 m/s)."""
    from wm_agent.sim import EventKind, load_scenario, make_simulator
    from wm_agent.sim.scenario import Obstacles
    from wm_agent.world_model.spaces import build_observations

    sc = load_scenario("warehouse", drones=1)
    sim = make_simulator(sc, "fleet")
    ob = Obstacles.from_scenario(sc)
    sf = SafetyFilter(SafetyConfig.from_airframe(sc.airframe, dt=WM_DT))
    hz, per = 48, 4  # control rate, control periods per command
    face_y = 6.0  # south face of the first shelf row (x 8..20)

    def fly(v: tuple[float, float, float], seconds: float, filtered: bool) -> None:
        cmd = np.array([v])
        for _ in range(round(seconds * hz / per)):
            s = sim.state()
            if filtered:
                o = build_observations(s.pos, s.vel, s.quat, s.body_rates, s.pos + cmd, ob.boxes_min,
                                       ob.boxes_max, floor_z=ob.floor_z, ceiling_z=ob.ceiling_z)
                out = sf.apply(np.array([v]), np.zeros(1), o.obs, o.valid, cmd, s.pos,
                               s.pos + np.array([v]))
                cmd = out.cmd_vel
            for _ in range(per):
                sim.step(cmd, np.zeros(1), np.ones(1, bool))

    fly((0.0, 0.0, 0.5), 2.0, False)  # up to 1 m over pad 0 at (1, 1)
    fly((1.0, 0.0, 0.0), 9.0, False)  # east to x ≈ 10, south of the first row
    s = sim.state()
    assert 9.0 < s.pos[0, 0] < 19.0 and s.pos[0, 1] < face_y - 3.0
    fly((0.0, speed, 0.0), 6.0, True)  # straight at the face, through the filter
    kinds = [e.kind for e in sim.drain_events()]
    assert EventKind.COLLISION not in kinds, f"hit the shelf at {speed} m/s"
    gap = face_y - sim.state().pos[0, 1]
    assert 0.0 < gap < 2.5, gap


def test_descent_onto_a_box_below_brakes_by_the_vertical_speed() -> None:
    """A drone over a shelf top, 0.5 m above it, descending at 1.8 m/s: no more descent (it
    landed on a warehouse_1k shelf from 3.6 m when only a fixed 0.35 m margin counted); the
    same drone descending at 0.1 m/s, or over the open floor, may go on."""
    obs = open_obs(3).astype(np.float64)
    clear, alt, vel = SPEC.slice("clearance"), SPEC.slice("altitude"), SPEC.slice("vel")
    obs[:, alt.start] = 3.5
    obs[:, clear.start + 1] = 0.5  # a box top 0.5 m below
    obs[2, clear.start + 1] = 3.0  # the floor 3.5 m below: out of sensor range
    obs[:, vel.start + 2] = (-1.8, -0.1, -1.8)
    v = np.array([[0.5, 0.0, -1.8], [0.5, 0.0, -0.1], [0.5, 0.0, -1.8]])
    out = brake_velocity(v, obs, SPEC, 0.35, 0.6, brake_decel=5.0, reaction_s=WM_DT + 0.4)
    assert out.cmd_vel[0, 2] >= 0.0 and out.cmd_vel[1, 2] == -0.1 and out.cmd_vel[2, 2] == -1.8
