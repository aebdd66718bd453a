"""Replay cores: resampling at the world-model dt, step actions from recorded commands, windows."""

from __future__ import annotations

import numpy as np
import pytest

from wm_agent.evaluation.bag_data import CommandSeries, GoalSeries, StateSeries
from wm_agent.evaluation.prediction import (
    _window_ok,
    assignment_goals,
    goals_for,
    resample,
    step_actions,
)
from wm_agent.world_model.spaces import WM_DT, ActionSpec

DT = WM_DT


def linear_states(times: np.ndarray, n: int = 2) -> StateSeries:
    """Drone i at (i + t, 2 t, 1) with velocity (1, 2, 0), level."""
    t = times.astype(float)
    pos = np.stack([np.stack([i + t, 2 * t, np.ones_like(t)], 1) for i in range(n)], 1)
    vel = np.broadcast_to(np.array([1.0, 2.0, 0.0]), pos.shape).copy()
    quat = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (t.size, n, 4)).copy()
    return StateSeries(t, np.arange(n), pos, vel, quat, np.zeros_like(pos), np.ones((t.size, n), bool))


def test_resample_interpolates_linear_motion_exactly() -> None:
    times = np.sort(np.random.default_rng(0).uniform(0, 3, 70))
    times[0] = 0.0
    g = resample(linear_states(times), DT, max_gap_s=0.5)
    np.testing.assert_allclose(g.t, np.arange(g.t.size) * DT)
    assert g.ok.all()
    np.testing.assert_allclose(g.position[:, 1, 0], 1 + g.t, atol=1e-9)
    np.testing.assert_allclose(g.position[:, 0, 1], 2 * g.t, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(g.orientation, axis=-1), 1.0)


def test_resample_marks_gaps_and_absent_drones_unusable() -> None:
    times = np.arange(0, 4, 1 / 24)
    s = linear_states(times)
    s.position[(times > 1.0) & (times < 1.6), 0] = np.nan      # drone 0 gone for 0.6 s
    s.flying[times > 3.0, 1] = False
    g = resample(s, DT, max_gap_s=0.25)
    gap = (g.t > 1.0) & (g.t < 1.6)
    assert not g.ok[gap, 0].any() and g.ok[~gap, 0].all() and g.ok[:, 1].all()
    assert np.isnan(g.position[gap, 0]).all()
    assert not g.flying[g.t > 3.0, 1].any() and g.flying[g.t < 2.9, 1].all()


def commands(t: list[float], vx: list[float], mode: list[bool] | None = None) -> CommandSeries:
    n = len(t)
    return CommandSeries(np.array(t), np.zeros(n, np.int64),
                         np.column_stack([vx, np.zeros(n), np.zeros(n)]), np.zeros(n),
                         np.array(mode if mode is not None else [True] * n))


def test_step_action_is_the_time_mean_of_the_held_command() -> None:
    g = resample(linear_states(np.arange(0, 2, 1 / 24), n=1), DT)
    # 1 m/s from 0, 3 m/s from a quarter into step 2: step 2's mean is 0.25·1 + 0.75·3 = 2.5 m/s
    a = step_actions(commands([0.0, 2 * DT + DT / 4], [1.0, 3.0]), g, DT, ActionSpec(max_speed=10.0))
    assert a.ok[:4, 0].all()
    np.testing.assert_allclose(a.velocity[[0, 1, 2, 3], 0, 0], [1.0, 1.0, 2.5, 3.0])
    np.testing.assert_allclose(a.normalised[2, 0], [0.25, 0, 0, 0], atol=1e-7)


