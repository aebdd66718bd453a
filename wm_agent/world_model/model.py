"""The world model (TD-MPC2-like, small): encoder, latent dynamics, cost heads, decoder.

    z      = encode(obs)                         obs (B, D) raw physical units → z (B, L)
    z'     = next(z, a)   = SimNorm(z + f([z, a]))   residual latent dynamics
    heads  = heads(z, a)  → dpos (B, 3) [m], progress (B,) [m], collision logit (B,)
    obs'   = decode(z')   → (B, D) raw physical units; obs'[:, 0:3] is the next velocity [m/s]

Normalisation statistics (obs mean/std, target scales) are buffers of the module, so the
safetensors file holds everything needed to run it and the ONNX graph takes raw observations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wm_agent.errors import ConfigError, ModelError


@dataclass(frozen=True)
class WorldModelConfig:
    """Architecture.

    Attributes:
        obs_dim: observation size D. action_dim: action size A.
        latent_dim: L. hidden_dim: MLP width. encoder_layers / dynamics_layers: hidden layers.
        head_hidden: width of the decoder MLP and of the transition-head MLP (none with
            ``shared_head``).
        simnorm_group: SimNorm group size (softmax over groups of this size; 0 = off).
        obs_clip: normalised observations are clipped to ±obs_clip.
        activation: hidden activation, ``"mish"`` (TD-MPC2) or ``"relu"`` (a planning model:
            ONNX Runtime fuses it into the GEMM).
        layer_norm: LayerNorm after every hidden Linear of the encoder, heads and decoder
            (TD-MPC2).
        dynamics_layer_norm: the same in the latent dynamics MLP, the only part a planner
            runs once per rollout step (off in the planning model: it is ~20 % of a fleet plan);
            None (cards without the key): as ``layer_norm``.
        shared_head: the transition head is one Linear on the dynamics MLP's first hidden
            layer instead of its own MLP on [z, a] (MuZero's dynamics network predicts the
            reward beside the next state, arXiv:1911.08265): a planner then runs no second MLP
            per candidate and step (the planning model).
    """

    obs_dim: int = 51
    action_dim: int = 4
    latent_dim: int = 64
    hidden_dim: int = 192
    encoder_layers: int = 2
    dynamics_layers: int = 2
    head_hidden: int = 128
    simnorm_group: int = 8
    obs_clip: float = 10.0
    activation: str = "mish"
    layer_norm: bool = True
    dynamics_layer_norm: bool | None = None
    shared_head: bool = False

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"world model config: activation: expected one of {sorted(ACTIVATIONS)}, "
                f"got {self.activation!r}"
            )
        for name in ("obs_dim", "action_dim", "latent_dim", "hidden_dim", "encoder_layers",
                     "dynamics_layers", "head_hidden"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"world model config: {name}: expected >= 1, got {getattr(self, name)}")
        if self.simnorm_group < 0 or (
            self.simnorm_group and self.latent_dim % self.simnorm_group
        ):
            raise ConfigError(
                f"world model config: simnorm_group: {self.simnorm_group} must be 0 or divide "
                f"latent_dim {self.latent_dim}"
            )

    @property
    def dynamics_ln(self) -> bool:
        """Whether the dynamics MLP has LayerNorm (``dynamics_layer_norm``, None: as
        ``layer_norm``)."""
        return self.layer_norm if self.dynamics_layer_norm is None else self.dynamics_layer_norm

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorldModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer card)."""
        known = set(cls.__dataclass_fields__)
        extra = set(data) - known
        if extra:
            raise ModelError(f"world model config: unknown keys {sorted(extra)}; newer model card?")
        try:
            return cls(**data)
        except (TypeError, ConfigError) as exc:
            raise ModelError(f"world model config: invalid ({exc})") from exc


class SimNorm(nn.Module):
    """Simplicial normalisation (TD-MPC2): softmax over consecutive groups of ``group`` entries."""

    def __init__(self, group: int, dim: int | None = None):
        super().__init__()
        self.group = group
        self.dim = dim  # L when known: 2-D inputs reshape back to a constant (-1, L) in ONNX

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.softmax(x.reshape(-1, self.group), dim=-1)
        if self.dim is not None and x.dim() == 2:
            return y.reshape(-1, self.dim)
        return y.reshape(x.shape)


