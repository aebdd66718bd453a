"""MPPI planner: reduces cost on a known toy model, warm start, batching, bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wm_agent.errors import ConfigError, ModelError
from wm_agent.planning.config import PlannerConfig
from wm_agent.planning.plan_graph import PlanGraph, flops_per_plan, shift_plan
from wm_agent.planning.planner import Planner, TorchPlanBackend
from wm_agent.world_model.model import WorldModel, WorldModelConfig
from wm_agent.world_model.spaces import WM_DT, ActionSpec

SMALL = PlannerConfig(samples=64, elites=8, iterations=3, horizon=6, max_std=0.3, action_space="raw")


def toy_model(seed: int = 0) -> WorldModel:
    """A world model whose position head is exactly linear: dpos = a_xyz · max_speed · dt, no
    progress, no collision risk (the optimum: fly straight at the goal at the speed limit)."""
    torch.manual_seed(seed)
    m = WorldModel(WorldModelConfig(latent_dim=8, hidden_dim=16, head_hidden=8, simnorm_group=0))
    lin = torch.nn.Linear(8 + 4, 5)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        for i in range(3):
            lin.weight[i, 8 + i] = ActionSpec().max_speed * WM_DT
        lin.bias[4] = -20.0
    m.transition_head = torch.nn.Sequential(lin)
    return m.eval()


def planner_for(model: WorldModel, config: PlannerConfig = SMALL, seed: int = 0) -> Planner:
    graph = PlanGraph(model, config, ActionSpec())
    return Planner(TorchPlanBackend(graph), config, ActionSpec(), graph.param_dim, seed=seed)


def inputs(b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 1, (b, 51)).astype(np.float32)
    obs[:, 23:] = 0.0  # no neighbours
    pos = rng.uniform((5, 5, 1.5), (10, 10, 3.5), (b, 3)).astype(np.float32)
    goal = np.clip(pos + rng.normal(0, 3, (b, 3)), (1, 1, 1), (30, 20, 4.5)).astype(np.float32)
    return obs, pos, goal


def test_planner_reduces_cost_towards_the_known_optimum_on_a_linear_model() -> None:
    cfg = PlannerConfig(samples=128, elites=16, iterations=5, horizon=6, max_std=0.3,
                        action_space="raw")
    pl = planner_for(toy_model(), cfg)
    obs, pos, goal = inputs(4)
    graph = pl.backend.graph  # type: ignore[attr-defined]
    zero = pl.plan(obs, pos, goal, noise=np.zeros(pl.noise_shape(4), np.float32))
    res = pl.plan(obs, pos, goal)
    # Known optimum: straight at the goal at the speed limit, every step.
    d = (goal - pos) / np.linalg.norm(goal - pos, axis=1, keepdims=True)
    best = np.zeros((4, cfg.horizon, 4), np.float32)
    best[..., :3] = (d * cfg.max_plan_speed / ActionSpec().max_speed)[:, None, :]
    t = [torch.from_numpy(x) for x in (obs, pos, goal)]
    with torch.no_grad():
        z = graph.model.encode(t[0])
        opt, _, _ = graph.rollout_cost(z, t[1], t[2], torch.zeros(4, 4), torch.from_numpy(best))
    opt = opt.numpy()
    assert np.all(res.cost < zero.cost - 1.0)
    assert np.all(res.cost - opt < 0.4 * (zero.cost - opt))
    mean_v = res.plan[..., :3].mean(axis=1)
    cos = np.sum(d * mean_v, axis=1) / np.linalg.norm(mean_v, axis=1)
    assert np.all(cos > 0.9)
    assert np.all(np.linalg.norm(res.cmd_vel, axis=1) <= cfg.max_plan_speed + 1e-4)
    assert np.all(res.action[:, 3] == 0.0)  # yaw not planned
    assert res.plan.shape == (4, cfg.horizon, 4) and res.valid.all()
    assert graph.param_dim == cfg.horizon * 4


def test_more_iterations_do_not_worsen_the_cost() -> None:
    obs, pos, goal = inputs(3, seed=2)
    costs = []
    for it in (1, 4):
        cfg = PlannerConfig(samples=64, elites=8, iterations=it, horizon=6, action_space="raw")
        costs.append(planner_for(toy_model(), cfg, seed=1).plan(obs, pos, goal).cost)
    assert np.mean(costs[1]) <= np.mean(costs[0]) + 1e-3


def test_shift_plan_and_zero_noise_return_the_shifted_previous_plan() -> None:
    prev = torch.arange(2 * 6 * 4, dtype=torch.float32).reshape(2, 6, 4) / 100.0
    s = shift_plan(prev)
    assert torch.equal(s[:, :5], prev[:, 1:]) and torch.equal(s[:, 5], prev[:, 5])
    pl = planner_for(toy_model())
    obs, pos, goal = inputs(2)
    prev_np = (np.random.default_rng(0).uniform(-0.2, 0.2, (2, 6, 4))).astype(np.float32)
    prev_np[..., 3] = 0.0
    res = pl.plan(obs, pos, goal, prev_np, noise=np.zeros(pl.noise_shape(2), np.float32))
    expect = np.concatenate([prev_np[:, 1:], prev_np[:, -1:]], axis=1)
    np.testing.assert_allclose(res.plan, expect, atol=1e-6)
    np.testing.assert_allclose(res.action, expect[:, 0], atol=1e-6)


def test_batched_equals_per_drone_with_the_same_noise() -> None:
    pl = planner_for(toy_model(1))
    obs, pos, goal = inputs(3, seed=3)
    noise = pl.draw_noise(3)
    prev = np.zeros((3, SMALL.horizon, 4), np.float32)
    batch = pl.plan(obs, pos, goal, prev, noise=noise)
    for i in range(3):
        one = pl.plan(obs[i:i + 1], pos[i:i + 1], goal[i:i + 1], prev[i:i + 1], noise=noise[i:i + 1])
        np.testing.assert_allclose(one.plan[0], batch.plan[i], atol=1e-5)
        np.testing.assert_allclose(one.cost[0], batch.cost[i], rtol=1e-5, atol=1e-4)


def test_shared_noise_broadcasts_over_drones() -> None:
    cfg = PlannerConfig(samples=32, elites=4, iterations=2, horizon=6, shared_noise=True,
                        action_space="raw")
    pl = planner_for(toy_model(), cfg)
    assert pl.noise_shape(5)[0] == 1
    res = pl.plan(*inputs(5))
    assert res.action.shape == (5, 4) and res.valid.all()


def test_invalid_rows_are_isolated() -> None:
    pl = planner_for(toy_model())
    obs, pos, goal = inputs(3)
    noise = pl.draw_noise(3)
    clean = pl.plan(obs, pos, goal, noise=noise)
    obs[1, 5] = np.nan
    valid = np.array([True, True, False])
    res = pl.plan(obs, pos, goal, valid=valid, noise=noise)
    assert res.valid.tolist() == [True, False, False]
    assert np.all(res.action[1:] == 0.0) and np.isinf(res.cost[1:]).all()
    np.testing.assert_allclose(res.plan[0], clean.plan[0], atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"obs": np.zeros((2, 50))}, r"obs: expected .*\(B, 51\)"),
        ({"pos": np.zeros((2, 2))}, r"pos: expected .*\(2, 3\)"),
        ({"goal": np.zeros((3, 3))}, r"goal: expected .*\(2, 3\)"),
        ({"prev_plan": np.zeros((2, 5, 4))}, r"prev_plan: expected .*\(2, 6, 4\)"),
        ({"valid": np.ones(3, bool)}, r"valid: expected shape \(2,\)"),
        ({"noise": np.zeros((2, 3, 64, 7))}, r"noise: expected .*\(B, 3, 64, 24\)"),
    ],
)
def test_wrong_shapes_name_the_expected_shape(kwargs: dict, match: str) -> None:
    pl = planner_for(toy_model())
    args = dict(zip(("obs", "pos", "goal"), inputs(2), strict=True))
    args.update(kwargs)
    with pytest.raises(ModelError, match=match):
        pl.plan(**args)


def test_config_validation_and_flops() -> None:
    with pytest.raises(ConfigError, match="elites"):
        PlannerConfig(samples=8, elites=16)
    with pytest.raises(ConfigError, match="action_space"):
        PlannerConfig(action_space="joint")
    with pytest.raises(ConfigError, match="latent action autoencoder"):
        PlanGraph(toy_model(), PlannerConfig(action_space="latent"), ActionSpec())
    full = flops_per_plan(WorldModel(WorldModelConfig()), PlannerConfig())
    assert PlannerConfig().action_space == "latent"  # the measured better default
    assert 5e8 < full < 5e9


def test_no_rclpy_import() -> None:
    src = Path(__file__).resolve().parent.parent / "wm_agent" / "planning"
    for f in src.glob("*.py"):
        assert "import rclpy" not in f.read_text() and "from rclpy" not in f.read_text(), f


@pytest.mark.parametrize("shared_head", [False, True])
def test_fused_rollout_matches_the_world_model_step_by_step(shared_head: bool) -> None:
    """The plan graph's fused step (first layer split into latent and action GEMMs, the head on
    the dynamics' hidden layer or on all H·N rows at once) is the world model's step: the same
    final offset and per-step collision risk as ``WorldModel.rollout``. Not bit for bit — the
    split GEMM sums in another order — but to float32 rounding (1e-5)."""
    torch.manual_seed(3)
    m = WorldModel(WorldModelConfig(latent_dim=16, hidden_dim=32, head_hidden=16,
                                    shared_head=shared_head)).eval()
    cfg = PlannerConfig(samples=4, elites=2, iterations=1, horizon=5, w_progress=0.0, w_smooth=0.0,
                        w_fence=0.0, w_neighbour=0.0, w_goal=0.0, w_terminal=1.0, w_collision=0.0,
                        action_space="raw")
    graph = PlanGraph(m, cfg, ActionSpec())
    obs = torch.randn(3, 51)
    acts = torch.rand(3, 5, 4) * 0.6 - 0.3
    pos, goal = torch.zeros(3, 3), torch.ones(3, 3)
    with torch.no_grad():
        ref = m.rollout(obs, acts)
        for export in (False, True):
            graph.for_export = export
            cost, risk, _ = graph.rollout_cost(m.encode(obs), pos, goal, torch.zeros(3, 4), acts)
            p_end = pos + ref["offset"][:, -1]
            torch.testing.assert_close(cost, torch.linalg.vector_norm(p_end - goal, dim=-1),
                                       atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(risk, torch.sigmoid(ref["collision_logit"]).amax(1),
                                       atol=1e-6, rtol=1e-5)


def test_fast_mish_equals_mish() -> None:
    from wm_agent.planning.plan_graph import fast_mish

    x = torch.linspace(-60.0, 60.0, 20001)
    torch.testing.assert_close(fast_mish(x), torch.nn.functional.mish(x), atol=1e-6, rtol=1e-5)
    assert torch.isfinite(fast_mish(torch.tensor([1e30, -1e30]))).all()


def test_stagger_step_shifts_the_others() -> None:
    from wm_agent.planning.planner import stagger_step

    plans = np.arange(3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4)
    new = np.full((1, 4, 4), -1.0, np.float32)
    out, clear = stagger_step(plans, new, np.array([1]))
    np.testing.assert_array_equal(out[1], new[0])
    np.testing.assert_array_equal(out[0, :3], plans[0, 1:])
    np.testing.assert_array_equal(out[2, 3], plans[2, 3])
    assert np.isinf(clear).all()


def test_noise_bank_windows_are_standard_normal_and_differ_per_call() -> None:
    pl = planner_for(toy_model())
    a, b = pl.draw_noise(4), pl.draw_noise(4)
    assert a.shape == b.shape == pl.noise_shape(4) and a.dtype == np.float32
    assert not np.array_equal(a, b)
    pooled = np.concatenate([pl.draw_noise(4).ravel() for _ in range(50)])
    assert abs(pooled.mean()) < 0.05 and abs(pooled.std() - 1.0) < 0.05
    big = pl.draw_noise(pl._bank.size // (4 * int(np.prod(pl.noise_shape(1)))) + 1)
    assert big.shape[0] > 1 and np.isfinite(big).all()  # more than a quarter: fresh draws


def reference_cost(m: WorldModel, cfg: PlannerConfig, obs: torch.Tensor, pos: torch.Tensor,
                   goal: torch.Tensor, a_prev: torch.Tensor, acts: torch.Tensor) -> np.ndarray:
    """The documented cost, term by term and candidate by candidate, from the world model's
    own rollout (independent of the plan graph's fused layout)."""
    with torch.no_grad():
        ro = m.rollout(obs, acts)
    vmax = ActionSpec().max_speed
    out = []
    for n in range(obs.shape[0]):
        p = pos[n].numpy() + ro["offset"][n].numpy()  # (H, 3) [m]
        total = 0.0
        v_before = a_prev[n, :3].numpy() * vmax
        for t in range(cfg.horizon):
            d = float(np.linalg.norm(p[t] - goal[n].numpy()))
            total += cfg.w_goal * d + cfg.w_collision / (1 + np.exp(-float(ro["collision_logit"][n, t])))
            total -= cfg.w_progress * float(ro["progress"][n, t])
            lo, hi = np.array(cfg.fence_min), np.array(cfg.fence_max)
            total += cfg.w_fence * float(np.sum(np.maximum(lo - p[t], 0) + np.maximum(p[t] - hi, 0)))
            v = acts[n, t, :3].numpy() * vmax
            total += cfg.w_smooth * float(np.sum((v - v_before) ** 2)) + cfg.w_speed * float(v @ v)
            v_before = v
            nb = obs[n, 23:51].numpy().reshape(4, 7)
            for k in range(4):
                if nb[k, 6] > 0.5:
                    r = nb[k, :3] + (nb[k, 3:6] + obs[n, :3].numpy()) * WM_DT * (t + 1)
                    gap = max(cfg.neighbour_margin - float(np.linalg.norm(r - (p[t] - pos[n].numpy()))), 0)
                    total += cfg.w_neighbour * gap**2
        out.append(total + cfg.w_terminal * float(np.linalg.norm(p[-1] - goal[n].numpy())))
    return np.array(out)


@pytest.mark.parametrize("shared_head", [False, True])
def test_graph_cost_equals_the_documented_cost_term_by_term(shared_head: bool) -> None:
    torch.manual_seed(5)
    m = WorldModel(WorldModelConfig(latent_dim=16, hidden_dim=32, head_hidden=16,
                                    shared_head=shared_head)).eval()
    with torch.no_grad():
        m.dpos_std.fill_(0.2)
        m.progress_std.fill_(0.1)
    cfg = PlannerConfig(samples=4, elites=2, iterations=1, horizon=5, w_speed=0.3, w_fence=3.0,
                        fence_min=(1.0, 1.0, 0.5), fence_max=(4.0, 3.0, 2.0), neighbour_margin=3.0,
                        action_space="raw")
    graph = PlanGraph(m, cfg, ActionSpec())
    n = 6
    obs = torch.randn(n, 51)
    nb = obs[:, 23:51].reshape(n, 4, 7)
    nb[:, :, :3] = torch.randn(n, 4, 3)  # neighbours within a few metres
    nb[:, :, 6] = torch.tensor([1.0, 0.0, 1.0, 1.0])  # one absent
    pos = torch.rand(n, 3) * 4  # some outside the fence
    goal = torch.rand(n, 3) * 5
    a_prev = torch.rand(n, 4) - 0.5
    acts = torch.rand(n, 5, 4) * 0.6 - 0.3
    ref = reference_cost(m, cfg, obs, pos, goal, a_prev, acts)
    with torch.no_grad():
        for export in (False, True):
            graph.for_export = export
            cost, _, _ = graph.rollout_cost(m.encode(obs), pos, goal, a_prev, acts,
                                            graph.neighbours(obs))
            np.testing.assert_allclose(cost.numpy(), ref, rtol=1e-4, atol=1e-4)
    assert ref.std() > 1.0  # the terms differ between candidates (the check is not vacuous)


def test_fast_simnorm_equals_the_softmax_over_groups() -> None:
    from wm_agent.planning.plan_graph import fast_simnorm
    from wm_agent.world_model.model import SimNorm

    x = torch.randn(500, 32) * 15
    groups = torch.block_diag(*[torch.ones(8, 8)] * 4)
    torch.testing.assert_close(fast_simnorm(x, groups), SimNorm(8, 32)(x), atol=1e-6, rtol=1e-5)
    assert torch.isfinite(fast_simnorm(torch.tensor([[1e30] * 8, [-1e30] * 8]), torch.ones(8, 8))).all()


def test_fence_bounds_are_validated() -> None:
    with pytest.raises(ConfigError, match="fence_min"):
        PlannerConfig(fence_min=(5.0, 0.0, 0.0), fence_max=(1.0, 1.0, 1.0))
