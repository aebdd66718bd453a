"""The planner as the controllers call it: numpy in, numpy out, B drones per call.

:class:`Planner` checks inputs, isolates invalid rows, draws the sampling noise from a seeded
generator (a pre-drawn bank) and runs the plan graph through a :class:`PlanBackend` (torch eager
here; onnxruntime and TensorRT in :mod:`wm_agent.planning.backends`). :func:`stagger_step`
advances the plans of drones that were not replanned this step.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from wm_agent.errors import ModelError
from wm_agent.planning.config import ACTION_DIM, PlannerConfig
from wm_agent.planning.plan_graph import PlanGraph
from wm_agent.world_model.spaces import ActionSpec


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
        noise_bank: size of a pool of standard-normal numbers drawn once; calls that need at
            most a quarter of it take a window at a random offset (drawing 32 k normals costs
            ~0.6 ms, a tenth of a batch-1 plan; the window costs microseconds). 0: draw fresh
            noise every call.
    """

    def __init__(self, backend: PlanBackend, config: PlannerConfig, action_spec: ActionSpec,
                 param_dim: int, obs_dim: int = 51, seed: int = 0,
                 rng: np.random.Generator | None = None, noise_bank: int = 1 << 20):
        self.backend = backend
        self.config = config
        self.action_spec = action_spec
        self.param_dim = param_dim
        self.obs_dim = obs_dim
        self.seed = seed
        self.rng = rng if rng is not None else np.random.default_rng(seed)
        self._bank = (self.rng.standard_normal(noise_bank, dtype=np.float32) if noise_bank > 0
                      else np.zeros(0, np.float32))

    @property
    def name(self) -> str:
        """Backend name."""
        return self.backend.name

    def noise_shape(self, batch: int) -> tuple[int, int, int, int]:
        """(B or 1, I, S, D) standard-normal noise one call consumes."""
        c = self.config
        return (1 if c.shared_noise else batch, max(c.iterations, 1), c.samples, self.param_dim)

    def draw_noise(self, batch: int, key: int | None = None) -> NDArray[np.float32]:
        """Noise for one call: a window of the noise bank at a random offset, or fresh draws
        when the call needs more than a quarter of the bank.

        ``key`` (e.g. the planning step): the offset (or the draws) come from a generator
        seeded with (seed, key) instead of the planner's running one, so every planner built
        with the same seed draws the same noise for the same key however many calls it made
        before (planner shards, docs/ARCHITECTURE.md)."""
        shape = self.noise_shape(batch)
        n = int(np.prod(shape))
        rng = self.rng if key is None else np.random.default_rng((self.seed, int(key)))
        if 0 < n <= self._bank.size // 4:
            start = int(rng.integers(0, self._bank.size - n + 1))
            return self._bank[start:start + n].reshape(shape)
        return rng.standard_normal(shape, dtype=np.float32)

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
