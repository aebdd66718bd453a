"""MPPI in the world model's latent space (TD-MPC2's ``_plan``), batched over drones.

One planning step for B drones is ONE batched computation: the B·S samples of every iteration are
flattened into the world model's batch. :class:`PlanGraph` is a pure-tensor ``nn.Module`` (no
Python branching on data, fixed iteration/horizon loops that unroll) so that exactly the same
code runs in torch eager and, exported, in ONNX Runtime (``wm_agent.planning.export``).

Search space ("parameters", D per drone): either the raw plan (H·4 normalised actions,
``action_space="raw"``) or the K latent dims of the action autoencoder
(``action_space="latent"``, :mod:`wm_agent.planning.latent_actions`) decoded to raw actions
before the rollout. Every candidate is projected to the feasible set before it is rolled out:
horizontal+vertical speed ≤ ``max_plan_speed`` [m/s], yaw rate 0 unless ``plan_yaw``.

Cost of a candidate (lower is better), summed over the H steps with positions integrated from
the predicted ``dpos`` [m]:

* ``w_goal``·‖p_t − goal‖ [m] each step, plus ``w_terminal``·‖p_H − goal‖;
* ``w_collision``·sigmoid(collision logit) (learned collision risk, probability);
* −``w_progress``·progress (learned goal-distance decrease [m]);
* ``w_smooth``·‖v_t − v_{t−1}‖² [m²/s²] (v_{−1}: the first action of the previous plan);
* ``w_fence``·(distance outside the geofence box) [m];
* ``w_speed``·‖v_t‖² [m²/s²];
* ``w_neighbour``·relu(``neighbour_margin`` − distance to each reported neighbour)² [m²], the
  neighbours (observation's neighbour block) extrapolated at constant velocity.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from wm_agent.errors import ConfigError, ModelError
from wm_agent.world_model.model import Mish, WorldModel
from wm_agent.world_model.spaces import ActionSpec, ObservationSpec

ACTION_DIM = 4
ACTION_SPACES = ("raw", "latent")


@dataclass(frozen=True)
class PlannerConfig:
    """All planner settings (one config, TD-MPC2 style).

    Attributes:
        samples: S candidate plans per drone and iteration (sample 0 is the current mean).
        elites: K best samples the mean/std are refit to.
        iterations: refits per planning step.
        horizon: H world-model steps (1/12 s each).
        temperature: softmax temperature of the elite weights [cost units].
        min_std, max_std: bounds of the sampling std (normalised action units, or latent units).
        max_plan_speed: candidates are projected to this speed [m/s].
        plan_yaw: plan the yaw rate too (False: yaw rate 0).
        action_space: "raw" (H·4 actions) or "latent" (the action autoencoder's latent).
        shared_noise: one noise tensor for all drones (saves drawing B× the noise; per-drone
            samples stay i.i.d., only correlated across drones).
        w_goal, w_terminal, w_collision, w_progress, w_smooth, w_fence, w_speed, w_neighbour:
            cost weights. neighbour_margin: distance below which neighbours cost [m].
        fence_min, fence_max: geofence box [m], map ENU.
    """

    samples: int = 256
    elites: int = 32
    iterations: int = 4
    horizon: int = 8
    temperature: float = 0.5
    min_std: float = 0.03
    max_std: float = 0.25
    max_plan_speed: float = 3.0
    plan_yaw: bool = False
    action_space: str = "latent"
    shared_noise: bool = False
    w_goal: float = 1.0
    w_terminal: float = 2.0
    w_collision: float = 20.0
    w_progress: float = 0.5
    w_smooth: float = 0.05
    w_fence: float = 20.0
    w_speed: float = 0.0
    w_neighbour: float = 200.0
    neighbour_margin: float = 0.8
    fence_min: tuple[float, float, float] = (0.3, 0.3, 0.0)
    fence_max: tuple[float, float, float] = (39.7, 29.7, 5.5)

    def __post_init__(self) -> None:
        for name in ("samples", "elites", "horizon"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"planner config: {name}: expected >= 1, got {getattr(self, name)}")
        if self.iterations < 0:
            raise ConfigError(f"planner config: iterations: expected >= 0, got {self.iterations}")
        if self.elites > self.samples:
            raise ConfigError(
                f"planner config: elites ({self.elites}) must not exceed samples ({self.samples})"
            )
        if not (self.temperature > 0 and 0 <= self.min_std <= self.max_std and self.max_plan_speed > 0):
            raise ConfigError(
                "planner config: expected temperature > 0, 0 <= min_std <= max_std, "
                f"max_plan_speed > 0; got {self.temperature}, {self.min_std}, {self.max_std}, "
                f"{self.max_plan_speed}"
            )
        if self.action_space not in ACTION_SPACES:
            raise ConfigError(
                f"planner config: action_space: expected one of {ACTION_SPACES}, got {self.action_space!r}"
            )
        for name in ("fence_min", "fence_max"):
            if len(getattr(self, name)) != 3:
                raise ConfigError(f"planner config: {name}: expected 3 numbers, got {getattr(self, name)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    def with_scenario(self, scenario: Any) -> PlannerConfig:
        """This config with the geofence of a :class:`wm_agent.sim.Scenario`."""
        return replace(
            self,
            fence_min=tuple(float(x) for x in scenario.geofence_min),  # type: ignore[arg-type]
            fence_max=tuple(float(x) for x in scenario.geofence_max),  # type: ignore[arg-type]
        )


FULL = PlannerConfig()
"""The single-drone configuration: 256 samples × 4 iterations × 8 steps in the latent action space
(latent actions won the closed-loop check on time to goal and clearance at a lower cost; see
docs/PLANNER.md)."""

FLEET = PlannerConfig(samples=16, elites=4, iterations=1, action_space="latent", shared_noise=True)
"""The fleet configuration (1,000 drones per call): 16 samples × 1 iteration × 8 steps in the
latent action space; the warm start carries the optimisation across steps (one refit per step
instead of four), one noise tensor for all drones."""


class ActionCodec(Protocol):
    """Latent action autoencoder as the plan graph uses it (see ``latent_actions``)."""

    latent_dim: int
    horizon: int

    def encode_plan(self, plan: torch.Tensor) -> torch.Tensor:
        """(N, H, 4) → (N, K)."""

    def decode_plan(self, code: torch.Tensor) -> torch.Tensor:
        """(N, K) → (N, H, 4)."""


def fast_mish(x: torch.Tensor) -> torch.Tensor:
    """Mish ``x·tanh(softplus(x))`` with one exp: tanh(log(1 + n)) = t / (t + 2), t = n(n + 2),
    n = eᕽ (clamped at x = 20, where the ratio is 1 in float32). Equal to the model's Mish to
    float rounding; ONNX Runtime's Softplus is scalar code and was 40 % of the plan time."""
    n = torch.exp(torch.clamp(x, max=20.0))
    t = n * (n + 2.0)
    return x * (t / (t + 2.0))


def run_layers(layers: nn.Sequential | list[nn.Module], x: torch.Tensor, for_export: bool
               ) -> torch.Tensor:
    """Apply ``layers`` with :func:`fast_mish` (export) or torch's fused ``F.mish`` (eager) in
    place of every Mish module — all three are the same function up to float rounding."""
    for mod in layers:
        if isinstance(mod, Mish):
            x = fast_mish(x) if for_export else F.mish(x)
        else:
            x = mod(x)
    return x


def shift_plan(prev_plan: torch.Tensor) -> torch.Tensor:
    """Warm start: drop the executed first action, repeat the last. (B, H, A) → (B, H, A)."""
    return torch.cat([prev_plan[:, 1:], prev_plan[:, -1:]], dim=1)


class PlanGraph(nn.Module):
    """One planning step for B drones (torch reference and ONNX export source).

    Args:
        model: the world model (eval mode). config: settings. action_spec: normalisation.
        codec: the latent action autoencoder (required for ``action_space="latent"``).

    ``forward(obs (B, Dobs), pos (B, 3) [m], goal (B, 3) [m], prev_plan (B, H, 4), noise
    (B or 1, I, S, D))`` → action (B, 4), plan (B, H, 4), cost (B,), collision_prob (B,),
    min_clearance (B,) [m] (predicted: smallest decoded sector/up clearance along the plan).
    """

    fence_min: torch.Tensor  # (3,) [m]
    fence_max: torch.Tensor  # (3,) [m]
    yaw_mask: torch.Tensor  # (4,)
    step_times: torch.Tensor  # (H,) [s]
    w_z: torch.Tensor  # (L, Hd + Hh)
    w_a: torch.Tensor  # (4, Hd + Hh)
    b_in: torch.Tensor  # (Hd + Hh,)

    def __init__(self, model: WorldModel, config: PlannerConfig, action_spec: ActionSpec,
                 codec: nn.Module | None = None, obs_spec: ObservationSpec | None = None):
        super().__init__()
        if config.action_space == "latent" and codec is None:
            raise ConfigError(
                "planner: action_space 'latent' needs the latent action autoencoder; train it with "
                "`python -m wm_agent.planning.latent_actions --model <model folder>` or use "
                "PlannerConfig(action_space='raw')"
            )
        self.model = model
        self.config = config
        self.codec = codec if config.action_space == "latent" else None
        self.max_speed = float(action_spec.max_speed)
        spec = obs_spec or ObservationSpec()
        self.sect = spec.slice("sectors")
        self.up = spec.slice("clearance").start
        self.nb = spec.slice("neighbours")
        self.k_nb = spec.neighbours
        self.dt = spec.dt
        self.register_buffer("step_times", spec.dt * torch.arange(1, config.horizon + 1, dtype=torch.float32))
        self.register_buffer("fence_min", torch.tensor(config.fence_min, dtype=torch.float32))
        self.register_buffer("fence_max", torch.tensor(config.fence_max, dtype=torch.float32))
        self.register_buffer("yaw_mask", torch.tensor([1.0, 1.0, 1.0, 1.0 if config.plan_yaw else 0.0]))
        # Fused first layer of the dynamics and the transition head (both read [z, a]): one
        # GEMM on z per step; the action part of every step is computed once per rollout.
        dyn0, head0 = model.dynamics[0], model.transition_head[0]
        if not (isinstance(dyn0, nn.Linear) and isinstance(head0, nn.Linear)):
            raise ConfigError("planner: the dynamics and transition head must start with a Linear layer")
        lat = model.config.latent_dim
        w = torch.cat([dyn0.weight, head0.weight], 0).detach().clone()
        self.split = int(dyn0.out_features)
        self.register_buffer("w_z", w[:, :lat].t().contiguous())
        self.register_buffer("w_a", w[:, lat:].t().contiguous())
        self.register_buffer("b_in", torch.cat([dyn0.bias, head0.bias]).detach().clone())
        self.dyn_rest = list(model.dynamics)[1:]
        self.for_export = False  # True while exporting: ONNX-friendly activations
        self.head_rest = list(model.transition_head)[1:]

    @property
    def param_dim(self) -> int:
        """D: size of the searched vector per drone."""
        if self.codec is not None:
            return int(self.codec.latent_dim)  # type: ignore[arg-type]
        return self.config.horizon * ACTION_DIM

    # -- search space ----------------------------------------------------------------------
    def to_actions(self, params: torch.Tensor) -> torch.Tensor:
        """(N, D) parameters → (N, H, 4) feasible normalised actions."""
        h = self.config.horizon
        if self.codec is not None:
            a = self.codec.decode_plan(params)  # type: ignore[operator]
        else:
            a = params.reshape(-1, h, ACTION_DIM)
        a = torch.clamp(a, -1.0, 1.0) * self.yaw_mask
        limit = self.config.max_plan_speed / self.max_speed
        speed = torch.linalg.vector_norm(a[..., 0:3], dim=-1, keepdim=True)
        scale = torch.clamp(limit / torch.clamp(speed, min=1e-6), max=1.0)
        return torch.cat([a[..., 0:3] * scale, a[..., 3:4]], dim=-1)

    def to_params(self, plan: torch.Tensor) -> torch.Tensor:
        """(B, H, 4) actions → (B, D) parameters (latent: the autoencoder's encoding)."""
        if self.codec is not None:
            return self.codec.encode_plan(plan)  # type: ignore[operator]
        return plan.reshape(plan.shape[0], -1)

    # -- rollout ---------------------------------------------------------------------------
    def neighbours(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, Dobs) → neighbour rel. position (B, K, 3) [m], absolute velocity (B, K, 3) [m/s],
        mask (B, K)."""
        nb = obs[:, self.nb].reshape(obs.shape[0], self.k_nb, 7)
        vel = nb[:, :, 3:6] + obs[:, None, 0:3]
        return nb[:, :, 0:3], vel, (nb[:, :, 6] > 0.5).to(obs.dtype)

    def rollout_cost(self, z: torch.Tensor, pos: torch.Tensor, goal: torch.Tensor,
                     a_prev: torch.Tensor, actions: torch.Tensor,
                     nbs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                     decode: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cost of N = B·S candidate plans rolled out in latent space.

        Args:
            z (N, L), pos (N, 3) [m], goal (N, 3) [m], a_prev (N, 4) action before the plan,
            actions (N, H, 4). decode: also decode the latents for the predicted clearance.

        Returns:
            cost (N,), collision probability max over the plan (N,), predicted min clearance (N,)
            [m] (zeros unless ``decode``).
        """
        c = self.config
        m = self.model
        n, hor = actions.shape[0], c.horizon
        # Latent rollout: only the sequential part (one fused GEMM on z per step).
        # (H, N, F) so that step t is a contiguous block (cheap Gather on axis 0 in ONNX).
        a_in = (actions.transpose(0, 1).reshape(hor * n, ACTION_DIM) @ self.w_a + self.b_in
                ).reshape(hor, n, -1)
        heads: list[torch.Tensor] = []
        clear = torch.full_like(pos[:, 0], 1e3)
        for t in range(hor):
            x = z @ self.w_z + a_in[t]
            heads.append(run_layers(self.head_rest, x[:, self.split:], self.for_export))
            z = m.norm(z + run_layers(self.dyn_rest, x[:, :self.split], self.for_export))
            if decode:
                obs = m.decode(z)
                seen = torch.minimum(obs[:, self.sect].amin(-1), obs[:, self.up])
                clear = torch.minimum(clear, seen)
        # Costs of all steps at once on (N, H, ·) tensors (few large ops instead of many small).
        h = torch.stack(heads, dim=1)  # (N, H, 5)
        offset = torch.cumsum(h[..., 0:3] * m.dpos_std, dim=1)  # (N, H, 3) [m]
        p = pos[:, None] + offset
        prob = torch.sigmoid(h[..., 4])
        dist = torch.linalg.vector_norm(p - goal[:, None], dim=-1)
        per_step = c.w_goal * dist + c.w_collision * prob
        if c.w_progress:
            per_step = per_step - c.w_progress * h[..., 3] * m.progress_std[0]
        if c.w_fence:
            out = torch.relu(self.fence_min - p) + torch.relu(p - self.fence_max)
            per_step = per_step + c.w_fence * out.sum(-1)
        v = actions[..., 0:3] * self.max_speed  # (N, H, 3) [m/s]
        if c.w_smooth:
            dv = v - torch.cat([a_prev[:, None, 0:3] * self.max_speed, v[:, :-1]], dim=1)
            per_step = per_step + c.w_smooth * (dv**2).sum(-1)
        if c.w_speed:
            per_step = per_step + c.w_speed * (v**2).sum(-1)
        if nbs is not None and self.k_nb and c.w_neighbour:
            times = self.step_times[:hor]  # (H,) [s]
            # Neighbour k at step t relative to the start: r_k + v_k·t; me: offset_t.
            rel = (nbs[0][:, None] + nbs[1][:, None] * times[None, :, None, None]
                   - offset[:, :, None])  # (N, H, K, 3)
            gap = torch.relu(c.neighbour_margin - torch.linalg.vector_norm(rel, dim=-1))
            per_step = per_step + c.w_neighbour * (nbs[2][:, None] * gap**2).sum(-1)
        cost = per_step.sum(1) + c.w_terminal * dist[:, -1]
        risk = prob.amax(1)
        return cost, risk, clear if decode else torch.zeros_like(cost)

    def forward(self, obs: torch.Tensor, pos: torch.Tensor, goal: torch.Tensor,
                prev_plan: torch.Tensor, noise: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.config
        b = obs.shape[0]
        s, k = c.samples, c.elites
        d = self.param_dim
        # 1. Encode once; every sample of a drone starts from its latent.
        z = self.model.encode(obs)
        zs = z[:, None].expand(b, s, z.shape[-1]).reshape(b * s, -1)
        ps = pos[:, None].expand(b, s, 3).reshape(b * s, 3)
        gs = goal[:, None].expand(b, s, 3).reshape(b * s, 3)
        a_prev = prev_plan[:, 0]
        aps = a_prev[:, None].expand(b, s, ACTION_DIM).reshape(b * s, ACTION_DIM)
        nbs = self.neighbours(obs)
        nbs_s = tuple(x[:, None].expand(b, s, *x.shape[1:]).reshape(b * s, *x.shape[1:]) for x in nbs)
        # 2. Warm start: the previous plan shifted by one step; full exploration std.
        mean = self.to_params(shift_plan(prev_plan))
        std = torch.full_like(mean, c.max_std)
        for i in range(c.iterations):
            # 3. Sample around the mean (sample 0 is the mean itself).
            params = mean[:, None] + std[:, None] * noise[:, i]
            params = torch.cat([mean[:, None], params[:, 1:]], dim=1)  # (B, S, D)
            # 4. Decode/project and roll out all B·S candidates in one batch.
            actions = self.to_actions(params.reshape(b * s, d))
            cost, _, _ = self.rollout_cost(zs, ps, gs, aps, actions, nbs_s)  # type: ignore[arg-type]
            cost = cost.reshape(b, s)
            # 5. Elites: the K lowest costs (TopK in ONNX).
            neg, idx = torch.topk(-cost, k, dim=1)
            elite = torch.gather(params, 1, idx[:, :, None].expand(b, k, d))
            # 6. Refit mean/std with softmax weights exp(−(cost − min)/temperature).
            w = torch.softmax((neg - neg[:, 0:1]) / c.temperature, dim=1)[:, :, None]
            mean = (w * elite).sum(1)
            std = torch.sqrt((w * (elite - mean[:, None]) ** 2).sum(1) + 1e-12)
            std = torch.clamp(std, c.min_std, c.max_std)
        # 7. The plan is the mean; score it once more with the decoder for the clearance.
        plan = self.to_actions(mean)
        cost, risk, clear = self.rollout_cost(z, pos, goal, a_prev, plan, nbs, decode=True)
        return plan[:, 0], plan, cost, risk, clear


def stagger_step(
    plans: NDArray[np.float32], new_plans: NDArray[np.float32], replanned: NDArray[np.intp]
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Staggered replanning for a fleet: drones in ``replanned`` take their new plan, the others
    advance their previous plan by one step (the action executed now is ``plan[:, 0]``).

    Args:
        plans: (N, H, 4) every drone's current plan. new_plans: (len(replanned), H, 4).
        replanned: indices of the drones planned this step.

    Returns:
        (N, H, 4) plans whose first action is the command now, and (N,) predicted clearance
        placeholder (inf: unknown for drones following an older plan).
    """
    out = np.concatenate([plans[:, 1:], plans[:, -1:]], axis=1)
    out[replanned] = new_plans
    return out.astype(np.float32), np.full(plans.shape[0], np.inf, np.float32)


class PlanResult(NamedTuple):
    """One planning step for B drones.

    Attributes:
        action: (B, 4) float32 first action, normalised [-1, 1] (vx, vy, vz, yaw_rate).
        cmd_vel: (B, 3) float64 its velocity setpoint [m/s], map ENU.
        yaw_rate: (B,) float64 [rad/s].
        plan: (B, H, 4) float32 mean plan (normalised), the next call's warm start.
        cost: (B,) float32 predicted cost of the plan (inf for invalid rows).
        collision_prob: (B,) float32 max predicted collision probability along the plan.
        min_clearance: (B,) float32 predicted smallest obstacle clearance along the plan [m].
        valid: (B,) bool — False: the row's inputs were invalid/non-finite; action is zero.
        latency_ms: wall time of the call [ms].
    """

    action: NDArray[np.float32]
    cmd_vel: NDArray[np.float64]
    yaw_rate: NDArray[np.float64]
    plan: NDArray[np.float32]
    cost: NDArray[np.float32]
    collision_prob: NDArray[np.float32]
    min_clearance: NDArray[np.float32]
    valid: NDArray[np.bool_]
    latency_ms: float


class PlanBackend(Protocol):
    """Runs :class:`PlanGraph` on numpy float32 inputs; torch / onnxruntime implement it."""

    name: str

    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """Outputs of :meth:`PlanGraph.forward` as float32 arrays."""

    def describe(self) -> dict[str, Any]:
        """Backend name, device / providers."""


class TorchPlanBackend:
    """Torch eager on the current device (CUDA when the model is there, else CPU)."""

    name = "torch"

    def __init__(self, graph: PlanGraph):
        self.graph = graph.eval()
        self.device = next(graph.model.parameters()).device

    @torch.no_grad()
    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """See :class:`PlanBackend`."""
        dev = self.device
        outs = self.graph(*(torch.from_numpy(x).to(dev) for x in (obs, pos, goal, prev_plan, noise)))
        return [o.cpu().numpy() for o in outs]

    def describe(self) -> dict[str, Any]:
        """See :class:`PlanBackend`."""
        return {"backend": self.name, "device": str(self.device)}


def _check(name: str, arr: Any, shape: tuple[int | str, ...]) -> NDArray[np.float32]:
    a = np.asarray(arr)
    want = tuple(s if isinstance(s, int) else -1 for s in shape)
    ok = a.ndim == len(shape) and all(w < 0 or w == g for w, g in zip(want, a.shape, strict=False))
    if not ok or not np.issubdtype(a.dtype, np.number):
        raise ModelError(
            f"planner: {name}: expected a numeric array of shape "
            f"({', '.join(str(s) for s in shape)}), got {a.dtype} {a.shape}"
        )
    return a.astype(np.float32, copy=False)


class Planner:
    """Plans B drones per call with a :class:`PlanBackend`; draws the noise from a seeded generator.

    Args:
        backend: runs the plan graph. config: settings (must match the backend's graph).
        action_spec: normalisation of actions. param_dim: D of the searched vector.
        obs_dim: observation size. seed: seed of the noise generator (``rng`` wins if given).
        rng: an explicit numpy generator.
    """

    def __init__(self, backend: PlanBackend, config: PlannerConfig, action_spec: ActionSpec,
                 param_dim: int, obs_dim: int = 51, seed: int = 0,
                 rng: np.random.Generator | None = None):
        self.backend = backend
        self.config = config
        self.action_spec = action_spec
        self.param_dim = param_dim
        self.obs_dim = obs_dim
        self.rng = rng if rng is not None else np.random.default_rng(seed)

    @property
    def name(self) -> str:
        """Backend name."""
        return self.backend.name

    def noise_shape(self, batch: int) -> tuple[int, int, int, int]:
        """(B or 1, I, S, D) standard-normal noise one call consumes."""
        c = self.config
        return (1 if c.shared_noise else batch, max(c.iterations, 1), c.samples, self.param_dim)

    def draw_noise(self, batch: int) -> NDArray[np.float32]:
        """Noise for one call from the planner's generator."""
        return self.rng.standard_normal(self.noise_shape(batch), dtype=np.float32)

    def plan(
        self,
        obs: NDArray[np.floating],
        pos: NDArray[np.floating],
        goal: NDArray[np.floating],
        prev_plan: NDArray[np.floating] | None = None,
        valid: NDArray[np.bool_] | None = None,
        noise: NDArray[np.floating] | None = None,
    ) -> PlanResult:
        """Plan one step for B drones.

        Args:
            obs: (B, 51) observations from ``build_observations``.
            pos: (B, 3) positions [m], map ENU. goal: (B, 3) goals [m].
            prev_plan: (B, H, 4) previous plans (normalised) for the warm start; None = zeros.
                Non-finite rows are replaced by zeros.
            valid: (B,) bool from ``build_observations`` (None: all valid).
            noise: (B or 1, I, S, D) standard-normal noise; None = drawn from the generator.

        Returns:
            :class:`PlanResult`; rows with invalid or non-finite obs/pos/goal get zero actions,
            the zero plan, cost inf, collision probability 1 and ``valid`` False.

        Raises:
            ModelError: an input of the wrong shape (the message names the expected shape).
        """
        t0 = time.perf_counter()
        c = self.config
        h = c.horizon
        o = _check("obs", obs, ("B", self.obs_dim))
        b = o.shape[0]
        p = _check("pos", pos, (b, 3))
        g = _check("goal", goal, (b, 3))
        pp = (np.zeros((b, h, ACTION_DIM), np.float32) if prev_plan is None
              else _check("prev_plan", prev_plan, (b, h, ACTION_DIM)))
        ok = np.ones(b, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
        if ok.shape != (b,):
            raise ModelError(f"planner: valid: expected shape ({b},), got {ok.shape}")
        ok = ok & np.isfinite(o).all(1) & np.isfinite(p).all(1) & np.isfinite(g).all(1)
        pp_ok = np.isfinite(pp).all(axis=(1, 2))
        if noise is None:
            nz = self.draw_noise(b)
        else:
            want = self.noise_shape(b)
            nz = _check("noise", noise, ("B", want[1], want[2], want[3]))
            if nz.shape[0] not in (1, b):
                raise ModelError(f"planner: noise: expected shape {want} (or batch 1), got {nz.shape}")
        if b == 0:
            e = np.zeros((0,), np.float32)
            return PlanResult(np.zeros((0, 4), np.float32), np.zeros((0, 3)), np.zeros(0),
                              np.zeros((0, h, 4), np.float32), e, e, e, ok, 0.0)
        clean = ok.all() and pp_ok.all()
        if not clean:
            o = np.where(ok[:, None], o, 0.0).astype(np.float32)
            p = np.where(ok[:, None], p, 0.0).astype(np.float32)
            g = np.where(ok[:, None], g, 0.0).astype(np.float32)
            pp = np.where((ok & pp_ok)[:, None, None], pp, 0.0).astype(np.float32)
        pp = np.clip(pp, -1.0, 1.0)
        outs = self.backend.run(np.ascontiguousarray(o), np.ascontiguousarray(p),
                                np.ascontiguousarray(g), np.ascontiguousarray(pp),
                                np.ascontiguousarray(nz))
        action, plan, cost, risk, clear = (np.asarray(x, np.float32) for x in outs)
        ok &= np.isfinite(action).all(1) & np.isfinite(plan).all(axis=(1, 2)) & np.isfinite(cost)
        if not ok.all():
            action = np.where(ok[:, None], action, 0.0).astype(np.float32)
            plan = np.where(ok[:, None, None], plan, 0.0).astype(np.float32)
            cost = np.where(ok, cost, np.inf).astype(np.float32)
            risk = np.where(ok, risk, 1.0).astype(np.float32)
            clear = np.where(ok, clear, 0.0).astype(np.float32)
        cmd_vel, yaw_rate = self.action_spec.denormalise(action)
        return PlanResult(action, cmd_vel, yaw_rate, plan, cost, risk, clear, ok,
                          (time.perf_counter() - t0) * 1e3)

    def describe(self) -> dict[str, Any]:
        """Backend description and the config."""
        return {**self.backend.describe(), "config": self.config.to_dict()}


def flops_per_plan(model: WorldModel, config: PlannerConfig, param_dim: int | None = None) -> float:
    """Multiply-adds × 2 of the dense layers in one planning step for ONE drone (the GEMM work).

    Counts the encoder once, per iteration S·H transition-head + dynamics evaluations (plus the
    latent decoder of the action autoencoder if any: not included), and the final scored plan
    with the decoder.
    """
    def linear_flops(mod: nn.Module) -> int:
        return sum(2 * m.in_features * m.out_features for m in mod.modules() if isinstance(m, nn.Linear))

    step = linear_flops(model.dynamics) + linear_flops(model.transition_head)
    total = linear_flops(model.encoder)
    total += config.iterations * config.samples * config.horizon * step
    total += config.horizon * (step + linear_flops(model.decoder))
    return float(total)


def describe_config(config: PlannerConfig) -> str:
    """Short label such as ``256x4x8 raw``."""
    return f"{config.samples}x{config.iterations}x{config.horizon} {config.action_space}"
