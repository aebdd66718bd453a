"""The plan graph: MPPI in the world model's latent space (TD-MPC2's ``_plan``), batched over drones.

One planning step for B drones is ONE batched computation: the B·S samples of every iteration are
flattened into the world model's batch. :class:`PlanGraph` is a pure-tensor ``nn.Module`` (no
Python branching on data, fixed iteration/horizon loops that unroll) so that exactly the same
code runs in torch eager and, exported, in ONNX Runtime (:mod:`wm_agent.planning.export`).
Settings are :class:`wm_agent.planning.config.PlannerConfig`; the numpy wrapper that feeds a
backend is :class:`wm_agent.planning.planner.Planner`.

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

from pathlib import Path
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from wm_agent.errors import ConfigError, ModelError
from wm_agent.planning.config import ACTION_DIM, PlannerConfig
from wm_agent.world_model.model import Mish, WorldModel
from wm_agent.world_model.spaces import ActionSpec, ObservationSpec


def fast_mish(x: torch.Tensor) -> torch.Tensor:
    """Mish ``x·tanh(softplus(x))`` with one exp: tanh(log(1 + n)) = t / (t + 2), t = n(n + 2),
    n = eᕽ (clamped at x = 20, where the ratio is 1 in float32). Equal to the model's Mish to
    float rounding; ONNX Runtime's Softplus is scalar code and was 40 % of the plan time."""
    n = torch.exp(torch.clamp(x, max=20.0))
    t = n * (n + 2.0)
    return x * (t / (t + 2.0))


SIMNORM_CLAMP = 60.0
"""|x| bound of :func:`fast_simnorm` (e⁶⁰·group stays finite in float32, e⁻⁶⁰ stays normal)."""


