"""The coordinator's assignment on every kind of warehouse demand (issue 16).

For random small instances of each family of :mod:`wm_agent.fleet.instances`, both paths the
coordinator's switch can take (dense up to ``dense_max``, the auction above) return a full,
duplicate-free matching whose reported cost is the recomputed cost, never below the exact
optimum of the same cost (incumbent bonus included) and at most 2 % of the optimum's travel
time above it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fleet_assignment import _assert_full_matching

from wm_agent.fleet import instances
from wm_agent.fleet.assignment import Matching, cost_matrix, solve, solve_dense

PATHS = {"dense": 10_000, "auction": 1}  # dense_max that makes solve() take each path
SPEED = instances.SPEED_MPS


def _cost(inst: instances.Instance, inc: np.ndarray, bonus: float) -> np.ndarray:
    c = cost_matrix(inst.drones, inst.tasks, inst.offsets, SPEED)
    rows = np.flatnonzero(inc >= 0)
    c[rows, inc[rows]] -= bonus
    return c


def _check(res: Matching, inst: instances.Instance, inc: np.ndarray, bonus: float) -> None:
    n, m = len(inst.drones), len(inst.tasks)
    _assert_full_matching(res, n, m)
    c = _cost(inst, inc, bonus)
    assert res.total_cost == pytest.approx(float(c[res.drone_idx, res.task_idx].sum()), abs=1e-6)
    best = solve_dense(inst.drones, inst.tasks, inst.offsets, SPEED, incumbent=inc,
                       incumbent_bonus_s=bonus)
    travel = np.linalg.norm(inst.drones[best.drone_idx] - inst.tasks[best.task_idx], axis=1)
    assert res.total_cost >= best.total_cost - 1e-9
    assert res.total_cost - best.total_cost <= 0.02 * float(travel.sum()) / SPEED + 1e-9
    assert res.lower_bound <= best.total_cost + 1e-6  # a bound, never above the optimum


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("family", sorted(instances.FAMILIES))
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 120), seed=st.integers(0, 2**31))
def test_every_family_within_two_percent_of_the_optimum(family: str, path: str, n: int,
                                                        seed: int) -> None:
    inst = instances.FAMILIES[family](n, np.random.default_rng(seed))
    none = np.full(len(inst.drones), -1, np.int64)
    res = solve(inst.drones, inst.tasks, inst.offsets, SPEED, dense_max=PATHS[path])
    _check(res, inst, none, 0.0)


@pytest.mark.parametrize("path", sorted(PATHS))
@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 120), seed=st.integers(0, 2**31), random_tasks=st.booleans())
def test_a_re_solve_with_busy_drones_holds_the_bound_with_the_bonus(
        path: str, n: int, seed: int, random_tasks: bool) -> None:
    """The coordinator's case: drones moved since the last solve, a few tasks replaced, the
    rest held with the hysteresis bonus — or current tasks at random (every path treats the
    bonus as a cost; none pins a busy drone)."""
    rng = np.random.default_rng(seed)
    inst = instances.uniform(n, rng)
    first = solve_dense(inst.drones, inst.tasks, inst.offsets, SPEED)
    held = np.full(n, -1, np.int64)
    held[first.drone_idx] = first.task_idx
    inst, inc = instances.moved(inst, held, rng)
    if random_tasks:
        inc = rng.permutation(n).astype(np.int64)
    res = solve(inst.drones, inst.tasks, inst.offsets, SPEED, dense_max=PATHS[path],
                incumbent=inc, incumbent_bonus_s=2.0)
    _check(res, inst, inc, 2.0)


def test_families_are_what_their_names_say() -> None:
    rng = np.random.default_rng(0)
    n = 400
    sizes = {f: (len(g(n, rng).drones), len(g(n, rng).tasks)) for f, g in
             instances.FAMILIES.items()}
    assert sizes["backlog"] == (n, 2 * n) and sizes["half"] == (n, n // 2)
    assert sizes["uniform"] == sizes["shelves"] == sizes["stations"] == sizes["line"] == (n, n)
    line = instances.line(n, rng).drones
    assert np.ptp(line[:, 1]) == 0.0 and np.ptp(line[:, 2]) == 0.0
    st_ = instances.stations(n, rng).tasks
    assert len(np.unique(st_, axis=0)) < 60  # a few dozen stations, many coincident pickups
    assert set(np.unique(instances.shelves(n, rng).tasks[:, 2])) == {0.5, 1.5, 2.5}
