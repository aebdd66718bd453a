"""Collision detection: spatial hash vs brute force, shelf / drone / floor / wall collisions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from wm_agent.sim import EventKind, load_scenario, make_simulator
from wm_agent.sim.collisions import BoxGrid, brute_force_pairs, close_pairs, sphere_aabb_overlap
from wm_agent.sim.simulator import Simulator
from wm_agent.sim.types import StatusFlag

HZ = 48


@settings(max_examples=200, deadline=None)
@given(
    pos=arrays(
        np.float64,
        st.tuples(st.integers(0, 80), st.just(3)),
        elements=st.floats(-5.0, 5.0, allow_nan=False),
    ),
    cutoff=st.floats(0.05, 3.0),
)
def test_spatial_hash_matches_brute_force(pos: np.ndarray, cutoff: float) -> None:
    np.testing.assert_array_equal(close_pairs(pos, cutoff), brute_force_pairs(pos, cutoff))


def test_spatial_hash_on_a_dense_cluster() -> None:
    rng = np.random.default_rng(3)
    pos = rng.uniform(0.0, 2.0, (2000, 3))
    pairs = close_pairs(pos, 0.12)
    assert len(pairs) > 100
    np.testing.assert_array_equal(pairs, brute_force_pairs(pos, 0.12))


@settings(max_examples=100, deadline=None)
@given(
    boxes=arrays(np.float64, st.tuples(st.integers(1, 12), st.just(2), st.just(3)),
                 elements=st.floats(0.0, 10.0)),
    pos=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(3)),
               elements=st.floats(-1.0, 11.0)),
)
def test_box_grid_matches_brute_force(boxes: np.ndarray, pos: np.ndarray) -> None:
    boxes = np.sort(boxes, axis=1)  # min <= max
    grid = BoxGrid(boxes, 0.3, cell=1.0)
    d, b = grid.query(pos)
    got = set(zip(d.tolist(), b.tolist(), strict=True))
    di, bi = np.meshgrid(np.arange(len(pos)), np.arange(len(boxes)), indexing="ij")
    hit = sphere_aabb_overlap(pos[di.ravel()], 0.3, boxes[bi.ravel()])
    want = set(zip(di.ravel()[hit].tolist(), bi.ravel()[hit].tolist(), strict=True))
    assert got == want


def _run(sim: Simulator, cmd: np.ndarray, seconds: float) -> list:
    events = []
    for _ in range(round(seconds * HZ)):
        sim.step(cmd, np.zeros(sim.n), np.ones(sim.n, bool))
        events += sim.drain_events()
    return events


@pytest.mark.parametrize("fidelity", ["fleet", "motor"])
def test_flying_into_a_shelf_gives_one_event_and_grounds(fidelity: str) -> None:
    sim = make_simulator(load_scenario("warehouse", drones=1), fidelity)
    _run(sim, np.array([[0.0, 0.0, 0.5]]), 3.0)  # climb to ~1.5 m
    # From (1, 1) fly north-east towards the first shelf unit [8, 10.4] × [6, 6.8] × [0, 3].
    events = _run(sim, np.array([[1.4, 1.0, 0.0]]), 12.0)
    hits = [e for e in events if e.kind is EventKind.COLLISION]
    assert len(hits) == 1
    hit = hits[0]
    assert hit.drone_id == 0 and hit.other_id == -1 and hit.detail.startswith("shelves[0]")
    st_ = sim.state()
    assert st_.has(StatusFlag.COLLIDED)[0] and st_.has(StatusFlag.GROUNDED)[0]
    assert not st_.has(StatusFlag.ARMED)[0]
    assert abs(st_.pos[0, 2] - 0.0125) < 0.005 and np.abs(st_.vel[0]).max() < 1e-3
    before = st_.pos[0].copy()
    events = _run(sim, np.array([[0.0, 0.0, 1.0]]), 1.0)  # commands no longer move it
    assert not [e for e in events if e.kind is EventKind.COLLISION]
    np.testing.assert_allclose(sim.state().pos[0], before, atol=2e-3)


def test_drone_drone_collision_head_on() -> None:
    sim = make_simulator(load_scenario("warehouse", drones=5), "fleet")
    up = np.zeros((5, 3))
    up[:, 2] = 0.5
    _run(sim, up, 2.0)
    # Drones 0 (x=1.0) and 4 (x=3.0) fly at each other at 2 m/s each; 1-3 hover and climb away.
    cmd = np.zeros((5, 3))
    cmd[0, 0], cmd[4, 0] = 2.0, -2.0
    cmd[1:4, 2] = 0.8
    events = _run(sim, cmd, 2.0)
    hits = [e for e in events if e.kind is EventKind.COLLISION]
    assert len(hits) == 1
    assert {hits[0].drone_id, hits[0].other_id} == {0, 4}
    collided = sim.state().has(StatusFlag.COLLIDED)
    assert collided.tolist() == [True, False, False, False, True]


def test_fast_drones_cannot_tunnel_through_each_other() -> None:
    scenario = load_scenario("warehouse", drones=2)
    sim = make_simulator(scenario, "fleet")
    det = sim.detector
    p0 = np.array([[5.0, 5.0, 1.0], [5.3, 5.0, 1.0]])
    p1 = np.array([[5.3, 5.0, 1.0], [5.0, 5.0, 1.0]])  # swapped within one period
    hits = det.detect(p0, p1, np.ones(2, bool))
    assert hits.drone.tolist() == [0] and hits.other.tolist() == [1]
    assert 0.0 < hits.fraction[0] < 1.0


def test_hard_floor_impact_is_a_collision_gentle_landing_is_not() -> None:
    sim = make_simulator(load_scenario("warehouse", drones=2), "fleet")
    _run(sim, np.tile([0.0, 0.0, 1.0], (2, 1)), 2.0)
    cmd = np.array([[0.0, 0.0, -3.0], [0.0, 0.0, -0.3]])
    events = _run(sim, cmd, 8.0)
    hits = [e for e in events if e.kind is EventKind.COLLISION]
    assert [e.drone_id for e in hits] == [0] and hits[0].detail.startswith("floor")
    landed = [e for e in events if e.kind is EventKind.LANDED]
    assert [e.drone_id for e in landed] == [1]
    st_ = sim.state()
    assert st_.has(StatusFlag.COLLIDED).tolist() == [True, False]
    assert st_.has(StatusFlag.GROUNDED).all()


def test_wall_and_ceiling() -> None:
    sim = make_simulator(load_scenario("warehouse", drones=2), "fleet")
    _run(sim, np.tile([0.0, 0.0, 1.0], (2, 1)), 1.0)
    cmd = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])  # drone 0 west into the wall, 1 up
    events = _run(sim, cmd, 6.0)
    hits = {e.drone_id: e.detail for e in events if e.kind is EventKind.COLLISION}
    assert hits == {0: "wall", 1: "ceiling"}
