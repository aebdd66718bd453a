"""Export the world model to ONNX: ``encoder.onnx`` and ``dynamics.onnx``, dynamic batch.

* ``encoder.onnx``: input ``obs`` (batch, D) float32 [physical units] → ``z`` (batch, L).
* ``dynamics.onnx``: inputs ``z`` (batch, L), ``action`` (batch, A) normalised → ``z_next``,
  ``dpos`` (batch, 3) [m], ``progress`` (batch,) [m], ``collision_logit`` (batch,),
  ``next_obs`` (batch, D).

Exporter: ``torch.onnx.export(dynamo=True)`` (torch 2.13's default; the legacy TorchScript
exporter is deprecated) with ``dynamic_shapes`` = ``torch.export.Dim("batch")`` and
``external_data=False`` so the weights live inside each .onnx file. ``--legacy`` switches to
``dynamo=False`` with ``dynamic_axes`` if the dynamo path ever breaks. Every export is followed by a
roundtrip check: torch vs onnxruntime (CPU) on the same inputs for several batch sizes, max
absolute difference ≤ ``tolerance`` (1e-4) or the export fails; the file hashes and the check
go into the model card.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agent.errors import ModelError, WmAgentError
from wm_agent.paths import RETRAINED_MODEL_DIR
from wm_agent.world_model.artifacts import (
    file_entry,
    load_model,
    update_card,
)
from wm_agent.world_model.model import DynamicsGraph, EncoderGraph, WorldModel

ENCODER_ONNX = "encoder.onnx"
DYNAMICS_ONNX = "dynamics.onnx"
ENCODER_IO = (("obs",), ("z",))
DYNAMICS_IO = (("z", "action"), ("z_next", "dpos", "progress", "collision_logit", "next_obs"))
DEFAULT_TOLERANCE = 1e-4
ROUNDTRIP_BATCHES = (1, 37, 256)
MAX_BATCH = 1 << 16


@dataclass(frozen=True)
class ExportReport:
    """Result of an export.

    Attributes:
        files: file name → SHA-256. max_abs_diff: output name → worst |torch − onnxruntime|.
        tolerance: the bound that was checked. batches: batch sizes checked.
        exporter: "dynamo" or "legacy". opset: ONNX opset.
    """

    files: dict[str, str]
    max_abs_diff: dict[str, float]
    tolerance: float
    batches: tuple[int, ...]
    exporter: str
    opset: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "files": self.files,
            "roundtrip": {
                "reference": "torch (CPU, float32)",
                "runtime": "onnxruntime CPUExecutionProvider",
                "tolerance_abs": self.tolerance,
                "max_abs_diff": self.max_abs_diff,
                "batches": list(self.batches),
            },
            "exporter": self.exporter,
            "opset": self.opset,
        }


def sample_inputs(model: WorldModel, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible inputs: observations around the model's normalisation statistics, actions in
    [-1, 1], latents from encoding those observations."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    obs = model.obs_mean + model.obs_std * torch.randn(batch, c.obs_dim, generator=g)
    action = torch.rand(batch, c.action_dim, generator=g) * 2.0 - 1.0
    with torch.no_grad():
        z = model.encode(obs)
    return {"obs": obs.float(), "action": action.float(), "z": z.float()}


def _export_one(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[tuple[str, ...], tuple[str, ...]],
    path: Path,
    exporter: str,
    opset: int,
) -> None:
    inputs, outputs = names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
            torch.onnx.export(
                module, args, str(path), dynamo=True, external_data=False, opset_version=opset,
                input_names=list(inputs), output_names=list(outputs),
                dynamic_shapes={name: {0: batch} for name in inputs}, optimize=True,
            )
        elif exporter == "legacy":
            torch.onnx.export(
                module, args, str(path), dynamo=False, opset_version=opset,
                input_names=list(inputs), output_names=list(outputs),
                dynamic_axes={n: {0: "batch"} for n in (*inputs, *outputs)},
            )
        else:
            raise ModelError(f"export: unknown exporter {exporter!r}; use 'dynamo' or 'legacy'")
    data = path.with_name(path.name + ".data")
    if data.exists():
        raise ModelError(f"export: {data} was written; weights must be embedded in {path.name}")


def roundtrip(
    model: WorldModel, folder: Path, batches: tuple[int, ...] = ROUNDTRIP_BATCHES
) -> dict[str, float]:
    """Max |torch − onnxruntime| per output over ``batches`` (CPU provider)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    enc = ort.InferenceSession(str(folder / ENCODER_ONNX), so, providers=["CPUExecutionProvider"])
    dyn = ort.InferenceSession(str(folder / DYNAMICS_ONNX), so, providers=["CPUExecutionProvider"])
    worst: dict[str, float] = {}
    model = model.cpu().eval()
    for i, b in enumerate(batches):
        x = sample_inputs(model, b, seed=i)
        with torch.no_grad():
            ref_z = model.encode(x["obs"]).numpy()
            ref = [t.numpy() for t in DynamicsGraph(model)(x["z"], x["action"])]
        (z,) = enc.run(None, {"obs": x["obs"].numpy()})
        outs = dyn.run(None, {"z": x["z"].numpy(), "action": x["action"].numpy()})
        pairs = [("z", ref_z, z), *zip(DYNAMICS_IO[1], ref, outs, strict=True)]
        for name, r, o in pairs:
            if o.shape != r.shape:
                raise ModelError(f"export roundtrip: {name}: onnxruntime shape {o.shape}, torch {r.shape}")
            worst[name] = max(worst.get(name, 0.0), float(np.max(np.abs(o - r))))
    return worst


