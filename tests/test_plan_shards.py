"""Planner shards without ROS: which drones a shard plans, and that K shards planning one step
give the commands one planner gives (same noise for the same step, neighbours from the whole
fleet). Over DDS with separate processes: tests/test_planner_shards_run.py."""

from __future__ import annotations

import numpy as np
import pytest

from wm_agent.errors import ConfigError
from wm_agent.nodes.planning_common import PlannerNodeConfig, build_controller
from wm_agent.planning.fleet_control import PHASE_TO_HOME, PHASE_TO_PICKUP, FleetControlConfig
from wm_agent.planning.shards import ShardSpec
from wm_agent.sim.command_buffer import CommandMode


def test_shards_split_every_fleet_into_disjoint_balanced_parts() -> None:
    ids = np.random.default_rng(0).permutation(1001)
    for k in (1, 2, 3, 7):
        masks = np.array([ShardSpec(k, i).mine(ids) for i in range(k)])
        assert (masks.sum(axis=0) == 1).all(), "every drone in exactly one shard"
        sizes = masks.sum(axis=1)
        assert sizes.max() - sizes.min() <= 1, sizes
    for bad in ((0, 0), (2, 2), (2, -1)):
        with pytest.raises(ConfigError, match="planner shards"):
            ShardSpec(*bad)
    with pytest.raises(ConfigError, match="planner shards"):
        PlannerNodeConfig(shards=2, shard=2)


def _fleet(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """n drones in the air over the warehouse, some close together, flying to pickups."""
    rng = np.random.default_rng(seed)
    pos = np.column_stack([rng.uniform(8.0, 20.0, n), rng.uniform(4.0, 9.0, n),
                           rng.uniform(0.8, 1.5, n)])
    vel = rng.normal(0.0, 0.5, (n, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (n, 1))
    goals = np.column_stack([rng.uniform(25.0, 35.0, n), rng.uniform(5.0, 25.0, n), np.ones(n)])
    phases = np.where(rng.random(n) < 0.8, PHASE_TO_PICKUP, PHASE_TO_HOME).astype(np.uint8)
    return pos, vel, quat, goals, phases


@pytest.mark.parametrize(("backend", "groups"),
                         [("onnxruntime", 1), ("classical", 1), ("onnxruntime", 3)])
def test_two_shards_command_what_one_planner_commands(backend: str, groups: int) -> None:
    """Each shard plans its drones with the whole fleet as neighbours and the step's noise: the
    two partial commands merged by id are one planner's command (measured bit-identical with
    onnxruntime; the tolerance allows a BLAS kernel that blocks a smaller batch differently);
    with staggered replanning too (the groups are a function of the id alone)."""
    n, steps = 24, 6
    control = FleetControlConfig(replan_groups=groups)
    cfg = PlannerNodeConfig(scenario="warehouse", drones=n, backend=backend, control=control)
    _, one = build_controller(cfg)
    shards = [build_controller(PlannerNodeConfig(scenario="warehouse", drones=n, backend=backend,
                                                 shards=2, shard=k, control=control))[1]
              for k in range(2)]
    ids = np.arange(n)
    pos, vel, quat, goals, phases = _fleet(n, 1)
    grounded = np.zeros(n, bool)
    has_goal = np.ones(n, bool)
    for step in range(steps):
        whole = one.command(ids, pos, vel, quat, np.zeros((n, 3)), grounded, goals, phases,
                            has_goal, step=step)
        merged = np.full((n, 3), np.nan)
        for k, ctl in enumerate(shards):
            mine = ShardSpec(2, k).mine(ids)
            part = ctl.command(ids, pos, vel, quat, np.zeros((n, 3)), grounded, goals, phases,
                               has_goal, mine=mine, step=step)
            assert part.planned == np.count_nonzero(mine), "a shard plans only its drones"
            assert (part.mode[~mine] == CommandMode.HOLD).all()
            merged[mine] = part.velocity[mine]
            np.testing.assert_array_equal(part.mode[mine], whole.mode[mine])
        np.testing.assert_allclose(merged, whole.velocity, rtol=0, atol=1e-5)
        pos = pos + whole.velocity * 0.1  # the fleet moves on: warm starts matter next step
    assert np.abs(whole.velocity).max() > 0.1, "the drones were commanded to move"


def test_a_shard_sees_the_other_shards_drones_as_neighbours() -> None:
    """Two drones 0.6 m apart fly head-on, one per shard: shard 0's commands for its drone
    differ from the ones it gives with the other drone absent (then it flies straight on)."""
    cfg = PlannerNodeConfig(scenario="warehouse", drones=2, shards=2, shard=0)
    ids = np.array([0, 1])
    pos = np.array([[26.0, 15.0, 1.0], [26.6, 15.0, 1.0]])
    vel = np.array([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (2, 1))
    goals = np.array([[36.0, 15.0, 1.0], [16.0, 15.0, 1.0]])
    phases = np.full(2, PHASE_TO_PICKUP, np.uint8)
    mine = ShardSpec(2, 0).mine(ids)
    out = {}
    for rows in ([0, 1], [0]):
        _, ctl = build_controller(cfg)
        for step in range(5):
            cmd = ctl.command(ids[rows], pos[rows], vel[rows], quat[rows], np.zeros((len(rows), 3)),
                              np.zeros(len(rows), bool), goals[rows], phases[rows],
                              np.ones(len(rows), bool), mine=mine[rows], step=step)
        out[len(rows)] = cmd.velocity[0]
    assert np.linalg.norm(out[1]) > 0.3, "alone, the drone flies towards its goal"
    assert np.linalg.norm(out[2] - out[1]) > 0.1, \
        "the other shard's drone changed nothing: it was not a neighbour"


def test_the_step_decides_the_noise_not_the_calls_before() -> None:
    _, a = build_controller(PlannerNodeConfig(scenario="warehouse", drones=4))
    _, b = build_controller(PlannerNodeConfig(scenario="warehouse", drones=4))
    assert a.planner is not None and b.planner is not None
    for _ in range(3):
        a.planner.draw_noise(4)  # a's running generator moved on; b's did not
    np.testing.assert_array_equal(a.planner.draw_noise(4, key=17), b.planner.draw_noise(9, key=17))
    assert not np.array_equal(a.planner.draw_noise(4, key=17), a.planner.draw_noise(4, key=18))