def fast_simnorm(x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """SimNorm (softmax over consecutive groups) as e / (e·G), e = exp(clamp(x, ±60)), G the
    block-diagonal ones matrix (L, L) of the groups: the group sums come back already broadcast
    to every entry. Equal to the softmax to float rounding while every entry is within ±60 (a
    softmax is shift-free, so no max subtraction is needed there); ONNX Runtime's Softmax over
    rows of 8 cost ~18 µs per step at 256 rows, this ~11 µs."""
    e = torch.exp(torch.clamp(x, -SIMNORM_CLAMP, SIMNORM_CLAMP))
    return e / torch.matmul(e, groups)


def _linear(mod: nn.Module) -> nn.Linear:
    """``mod`` as the Linear the plan graph expects there (a clear error otherwise)."""
    if not isinstance(mod, nn.Linear):
        raise ModelError(f"planner: expected a Linear layer in the model, found {type(mod).__name__}")
    return mod


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


class CostContext(NamedTuple):
    """Per-candidate cost inputs, computed once per plan (not per iteration) and laid out
    (·, 1, N) so that they broadcast over the (·, H, N) rollout tensors
    (:meth:`PlanGraph.cost_context`). Positions are relative to the candidate's start."""

    goal_rel: torch.Tensor  # (3, 1, N) goal − start [m]
    fence_centre: torch.Tensor  # (3, 1, N) geofence centre − start [m]
    a_prev: torch.Tensor  # (3, 1, N) normalised velocity command before the plan
    neighbours: torch.Tensor | None  # (K, 3, H, N) neighbour k at step t − start [m]


FAR = 1.0e4
"""Where an absent neighbour is put [m]: far beyond any margin, so it never costs."""


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

    Layout (what keeps the exported graph small; the math is the world model's): candidate
    actions are kept component-major, (C, H, N) with C = 4 when the yaw rate is planned, else 3
    (a zero yaw rate contributes nothing). The first Linear of the dynamics and of the
    transition head is split into its latent and action columns; the action part of all H steps
    is one GEMM before the rollout, so each step is ``addmm`` (z·W_z + that step's action term)
    and the rest of the dynamics MLP. The head (a Linear on the dynamics' first hidden layer
    inside the step with ``shared_head``, else its own MLP after the loop on all H·N rows)
    writes its output transposed, (5, H, N), already scaled to metres and cost units; the costs
    then broadcast over long contiguous rows against per-plan constants (:class:`CostContext`).
    """

    fence_mid: torch.Tensor  # (3, 1, 1) [m]
    fence_half: torch.Tensor  # (3, 1, 1) [m]
    step_times: torch.Tensor  # (H,) [s]
    sample_mask: torch.Tensor  # (1, 1, S, 1): 0 for sample 0 (the mean itself), else 1
    term_weights: torch.Tensor  # (1, T·H) weight of every stacked cost term and step
    speed_limit: torch.Tensor  # () max_plan_speed in normalised action units
    ones3: torch.Tensor  # (1, 3)
    simnorm_groups: torch.Tensor  # (L, L) block-diagonal ones of the SimNorm groups
    decoder_rows: torch.Tensor  # (C·H,) latent decoder output rows in (component, step) order

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
        self.channels = ACTION_DIM if config.plan_yaw else 3
        spec = obs_spec or ObservationSpec()
        self.sect = spec.slice("sectors")
        self.up = spec.slice("clearance").start
        self.nb = spec.slice("neighbours")
        self.k_nb = spec.neighbours
        hor = config.horizon
        fmin = torch.tensor(config.fence_min, dtype=torch.float32)[:, None, None]
        fmax = torch.tensor(config.fence_max, dtype=torch.float32)[:, None, None]
        self.register_buffer("fence_mid", (fmin + fmax) / 2)
        self.register_buffer("fence_half", (fmax - fmin) / 2)
        self.register_buffer("step_times", spec.dt * torch.arange(1, hor + 1, dtype=torch.float32))
        mask = torch.ones(1, 1, config.samples, 1)
        mask[:, :, 0] = 0.0
        self.register_buffer("sample_mask", mask)
        # Weights of the stacked per-step cost terms (:meth:`_costs`), one row per (term, step).
        ms2 = self.max_speed**2
        dist_w = torch.full((hor,), float(config.w_goal))  # goal distance, + terminal at H
        dist_w[-1] += config.w_terminal
        terms = [dist_w, torch.full((hor,), float(config.w_collision))]
        terms += [torch.ones(hor)] if config.w_progress else []
        terms += [torch.full((hor,), float(config.w_fence))] if config.w_fence else []
        terms += [torch.full((hor,), config.w_smooth * ms2)] if config.w_smooth else []
        terms += [torch.full((hor,), config.w_speed * ms2)] if config.w_speed else []
        self.neighbour_term = bool(config.w_neighbour and self.k_nb)
        terms += [torch.full((hor,), float(config.w_neighbour))] if self.neighbour_term else []
        self.register_buffer("term_weights", torch.cat(terms)[None, :])  # (1, T·H)
        self.register_buffer("ones3", torch.ones(1, 3))
        self.register_buffer("speed_limit", torch.tensor(config.max_plan_speed / self.max_speed))
        lat, grp = model.config.latent_dim, model.config.simnorm_group
        self.register_buffer("simnorm_groups", torch.block_diag(*[torch.ones(grp, grp)] * (lat // grp))
                             if grp else torch.zeros(0))
        # Rows of the latent decoder's output Linear in (component, step) order, yaw last.
        self.register_buffer("decoder_rows", torch.tensor(
            [t * ACTION_DIM + ch for ch in range(self.channels) for t in range(hor)]))
        self.for_export = False  # True while exporting: ONNX-friendly activations

    @property
    def param_dim(self) -> int:
        """D: size of the searched vector per drone."""
        if self.codec is not None:
            return int(self.codec.latent_dim)  # type: ignore[arg-type]
        return self.config.horizon * ACTION_DIM

    # -- search space ----------------------------------------------------------------------
    def project(self, params: torch.Tensor) -> torch.Tensor:
        """(N, D) parameters → (C, H, N) feasible normalised actions, component-major:
        components within [-1, 1], speed ≤ ``max_plan_speed``; C = 4 with the yaw rate when
        ``plan_yaw``, else 3 (the yaw rate is 0)."""
        h, ch = self.config.horizon, self.channels
        if self.codec is not None:
            # The autoencoder's decoder with its output rows reordered: (C·H, N) directly,
            # already in [-1, 1] (tanh).
            dec = list(cast(nn.Sequential, self.codec.decoder))
            hid = run_layers(dec[:-1], params, self.for_export)
            last = _linear(dec[-1])
            a = torch.tanh(torch.addmm(last.bias[self.decoder_rows][:, None],
                                       last.weight[self.decoder_rows], hid.t()))
            a = a.reshape(ch, h, -1)
        else:
            a = torch.clamp(params.reshape(-1, h, ACTION_DIM).permute(2, 1, 0)[:ch], -1.0, 1.0)
        # Speed limit: scale = limit / max(speed, limit) (= min(1, limit / speed)).
        limit = self.config.max_plan_speed / self.max_speed
        v = a[0:3] if ch > 3 else a
        speed = self._length(v)[0]  # (H, N)
        scale = torch.div(self.speed_limit, torch.clamp(speed, min=limit))
        return torch.cat([v * scale, a[3:]], dim=0) if ch > 3 else v * scale

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
        """Cost of N candidate plans rolled out in latent space (all 4 action components used).

        Args:
            z (N, L), pos (N, 3) [m], goal (N, 3) [m], a_prev (N, 4) action before the plan,
            actions (N, H, 4). decode: also decode the latents for the predicted clearance.

        Returns:
            cost (N,), collision probability max over the plan (N,), predicted min clearance (N,)
            [m] (zeros unless ``decode``).
        """
        ctx = self.cost_context(pos, goal, a_prev, nbs)
        return self.rollout_cost_t(z, ctx, actions.permute(2, 1, 0), decode)

    def cost_context(self, pos: torch.Tensor, goal: torch.Tensor, a_prev: torch.Tensor,
                     nbs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
                     ) -> CostContext:
        """Per-candidate cost inputs (N rows) → :class:`CostContext` ((·, 1, N) layout)."""
        start = pos.t()[:, None, :]
        nb = None
        if nbs is not None and self.k_nb and self.config.w_neighbour:
            r, vel, mask = nbs  # (N, K, 3) [m], (N, K, 3) [m/s], (N, K)
            # Neighbour k at step t, constant velocity: r_k + v_k·t (relative to the start).
            traj = (r.permute(1, 2, 0)[:, :, None, :]
                    + vel.permute(1, 2, 0)[:, :, None, :] * self.step_times[None, None, :, None])
            nb = torch.where(mask.t()[:, None, None, :] > 0.5, traj, FAR)  # (K, 3, H, N)
        return CostContext(goal.t()[:, None, :] - start, self.fence_mid - start,
                           a_prev[:, 0:3].t()[:, None, :], nb)

    @staticmethod
    def _repeat_ctx(ctx: CostContext, s: int) -> CostContext:
        """Context of B drones → of their B·S samples (each drone's columns repeated S times)."""
        def rep(x: torch.Tensor) -> torch.Tensor:
            return x[..., None].expand(*x.shape, s).reshape(*x.shape[:-1], -1)

        return CostContext(rep(ctx.goal_rel), rep(ctx.fence_centre), rep(ctx.a_prev),
                           None if ctx.neighbours is None else rep(ctx.neighbours))

    def _split_first(self, layers: nn.Sequential, channels: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First Linear of an MLP on [z, a] → (W_z (L, W), W_a (C, W), bias (W,)): x·Wᵀ + b =
        z·W_z + a·W_a + b (a zero yaw column dropped when C = 3)."""
        first = _linear(layers[0])
        lat = self.model.config.latent_dim
        w = first.weight
        return w[:, :lat].t(), w[:, lat:lat + channels].t(), first.bias

    def _head_scale(self) -> torch.Tensor:
        """(5,) head output → metres and cost units: dpos·dpos_std [m], −w_progress·progress [m],
        collision logit."""
        m = self.model
        return torch.cat([m.dpos_std, -self.config.w_progress * m.progress_std,
                          torch.ones_like(m.progress_std)])

    def rollout_cost_t(self, z: torch.Tensor, ctx: CostContext, actions_t: torch.Tensor,
                       decode: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`rollout_cost` on a :class:`CostContext` with the actions component-major:
        (C, H, N), C = 3 (no yaw rate) or 4."""
        c = self.config
        m = self.model
        hor = c.horizon
        ch = int(actions_t.shape[0])  # static: 3 or 4 (a constant in the exported graph)
        a_rows = actions_t.reshape(ch, -1).t()  # (H·N, C), step-major
        # Action part of the first dynamics layer for all H steps at once (+ its bias).
        wz, wa, b = self._split_first(m.dynamics, ch)
        a_dyn = torch.addmm(b, a_rows, wa).reshape(hor, -1, wa.shape[1]).unbind(0)
        dyn = list(m.dynamics)
        shared = m.config.shared_head
        if shared:  # the head reads the dynamics' first hidden layer: (5, N) per step
            k = m.trunk_modules
            last = _linear(m.transition_head)
            sc = self._head_scale()
            head_w, head_b = last.weight * sc[:, None], (last.bias * sc)[:, None]
        inputs: list[torch.Tensor] = []  # shared head: its outputs; else the latents it reads
        latents: list[torch.Tensor] = []
        for t in range(hor):  # the world model's step: z' = SimNorm(z + f([z, a]))
            pre = torch.addmm(a_dyn[t], z, wz)
            if shared:
                hid = run_layers(dyn[1:k], pre, self.for_export)
                inputs.append(torch.addmm(head_b, head_w, hid.t()))
                z = self._norm(z + run_layers(dyn[k:], hid, self.for_export))
            else:
                inputs.append(z)
                z = self._norm(z + run_layers(dyn[1:], pre, self.for_export))
            latents.append(z)
        if decode:  # predicted clearance: decode all H latents at once, as (H·N) rows
            obs = m.decode(torch.cat(latents, dim=0))  # (H·N, Dobs)
            seen = torch.minimum(obs[:, self.sect].amin(-1), obs[:, self.up])  # (H·N,)
            clear = seen.reshape(hor, -1).amin(0)
        else:
            clear = torch.zeros_like(z[:, 0])
        out = (torch.cat(inputs, dim=1) if shared
               else self._head_t(torch.cat(inputs, dim=0), a_rows, ch)).reshape(5, hor, -1)
        cost, prob = self._costs(out, actions_t, ctx)
        return cost, prob.amax(0), clear

    def _length(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, N) vectors → (1, H, N) lengths; the sum of squares as a (1, 3) product
        (in ONNX Runtime 2× faster than ReduceL2 or ReduceSum over a leading axis of 3)."""
        sq = torch.matmul(self.ones3, (x * x).reshape(3, -1))
        return torch.sqrt(sq).reshape(1, self.config.horizon, -1)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        """The model's latent normalisation (:func:`fast_simnorm` while exporting)."""
        if self.for_export and self.simnorm_groups.numel():
            return fast_simnorm(x, self.simnorm_groups)
        return cast(torch.Tensor, self.model.norm(x))

    def _head_t(self, z_rows: torch.Tensor, a_rows: torch.Tensor, ch: int) -> torch.Tensor:
        """Transition head on (H·N) rows of [z, a] (C action columns) → (5, H·N), scaled
        (:meth:`_head_scale`)."""
        layers = cast(nn.Sequential, self.model.transition_head)
        head = list(layers)
        wz, wa, b = self._split_first(layers, ch)
        s = self._head_scale()
        if len(head) == 1:  # a single Linear: scale its columns
            return torch.addmm(torch.addmm(b * s, a_rows, wa * s), z_rows, wz * s).t()
        hid = run_layers(head[1:-1], torch.addmm(torch.addmm(b, a_rows, wa), z_rows, wz),
                         self.for_export)
        last = _linear(head[-1])
        return torch.addmm((last.bias * s)[:, None], last.weight * s[:, None], hid.t())

    def _costs(self, out: torch.Tensor, actions_t: torch.Tensor, ctx: CostContext
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cost (N,) and per-step collision probability (H, N) from the scaled head output
        (5, H, N) and the actions (C, H, N); see the module docstring for the terms. Every term
        is a (1, H, N) slab; the slabs are stacked and weighted in one product with
        ``term_weights`` (the terminal weight is the last step's goal-distance weight)."""
        c = self.config
        offset = torch.cumsum(out[0:3], dim=1)  # (3, H, N) [m] from the start
        prob = torch.sigmoid(out[4:5])  # (1, H, N)
        terms = [self._length(offset - ctx.goal_rel), prob]
        if c.w_progress:
            terms.append(out[3:4])  # −w_progress·progress [m], folded into the head's scale
        if c.w_fence:  # relu(lo − p) + relu(p − hi) = relu(|p − mid| − half) for lo ≤ hi
            outside = torch.relu(torch.abs(offset - ctx.fence_centre) - self.fence_half)
            terms.append(outside.sum(0, keepdim=True))
        v = actions_t[0:3]  # normalised; the m/s factor is in the weights
        if c.w_smooth:
            dv = v - torch.cat([ctx.a_prev, v[:, :-1]], dim=1)
            terms.append((dv * dv).sum(0, keepdim=True))
        if c.w_speed:
            terms.append((v * v).sum(0, keepdim=True))
        if ctx.neighbours is not None:
            rel = ctx.neighbours - offset  # (K, 3, H, N)
            dist = torch.sqrt((rel * rel).sum(1))  # (K, H, N) (ORT's ReduceL2 is 3× slower)
            gap = torch.relu(c.neighbour_margin - dist)
            terms.append((gap * gap).sum(0, keepdim=True))
        weights = self.term_weights
        if self.neighbour_term and ctx.neighbours is None:  # no neighbours given: no such term
            weights = weights[:, :-c.horizon]
        stacked = torch.cat(terms, dim=0).reshape(len(terms) * c.horizon, -1)  # (T·H, N)
        return torch.matmul(weights, stacked).reshape(-1), prob[0]

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
        ctx = self.cost_context(pos, goal, prev_plan[:, 0], self.neighbours(obs))
        ctx_s = self._repeat_ctx(ctx, s)
        # 2. Warm start: the previous plan shifted by one step; full exploration std.
        mean = self.to_params(shift_plan(prev_plan))[:, None]  # (B, 1, D)
        std = torch.full_like(mean, c.max_std)
        noise = noise * self.sample_mask  # sample 0 of every iteration is the mean itself
        for i in range(c.iterations):
            # 3. Sample around the mean; decode/project and roll out all B·S in one batch.
            params = mean + std * noise[:, i]  # (B, S, D)
            cost, _, _ = self.rollout_cost_t(zs, ctx_s, self.project(params.reshape(b * s, d)))
            # 4. Elites: the K lowest costs (TopK in ONNX), ascending.
            top, idx = torch.topk(cost.reshape(b, s), k, dim=1, largest=False)
            elite = torch.gather(params, 1, idx[:, :, None].expand(b, k, d))
            # 5. Refit mean/std with softmax weights exp(−(cost − min)/temperature) (the
            #    softmax subtracts the max, −min/temperature, itself).
            w = torch.softmax(top * (-1.0 / c.temperature), dim=1)[:, :, None]  # (B, K, 1)
            mean = (w * elite).sum(1, keepdim=True)
            dev = elite - mean
            std = torch.clamp(torch.sqrt((w * dev * dev).sum(1, keepdim=True) + 1e-12),
                              c.min_std, c.max_std)
        mean = mean[:, 0]
        # 6. The plan is the mean; score it once more with the decoder for the clearance.
        a = self.project(mean)
        cost, risk, clear = self.rollout_cost_t(z, ctx, a, decode=True)
        plan = (a if a.shape[0] == ACTION_DIM
                else torch.cat([a, torch.zeros_like(a[0:1])], dim=0)).permute(2, 1, 0)
        return plan[:, 0], plan, cost, risk, clear


def flops_per_plan(model: WorldModel, config: PlannerConfig) -> float:
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



def build_graph(model_folder: Path | str, config: PlannerConfig, *, device: str | torch.device = "cpu",
                verify: bool = True) -> tuple[PlanGraph, ActionSpec, dict[str, Any]]:
    """Load the model (hash-verified) and, for latent actions, the autoencoder; build the graph."""
    from wm_agent.world_model.artifacts import load_model

    folder = Path(model_folder)
    model, card = load_model(folder, device=device, verify=verify)
    act = ActionSpec.from_dict(card["action_spec"]) if "action_spec" in card else ActionSpec()
    spec = ObservationSpec.from_dict(card["observation_spec"]) if "observation_spec" in card else None
    codec = None
    if config.action_space == "latent":
        from wm_agent.planning.latent_actions import load_autoencoder

        codec = load_autoencoder(folder, config.horizon).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    graph = PlanGraph(model, config, act, codec, spec).to(device).eval()
    return graph, act, card