class Mish(nn.Module):
    """``x · tanh(softplus(x))`` from elementary ops (equal to ``nn.Mish``), so the ONNX graph
    holds Softplus/Tanh/Mul, which every TensorRT version parses."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.tanh(F.softplus(x))


ACTIVATIONS: dict[str, type[nn.Module]] = {"mish": Mish, "relu": nn.ReLU}


def mlp(inp: int, hidden: int, layers: int, out: int, activation: str = "mish",
        layer_norm: bool = True) -> nn.Sequential:
    """``layers`` × (Linear → LayerNorm → activation), then a Linear to ``out``."""
    mods: list[nn.Module] = []
    width = inp
    for _ in range(layers):
        mods.append(nn.Linear(width, hidden))
        if layer_norm:
            mods.append(nn.LayerNorm(hidden))
        mods.append(ACTIVATIONS[activation]())
        width = hidden
    mods.append(nn.Linear(width, out))
    return nn.Sequential(*mods)


class StepOutput(NamedTuple):
    """One latent step.

    Attributes:
        z_next: (B, L) next latent. dpos: (B, 3) position change over the step [m], map ENU.
        progress: (B,) predicted goal-distance decrease [m].
        collision_logit: (B,) logit of a collision / clearance < risk distance in the step.
        next_obs: (B, D) decoded next observation (physical units).
    """

    z_next: torch.Tensor
    dpos: torch.Tensor
    progress: torch.Tensor
    collision_logit: torch.Tensor
    next_obs: torch.Tensor


class WorldModel(nn.Module):
    """Encoder + latent dynamics + heads + decoder; see the module docstring.

    Args:
        config: architecture.
    """

    obs_mean: torch.Tensor  # (D,) [physical units]
    obs_std: torch.Tensor  # (D,)
    dpos_std: torch.Tensor  # (3,) [m]
    progress_std: torch.Tensor  # (1,) [m]

    def __init__(self, config: WorldModelConfig):
        super().__init__()
        self.config = config
        c = config
        act, ln = c.activation, c.layer_norm
        self.encoder = mlp(c.obs_dim, c.hidden_dim, c.encoder_layers, c.latent_dim, act, ln)
        self.dynamics = mlp(c.latent_dim + c.action_dim, c.hidden_dim, c.dynamics_layers,
                            c.latent_dim, act, c.dynamics_ln)
        self.trunk_modules = 3 if c.dynamics_ln else 2
        """Modules of the dynamics MLP's first hidden block (Linear[, LayerNorm], activation)."""
        self.transition_head: nn.Module = (
            nn.Linear(c.hidden_dim, 5) if c.shared_head
            else mlp(c.latent_dim + c.action_dim, c.head_hidden, 1, 5, act, ln))
        self.decoder = mlp(c.latent_dim, c.head_hidden, 1, c.obs_dim, act, ln)
        self.norm: nn.Module = (SimNorm(c.simnorm_group, c.latent_dim) if c.simnorm_group
                                  else nn.Identity())
        # Normalisation buffers (set from data by train.fit_normaliser).
        self.register_buffer("obs_mean", torch.zeros(c.obs_dim))
        self.register_buffer("obs_std", torch.ones(c.obs_dim))
        self.register_buffer("dpos_std", torch.ones(3))
        self.register_buffer("progress_std", torch.ones(1))

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, D) raw observations → (B, L) latent."""
        x = (obs - self.obs_mean) / self.obs_std
        x = torch.clamp(x, -self.config.obs_clip, self.config.obs_clip)
        return self.norm(self.encoder(x))

    def transition(self, z: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L), (B, A) normalised action → next latent (B, L) and the normalised heads
        (B, 5): dpos / dpos_std (3), progress / progress_std (1), collision logit (1)."""
        x = torch.cat([z, a], dim=-1)
        if self.config.shared_head:
            k = self.trunk_modules
            h = self.dynamics[:k](x)
            return self.norm(z + self.dynamics[k:](h)), self.transition_head(h)
        return self.norm(z + self.dynamics(x)), self.transition_head(x)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(B, L), (B, A) normalised action → (B, L) next latent."""
        return self.transition(z, a)[0]

    def heads_normalised(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """(B, 5): dpos / dpos_std (3), progress / progress_std (1), collision logit (1)."""
        return self.transition(z, a)[1]

    def decode_normalised(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) normalised observation."""
        return self.decoder(z)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L) → (B, D) observation in physical units."""
        return self.decoder(z) * self.obs_std + self.obs_mean

    def step(self, z: torch.Tensor, a: torch.Tensor) -> StepOutput:
        """One world-model step (``WM_DT``) from latent ``z`` under normalised action ``a``."""
        z_next, h = self.transition(z, a)
        return StepOutput(
            z_next=z_next,
            dpos=h[:, 0:3] * self.dpos_std,
            progress=h[:, 3] * self.progress_std[0],
            collision_logit=h[:, 4],
            next_obs=self.decode(z_next),
        )

    def rollout(self, obs: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Open-loop rollout for planning/evaluation.

        Args:
            obs: (B, D) start observations. actions: (B, H, A) normalised actions.

        Returns:
            dict with (B, H, …): ``dpos`` [m], ``offset`` cumulative position change [m],
            ``vel`` decoded velocity [m/s], ``progress`` [m], ``collision_logit``,
            ``next_obs``.
        """
        z = self.encode(obs)
        outs: list[StepOutput] = []
        for t in range(actions.shape[1]):
            o = self.step(z, actions[:, t])
            outs.append(o)
            z = o.z_next
        dpos = torch.stack([o.dpos for o in outs], dim=1)
        next_obs = torch.stack([o.next_obs for o in outs], dim=1)
        return {
            "dpos": dpos,
            "offset": torch.cumsum(dpos, dim=1),
            "vel": next_obs[..., 0:3],
            "progress": torch.stack([o.progress for o in outs], dim=1),
            "collision_logit": torch.stack([o.collision_logit for o in outs], dim=1),
            "next_obs": next_obs,
        }


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class EncoderGraph(nn.Module):
    """Export wrapper: obs (B, D) → z (B, L)."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.model.encode(obs)


class DynamicsGraph(nn.Module):
    """Export wrapper: (z (B, L), a (B, A)) → z_next, dpos, progress, collision_logit, next_obs."""

    def __init__(self, model: WorldModel):
        super().__init__()
        self.model = model

    def forward(
        self, z: torch.Tensor, action: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        o = self.model.step(z, action)
        return o.z_next, o.dpos, o.progress, o.collision_logit, o.next_obs
