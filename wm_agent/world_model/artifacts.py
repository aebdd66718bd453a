"""Model folder: ``weights.safetensors`` + ``card.json`` (+ ONNX files, loss curve).

The card records the architecture, spec, data summary, training settings, metrics and the
SHA-256 and size of every other file in the folder. :func:`load_model` verifies all of them
before it reads a byte of weights.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from wm_agent.errors import ModelError
from wm_agent.world_model.dataset import sha256_file
from wm_agent.world_model.model import WorldModel, WorldModelConfig, parameter_count
from wm_agent.world_model.spaces import SPEC_VERSION

WEIGHTS = "weights.safetensors"
CARD = "card.json"
CARD_FORMAT = "wm_agent.world_model_card"
CARD_VERSION = 1


def default_model_dir(name: str = "wm_default") -> Path:
    """``<share>/models/<name>`` (the checkout's ``models/<name>`` in a source tree)."""
    try:
        from wm_agent.paths import share_dir

        return share_dir() / "models" / name
    except Exception:
        return Path("models") / name


PLAN_MODEL = "wm_plan"
"""The shipped planning model: a small world model (ReLU, no LayerNorm) the planners fly with;
``wm_default`` is the accurate one (evaluation, replay). See docs/PLANNER.md."""


def default_plan_model_dir() -> Path:
    """``<share>/models/wm_plan``: the planners' default model."""
    return default_model_dir(PLAN_MODEL)


def architecture_description(config: WorldModelConfig) -> str:
    """One line for the card: which MLP blocks, latent normalisation and heads."""
    def block(norm: bool) -> str:
        return ("LayerNorm+" if norm else "") + str(config.activation).capitalize()

    latent = "SimNorm latent" if config.simnorm_group else "latent"
    head = "a Linear on the dynamics' first hidden layer" if config.shared_head else "MLP on [z, a]"
    return (f"encoder MLP ({block(config.layer_norm)}) -> {latent}; residual latent dynamics "
            f"({block(config.dynamics_ln)}); transition head (dpos, progress, collision "
            f"logit; {head}); decoder z' -> next obs")


def file_entry(path: Path) -> dict[str, Any]:
    """``{"sha256": …, "bytes": …}`` for a file."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def read_card(folder: Path | str) -> dict[str, Any]:
    """Parse ``card.json``.

    Raises:
        ModelError: missing, unreadable or not a world-model card.
    """
    path = Path(folder) / CARD
    if not path.is_file():
        raise ModelError(f"model card {path}: not found; train a model (`wm-agent train`) first")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"model card {path}: not valid JSON ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise ModelError(f"model card {path}: 'format' is not {CARD_FORMAT!r}")
    if card.get("card_version") != CARD_VERSION:
        raise ModelError(
            f"model card {path}: card_version {card.get('card_version')!r}, expected {CARD_VERSION}"
        )
    return card


def write_card(folder: Path | str, card: dict[str, Any]) -> dict[str, Any]:
    """Rehash every file in ``folder`` (except the card) into ``card["files"]`` and write it."""
    folder = Path(folder)
    card = dict(card)
    card["files"] = {
        p.name: file_entry(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != CARD and not p.name.startswith(".")
    }
    card["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    tmp = folder / (CARD + ".tmp")
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    tmp.replace(folder / CARD)
    return card


def update_card(folder: Path | str, **sections: Any) -> dict[str, Any]:
    """Merge top-level ``sections`` into the card (dicts are merged one level deep), rehash."""
    card = read_card(folder)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    return write_card(folder, card)


def verify_files(folder: Path | str, card: dict[str, Any]) -> None:
    """Check size and SHA-256 of every file the card lists.

    Raises:
        ModelError: naming the file, the expected hash (and size) and what was found.
    """
    folder = Path(folder)
    files = card.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise ModelError(f"model card {folder / CARD}: 'files' does not list {WEIGHTS}")
    for name, entry in files.items():
        path = folder / name
        expected = entry.get("sha256")
        if not path.is_file():
            raise ModelError(f"model file {path}: missing (card expects sha256 {expected})")
        size = path.stat().st_size
        if "bytes" in entry and size != entry["bytes"]:
            raise ModelError(
                f"model file {path}: {size} bytes, card expects {entry['bytes']} bytes and sha256 "
                f"{expected}; the file is truncated or was replaced — re-export or retrain"
            )
        digest = sha256_file(path)
        if digest != expected:
            raise ModelError(
                f"model file {path}: sha256 {digest} does not match the card's expected sha256 "
                f"{expected}; the file is corrupt or was changed — re-export or retrain"
            )


def save_model(model: WorldModel, folder: Path | str, card: dict[str, Any]) -> dict[str, Any]:
    """Write ``weights.safetensors`` (weights + normalisation buffers) and the card.

    Args:
        model: trained model. folder: created if missing (existing ONNX files are removed:
            they would belong to older weights). card: extra sections (data, training, metrics).

    Returns:
        the card as written.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.onnx"):
        stale.unlink()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    cfg = model.config.to_dict()
    save_file(state, str(folder / WEIGHTS),
              metadata={"spec_version": str(SPEC_VERSION), "config": json.dumps(cfg, sort_keys=True)})
    (folder / WEIGHTS).chmod(0o644)  # safetensors writes 0600; nodes may run as another user
    full = {
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "name": folder.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "spec_version": SPEC_VERSION,
        "architecture": {
            "class": "wm_agent.world_model.model.WorldModel",
            "config": cfg,
            "parameters": parameter_count(model),
            "weights_bytes": None,
            "description": architecture_description(model.config),
        },
        **card,
    }
    written = write_card(folder, full)
    written["architecture"]["weights_bytes"] = written["files"][WEIGHTS]["bytes"]
    return write_card(folder, written)


def load_model(
    folder: Path | str, *, device: str | torch.device = "cpu", verify: bool = True
) -> tuple[WorldModel, dict[str, Any]]:
    """Load a model folder after verifying every file hash in its card.

    Args:
        folder: model folder. device: torch device for the weights.
        verify: check hashes (leave True outside tests).

    Returns:
        (model in eval mode, card).

    Raises:
        ModelError: missing/corrupt/truncated file (naming it and the expected hash), another
            spec version, or weights that do not fit the card's architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_card(folder)
    if verify:
        verify_files(folder, card)
    if card.get("spec_version") != SPEC_VERSION:
        raise ModelError(
            f"model card {folder / CARD}: spec_version {card.get('spec_version')} but this code "
            f"builds observations of spec version {SPEC_VERSION}; retrain the model"
        )
    config = WorldModelConfig.from_dict(card["architecture"]["config"])
    model = WorldModel(config)
    try:
        state = load_file(str(folder / WEIGHTS), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"model file {folder / WEIGHTS}: cannot read ({exc})") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"model file {folder / WEIGHTS}: weights do not fit the card's architecture ({exc})"
        ) from exc
    return model.to(device).eval(), card
