"""FleetController without ROS: warm starts by drone id, the pad-field speed limit, neighbours
among flying, landing and holding drones, the PID baseline's state, the command period."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from wm_agent.errors import ConfigError
from wm_agent.nodes.planning_common import PlannerNodeConfig, build_controller
from wm_agent.planning.fleet_control import (
    PHASE_TO_PICKUP,
    FleetControlConfig,
    FleetController,
    GoalTable,
    replan_group,
)
from wm_agent.planning.pid import PidConfig, PidController
from wm_agent.planning.safety import SafetyConfig, SafetyFilter
from wm_agent.sim.scenario import load_scenario
from wm_agent.world_model.spaces import build_observations


def controller(**cfg: float) -> tuple[FleetController, np.ndarray]:
    sc = load_scenario("warehouse", drones=12)
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)),
                          FleetControlConfig(**cfg))
    return ctl, np.asarray(sc.home_pads, np.float64)


def test_pad_zone_limit_slows_only_drones_over_the_pad_field() -> None:
    ctl, pads = controller(pad_zone_speed=1.0, pad_zone_margin=0.5)
    pos = np.array([pads[0] + [0.0, 0.0, 1.0],          # over the pads
                    pads[0] + [0.0, 0.4, 1.0],          # inside the margin
                    [20.0, 15.0, 1.0],                  # the warehouse floor
                    pads[0] + [0.0, 0.0, 1.0]])         # over the pads, already slow
    cmd = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    out = ctl.pad_zone_limit(pos, cmd)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0, 3.0, 0.5])
    np.testing.assert_allclose(out[0] / np.linalg.norm(out[0]), [1.0, 0.0, 0.0])  # direction kept
    off, _ = controller(pad_zone_speed=0.0)
    np.testing.assert_array_equal(off.pad_zone_limit(pos, cmd), cmd)


def test_pad_zone_limit_covers_each_pad_field_not_the_space_between() -> None:
    """warehouse_10k has four pad fields: the limit applies over each (grown by the margin), not
    over the box around all four (which is most of the building)."""
    sc = load_scenario("warehouse_10k", drones=400)
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)),
                          FleetControlConfig(pad_zone_speed=1.0, pad_zone_margin=0.5))
    pads = np.asarray(sc.home_pads)
    over = pads[sc.pad_field == 3][0] + [0.0, 0.0, 1.0]
    between = np.array([100.0, 55.0, 1.0])  # centre of the building, between the fields
    out = ctl.pad_zone_limit(np.array([over, between]), np.array([[3.0, 0.0, 0.0]] * 2))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 3.0])


def test_pad_zone_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="pad_zone"):
        FleetControlConfig(pad_zone_speed=-1.0)
    with pytest.raises(ConfigError, match="pad_zone"):
        FleetControlConfig(pad_zone_margin=float("nan"))


def test_commands_over_the_pads_respect_the_limit_and_warm_starts_follow_ids() -> None:
    ctl, pads = controller(pad_zone_speed=0.8)
    ids = np.array([7, 3])
    pos = pads[[0, 10]] + [0.0, 0.0, 1.0]  # 5 m apart: no neighbour push from the safety filter
    z = np.zeros((2, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (2, 1))
    goals = np.array([[30.0, 20.0, 1.0], [30.0, 25.0, 1.0]])
    phases = np.full(2, PHASE_TO_PICKUP)
    for _ in range(40):  # the acceleration limit ramps the command up
        out = ctl.command(ids, pos, z, quat, z, np.zeros(2, bool), goals, phases, np.ones(2, bool))
    assert (np.linalg.norm(out.velocity, axis=1) <= 0.8 + 1e-9).all()
    assert (np.linalg.norm(out.velocity, axis=1) > 0.5).all()
    assert ctl._ids.tolist() == [3, 7]  # the table is sorted by id, whatever the call order
    np.testing.assert_allclose(ctl._prev_cmd[[1, 0]], out.velocity)


def test_routes_to_a_station_bay_lead_to_the_station_then_straight_to_the_bay() -> None:
    sc = load_scenario("warehouse_10k", drones=12)
    assert sc.station_bays.shape[0] > 1
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)))
    station = np.asarray(sc.stations["drop_b1w"], np.float64)  # west wall, open to the east
    bay = station + sc.station_bays[-1]
    goals = np.array([bay, [60.0, 45.0, 1.0]])  # a bay of drop_b1w; an ordinary point
    via, approach = ctl.route_goals(goals)
    np.testing.assert_allclose(via[0, :2], station[:2])
    np.testing.assert_allclose(approach[0], np.linalg.norm(sc.station_bays[-1, :2]))
    np.testing.assert_array_equal(via[1], goals[1])
    assert approach[1] == 0.0
    far = np.array([[station[0] + 30.0, station[1], 1.0]])
    near = np.array([[station[0] + 1.0, station[1], 1.0]])
    both = np.concatenate([far, near])
    carrots = ctl.grid.carrots(both, np.stack([bay, bay]), 2.0, np.stack([via[0]] * 2), approach[0])
    to_station = ctl.grid.carrots(far, station[None], 2.0)
    np.testing.assert_allclose(carrots[0], to_station[0])  # far: on the route to the station
    np.testing.assert_allclose(carrots[1], bay)  # near: the bay itself
    assert len(ctl.grid._cache) == len(sc.stations)  # built with the controller; no new field


def _one_call(ctl: FleetController, pos: np.ndarray, phases: np.ndarray, has_goal: np.ndarray,
              goals: np.ndarray, grounded: np.ndarray | None = None) -> np.ndarray:
    n = pos.shape[0]
    z = np.zeros((n, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    grounded = np.zeros(n, bool) if grounded is None else grounded
    out = ctl.command(np.arange(n), pos, z, quat, z, grounded, goals, phases, has_goal)
    return out.velocity


@pytest.mark.parametrize("other", ["landing", "holding"])
def test_landing_and_holding_drones_are_neighbours_of_flying_ones(other: str) -> None:
    """A drone flying east towards a drone 0.5 m ahead that is landing (IDLE) or holding (no
    assignment) brakes for it, as it would for a flying one; a drone on the floor is ignored."""
    a = np.array([20.0, 15.0, 1.0])
    ahead, far = np.array([0.5, 0.0, 0.0]), np.array([10.0, 0.0, 0.0])
    pos = np.array([a, a + ahead])
    goals = np.array([a + far, a + ahead])
    phase_b, goal_b = (0, True) if other == "landing" else (0, False)
    phases = np.array([PHASE_TO_PICKUP, phase_b])
    has_goal = np.array([True, goal_b])
    ctl_alone, _ = controller()
    alone = _one_call(ctl_alone, pos[:1], phases[:1], has_goal[:1], goals[:1])
    ctl, _ = controller()
    with_other = _one_call(ctl, pos, phases, has_goal, goals)
    assert alone[0, 0] > 0.3  # free: flies east
    assert with_other[0, 0] < 0.5 * alone[0, 0]  # braked for the drone in its way
    ctl_floor, _ = controller()
    floor_pos = pos.copy()
    floor_pos[1, 2] = 0.0125
    parked = _one_call(ctl_floor, floor_pos, phases, has_goal, goals, np.array([False, True]))
    np.testing.assert_allclose(parked[0], alone[0])


def test_classical_backend_keeps_its_pid_state_across_calls() -> None:
    """The fleet controller's PID baseline is the same controller as a persistent
    PidController (integral and derivative carried from call to call, per drone id)."""
    sc = load_scenario("warehouse", drones=12)
    pid_cfg = PidConfig(ki=0.8, kd=0.3)
    safety_cfg = SafetyConfig.from_airframe(sc.airframe)
    ctl = FleetController(sc, None, SafetyFilter(safety_cfg), pid=pid_cfg)
    ref_pid = PidController(1, pid_cfg)
    ref_safety = SafetyFilter(safety_cfg)
    pos = np.array([[20.0, 15.0, 1.0]])
    goal = np.array([[21.0, 15.5, 1.2]])
    z = np.zeros((1, 3))
    quat = np.array([[0.0, 0.0, 0.0, 1.0]])
    prev = np.zeros((1, 3))
    for _ in range(6):
        out = ctl.command(np.array([4]), pos, z, quat, z, np.zeros(1, bool), goal,
                          np.array([PHASE_TO_PICKUP]), np.ones(1, bool))
        carrot = ctl.grid.carrots(pos, goal, ctl.config.lookahead)
        ob = build_observations(pos, z, quat, z, carrot, ctl.obstacles.boxes_min,
                                ctl.obstacles.boxes_max, floor_z=ctl.obstacles.floor_z,
                                ceiling_z=ctl.obstacles.ceiling_z)
        cmd, yr = ref_pid.command(pos, carrot, ob.obs, safety_cfg.dt)
        ref = ref_safety.apply(ctl.pad_zone_limit(pos, cmd), yr, ob.obs, ob.valid, prev, pos,
                               carrot, None)
        prev = ref.cmd_vel
        np.testing.assert_allclose(out.velocity, ref.cmd_vel, atol=1e-12)
        pos = pos + 0.05 * (goal - pos)  # drifts towards the goal: the error changes
    assert np.abs(ref_pid.integral).max() > 0.1  # the integral really built up


def test_safety_filter_period_follows_the_command_period() -> None:
    """The acceleration limit and reaction time use how long a command is held: replan_every
    control periods in the fleet planner, 1 / rate_hz in the one-drone planner."""
    sc, ctl = build_controller(PlannerNodeConfig(backend="classical", replan_every=2))
    assert ctl.safety.config.dt == pytest.approx(2.0 / sc.rates.control_hz)
    assert ctl.safety.config.brake_reaction_s == pytest.approx(2.0 / sc.rates.control_hz)
    _, one = build_controller(PlannerNodeConfig(backend="classical"), 1.0 / 30.0)
    assert one.safety.config.dt == pytest.approx(1.0 / 30.0)
    # the per-command velocity change is max_accel · dt
    pos = np.array([[20.0, 15.0, 1.0]])
    v = _one_call(ctl, pos, np.array([PHASE_TO_PICKUP]), np.ones(1, bool),
                  np.array([[30.0, 15.0, 1.0]]))
    assert np.linalg.norm(v[0]) == pytest.approx(ctl.safety.config.max_accel * 2.0 / 48.0)


@pytest.mark.parametrize(
    "phase, has_goal, grounded, near_pad, mode, flies",
    [
        # no assignment: hold (stay on the pad, or hold in the air)
        (0, False, True, False, "HOLD", False),
        (0, False, False, False, "HOLD", False),
        # IDLE: land where it is (nothing to do on the floor)
        (0, True, False, False, "LAND", False),
        (0, True, True, False, "HOLD", False),
        # to a pickup / drop-off: fly, from the floor too (take-off)
        (1, True, True, False, "VELOCITY", True),
        (2, True, False, False, "VELOCITY", True),
        # home: fly at cruise altitude; over the pad: land
        (3, True, False, False, "VELOCITY", True),
        (3, True, False, True, "LAND", False),
    ],
)
def test_targets_phase_and_mode_table(phase: int, has_goal: bool, grounded: bool,
                                      near_pad: bool, mode: str, flies: bool) -> None:
    from wm_agent.sim.command_buffer import CommandMode

    ctl, pads = controller(cruise_altitude=1.2, min_altitude=0.5)
    pad = pads[3]
    pos = np.array([pad + ([0.1, 0.0, 1.2] if near_pad else [5.0, 4.0, 1.2])])
    goal = np.array([pad if phase in (0, 3) else [20.0, 15.0, 0.2]])
    target, modes, fly = ctl.targets(pos, goal, np.array([phase]), np.array([has_goal]),
                                     np.array([grounded]))
    assert modes[0] == getattr(CommandMode, mode) and fly[0] == flies
    if phase == 3:
        assert target[0, 2] == 1.2  # home goals at cruise altitude
    elif phase in (1, 2):
        assert target[0, 2] == 0.5  # no goal below min_altitude


def test_replan_groups_are_even_within_every_planner_shard() -> None:
    """The staggered-replanning groups of 10,000 ids are within 5 % of even, also inside each
    id % K shard (a plain id % G would leave shard 0 of K = 2 with nothing to plan every other
    step when G = 2)."""
    ids = np.arange(10_000)
    for groups in (2, 3, 4):
        g = replan_group(ids, groups)
        assert set(np.unique(g)) == set(range(groups))
        for k in (1, 2, 4):
            counts = np.bincount(g[ids % k == 0], minlength=groups)
            assert counts.min() >= 0.95 * counts.sum() / groups, (groups, k, counts)
    np.testing.assert_array_equal(replan_group(ids, 3), replan_group(ids.astype(np.uint32), 3))
    with pytest.raises(ConfigError, match="replan_groups"):
        FleetControlConfig(replan_groups=0)


class _CountingPlanner:
    """Wraps a Planner and records the batch of every plan() call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.batches = inner, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def plan(self, obs: np.ndarray, *args: Any) -> Any:
        self.batches.append(obs.shape[0])
        return self.inner.plan(obs, *args)


