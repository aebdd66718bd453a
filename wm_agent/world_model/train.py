"""Train the world model on collected transitions.

Loss over windows of H steps (TD-MPC2 style), each step t weighted by ``rho**t``:

* latent consistency: ``‖next(z_t, a_t) − sg(encode(obs_{t+1}))‖²`` (rollout in latent space);
* decoder: normalised next observation (velocity weighted ×``vel_weight``);
* transition head: normalised position delta, goal progress, collision-risk BCE
  (label: collided in the step or next clearance < ``risk_distance``);
* reconstruction of the first observation.

Regression terms are masked on collided steps (the sim settles a crashed drone on the floor).
Training is seeded and bit-reproducible on CPU for the same seed and thread count: batches are
drawn from ``default_rng([seed, epoch])``, so ``--resume`` continues exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from tqdm import tqdm

from wm_agent.errors import ConfigError, ModelError, WmAgentError
from wm_agent.paths import RETRAINED_MODEL_DIR
from wm_agent.world_model.artifacts import save_model
from wm_agent.world_model.dataset import TransitionDataset, load_dataset
from wm_agent.world_model.model import WorldModel, WorldModelConfig, parameter_count

DEFAULT_RUN_DIR = Path("runs/wm/train")
CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"
CURVE = "loss_curve.png"


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        seed: RNG seed (init, split, batches). threads: torch CPU threads (part of the
            reproducibility key).
        horizon: H, latent rollout steps per window. batch_size: windows per batch.
        epochs: max epochs. steps_per_epoch: optimiser steps per epoch.
        lr, weight_decay: AdamW; lr follows a cosine decay to ``lr·min_lr_ratio``.
        grad_clip: max gradient norm. rho: per-step loss discount.
        val_fraction: share of episodes held out. val_windows: validation windows used.
        patience: epochs without validation improvement before stopping.
        risk_distance: clearance below which a step counts as collision risk [m].
        w_*: loss weights. vel_weight: extra weight of the velocity entries of the decoder loss.
        model: architecture.
    """

    seed: int = 0
    threads: int = 1
    horizon: int = 5
    batch_size: int = 256
    epochs: int = 30
    steps_per_epoch: int = 500
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 1e-4
    grad_clip: float = 10.0
    rho: float = 0.8
    val_fraction: float = 0.1
    val_windows: int = 4096
    patience: int = 6
    risk_distance: float = 0.25
    w_consistency: float = 2.0
    w_obs: float = 1.0
    w_dpos: float = 2.0
    w_progress: float = 0.2
    w_collision: float = 0.2
    w_recon: float = 0.5
    vel_weight: float = 4.0
    model: WorldModelConfig = field(default_factory=WorldModelConfig)

    def __post_init__(self) -> None:
        if self.horizon < 1 or self.batch_size < 1 or self.epochs < 1 or self.steps_per_epoch < 1:
            raise ConfigError(
                "train: horizon, batch_size, epochs, steps_per_epoch must be >= 1, got "
                f"{self.horizon}, {self.batch_size}, {self.epochs}, {self.steps_per_epoch}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"train: val_fraction: expected in (0, 1), got {self.val_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (model config nested)."""
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced.

    Attributes:
        model: best model (eval mode). history: one dict per epoch. best_epoch: its index.
        stopped_early: early stopping fired. card: the written card (None without ``out``).
    """

    model: WorldModel
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool
    card: dict[str, Any] | None


def fit_normaliser(model: WorldModel, train: TransitionDataset) -> None:
    """Set the model's normalisation buffers from training data (std floored at 1e-3; entries
    that never vary get std 1)."""
    a = train.arrays
    obs = a["obs"]
    mean = obs.mean(axis=0, dtype=np.float64)
    std = obs.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, np.maximum(std, 1e-3))
    ok = ~a["collided"]
    dpos = (a["next_position"] - a["position"])[ok]
    dstd = np.maximum(np.sqrt((dpos**2).mean(axis=0)), 1e-3) if dpos.size else np.ones(3)
    pstd = max(float(np.sqrt((a["progress"][ok].astype(np.float64) ** 2).mean())), 1e-3) if ok.any() else 1.0
    with torch.no_grad():
        model.obs_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        model.obs_std.copy_(torch.as_tensor(std, dtype=torch.float32))
        model.dpos_std.copy_(torch.as_tensor(dstd, dtype=torch.float32))
        model.progress_std.fill_(pstd)


def to_batch(w: dict[str, NDArray[Any]], risk_distance: float) -> dict[str, torch.Tensor]:
    """Window arrays (from :meth:`TransitionDataset.windows`) → float32 tensors."""
    collided = w["collided"].astype(bool)
    risk = collided | (w["clearance"] < risk_distance)
    return {
        "obs": torch.from_numpy(np.ascontiguousarray(w["obs"], np.float32)),
        "action": torch.from_numpy(np.ascontiguousarray(w["action"], np.float32)),
        "dpos": torch.from_numpy(np.ascontiguousarray(w["dpos"], np.float32)),
        "progress": torch.from_numpy(np.ascontiguousarray(w["progress"], np.float32)),
        "risk": torch.from_numpy(risk.astype(np.float32)),
        "mask": torch.from_numpy((~collided).astype(np.float32)),
    }


def window_loss(
    model: WorldModel, b: dict[str, torch.Tensor], cfg: TrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Multi-step loss of one batch of windows; returns (total, per-term floats incl. the
    H-step position error [m])."""
    obs, act = b["obs"], b["action"]
    horizon = act.shape[1]
    clip = model.config.obs_clip
    tgt_obs = torch.clamp((obs - model.obs_mean) / model.obs_std, -clip, clip)
    with torch.no_grad():
        z_tgt = model.encode(obs[:, 1:].reshape(-1, obs.shape[-1])).reshape(obs.shape[0], horizon, -1)
    obs_w = torch.ones(obs.shape[-1])
    obs_w[0:3] = cfg.vel_weight
    obs_w = obs_w / obs_w.mean()
    z = model.encode(obs[:, 0])
    recon = ((model.decode_normalised(z) - tgt_obs[:, 0]) ** 2 * obs_w).mean()
    terms = dict.fromkeys(("consistency", "obs", "dpos", "progress", "collision"), torch.zeros(()))
    pos_err = torch.zeros(obs.shape[0], 3)
    norm = 0.0
    for t in range(horizon):
        w = cfg.rho**t
        norm += w
        m = b["mask"][:, t]
        msum = m.sum().clamp_min(1.0)
        z, h = model.transition(z, act[:, t])
        cons = ((z - z_tgt[:, t]) ** 2).mean(-1)
        terms["consistency"] = terms["consistency"] + w * (cons * m).sum() / msum
        dec = model.decode_normalised(z)
        err = (((dec - tgt_obs[:, t + 1]) ** 2) * obs_w).mean(-1)
        terms["obs"] = terms["obs"] + w * (err * m).sum() / msum
        dpos_n = b["dpos"][:, t] / model.dpos_std
        terms["dpos"] = terms["dpos"] + w * (((h[:, 0:3] - dpos_n) ** 2).mean(-1) * m).sum() / msum
        prog_n = b["progress"][:, t] / model.progress_std[0]
        terms["progress"] = terms["progress"] + w * (((h[:, 3] - prog_n) ** 2) * m).sum() / msum
        terms["collision"] = terms["collision"] + w * F.binary_cross_entropy_with_logits(
            h[:, 4], b["risk"][:, t]
        )
        pos_err = pos_err + (h[:, 0:3] * model.dpos_std - b["dpos"][:, t]).detach() * m[:, None]
    weights = {"consistency": cfg.w_consistency, "obs": cfg.w_obs, "dpos": cfg.w_dpos,
               "progress": cfg.w_progress, "collision": cfg.w_collision}
    total = sum(weights[k] * v for k, v in terms.items()) / norm + cfg.w_recon * recon
    assert isinstance(total, torch.Tensor)
    logs = {k: float(v.detach()) / norm for k, v in terms.items()}
    logs["recon"] = float(recon.detach())
    logs["loss"] = float(total.detach())
    logs["pos_err_H_m"] = float(pos_err.norm(dim=-1).mean())
    return total, logs


def _lr(cfg: TrainConfig, step: int) -> float:
    total = cfg.epochs * cfg.steps_per_epoch
    warm = min(200, total // 10)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    frac = (step - warm) / max(1, total - warm)
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


@torch.no_grad()
def evaluate_loss(
    model: WorldModel, ds: TransitionDataset, starts: NDArray[np.int64], cfg: TrainConfig
) -> dict[str, float]:
    """Mean loss terms over fixed windows (chunks of 1024)."""
    model.eval()
    sums: dict[str, float] = {}
    n = 0
    for i in range(0, starts.size, 1024):
        s = starts[i : i + 1024]
        _, logs = window_loss(model, to_batch(ds.windows(s, cfg.horizon), cfg.risk_distance), cfg)
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v * s.size
        n += s.size
    return {k: v / max(n, 1) for k, v in sums.items()}


def plot_curve(history: list[dict[str, float]], path: Path) -> None:
    """Loss curve PNG (train and validation loss, validation H-step position error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot(epochs, [h["train_loss"] for h in history], label="train")
    ax[0].plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("loss")
    ax[0].set_yscale("log")
    ax[0].legend()
    ax[1].plot(epochs, [h["val_pos_err_H_m"] for h in history])
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("validation H-step position error [m]")
    fig.tight_layout()
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def _set_determinism(cfg: TrainConfig) -> None:
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed)


@dataclass
class _Split:
    """The data of one training run: the dataset, its train/validation split and windows."""

    ds: TransitionDataset
    data_path: Path | None
    data_id: str
    train: TransitionDataset
    val: TransitionDataset
    train_starts: NDArray[np.int64]
    val_starts: NDArray[np.int64]


def _split(ds: TransitionDataset, data_path: Path | None, cfg: TrainConfig) -> _Split:
    """Split episodes into train/validation and pick the windows (fixed validation windows)."""
    train_ds, val_ds = ds.split(cfg.val_fraction, cfg.seed)
    train_starts = train_ds.window_starts(cfg.horizon)
    val_all = val_ds.window_starts(cfg.horizon)
    if train_starts.size == 0 or val_all.size == 0:
        raise ModelError(
            f"train: no windows of {cfg.horizon} steps in the training ({train_starts.size}) or "
            f"validation ({val_all.size}) split; collect more data or lower --horizon"
        )
    val_starts = np.sort(np.random.default_rng([cfg.seed, 1]).permutation(val_all)[: cfg.val_windows])
    return _Split(ds, data_path, str(ds.meta.get("npz_sha256", "in-memory")), train_ds, val_ds,
                  train_starts, val_starts)


@dataclass
class _Progress:
    """Everything a checkpoint holds besides the model: optimizer, history, best so far."""

    opt: torch.optim.Optimizer
    best_state: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    best_val: float = math.inf
    best_epoch: int = -1
    bad: int = 0
    next_epoch: int = 0

    def save(self, model: WorldModel, path: Path, epoch: int, key: dict[str, Any]) -> None:
        """Write the checkpoint atomically (resume continues bit for bit from it)."""
        torch.save(
            {
                "model": model.state_dict(), "optimizer": self.opt.state_dict(), "epoch": epoch,
                "best_state": self.best_state, "best_val": self.best_val,
                "best_epoch": self.best_epoch, "bad": self.bad,
                "history": json.dumps(self.history), "key": json.dumps(key),
                "torch_rng": torch.get_rng_state(),
            },
            path.with_name(path.name + ".tmp"),
        )
        path.with_name(path.name + ".tmp").replace(path)

    def load(self, model: WorldModel, path: Path, key: dict[str, Any]) -> None:
        """Restore from ``path`` (written for the same data and settings, else ModelError)."""
        if not path.is_file():
            raise ModelError(f"train --resume: no checkpoint at {path}")
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if json.loads(ck["key"]) != json.loads(json.dumps(key)):
            raise ModelError(
                f"train --resume: {path} was written for other data or settings; start "
                "without --resume or use the original arguments"
            )
        model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.best_state = ck["best_state"]
        self.history = json.loads(ck["history"])
        self.best_val, self.best_epoch = float(ck["best_val"]), int(ck["best_epoch"])
        self.bad = int(ck["bad"])
        self.next_epoch = int(ck["epoch"]) + 1
        torch.set_rng_state(ck["torch_rng"])


def _train_epoch(model: WorldModel, opt: torch.optim.Optimizer, data: _Split, cfg: TrainConfig,
                 epoch: int, progress: bool) -> dict[str, float]:
    """One epoch of ``steps_per_epoch`` batches; the mean of each logged quantity."""
    model.train()
    rng = np.random.default_rng([cfg.seed, 1000 + epoch])
    sums: dict[str, float] = {}
    bar = tqdm(range(cfg.steps_per_epoch), desc=f"epoch {epoch}", disable=not progress, leave=False)
    for i in bar:
        step = epoch * cfg.steps_per_epoch + i
        for g in opt.param_groups:
            g["lr"] = _lr(cfg, step)
        idx = data.train_starts[rng.integers(0, data.train_starts.size, cfg.batch_size)]
        batch = to_batch(data.train.windows(idx, cfg.horizon), cfg.risk_distance)
        loss, logs = window_loss(model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        logs["grad_norm"] = float(gnorm)
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + v
        if i % 20 == 0:
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
    return {k: v / cfg.steps_per_epoch for k, v in sums.items()}


def _write_model(model: WorldModel, out: Path | str, data: _Split, cfg: TrainConfig,
                 prog: _Progress, stopped: bool, run_dir: Path) -> dict[str, Any]:
    """The model folder: weights, card (data, training, validation metrics), loss curve."""
    ds, history = data.ds, prog.history
    a = ds.arrays
    card = save_model(model, out, {
        "observation_spec": ds.meta["spec"],
        "action_spec": ds.meta["action_spec"],
        "dt": ds.spec.dt,
        "data": {
            "file": str(data.data_path) if data.data_path else None,
            "npz_sha256": data.data_id,
            "scenario": ds.meta["scenario"],
            "seed": ds.meta["seed"],
            "sim_version": ds.meta["sim_version"],
            "transitions": len(ds),
            "episodes": int(ds.episodes.size),
            "train_episodes": int(data.train.episodes.size),
            "val_episodes": int(data.val.episodes.size),
            "collisions": int(a["collided"].sum()),
            "failsafe_transitions": int(a["failsafe"].sum()),
        },
        "training": {
            **cfg.to_dict(),
            "epochs_run": len(history),
            "best_epoch": prog.best_epoch,
            "stopped_early": stopped,
            "torch_version": torch.__version__,
            "seconds": history[-1]["seconds"] if history else 0.0,
        },
        "metrics": {"validation": {k[4:]: v for k, v in history[prog.best_epoch].items()
                                   if k.startswith("val_")} if history else {}},
    })
    if (run_dir / CURVE).is_file():
        import shutil

        from wm_agent.world_model.artifacts import read_card, write_card

        shutil.copyfile(run_dir / CURVE, Path(out) / CURVE)
        card = write_card(out, read_card(out))
    return card


def train(
    data: TransitionDataset | Path | str,
    cfg: TrainConfig,
    *,
    data_file: Path | str | None = None,
    run_dir: Path | str = DEFAULT_RUN_DIR,
    out: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epoch: int | None = None,
) -> TrainResult:
    """Train (or resume) and, with ``out``, write the model folder (weights, card, curve).

    Args:
        data: a dataset or the path of its .npz.
        data_file: where an in-memory ``data`` was loaded from (recorded in the card).
        cfg: settings. run_dir: checkpoint, JSONL log and loss curve go here.
        out: model folder to write (None: do not write one).
        resume: continue from ``run_dir/checkpoint.pt`` (same data and settings required).
        progress: tqdm bar.
        stop_after_epoch: return after this epoch as if interrupted (tests of ``resume``); the
            checkpoint is written, the model folder is not.

    Raises:
        ModelError: unusable data, no windows, or a checkpoint from other data/settings.
    """
    if isinstance(data, TransitionDataset):
        ds, data_path = data, (Path(data_file) if data_file is not None else None)
    else:
        data_path = Path(data)
        ds = load_dataset(data_path)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if ds.spec.size != cfg.model.obs_dim or int(ds.meta["action_dim"]) != cfg.model.action_dim:
        cfg = replace(cfg, model=replace(cfg.model, obs_dim=ds.spec.size,
                                         action_dim=int(ds.meta["action_dim"])))
    _set_determinism(cfg)
    split = _split(ds, data_path, cfg)

    # 1. Model, normaliser, optimizer — or all of them from the checkpoint.
    model = WorldModel(cfg.model)
    fit_normaliser(model, split.train)
    prog = _Progress(torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
                     {k: v.clone() for k, v in model.state_dict().items()})
    ckpt_path = run_dir / CHECKPOINT
    key = {"config": cfg.to_dict(), "data": split.data_id, "threads": cfg.threads}
    if resume:
        prog.load(model, ckpt_path, key)
    elif (run_dir / LOG).exists():
        (run_dir / LOG).unlink()

    # 2. Epochs: train, validate, keep the best, stop after `patience` epochs without progress.
    stopped = prog.bad >= cfg.patience
    t0 = time.perf_counter()
    for epoch in range(prog.next_epoch, cfg.epochs):
        if stopped:
            break
        train_means = _train_epoch(model, prog.opt, split, cfg, epoch, progress)
        val = evaluate_loss(model, split.val, split.val_starts, cfg)
        row: dict[str, float] = {"epoch": epoch, "lr": _lr(cfg, (epoch + 1) * cfg.steps_per_epoch - 1),
                                 "seconds": round(time.perf_counter() - t0, 2)}
        row.update({f"train_{k}": v for k, v in train_means.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        prog.history.append(row)
        if val["loss"] < prog.best_val - 1e-6:
            prog.best_val, prog.best_epoch, prog.bad = val["loss"], epoch, 0
            prog.best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            prog.bad += 1
        stopped = prog.bad >= cfg.patience
        with (run_dir / LOG).open("a") as f:
            f.write(json.dumps(row, sort_keys=True) + "\n")
        if progress:
            tqdm.write(
                f"epoch {epoch}: train {row['train_loss']:.4f} val {val['loss']:.4f} "
                f"val pos err@H {val['pos_err_H_m']:.3f} m (best epoch {prog.best_epoch})"
            )
        prog.save(model, ckpt_path, epoch, key)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return TrainResult(model.eval(), prog.history, prog.best_epoch, False, None)

    # 3. The best epoch's weights; the model folder.
    if prog.history:
        plot_curve(prog.history, run_dir / CURVE)
    model.load_state_dict(prog.best_state)
    model.eval()
    card = _write_model(model, out, split, cfg, prog, stopped, run_dir) if out is not None else None
    return TrainResult(model, prog.history, prog.best_epoch, stopped, card)


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wm-agent train``."""
    d = TrainConfig()
    m = d.model
    p = argparse.ArgumentParser(prog="wm-agent train", description="Train the world model.")
    p.add_argument("--data", type=Path, default=Path("runs/wm/data/warehouse.npz"),
                   help="dataset .npz from `wm-agent collect`")
    p.add_argument("--out", type=Path, default=RETRAINED_MODEL_DIR,
                   help=f"model folder to write (default {RETRAINED_MODEL_DIR}; the shipped model "
                   "is only replaced when named, e.g. --out models/wm_default)")
    p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                   help=f"checkpoint, log and curve folder (default {DEFAULT_RUN_DIR})")
    p.add_argument("--resume", action="store_true", help="continue from --run-dir's checkpoint")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--horizon", type=int, default=d.horizon, help="latent rollout steps H")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping epochs")
    p.add_argument("--latent-dim", type=int, default=m.latent_dim)
    p.add_argument("--hidden-dim", type=int, default=m.hidden_dim)
    p.add_argument("--head-hidden", type=int, default=m.head_hidden,
                   help="width of the decoder MLP and of the transition-head MLP "
                        "(none with --shared-head)")
    p.add_argument("--activation", choices=["mish", "relu"], default=m.activation,
                   help="hidden activation (relu: the planning model)")
    p.add_argument("--no-layer-norm", action="store_true",
                   help="no LayerNorm after the encoder's, heads' and decoder's hidden layers")
    p.add_argument("--no-dynamics-layer-norm", action="store_true",
                   help="no LayerNorm in the latent dynamics MLP (the planning model)")
    p.add_argument("--shared-head", action="store_true",
                   help="transition head as one Linear on the dynamics' first hidden layer "
                        "(the planning model: no second MLP per planned step)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="accept a dataset of another spec version / scenario")
    p.add_argument("--no-progress", action="store_true")
    return p


def train_main(argv: list[str] | None = None) -> int:
    """CLI: ``wm-agent train``. Returns the exit status (0 ok, 2 error)."""
    ns = build_parser().parse_args(argv)
    try:
        base = TrainConfig()
        cfg = replace(
            base, seed=ns.seed, threads=ns.threads, epochs=ns.epochs,
            steps_per_epoch=ns.steps_per_epoch, batch_size=ns.batch_size, horizon=ns.horizon,
            lr=ns.lr, patience=ns.patience,
            model=replace(base.model, latent_dim=ns.latent_dim, hidden_dim=ns.hidden_dim,
                          head_hidden=ns.head_hidden, activation=ns.activation,
                          layer_norm=not ns.no_layer_norm,
                          dynamics_layer_norm=not ns.no_dynamics_layer_norm,
                          shared_head=ns.shared_head),
        )
        ds = load_dataset(ns.data, allow_mismatch=ns.allow_mismatch)
        out = ns.out
        result = train(ds, cfg, data_file=ns.data, run_dir=ns.run_dir, out=out,
                       resume=ns.resume, progress=not ns.no_progress)
    except WmAgentError as exc:
        print(f"wm-agent train: error: {exc}")
        return 2
    best = result.history[result.best_epoch] if result.history else {}
    print(
        f"wrote {out} ({parameter_count(result.model)} parameters; best epoch "
        f"{result.best_epoch}, val loss {best.get('val_loss', float('nan')):.4f}, val position "
        f"error at H={cfg.horizon}: {best.get('val_pos_err_H_m', float('nan')):.3f} m)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(train_main())
