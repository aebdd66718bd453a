"""Multilevel assignment (largest fleets): always a full matching, close to optimal on
warehouse layouts, priorities respected when tasks outnumber drones, busy drones pinned."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_agent.errors import FleetError
from wm_agent.fleet.assignment import cost_matrix, solve, solve_dense, solve_multilevel
from wm_agent.fleet.multilevel import group_points, multilevel_assign

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from assign_speed import warehouse_instance
from test_fleet_assignment import _assert_full_matching, _instance


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 60), m=st.integers(0, 60), seed=st.integers(0, 2**31),
       clustered=st.booleans())
def test_always_a_full_matching(n: int, m: int, seed: int, clustered: bool) -> None:
    d, t, off = _instance(n, m, seed)
    if clustered and m:  # many tasks on one spot (a pick station)
        t[: m // 2] = t[0]
    res = solve_multilevel(d, t, off, 1.3)
    _assert_full_matching(res, n, m)
    if min(n, m):
        best = solve_dense(d, t, off, 1.3)
        assert res.total_cost >= best.total_cost - 1e-9
        c = cost_matrix(d, t, off, 1.3)
        assert res.total_cost == pytest.approx(float(c[res.drone_idx, res.task_idx].sum()))


def test_within_one_percent_of_optimal_on_a_warehouse_instance() -> None:
    d, t, off = warehouse_instance(1500, 1500, np.random.default_rng(3))
    res = solve_multilevel(d, t, off, 1.0)
    best = solve_dense(d, t, off, 1.0)
    _assert_full_matching(res, 1500, 1500)
    travel = best.total_cost - off.sum()  # every task matched: offsets are a constant
    assert res.total_cost - off.sum() <= 1.01 * travel  # measured ≈ 1.003
    assert res.total_cost > best.total_cost  # a heuristic, not the optimum in disguise


def test_more_tasks_than_drones_serves_the_high_priority_ones() -> None:
    rng = np.random.default_rng(5)
    d = rng.uniform([0, 0, 1], [40, 30, 1], (60, 3))
    t = np.repeat(rng.uniform([0, 0, 1], [40, 30, 1], (60, 3)), 2, axis=0)
    off = np.tile([0.0, -8.0], 60)  # each spot: one plain and one urgent task
    res = solve_multilevel(d, t, off, 1.0)
    _assert_full_matching(res, 60, 120)
    assert np.sum(off[res.task_idx] < 0) >= 55


def test_busy_drones_keep_their_task_only_with_hysteresis() -> None:
    d = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    t = np.array([[4.0, 0, 0], [6.0, 0, 0]])
    inc = np.array([1, 0])  # crossed: swapping saves 4 s
    keep = solve_multilevel(d, t, np.zeros(2), 1.0, incumbent=inc, incumbent_bonus_s=2.0)
    assert keep.task_idx.tolist() == [1, 0]
    assert keep.total_cost == pytest.approx(12.0 - 4.0)
    free = solve_multilevel(d, t, np.zeros(2), 1.0, incumbent=inc, incumbent_bonus_s=0.0)
    assert free.task_idx.tolist() == [0, 1]


def test_solve_uses_it_above_auction_max() -> None:
    d, t, off = _instance(60, 80, 2)
    big = solve(d, t, off, 1.0, dense_max=10, auction_max=50)
    mid = solve(d, t, off, 1.0, dense_max=10, auction_max=100)
    assert big.lower_bound == float("-inf")  # no certificate
    assert np.isfinite(mid.lower_bound)  # the auction's dual bound
    with pytest.raises(FleetError, match="persons ≤ objects"):
        multilevel_assign(t, d, np.zeros(60), 1.0)


def test_groups_split_coincident_points_by_offset() -> None:
    xyz = np.zeros((40, 3))
    off = -np.arange(40.0)
    g = group_points(xyz, off, 1.0, 16)
    assert g.counts.tolist() == [16, 16, 8]
    assert g.mean_offset[0] == pytest.approx(np.mean(np.arange(40.0)[-16:]) * -1)
