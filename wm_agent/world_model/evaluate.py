"""Open-loop k-step prediction error of the world model beside two baselines, same data, same run.

For held-out windows (whole episodes the training never saw; no failsafe step, no collision),
starting from the first observation and applying the recorded actions open loop:

* world model: encode once, roll the latent forward, integrate the predicted position deltas,
  read the velocity from the decoded observation;
* constant velocity: ``p_k = p_0 + k·dt·v_0``, ``v_k = v_0``;
* linear: least squares (ridge 1e-3) from ``[obs, action, 1]`` to ``[next_obs − obs, dpos]``
  fitted on the training split, rolled out on its own predicted observations.

Errors are mean Euclidean norms at k = 1, 5, 10, 20 steps: position [m], velocity [m/s].
Target: world model ≤ 0.5 × constant-velocity position error at k = 10.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from wm_agent.errors import ModelError, WmAgentError
from wm_agent.paths import RETRAINED_MODEL_DIR
from wm_agent.world_model.artifacts import load_model, update_card
from wm_agent.world_model.dataset import TransitionDataset, load_dataset
from wm_agent.world_model.model import WorldModel

KS = (1, 5, 10, 20)
TARGET_RATIO = 0.5


def eval_windows(ds: TransitionDataset, horizon: int, max_windows: int, seed: int) -> NDArray[np.int64]:
    """Start rows of up to ``max_windows`` windows without failsafe steps or collisions."""
    starts = ds.window_starts(horizon, exclude_failsafe=True)
    if starts.size:
        col = np.concatenate([[0], np.cumsum(ds.arrays["collided"].astype(np.int64))])
        starts = starts[(col[starts + horizon] - col[starts]) == 0]
    rng = np.random.default_rng([seed, 42])
    return np.sort(rng.permutation(starts)[:max_windows])


class LinearModel:
    """Physics-free linear baseline: ``[Δobs, dpos] = [obs, action, 1] · W``.

    Args:
        obs_dim: D.
    """

    def __init__(self, obs_dim: int):
        self.obs_dim = obs_dim
        self.w: NDArray[np.float64] | None = None

    def fit(self, ds: TransitionDataset, max_rows: int = 200_000, ridge: float = 1e-3, seed: int = 0) -> None:
        """Least squares on single steps of ``ds`` (failsafe and collided steps excluded)."""
        starts = eval_windows(ds, 1, max_rows, seed)
        if starts.size == 0:
            raise ModelError("linear baseline: no training transitions to fit")
        w = ds.windows(starts, 1)
        obs0, obs1 = w["obs"][:, 0].astype(np.float64), w["obs"][:, 1].astype(np.float64)
        x = np.concatenate([obs0, w["action"][:, 0], np.ones((starts.size, 1))], axis=1)
        y = np.concatenate([obs1 - obs0, w["dpos"][:, 0]], axis=1)
        scale = np.maximum(x.std(axis=0), 1e-6)
        scale[-1] = 1.0
        xs = x / scale
        a = xs.T @ xs + ridge * xs.shape[0] * np.eye(xs.shape[1])
        self.w = np.linalg.solve(a, xs.T @ y) / scale[:, None]

    def rollout(self, obs: NDArray[np.floating], actions: NDArray[np.floating]
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(B, D), (B, K, A) → offsets (B, K, 3) [m] and velocities (B, K, 3) [m/s]."""
        if self.w is None:
            raise ModelError("linear baseline: fit() first")
        o = obs.astype(np.float64)
        pos = np.zeros((o.shape[0], 3))
        offs, vels = [], []
        for k in range(actions.shape[1]):
            x = np.concatenate([o, actions[:, k], np.ones((o.shape[0], 1))], axis=1)
            y = x @ self.w
            o = o + y[:, : self.obs_dim]
            pos = pos + y[:, self.obs_dim :]
            offs.append(pos.copy())
            vels.append(o[:, 0:3].copy())
        return np.stack(offs, 1), np.stack(vels, 1)