def test_staggered_replanning_plans_one_group_a_step_and_advances_the_other_plans() -> None:
    """replan_groups = 3: the first step plans every flying drone (no plan yet), then each step
    plans only the drones of its group; the others' plans are their previous plans shifted one
    step (warm start kept), so each drone is planned every third step. A drone that starts
    flying is planned at once."""
    n = 30
    cfg = PlannerNodeConfig(scenario="warehouse", drones=n + 1,
                            control=FleetControlConfig(replan_groups=3))
    _, ctl = build_controller(cfg)
    assert ctl.planner is not None
    counting = _CountingPlanner(ctl.planner)
    ctl.planner = counting  # type: ignore[assignment]
    rng = np.random.default_rng(0)
    ids = np.arange(n + 1)
    pos = np.column_stack([rng.uniform(8.0, 30.0, n + 1), rng.uniform(4.0, 25.0, n + 1),
                           np.full(n + 1, 1.2)])
    z = np.zeros((n + 1, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n + 1, 1))
    goals = np.column_stack([rng.uniform(25.0, 35.0, n + 1), rng.uniform(5.0, 25.0, n + 1),
                             np.ones(n + 1)])
    phases = np.full(n + 1, PHASE_TO_PICKUP)
    has_goal = np.r_[np.ones(n, bool), False]  # the last drone holds until step 4
    group = replan_group(ids, 3)
    for step in range(7):
        if step == 4:
            has_goal[n] = True
        rows = ctl._rows(ids)
        before = ctl._plans[rows].copy()
        out = ctl.command(ids, pos, z, quat, z, np.zeros(n + 1, bool), goals, phases, has_goal,
                          step=step)
        after = ctl._plans[rows]
        planned = has_goal & ((group == step % 3) | (step == 0))
        planned[n] |= step == 4
        assert counting.batches[-1] == np.count_nonzero(planned), step
        assert out.planned == np.count_nonzero(has_goal)  # every flying drone is commanded
        kept = ~planned & has_goal
        np.testing.assert_array_equal(
            after[kept], np.concatenate([before[kept, 1:], before[kept, -1:]], axis=1))
        assert not np.array_equal(after[planned], before[planned])
        assert np.isfinite(out.velocity).all() and np.abs(out.velocity[:n]).max() > 0.05


