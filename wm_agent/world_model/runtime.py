"""World-model inference backends behind one Protocol (numpy float32 in and out).

``open_runtime(name, folder)`` with ``name`` in :data:`BACKENDS`:

* ``torch`` — the reference: the safetensors weights in PyTorch (CUDA when present, else CPU).
* ``onnxruntime`` — the exported ONNX files; CUDA provider first where onnxruntime has it. The
  providers the session actually uses (``session.get_providers()``) are in ``describe()``.
* ``tensorrt`` — engines built from the same ONNX files (FP16) through the TensorRT Python API,
  cached by :class:`wm_agent.inference.TensorRtEngine` (rebuilt only when the ONNX file, the GPU
  or TensorRT changes, or when asked); without a GPU/TensorRT opening it raises
  :class:`ModelError` with the reason.

Options, backend names and availability are the one inference stack's (:mod:`wm_agent.inference`).

Every backend validates shapes/dtypes (errors name the expected shape and dtype) and isolates
bad rows: a row with NaN/inf is zero-filled before inference and reported in the returned
``valid`` mask, so it never contaminates the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from wm_agent.errors import ModelError
from wm_agent.inference import Backend, InferenceOptions, TensorRtEngine, onnx_session, require_backend
from wm_agent.world_model.artifacts import load_model, read_card, verify_files
from wm_agent.world_model.export import DYNAMICS_IO, DYNAMICS_ONNX, ENCODER_IO, ENCODER_ONNX


class EncodeResult(NamedTuple):
    """Attributes: z (N, L) float32 latents; valid (N,) bool (False: non-finite input row, z zeroed)."""

    z: NDArray[np.float32]
    valid: NDArray[np.bool_]


class StepResult(NamedTuple):
    """One world-model step for N rows (all float32 except ``valid``).

    Attributes:
        z_next: (N, L). dpos: (N, 3) position change [m], map ENU. progress: (N,) goal-distance
        decrease [m]. collision_logit: (N,). next_obs: (N, D) decoded observation (physical
        units; [:, 0:3] = velocity [m/s]). valid: (N,) bool (False: non-finite input row,
        outputs zeroed).
    """

    z_next: NDArray[np.float32]
    dpos: NDArray[np.float32]
    progress: NDArray[np.float32]
    collision_logit: NDArray[np.float32]
    next_obs: NDArray[np.float32]
    valid: NDArray[np.bool_]


class WorldModelRuntime(Protocol):
    """What the planner and the nodes call; every backend implements it."""

    name: str
    obs_dim: int
    action_dim: int
    latent_dim: int

    def encode(self, obs: NDArray[np.float32]) -> EncodeResult:
        """(N, D) float32 observations → latents."""

    def step(self, z: NDArray[np.float32], action: NDArray[np.float32]) -> StepResult:
        """(N, L) latents, (N, A) normalised actions → next latents, costs, decoded state."""

    def describe(self) -> dict[str, Any]:
        """Backend name, device / providers actually used, model folder."""


def _check(backend: str, what: str, arr: Any, width: int) -> NDArray[np.float32]:
    if not isinstance(arr, np.ndarray) or arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[1] != width:
        got = (f"dtype {arr.dtype} shape {arr.shape}" if isinstance(arr, np.ndarray)
               else type(arr).__name__)
        raise ModelError(
            f"{backend} runtime: {what}: expected a float32 numpy array of shape (N, {width}), "
            f"got {got}"
        )
    return arr


def _clean(*arrays: NDArray[np.float32]) -> tuple[list[NDArray[np.float32]], NDArray[np.bool_]]:
    valid = np.ones(arrays[0].shape[0], dtype=bool)
    for a in arrays:
        valid &= np.isfinite(a).all(axis=1)
    if valid.all():
        return [np.ascontiguousarray(a) for a in arrays], valid
    return [np.where(valid[:, None], a, np.float32(0.0)).astype(np.float32) for a in arrays], valid


class _Runtime:
    """Shared validation and NaN isolation; subclasses implement ``_encode`` and ``_step``."""

    name = "base"

    def __init__(self, folder: Path, obs_dim: int, action_dim: int, latent_dim: int):
        self.folder = folder
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.latent_dim = latent_dim

    def _encode(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        raise NotImplementedError

    def _step(self, z: NDArray[np.float32], a: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        raise NotImplementedError

    def encode(self, obs: NDArray[np.float32]) -> EncodeResult:
        """See :class:`WorldModelRuntime`."""
        (o,), valid = _clean(_check(self.name, "obs", obs, self.obs_dim))
        if o.shape[0] == 0:
            return EncodeResult(np.zeros((0, self.latent_dim), np.float32), valid)
        z = np.asarray(self._encode(o), np.float32).reshape(o.shape[0], self.latent_dim)
        valid &= np.isfinite(z).all(axis=1)
        z[~valid] = 0.0
        return EncodeResult(z, valid)

    def step(self, z: NDArray[np.float32], action: NDArray[np.float32]) -> StepResult:
        """See :class:`WorldModelRuntime`."""
        zz = _check(self.name, "z", z, self.latent_dim)
        aa = _check(self.name, "action", action, self.action_dim)
        if zz.shape[0] != aa.shape[0]:
            raise ModelError(
                f"{self.name} runtime: step: z has {zz.shape[0]} rows, action {aa.shape[0]}; "
                "expected the same N"
            )
        (zc, ac), valid = _clean(zz, aa)
        n = zc.shape[0]
        if n == 0:
            e = np.zeros((0,), np.float32)
            return StepResult(np.zeros((0, self.latent_dim), np.float32), np.zeros((0, 3), np.float32),
                              e, e, np.zeros((0, self.obs_dim), np.float32), valid)
        outs = [np.asarray(o, np.float32) for o in self._step(zc, ac)]
        z1, dpos, prog, logit, nobs = (
            outs[0].reshape(n, self.latent_dim), outs[1].reshape(n, 3), outs[2].reshape(n),
            outs[3].reshape(n), outs[4].reshape(n, self.obs_dim),
        )
        for o in (z1, dpos, nobs):
            valid &= np.isfinite(o).all(axis=1)
        valid &= np.isfinite(prog) & np.isfinite(logit)
        for o in (z1, dpos, prog, logit, nobs):
            o[~valid] = 0.0
        return StepResult(z1, dpos, prog, logit, nobs, valid)

    def describe(self) -> dict[str, Any]:
        """See :class:`WorldModelRuntime`."""
        return {"backend": self.name, "folder": str(self.folder)}


class TorchRuntime(_Runtime):
    """Reference backend: the safetensors weights in PyTorch."""

    name = "torch"

    def __init__(self, folder: Path, options: InferenceOptions):
        device = options.torch_device()
        options.apply_torch_threads(device)
        model, card = load_model(folder, device=device, verify=options.verify)
        c = model.config
        super().__init__(folder, c.obs_dim, c.action_dim, c.latent_dim)
        self.model = model
        self.device = device
        self.card = card

    @torch.no_grad()
    def _encode(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.model.encode(torch.from_numpy(obs).to(self.device)).cpu().numpy()

    @torch.no_grad()
    def _step(self, z: NDArray[np.float32], a: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        o = self.model.step(torch.from_numpy(z).to(self.device), torch.from_numpy(a).to(self.device))
        return [t.cpu().numpy() for t in o]

    def describe(self) -> dict[str, Any]:
        """Backend and the torch device."""
        return {**super().describe(), "device": str(self.device)}


def _card_dims(folder: Path, verify: bool) -> tuple[dict[str, Any], int, int, int]:
    card = read_card(folder)
    if verify:
        verify_files(folder, card)
    if "onnx" not in card:
        raise ModelError(
            f"model folder {folder}: the card has no 'onnx' section; run `wm-agent export "
            f"--model {folder}` first"
        )
    cfg = card["architecture"]["config"]
    return card, int(cfg["obs_dim"]), int(cfg["action_dim"]), int(cfg["latent_dim"])


class OnnxRuntimeBackend(_Runtime):
    """onnxruntime on the exported files (CUDA provider first where present)."""

    name = "onnxruntime"

    def __init__(self, folder: Path, options: InferenceOptions):
        card, d, a, lat = _card_dims(folder, options.verify)
        super().__init__(folder, d, a, lat)
        self.encoder = onnx_session(folder / ENCODER_ONNX, options)
        self.dynamics = onnx_session(folder / DYNAMICS_ONNX, options)
        self.requested = list(options.providers or ("CUDAExecutionProvider", "CPUExecutionProvider"))
        self.providers = list(self.encoder.get_providers())
        self.card = card

    def _encode(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        (z,) = self.encoder.run([ENCODER_IO[1][0]], {ENCODER_IO[0][0]: obs})
        return np.asarray(z)

    def _step(self, z: NDArray[np.float32], a: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        return [np.asarray(o) for o in self.dynamics.run(list(DYNAMICS_IO[1]), {"z": z, "action": a})]

    def describe(self) -> dict[str, Any]:
        """Backend, requested and actually used providers (``session.get_providers()``)."""
        return {**super().describe(), "requested_providers": self.requested,
                "providers": self.providers,
                "dynamics_providers": list(self.dynamics.get_providers())}


class TensorRTBackend(_Runtime):  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    """TensorRT engines built from the ONNX files, cached (:class:`wm_agent.inference.TensorRtEngine`)."""

    name = "tensorrt"

    def __init__(self, folder: Path, options: InferenceOptions):
        card, d, a, lat = _card_dims(folder, options.verify)
        super().__init__(folder, d, a, lat)
        self.engines = {label: TensorRtEngine(folder / fname, options)
                        for label, fname in (("encoder", ENCODER_ONNX), ("dynamics", DYNAMICS_ONNX))}
        self.card = card

    def _encode(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self.engines["encoder"].run({"obs": obs}, ENCODER_IO[1])[0]

    def _step(self, z: NDArray[np.float32], a: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        return self.engines["dynamics"].run({"z": z, "action": a}, DYNAMICS_IO[1])

    def describe(self) -> dict[str, Any]:
        """Backend, GPU, TensorRT version, engine files and whether they were (re)built now."""
        return {**super().describe(), **{k: e.describe() for k, e in self.engines.items()}}


BACKENDS: dict[Backend, Callable[[Path, InferenceOptions], WorldModelRuntime]] = {
    Backend.TORCH: TorchRuntime,
    Backend.ONNXRUNTIME: OnnxRuntimeBackend,
    Backend.TENSORRT: TensorRTBackend,
}
"""Backend → factory ``(model folder, options) → runtime``."""


def open_runtime(
    backend: str, folder: Path | str | None = None, options: InferenceOptions | None = None
) -> WorldModelRuntime:
    """Open ``backend`` on a model folder (default ``<share>/models/wm_default``).

    Raises:
        ModelError: unknown backend (lists the known ones), a backend that cannot run here
            (says why), or a bad model folder.
    """
    from wm_agent.world_model.artifacts import default_model_dir

    chosen = require_backend(backend, "world-model")
    return BACKENDS[chosen](Path(folder) if folder else default_model_dir(), options or InferenceOptions())