def test_stale_non_velocity_and_non_finite_commands_are_unusable() -> None:
    g = resample(linear_states(np.arange(0, 3, 1 / 24), n=1), DT)
    spec = ActionSpec()
    a = step_actions(commands([0.0], [1.0]), g, DT, spec)                 # one command, then silence
    assert a.ok[:5, 0].all() and not a.ok[7:, 0].any()                   # stale after 0.5 s
    ct = np.arange(0, 3, DT / 2)                                          # commands at 24 Hz
    mode = list((ct < 1.0) | (ct >= 1.5))                                 # HOLD in [1.0, 1.5)
    a = step_actions(commands(list(ct), [1.0] * ct.size, mode), g, DT, spec)
    hold = (g.t + DT > 1.0) & (g.t < 1.5)
    assert not a.ok[hold, 0].any() and a.ok[~hold & (g.t < 2.8), 0].all()
    vx = np.where((ct >= 1.0) & (ct < 1.2), np.nan, 1.0)                 # non-finite in [1.0, 1.2)
    a = step_actions(commands(list(ct), list(vx)), g, DT, spec)
    bad = (g.t + DT > 1.0) & (g.t < 1.2)
    assert not a.ok[bad, 0].any() and a.ok[~bad & (g.t < 2.8), 0].all()
    assert not step_actions(None, g, DT, spec).ok.any()


def test_goals_assignment_first_then_future_position() -> None:
    g = resample(linear_states(np.arange(0, 4, 1 / 24), n=2), DT)
    gs = GoalSeries(np.array([1.0]), np.array([1]), np.array([[9.0, 9.0, 1.0]]))
    assigned = assignment_goals(gs, g)
    goal, used = goals_for(g, assigned, "auto", 20)
    late = g.t >= 1.0
    assert used[late, 1].all() and not used[:, 0].any() and not used[~late, 1].any()
    np.testing.assert_allclose(goal[late, 1], [[9.0, 9.0, 1.0]] * int(late.sum()))
    np.testing.assert_allclose(goal[:5, 0], g.position[20:25, 0])
    assert np.isnan(goal[-20:, 0]).all()                                  # no future position left
    goal, used = goals_for(g, assigned, "future", 20)
    assert not used.any()
    goal, _ = goals_for(g, assigned, "assignment", 20)
    assert np.isnan(goal[:, 0]).all()


def test_window_ok_needs_every_step() -> None:
    flag = np.array([1, 1, 1, 0, 1, 1, 1, 1], bool)[:, None]
    np.testing.assert_array_equal(_window_ok(flag, 3)[:, 0], [1, 0, 0, 0, 1, 1, 0, 0])
    assert not _window_ok(flag, 20).any()


def test_resample_rejects_a_bad_dt() -> None:
    from wm_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="dt must be > 0"):
        resample(linear_states(np.arange(3.0)), 0.0)


def test_body_frame_cmd_vel_is_rotated_into_map() -> None:
    from types import SimpleNamespace as NS

    from wm_agent.evaluation.bag_data import _twist_commands

    s = linear_states(np.arange(0, 1, 1 / 24), n=1)
    s.orientation[:] = (0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4))         # yaw +90°
    msg = NS(twist=NS(linear=NS(x=1.0, y=0.0, z=0.5), angular=NS(x=0.0, y=0.0, z=0.2)),
             header=NS(frame_id="drone_0/base_link"))
    mapped = NS(twist=msg.twist, header=NS(frame_id="map"))
    c = _twist_commands({0: [(500_000_000, msg), (600_000_000, mapped)]}, 0, s)
    assert c is not None
    np.testing.assert_allclose(c.velocity, [[0.0, 1.0, 0.5], [1.0, 0.0, 0.5]], atol=1e-12)
    np.testing.assert_allclose(c.yaw_rate, [0.2, 0.2])


def test_rows_split_by_drone_column_in_time_order() -> None:
    """by_column: each column's rows sorted by time (ties in their original order), the same
    as a mask per column and a stable sort, which was quadratic at 10,000 drones."""
    from wm_agent.evaluation.prediction import by_column

    rng = np.random.default_rng(2)
    column = rng.integers(0, 7, 200)
    t = np.round(rng.uniform(0, 5, 200), 1)  # ties
    got = dict(by_column(column, t))
    assert sorted(got) == sorted(np.unique(column).tolist())
    for col, rows in got.items():
        sel = np.flatnonzero(column == col)
        np.testing.assert_array_equal(rows, sel[np.argsort(t[sel], kind="stable")])
    assert list(by_column(np.zeros(0, int), np.zeros(0))) == []