def test_routes_home_lead_to_a_few_anchors_over_the_pad_field_not_one_per_pad() -> None:
    """warehouse_10k: the 10,000 pads share at most a few hundred route anchors (a distance
    field costs ~0.1 s on that floor; one per pad stalled the planner for seconds), each
    anchor over its pad's own field and within spacing / sqrt(2) of the pad; a drone far away
    follows the route to the anchor, one near it gets its pad."""
    sc = load_scenario("warehouse_10k")
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)))
    pads = np.asarray(sc.home_pads, np.float64)
    goals = pads + np.array([0.0, 0.0, 1.0])
    via, approach = ctl.route_goals(goals)
    anchors = np.unique(np.round(via[:, :2], 6), axis=0)
    assert len(anchors) <= 300, len(anchors)
    assert approach.max() <= ctl.config.pad_route_spacing / np.sqrt(2) + 1e-9
    for f in range(4):
        mine = sc.pad_field == f
        lo, hi = pads[mine, :2].min(axis=0), pads[mine, :2].max(axis=0)
        assert ((via[mine, :2] >= lo - 1e-9) & (via[mine, :2] <= hi + 1e-9)).all()
    other = np.array([[60.0, 45.0, 1.0]])  # not a pad: routed to itself
    np.testing.assert_array_equal(ctl.route_goals(other)[0], other)
    far = np.array([[100.0, 55.0, 1.0]])
    near = via[:1] + np.array([1.0, 0.0, 0.0])
    c = ctl.grid.carrots(np.concatenate([far, near]), np.stack([goals[0]] * 2), 2.0,
                         np.stack([via[0]] * 2), approach[0])
    np.testing.assert_allclose(c[1], goals[0])  # near its anchor: straight to the pad
    assert 1.5 <= np.linalg.norm(c[0, :2] - far[0, :2]) <= 2.0 * np.sqrt(2) + 1e-6  # 8 cells on


