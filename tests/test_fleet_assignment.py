"""Assignment solvers: dense is optimal, sparse matches it where pruning is safe."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from wm_agent.errors import FleetError
from wm_agent.fleet.assignment import (
    cost_matrix,
    solve,
    solve_dense,
    solve_sparse,
    task_offsets,
)


def _instance(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = rng.uniform([0, 0, 0.5], [40, 30, 2.0], (n, 3))
    t = rng.uniform([0, 0, 0.5], [40, 30, 2.0], (m, 3))
    off = task_offsets(rng.integers(0, 256, m), np.where(rng.random(m) < 0.3, 30.0, np.inf), 0.0)
    return d, t, off


def _scipy_opt(d: np.ndarray, t: np.ndarray, off: np.ndarray, v: float) -> float:
    c = cost_matrix(d, t, off, v)
    r, k = linear_sum_assignment(c)
    return float(c[r, k].sum())


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 25), m=st.integers(0, 25), seed=st.integers(0, 2**31))
def test_dense_is_optimal_including_rectangular(n: int, m: int, seed: int) -> None:
    d, t, off = _instance(n, m, seed)
    res = solve_dense(d, t, off, 1.5)
    assert len(res.drone_idx) == min(n, m)
    assert len(set(res.task_idx.tolist())) == min(n, m)
    if min(n, m):
        assert res.total_cost == pytest.approx(_scipy_opt(d, t, off, 1.5), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_sparse_equals_optimal_when_pruning_is_safe(n: int, m: int, seed: int) -> None:
    """k ≥ max(N, M) keeps every edge: the sparse path must reach the optimum exactly."""
    d, t, off = _instance(n, m, seed)
    res = solve_sparse(d, t, off, 1.0, k=max(n, m), dense_max=0)
    assert len(res.drone_idx) == min(n, m)
    assert res.total_cost == pytest.approx(_scipy_opt(d, t, off, 1.0), abs=1e-9)


@pytest.mark.parametrize(("n", "m"), [(300, 300), (250, 400), (400, 250)])
def test_sparse_graph_solver_full_matching_and_near_optimal(n: int, m: int) -> None:
    """Force the pruned sparse path (dense_max small) on uniform instances."""
    d, t, off = _instance(n, m, 1)
    res = solve_sparse(d, t, off, 1.0, k=16, dense_max=20)
    assert len(res.drone_idx) == min(n, m)
    assert len(np.unique(res.task_idx)) == min(n, m)
    assert len(np.unique(res.drone_idx)) == min(n, m)
    opt = _scipy_opt(d, t, off, 1.0)
    travel = res.total_cost - off[res.task_idx].sum()
    travel_opt = opt - off[res.task_idx].sum() if n <= m else None
    assert res.total_cost >= opt - 1e-9
    if travel_opt is not None and n == m:
        assert travel <= 1.02 * travel_opt


def _warehouse_ratio(seed: int) -> float:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from assign_speed import warehouse_instance

    d, t, off = warehouse_instance(600, 600, np.random.default_rng(seed))
    res = solve_sparse(d, t, off, 1.0, k=16, dense_max=150, rounds=3)
    assert len(np.unique(res.task_idx)) == 600
    opt = _scipy_opt(d, t, off, 1.0)
    const = float(off.sum())  # square: every task matched, offsets cancel
    return (res.total_cost - const) / (opt - const)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_sparse_on_warehouse_instance_within_two_percent(seed: int) -> None:
    """600 x 600 warehouse instances, pruned path forced (larger sizes: COORDINATOR.md)."""
    assert 1.0 - 1e-9 <= _warehouse_ratio(seed) <= 1.02


def test_coincident_tasks_at_one_station_all_matched() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform([0, 0, 1], [40, 30, 1], (200, 3))
    t = np.tile([3.0, 5.0, 1.0], (200, 1))
    res = solve_sparse(d, t, np.zeros(200), 1.0, k=8, dense_max=10)
    assert len(np.unique(res.task_idx)) == 200
    assert res.total_cost == pytest.approx(_scipy_opt(d, t, np.zeros(200), 1.0))


def test_hysteresis_keeps_incumbent_unless_saving_exceeds_threshold() -> None:
    d = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    t = np.array([[4.0, 0, 0], [6.0, 0, 0]])  # drone 0 holds task 1 (a 2 s detour in total)
    inc = np.array([1, 0])
    keep = solve(d, t, np.zeros(2), 1.0, incumbent=inc, incumbent_bonus_s=2.5)
    assert keep.task_idx.tolist() == [1, 0]
    switch = solve(d, t, np.zeros(2), 1.0, incumbent=inc, incumbent_bonus_s=1.5)
    assert switch.task_idx.tolist() == [0, 1]
    sparse = solve_sparse(d, t, np.zeros(2), 1.0, incumbent=inc, incumbent_bonus_s=2.5,
                          dense_max=0, k=1)
    assert sparse.task_idx.tolist() == [1, 0]


def test_priority_and_deadline_make_tasks_cheaper() -> None:
    off = task_offsets(np.array([0, 200, 0]), np.array([np.inf, np.inf, 10.0]), 0.0,
                       urgency_horizon_s=20.0)
    assert off[1] < off[0] and off[2] < off[0]
    # one drone, two equidistant tasks: the urgent one wins
    res = solve_dense(np.zeros((1, 3)), np.array([[1.0, 0, 0], [-1.0, 0, 0]]), off[[0, 2]], 1.0)
    assert res.task_idx.tolist() == [1]


def test_bad_shapes_raise() -> None:
    with pytest.raises(FleetError, match="drone_xyz"):
        solve_dense(np.zeros((2, 2)), np.zeros((2, 3)), np.zeros(2), 1.0)
    with pytest.raises(FleetError, match="offsets"):
        solve_sparse(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), 1.0)
