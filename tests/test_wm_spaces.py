"""Observation builder: layout, translation invariance, exact obstacle sectors, neighbours, NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wm_agent.errors import ModelError
from wm_agent.world_model.spaces import (
    ActionSpec,
    NeighbourPool,
    ObservationSpec,
    build_observations,
    min_clearance,
    neighbour_features,
)

SPEC = ObservationSpec()
LEVEL = np.array([0.0, 0.0, 0.0, 1.0])


def fleet(n: int, seed: int = 0, spread: float = 6.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4)) * 0.1 + LEVEL
    return {
        "pos": rng.uniform([0, 0, 0.5], [spread, spread, 3.0], (n, 3)),
        "vel": rng.normal(size=(n, 3)),
        "quat": q / np.linalg.norm(q, axis=1, keepdims=True),
        "body_rates": rng.normal(size=(n, 3)),
        "goals": rng.uniform([0, 0, 0.5], [spread, spread, 3.0], (n, 3)),
    }


BOXES_MIN = np.array([[2.0, 2.0, 0.0], [4.0, 0.5, 0.0]])
BOXES_MAX = np.array([[3.0, 2.8, 3.0], [5.0, 1.0, 1.0]])


def build(f: dict[str, np.ndarray], shift: np.ndarray | None = None, **kw: object):
    s = np.zeros(3) if shift is None else shift
    return build_observations(
        f["pos"] + s, f["vel"], f["quat"], f["body_rates"], f["goals"] + s,
        BOXES_MIN + s, BOXES_MAX + s, floor_z=0.0 + s[2], ceiling_z=6.0 + s[2], **kw,  # type: ignore[arg-type]
    )


def test_layout_and_shapes() -> None:
    assert SPEC.size == 3 + 3 + 3 + 1 + 3 + 8 + 2 + 28
    assert len(SPEC.element_names()) == SPEC.size
    assert SPEC.slice("vel") == slice(0, 3)
    assert ObservationSpec.from_dict(SPEC.to_dict()) == SPEC
    out = build(fleet(10))
    assert out.obs.shape == (10, SPEC.size) and out.obs.dtype == np.float32
    assert out.valid.all()
    with pytest.raises(ModelError, match="no block"):
        SPEC.slice("position")


@pytest.mark.parametrize("shift", [(100.0, -40.0, 0.0), (-3.3, 7.1, 2.5)])
def test_translation_invariance(shift: tuple[float, float, float]) -> None:
    f = fleet(20, seed=3)
    a = build(f).obs
    b = build(f, np.array(shift)).obs
    np.testing.assert_allclose(a, b, atol=2e-4)


def test_sectors_on_a_hand_made_box() -> None:
    # Drone at the origin, 1 m high; box x in [1, 2], y in [-0.5, 0.5], 0..3 m high (east).
    out = build_observations(
        np.array([[0.0, 0.0, 1.0]]), np.zeros((1, 3)), LEVEL[None], np.zeros((1, 3)),
        np.zeros((1, 3)), np.array([[1.0, -0.5, 0.0]]), np.array([[2.0, 0.5, 3.0]]),
        ceiling_z=6.0,
    )
    sectors = out.obs[0, SPEC.slice("sectors")]
    edge = 1.0 / math.cos(math.pi / 8)  # the 22.5° wedge edge enters the face x = 1 at y = 0.414
    np.testing.assert_allclose(sectors, [1.0, edge, 3, 3, 3, 3, 3, edge], atol=1e-6)
    up, down = out.obs[0, SPEC.slice("clearance")]
    assert up == pytest.approx(3.0) and down == pytest.approx(1.0)  # ceiling 5 m away → clipped


def test_sector_exact_minimum_against_dense_sampling() -> None:
    rng = np.random.default_rng(1)
    pos = rng.uniform([-1, -1, 1.0], [6, 6, 1.0], (40, 3))
    ok = ~np.any(np.all((pos[:, None, :2] >= BOXES_MIN[None, :, :2])
                        & (pos[:, None, :2] <= BOXES_MAX[None, :, :2]), axis=2), axis=1)
    pos = pos[ok]
    n = pos.shape[0]
    out = build_observations(pos, np.zeros((n, 3)), np.tile(LEVEL, (n, 1)), np.zeros((n, 3)),
                             pos, BOXES_MIN, BOXES_MAX, ceiling_z=6.0).obs
    sectors = out[:, SPEC.slice("sectors")]
    # Dense reference: sample the box boundaries finely, bin by bearing, take the minimum.
    ref = np.full((n, 8), 3.0)
    for lo, hi in zip(BOXES_MIN, BOXES_MAX, strict=True):
        if lo[2] > 1.3 or hi[2] < 0.7:
            continue
        t = np.linspace(0, 1, 4001)
        xs = np.concatenate([lo[0] + t * (hi[0] - lo[0]), lo[0] + t * (hi[0] - lo[0]),
                             np.full_like(t, lo[0]), np.full_like(t, hi[0])])
        ys = np.concatenate([np.full_like(t, lo[1]), np.full_like(t, hi[1]),
                             lo[1] + t * (hi[1] - lo[1]), lo[1] + t * (hi[1] - lo[1])])
        dx, dy = xs[None] - pos[:, :1], ys[None] - pos[:, 1:2]
        d = np.hypot(dx, dy)
        sec = np.floor((np.arctan2(dy, dx) + np.pi / 8) / (np.pi / 4)).astype(int) % 8
        for j in range(8):
            ref[:, j] = np.minimum(ref[:, j], np.where(sec == j, d, np.inf).min(axis=1))
    np.testing.assert_allclose(sectors, np.minimum(ref, 3.0), atol=2e-3)


def test_box_below_band_is_not_an_obstacle_but_limits_down_clearance() -> None:
    out = build_observations(
        np.array([[4.5, 0.75, 1.5]]), np.zeros((1, 3)), LEVEL[None], np.zeros((1, 3)),
        np.zeros((1, 3)), BOXES_MIN, BOXES_MAX, ceiling_z=6.0,
    ).obs[0]
    # Above the 1 m high box: no horizontal sector sees it, down clearance = 0.5 m.
    assert out[SPEC.slice("clearance")][1] == pytest.approx(0.5)
    assert out[SPEC.slice("sectors")].min() > 0.5


def test_nan_row_is_flagged_and_isolated() -> None:
    f = fleet(12, seed=5, spread=3.0)
    clean = build(f).obs
    f["vel"][4, 1] = np.nan
    f["quat"][7] = 0.0
    out = build(f)
    assert not out.valid[4] and not out.valid[7] and out.valid.sum() == 10
    assert np.isfinite(out.obs).all()
    assert not out.obs[4].any() and not out.obs[7].any()
    # Others lose drones 4 and 7 as neighbours, nothing else changes.
    nb = SPEC.slice("neighbours")
    others = np.setdiff1d(np.arange(12), [4, 7])
    np.testing.assert_array_equal(out.obs[others][:, :nb.start], clean[others][:, :nb.start])


def test_neighbours_sorted_masked_and_exclude_self() -> None:
    pos = np.array([[0.0, 0, 1], [1.0, 0, 1], [0, 2.0, 1], [10.0, 0, 1]])
    vel = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 0, 0], [0, 0, 0]])
    out = build_observations(pos, vel, np.tile(LEVEL, (4, 1)), np.zeros((4, 3)), pos,
                             np.zeros((0, 3)), np.zeros((0, 3))).obs
    nb = out[0, SPEC.slice("neighbours")].reshape(4, 7)
    np.testing.assert_allclose(nb[0], [1, 0, 0, 1, 0, 0, 1])
    np.testing.assert_allclose(nb[1], [0, 2, 0, 0, 0, 0, 1])
    assert not nb[2:].any()  # drone 3 is 10 m away (> 5 m radius); padding is zero
    assert min_clearance(out, SPEC)[0] == pytest.approx(1.0)


def test_neighbour_grid_matches_brute_force() -> None:
    rng = np.random.default_rng(2)
    n = 600  # above the brute-force threshold → spatial grid
    pos = rng.uniform([0, 0, 0], [40, 30, 5], (n, 3))
    vel = rng.normal(size=(n, 3))
    ids = np.arange(n)
    grid = neighbour_features(pos, vel, ids, pos, vel, ids, SPEC)
    ref = np.zeros_like(grid)
    for i in range(n):  # brute force per drone
        d = np.linalg.norm(pos - pos[i], axis=1)
        d[i] = np.inf
        order = np.lexsort((np.arange(n), d))[:4]
        order = order[d[order] < SPEC.neighbour_radius]
        for slot, j in enumerate(order):
            ref[i, slot * 7 : slot * 7 + 7] = [*(pos[j] - pos[i]), *(vel[j] - vel[i]), 1.0]
    np.testing.assert_allclose(grid, ref, atol=1e-12)


@pytest.mark.parametrize("layout", ["pads", "pads_and_external_pool"])
def test_neighbours_tied_at_the_kth_distance_are_taken_by_pool_index(layout: str) -> None:
    """Drones on a pad grid: every neighbour distance repeats 4-8 times, so the k-th nearest
    is a tie; the k-d tree path must pick the same drones in the same slots as brute force."""
    g = np.stack(np.meshgrid(np.arange(30), np.arange(30), indexing="ij"), -1).reshape(-1, 2)
    pos = np.column_stack([1.2 * g, np.zeros(len(g))])
    vel = np.zeros_like(pos)
    ids = np.arange(len(pos))
    if layout == "pads":
        pool, pool_vel, pool_ids = pos, vel, ids
    else:  # the queries are not in the pool: no self to skip
        pool = pos + np.array([0.6, 0.0, 0.0])
        pool_vel, pool_ids = vel, ids + 10_000
    got = neighbour_features(pos, vel, ids, pool, pool_vel, pool_ids, SPEC)
    ref = np.zeros_like(got)
    for i in range(len(pos)):
        d = np.linalg.norm(pool - pos[i], axis=1)
        d[pool_ids == ids[i]] = np.inf
        order = np.lexsort((np.arange(len(pool)), d))[:4]
        order = order[d[order] < SPEC.neighbour_radius]
        for slot, j in enumerate(order):
            ref[i, slot * 7: slot * 7 + 7] = [*(pool[j] - pos[i]), *(pool_vel[j] - vel[i]), 1.0]
    np.testing.assert_array_equal(got, ref)


def test_external_pool_with_ids() -> None:
    f = fleet(3, seed=9, spread=2.0)
    pool = NeighbourPool(f["pos"], f["vel"], np.array([10, 11, 12]))
    out = build(f, neighbours=pool, self_ids=np.array([10, 11, 12])).obs
    np.testing.assert_allclose(out, build(f).obs, atol=1e-6)


def test_wrong_shape_names_the_expected_shape() -> None:
    f = fleet(4)
    with pytest.raises(ModelError, match=r"quat: expected shape \(N, 4\) with N = 4"):
        build_observations(f["pos"], f["vel"], f["quat"][:, :3], f["body_rates"], f["goals"],
                           BOXES_MIN, BOXES_MAX)


def test_action_normalisation_roundtrip() -> None:
    spec = ActionSpec(max_speed=8.0, max_yaw_rate=2.0)
    v = np.array([[4.0, -8.0, 0.5]])
    a = spec.normalise(v, np.array([1.0]))
    np.testing.assert_allclose(a, [[0.5, -1.0, 0.0625, 0.5]])
    back_v, back_w = spec.denormalise(a)
    np.testing.assert_allclose(back_v, v)
    np.testing.assert_allclose(back_w, [1.0])


def test_obstacle_grid_prefilter_equals_checking_every_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    from wm_agent.sim import load_scenario
    from wm_agent.sim.scenario import Obstacles
    from wm_agent.world_model import spaces

    sc = load_scenario("warehouse_10k", drones=100)
    ob = Obstacles.from_scenario(sc)
    rng = np.random.default_rng(3)
    n = 400
    pos = np.column_stack([rng.uniform(0.1, 199.9, n), rng.uniform(0.1, 119.9, n),
                           rng.uniform(0.05, 5.0, n)])
    pos[:50, :2] = rng.uniform(20.0, 40.0, (50, 2))  # among the shelves, some inside units
    args = (pos, ob.boxes_min, ob.boxes_max, ObservationSpec(), ob.floor_z, ob.ceiling_z)
    assert n * len(ob.boxes_min) > spaces._DENSE_PAIRS  # the grid path runs
    grid = spaces.obstacle_features(*args)
    monkeypatch.setattr(spaces, "_DENSE_PAIRS", 1 << 40)  # every (drone, box) pair
    dense = spaces.obstacle_features(*args)
    np.testing.assert_array_equal(grid[0], dense[0])
    np.testing.assert_array_equal(grid[1], dense[1])
    assert (grid[0] < ObservationSpec().sensor_range).any() and (grid[0] == 0.0).any()  # not vacuous