@torch.no_grad()
def world_model_rollout(model: WorldModel, obs: NDArray[np.floating], actions: NDArray[np.floating],
                        chunk: int = 2048) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(B, D), (B, K, A) → offsets (B, K, 3) [m], velocities (B, K, 3) [m/s] (torch, CPU)."""
    model = model.cpu().eval()
    offs, vels = [], []
    for i in range(0, obs.shape[0], chunk):
        r = model.rollout(torch.as_tensor(obs[i : i + chunk], dtype=torch.float32),
                          torch.as_tensor(actions[i : i + chunk], dtype=torch.float32))
        offs.append(r["offset"].double().numpy())
        vels.append(r["vel"].double().numpy())
    return np.concatenate(offs), np.concatenate(vels)


def evaluate(
    model: WorldModel,
    heldout: TransitionDataset,
    train: TransitionDataset,
    *,
    ks: tuple[int, ...] = KS,
    max_windows: int = 4096,
    seed: int = 0,
) -> dict[str, Any]:
    """k-step open-loop errors of the world model, constant velocity and linear models.

    Returns:
        ``{"k": [...], "dt": s, "windows": n, "position_error_m": {model: [...]},
        "velocity_error_mps": {model: [...]}, "wm_to_cv_position_ratio_at_10": r, "target": …,
        "meets_target": bool}`` (lists aligned with ``k``).

    Raises:
        ModelError: no held-out window of max(ks) steps.
    """
    horizon = max(ks)
    starts = eval_windows(heldout, horizon, max_windows, seed)
    if starts.size == 0:
        raise ModelError(
            f"evaluate: no held-out window of {horizon} steps without failsafe/collision; "
            "collect longer runs"
        )
    w = heldout.windows(starts, horizon)
    dt = heldout.spec.dt
    obs0, actions = w["obs"][:, 0], w["action"]
    true_off = np.cumsum(w["dpos"].astype(np.float64), axis=1)
    true_vel = w["obs"][:, 1:, 0:3].astype(np.float64)
    steps = np.arange(1, horizon + 1)[None, :, None]
    v0 = obs0[:, None, 0:3].astype(np.float64)
    lin = LinearModel(obs0.shape[1])
    lin.fit(train, seed=seed)
    preds = {
        "world_model": world_model_rollout(model, obs0, actions),
        "constant_velocity": (v0 * steps * dt, np.repeat(v0, horizon, axis=1)),
        "linear": lin.rollout(obs0, actions),
    }
    pos_err: dict[str, list[float]] = {}
    vel_err: dict[str, list[float]] = {}
    for name, (off, vel) in preds.items():
        pe = np.linalg.norm(off - true_off, axis=-1).mean(axis=0)
        ve = np.linalg.norm(vel - true_vel, axis=-1).mean(axis=0)
        pos_err[name] = [round(float(pe[k - 1]), 5) for k in ks]
        vel_err[name] = [round(float(ve[k - 1]), 5) for k in ks]
    out: dict[str, Any] = {
        "k": list(ks),
        "dt": dt,
        "windows": int(starts.size),
        "position_error_m": pos_err,
        "velocity_error_mps": vel_err,
    }
    if 10 in ks:
        i = ks.index(10)
        ratio = pos_err["world_model"][i] / max(pos_err["constant_velocity"][i], 1e-12)
        out["wm_to_cv_position_ratio_at_10"] = round(ratio, 4)
        out["target"] = f"world model <= {TARGET_RATIO} x constant-velocity position error at k=10"
        out["meets_target"] = bool(ratio <= TARGET_RATIO)
    return out


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`evaluate`'s result."""
    lines = [f"open-loop error on {result['windows']} held-out windows (dt = {result['dt']:.4f} s)",
             f"{'model':<20}" + "".join(f"  pos@{k:<3}[m] vel@{k:<3}[m/s]" for k in result["k"])]
    for name in result["position_error_m"]:
        row = "".join(f"  {p:>10.4f} {v:>12.4f}" for p, v in zip(
            result["position_error_m"][name], result["velocity_error_mps"][name], strict=True))
        lines.append(f"{name:<20}{row}")
    if "wm_to_cv_position_ratio_at_10" in result:
        ratio = result["wm_to_cv_position_ratio_at_10"]
        lines.append(f"world model / constant velocity at k=10: {ratio:.3f} "
                     f"(target <= {TARGET_RATIO}: {'met' if result['meets_target'] else 'NOT met'})")
    return "\n".join(lines)


def evaluate_folder(
    folder: Path | str, data: Path | str | None = None, heldout: Path | str | None = None,
    max_windows: int = 4096, write_card: bool = True,
) -> dict[str, Any]:
    """Evaluate a model folder; held-out = the episodes its training held out (same split seed),
    or all of ``heldout`` when given. Writes the table into the card's ``metrics.evaluation``."""
    folder = Path(folder)
    model, card = load_model(folder)
    training = card.get("training", {})
    data_path = Path(data) if data else Path(card.get("data", {}).get("file") or "")
    if not data_path.name:
        raise ModelError(f"evaluate: the card of {folder} names no dataset; pass --data")
    ds = load_dataset(data_path)
    train_ds, val_ds = ds.split(float(training.get("val_fraction", 0.1)), int(training.get("seed", 0)))
    held = load_dataset(heldout) if heldout else val_ds
    result = evaluate(model, held, train_ds, max_windows=max_windows)
    result["heldout"] = str(heldout) if heldout else f"validation episodes of {data_path}"
    if write_card:
        update_card(folder, metrics={"evaluation": result})
    return result


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wm-agent eval-model``."""
    p = argparse.ArgumentParser(
        prog="wm-agent eval-model",
        description="k-step open-loop position/velocity error of the world model vs constant-"
        "velocity and linear baselines on held-out episodes; writes the table into the card.",
    )
    p.add_argument("--model", type=Path, default=RETRAINED_MODEL_DIR,
                   help=f"model folder (default {RETRAINED_MODEL_DIR}, what `wm-agent train` "
                   "writes; the shipped model: models/wm_default)")
    p.add_argument("--data", type=Path, default=None, help="training dataset (default: the card's)")
    p.add_argument("--heldout", type=Path, default=None,
                   help="separate held-out dataset (default: the training run's validation episodes)")
    p.add_argument("--max-windows", type=int, default=4096)
    p.add_argument("--no-card", action="store_true", help="do not write the result into the card")
    return p


def evaluate_main(argv: list[str] | None = None) -> int:
    """CLI: ``wm-agent eval-model``. Exit status 0 when the k=10 target is met, 1 when not, 2 on
    error."""
    ns = build_parser().parse_args(argv)
    try:
        result = evaluate_folder(ns.model, ns.data, ns.heldout,
                                 ns.max_windows, write_card=not ns.no_card)
    except WmAgentError as exc:
        print(f"wm-agent eval-model: error: {exc}")
        return 2
    print(format_table(result))
    return 0 if result.get("meets_target", True) else 1


if __name__ == "__main__":
    raise SystemExit(evaluate_main())