def export_onnx(
    model: WorldModel,
    folder: Path | str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    exporter: str = "dynamo",
    opset: int = 18,
    batches: tuple[int, ...] = ROUNDTRIP_BATCHES,
) -> ExportReport:
    """Write ``encoder.onnx`` and ``dynamics.onnx`` into ``folder`` and check the roundtrip.

    Raises:
        ModelError: the exporter failed, wrote external data, or onnxruntime differs from torch
            by more than ``tolerance`` (the message names the output and the difference).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    x = sample_inputs(model, 4)
    try:
        _export_one(EncoderGraph(model), (x["obs"],), ENCODER_IO, folder / ENCODER_ONNX, exporter, opset)
        _export_one(DynamicsGraph(model), (x["z"], x["action"]), DYNAMICS_IO,
                    folder / DYNAMICS_ONNX, exporter, opset)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"export: torch.onnx.export ({exporter}) failed: {exc}; try --legacy"
        ) from exc
    worst = roundtrip(model, folder, batches)
    bad = {k: v for k, v in worst.items() if not v <= tolerance}
    if bad:
        raise ModelError(
            f"export roundtrip: onnxruntime differs from torch by more than {tolerance} on "
            f"{bad} (batches {list(batches)})"
        )
    files = {n: file_entry(folder / n)["sha256"] for n in (ENCODER_ONNX, DYNAMICS_ONNX)}
    return ExportReport(files, worst, tolerance, tuple(batches), exporter, opset)


def export_folder(
    folder: Path | str, *, tolerance: float = DEFAULT_TOLERANCE, exporter: str = "dynamo"
) -> ExportReport:
    """Load the model folder (hash-verified), export next to the weights, add to the card."""
    folder = Path(folder)
    model, _ = load_model(folder)
    report = export_onnx(model, folder, tolerance=tolerance, exporter=exporter)
    c = model.config
    update_card(folder, onnx={
        **report.to_dict(),
        "encoder": {"file": ENCODER_ONNX, "inputs": {"obs": ["batch", c.obs_dim]},
                    "outputs": {"z": ["batch", c.latent_dim]}},
        "dynamics": {"file": DYNAMICS_ONNX,
                     "inputs": {"z": ["batch", c.latent_dim], "action": ["batch", c.action_dim]},
                     "outputs": {"z_next": ["batch", c.latent_dim], "dpos": ["batch", 3],
                                 "progress": ["batch"], "collision_logit": ["batch"],
                                 "next_obs": ["batch", c.obs_dim]}},
        "dynamic_batch": {"min": 1, "max": MAX_BATCH},
    })
    return report


def build_parser() -> argparse.ArgumentParser:
    """Arguments of ``wm-agent export``."""
    p = argparse.ArgumentParser(
        prog="wm-agent export",
        description="Export a trained model folder to ONNX (encoder.onnx, dynamics.onnx) with a "
        "dynamic batch, check torch vs onnxruntime, record hashes in the card.",
    )
    p.add_argument("--model", type=Path, default=RETRAINED_MODEL_DIR,
                   help=f"model folder (default {RETRAINED_MODEL_DIR}, what `wm-agent train` writes)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"max |torch - onnxruntime| (default {DEFAULT_TOLERANCE})")
    p.add_argument("--legacy", action="store_true", help="use the legacy TorchScript exporter")
    return p


def export_main(argv: list[str] | None = None) -> int:
    """CLI: ``wm-agent export``. Returns the exit status (0 ok, 2 error)."""
    ns = build_parser().parse_args(argv)
    folder = ns.model
    try:
        report = export_folder(folder, tolerance=ns.tolerance,
                               exporter="legacy" if ns.legacy else "dynamo")
    except WmAgentError as exc:
        print(f"wm-agent export: error: {exc}")
        return 2
    worst = max(report.max_abs_diff.values())
    print(f"wrote {folder / ENCODER_ONNX} and {folder / DYNAMICS_ONNX} ({report.exporter}, opset "
          f"{report.opset}); roundtrip max |diff| {worst:.2e} <= {report.tolerance} on batches "
          f"{list(report.batches)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(export_main())
