"""Latent actions: a small autoencoder compressing an action chunk (H steps × 4) to K dims.

The planner can search in this K-dim space (``PlannerConfig(action_space="latent")``) and decode
each candidate to raw actions before the world-model rollout: fewer dimensions, smoother plans,
fewer samples needed. Trained on the action windows of the world model's dataset
(``TransitionDataset.window_starts(H)`` — the same windows the model is trained on), saved beside
the model as ``latent_actions.safetensors`` with a small card ``latent_actions.json`` (config,
data hash, roundtrip error, and the observation envelope of the same data: the per-feature
range the safety filter uses to detect observations outside the model's training envelope).

    python -m wm_agent.planning.latent_actions --data runs/wm/data/warehouse.npz --model models/wm_default
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from wm_agent.errors import ConfigError, ModelError, WmAgentError
from wm_agent.world_model.artifacts import CARD as MODEL_CARD
from wm_agent.world_model.artifacts import update_card
from wm_agent.world_model.dataset import TransitionDataset, load_dataset, sha256_file

WEIGHTS = "latent_actions.safetensors"
CARD = "latent_actions.json"
CARD_FORMAT = "wm_agent.latent_actions_card"
ACTION_DIM = 4


@dataclass(frozen=True)
class LatentActionConfig:
    """Autoencoder and training settings.

    Attributes:
        horizon: H actions per chunk (= the planner's horizon). latent_dim: K.
        hidden: MLP width. steps: optimiser steps. batch_size: chunks per step. lr: AdamW.
        seed: init and batch seed. envelope_margin: added on both sides of the per-feature
            observation range stored in the card [feature units].
    """

    horizon: int = 8
    latent_dim: int = 4
    hidden: int = 64
    steps: int = 3000
    batch_size: int = 512
    lr: float = 2e-3
    seed: int = 0
    envelope_margin: float = 0.5

    def __post_init__(self) -> None:
        for name in ("horizon", "latent_dim", "hidden", "steps", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"latent actions: {name}: expected >= 1, got {getattr(self, name)}")


class ActionAutoencoder(nn.Module):
    """(N, H, 4) normalised actions ↔ (N, K) codes; the decoder ends in tanh (actions in [-1, 1]).

    Args:
        horizon: H. latent_dim: K. hidden: MLP width.
    """

    def __init__(self, horizon: int, latent_dim: int, hidden: int = 64):
        super().__init__()
        self.horizon = horizon
        self.latent_dim = latent_dim
        self.hidden = hidden
        d = horizon * ACTION_DIM
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, d))

    def encode_plan(self, plan: torch.Tensor) -> torch.Tensor:
        """(N, H, 4) → (N, K)."""
        return self.encoder(plan.reshape(plan.shape[0], -1))

    def decode_plan(self, code: torch.Tensor) -> torch.Tensor:
        """(N, K) → (N, H, 4) in [-1, 1]."""
        return torch.tanh(self.decoder(code)).reshape(-1, self.horizon, ACTION_DIM)

    def forward(self, plan: torch.Tensor) -> torch.Tensor:
        return self.decode_plan(self.encode_plan(plan))


def action_windows(ds: TransitionDataset, horizon: int) -> NDArray[np.float32]:
    """(W, H, 4) action chunks of every failsafe-free window of one episode."""
    starts = ds.window_starts(horizon)
    if starts.size == 0:
        raise ModelError(f"latent actions: the dataset has no windows of {horizon} steps")
    idx = starts[:, None] + np.arange(horizon)[None, :]
    return np.asarray(ds.arrays["action"][idx], np.float32)


def observation_envelope(ds: TransitionDataset, margin: float) -> dict[str, list[float]]:
    """Per-feature [min − margin, max + margin] of the dataset's observations."""
    obs = ds.arrays["obs"]
    return {"lo": (obs.min(0).astype(np.float64) - margin).tolist(),
            "hi": (obs.max(0).astype(np.float64) + margin).tolist()}


def roundtrip_error(ae: ActionAutoencoder, chunks: NDArray[np.float32]) -> dict[str, float]:
    """Mean and p95 of the per-chunk RMS error [normalised action units] and in m/s (× 8.333)."""
    with torch.no_grad():
        x = torch.from_numpy(chunks)
        err = ((ae(x) - x) ** 2).mean(dim=(1, 2)).sqrt().numpy()
    return {"rms_mean": float(err.mean()), "rms_p95": float(np.quantile(err, 0.95)),
            "rms_mean_mps": float(err.mean() * 8.333)}


def train_autoencoder(
    chunks: NDArray[np.float32], config: LatentActionConfig
) -> tuple[ActionAutoencoder, list[float]]:
    """Fit the autoencoder (MSE, AdamW, cosine lr); returns (model in eval mode, loss curve)."""
    torch.manual_seed(config.seed)
    ae = ActionAutoencoder(config.horizon, config.latent_dim, config.hidden)
    opt = torch.optim.AdamW(ae.parameters(), lr=config.lr, weight_decay=1e-5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    rng = np.random.default_rng(config.seed)
    data = torch.from_numpy(np.ascontiguousarray(chunks))
    losses: list[float] = []
    for _ in range(config.steps):
        x = data[torch.from_numpy(rng.integers(0, data.shape[0], config.batch_size))]
        loss = ((ae(x) - x) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return ae.eval(), losses


def save_autoencoder(ae: ActionAutoencoder, folder: Path | str, card: dict[str, Any]) -> Path:
    """Write ``latent_actions.safetensors`` and ``latent_actions.json`` (with the weights' hash)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in ae.state_dict().items()}
    cfg = {"horizon": ae.horizon, "latent_dim": ae.latent_dim, "hidden": ae.hidden}
    save_file(state, str(folder / WEIGHTS), metadata={"config": json.dumps(cfg)})
    (folder / WEIGHTS).chmod(0o644)
    full = {"format": CARD_FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "architecture": cfg, "sha256": sha256_file(folder / WEIGHTS), **card}
    (folder / CARD).write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    return folder / WEIGHTS


def read_latent_card(folder: Path | str) -> dict[str, Any]:
    """The latent-action card of a model folder.

    Raises:
        ModelError: missing or not a latent-action card.
    """
    path = Path(folder) / CARD
    if not path.is_file():
        raise ModelError(
            f"latent actions {path}: not found; run `python -m wm_agent.planning.latent_actions "
            f"--model {folder}` first"
        )
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"latent actions {path}: not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"latent actions {path}: 'format' is not {CARD_FORMAT!r}")
    return card


def load_autoencoder(folder: Path | str, horizon: int | None = None) -> ActionAutoencoder:
    """Load and hash-check the autoencoder of a model folder.

    Raises:
        ModelError: missing/corrupt file (hash mismatch) or a horizon other than ``horizon``.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_latent_card(folder)
    digest = sha256_file(folder / WEIGHTS) if (folder / WEIGHTS).is_file() else "missing"
    if digest != card.get("sha256"):
        raise ModelError(
            f"latent actions {folder / WEIGHTS}: sha256 {digest} does not match the card's "
            f"{card.get('sha256')}; retrain the latent actions"
        )
    arch = card["architecture"]
    if horizon is not None and int(arch["horizon"]) != horizon:
        raise ModelError(
            f"latent actions {folder / WEIGHTS}: trained for horizon {arch['horizon']}, the planner "
            f"uses {horizon}; retrain with --horizon {horizon}"
        )
    ae = ActionAutoencoder(int(arch["horizon"]), int(arch["latent_dim"]), int(arch["hidden"]))
    ae.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    return ae.eval()


def fit_and_save(ds: TransitionDataset, folder: Path | str, config: LatentActionConfig,
                 data_file: str | None = None) -> dict[str, Any]:
    """Train on ``ds`` (90 % of the episodes; the rest measures the roundtrip), save, return the card."""
    t0 = time.perf_counter()
    train_ds, val_ds = ds.split(0.1, config.seed)
    chunks = action_windows(train_ds, config.horizon)
    val = action_windows(val_ds, config.horizon)
    ae, losses = train_autoencoder(chunks, config)
    card = {
        "config": asdict(config),
        "data": {"file": data_file, "npz_sha256": ds.meta.get("npz_sha256"),
                 "train_chunks": int(chunks.shape[0]), "val_chunks": int(val.shape[0])},
        "roundtrip_val": roundtrip_error(ae, val),
        "final_train_loss": losses[-1],
        "envelope": observation_envelope(ds, config.envelope_margin),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    save_autoencoder(ae, folder, card)
    if (Path(folder) / MODEL_CARD).is_file():  # the model card hashes every file of its folder
        update_card(folder)
    return read_latent_card(folder)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of the latent-action trainer."""
    d = LatentActionConfig()
    p = argparse.ArgumentParser(
        prog="python -m wm_agent.planning.latent_actions",
        description="Train the latent action autoencoder on the world model's dataset and save it "
        "beside the model (latent_actions.safetensors + latent_actions.json).",
    )
    p.add_argument("--data", type=Path, default=Path("runs/wm/data/warehouse.npz"), help="dataset .npz")
    p.add_argument("--model", type=Path, required=True, help="model folder to write into")
    p.add_argument("--horizon", type=int, default=d.horizon, help=f"H (default {d.horizon})")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim, help=f"K (default {d.latent_dim})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--seed", type=int, default=d.seed)
    return p


def latent_actions_main(argv: list[str] | None = None) -> int:
    """CLI. Returns the exit status (0 ok, 2 error)."""
    ns = build_parser().parse_args(argv)
    try:
        torch.set_num_threads(1)
        cfg = LatentActionConfig(horizon=ns.horizon, latent_dim=ns.latent_dim, steps=ns.steps,
                                 seed=ns.seed)
        ds = load_dataset(ns.data)
        card = fit_and_save(ds, ns.model, cfg, data_file=str(ns.data))
    except WmAgentError as exc:
        print(f"latent actions: error: {exc}")
        return 2
    rt = card["roundtrip_val"]
    print(f"wrote {ns.model / WEIGHTS} (K = {cfg.latent_dim}, H = {cfg.horizon}); held-out roundtrip "
          f"RMS {rt['rms_mean']:.4f} (p95 {rt['rms_p95']:.4f}) = {rt['rms_mean_mps']:.3f} m/s "
          f"in {card['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(latent_actions_main())