def test_goal_table_looks_up_what_a_dict_by_id_would() -> None:
    """The planner node's assignment table (arrays sorted by id, one searchsorted per replan
    instead of a dict of 10,000 entries): the same goals, phases and membership as a dict built
    from the message, a repeated id keeping its last row, an empty table having nothing."""
    rng = np.random.default_rng(4)
    ids = rng.permutation(50)[:30].astype(np.uint32)
    ids[5] = ids[9]  # repeated: the last row wins, as in a dict
    goals = rng.uniform(0, 40, (30, 3)).astype(np.float32)
    phases = rng.integers(0, 4, 30).astype(np.uint8)
    table = GoalTable.of(ids, goals, phases)
    as_dict = {int(i): (goals[k].astype(np.float64), int(phases[k])) for k, i in enumerate(ids)}
    query = np.arange(60)
    g, p, has = table.lookup(query)
    for k, i in enumerate(query.tolist()):
        assert has[k] == (i in as_dict)
        if i in as_dict:
            np.testing.assert_array_equal(g[k], as_dict[i][0])
            assert p[k] == as_dict[i][1]
        else:
            assert p[k] == 0 and not g[k].any()
    g, p, has = GoalTable.empty().lookup(query)
    assert not has.any() and g.shape == (60, 3) and p.shape == (60,)
