"""World-model inference backends behind one Protocol (numpy float32 in and out).

``open_runtime(name, folder)`` with ``name`` in :data:`BACKENDS`:

* ``torch`` — the reference: the safetensors weights in PyTorch (CUDA when present, else CPU).
* ``onnxruntime`` — the exported ONNX files; CUDA provider first where onnxruntime has it. The
  providers the session actually uses (``session.get_providers()``) are in ``describe()``.
* ``tensorrt`` — engines built from the same ONNX files with FP16 through the TensorRT Python API,
  cached on disk keyed by ONNX SHA-256 + GPU name + TensorRT version; rebuilt only when one of
  those changes (or when asked). Needs an NVIDIA GPU, the ``tensorrt`` package and CUDA-enabled
  torch (for device buffers); otherwise opening it raises :class:`ModelError` with the reason.

Every backend validates shapes/dtypes (errors name the expected shape and dtype) and isolates
bad rows: a row with NaN/inf is zero-filled before inference and reported in the returned
``valid`` mask, so it never contaminates the rest of the batch.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from wm_agent.errors import ModelError
from wm_agent.world_model.artifacts import load_model, read_card, verify_files
from wm_agent.world_model.dataset import sha256_file
from wm_agent.world_model.export import DYNAMICS_IO, DYNAMICS_ONNX, ENCODER_IO, ENCODER_ONNX

TENSORRT_UNAVAILABLE = "no NVIDIA GPU / TensorRT"


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


@dataclass(frozen=True)
class RuntimeOptions:
    """Backend options.

    Attributes:
        device: torch device ("cpu", "cuda", "cuda:1"); None = CUDA when available, else CPU.
        providers: onnxruntime providers in order of preference; None = CUDA (when onnxruntime
            has it), then CPU.
        threads: CPU threads for onnxruntime / torch on CPU (0 = library default).
        engine_cache: folder of cached TensorRT engines (default ``$WM_AGENT_TRT_CACHE`` or
            ``~/.cache/wm_agent/trt``). rebuild_engine: rebuild even if the cache matches.
        fp16: build TensorRT engines with FP16 enabled.
        min_batch, opt_batch, max_batch: TensorRT optimisation profile for the batch dimension.
        verify: verify the card's file hashes when opening.
    """

    device: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int = 0
    engine_cache: Path | None = None
    rebuild_engine: bool = False
    fp16: bool = True
    min_batch: int = 1
    opt_batch: int = 256
    max_batch: int = 4096
    verify: bool = True


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

    def __init__(self, folder: Path, options: RuntimeOptions):
        if options.device is not None:
            device = torch.device(options.device)
        else:
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device.type == "cpu" and options.threads > 0:
            torch.set_num_threads(options.threads)
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

    def __init__(self, folder: Path, options: RuntimeOptions):
        import onnxruntime as ort

        card, d, a, lat = _card_dims(folder, options.verify)
        super().__init__(folder, d, a, lat)
        available = ort.get_available_providers()
        wanted = list(options.providers or ("CUDAExecutionProvider", "CPUExecutionProvider"))
        providers = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        so = ort.SessionOptions()
        if options.threads > 0:
            so.intra_op_num_threads = options.threads
        self.encoder = ort.InferenceSession(str(folder / ENCODER_ONNX), so, providers=providers)
        self.dynamics = ort.InferenceSession(str(folder / DYNAMICS_ONNX), so, providers=providers)
        self.requested = wanted
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


def tensorrt_unavailable_reason() -> str | None:
    """None when the TensorRT backend can run here, else why not (starts with
    :data:`TENSORRT_UNAVAILABLE`)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return f"{TENSORRT_UNAVAILABLE}: the 'tensorrt' Python package cannot be imported ({exc})"
    try:
        import torch
    except Exception as exc:  # pragma: no cover - torch is a dependency
        return f"{TENSORRT_UNAVAILABLE}: torch (used for CUDA buffers) cannot be imported ({exc})"
    if not torch.cuda.is_available():
        return (f"{TENSORRT_UNAVAILABLE}: no CUDA device visible to torch (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda})")
    return None


def default_engine_cache() -> Path:
    """``$WM_AGENT_TRT_CACHE`` or ``~/.cache/wm_agent/trt``."""
    env = os.environ.get("WM_AGENT_TRT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wm_agent" / "trt"


def engine_key(onnx_path: Path, gpu_name: str, trt_version: str, fp16: bool,
               profile: tuple[int, int, int]) -> dict[str, Any]:
    """What a cached engine depends on: ONNX SHA-256, GPU name, TensorRT version (+ precision and
    batch profile, which are options of this build)."""
    return {"onnx_sha256": sha256_file(onnx_path), "gpu": gpu_name, "tensorrt": trt_version,
            "fp16": fp16, "profile": list(profile)}


def engine_path(cache: Path, onnx_path: Path, key: dict[str, Any]) -> Path:
    """Cache file name carrying the key (readable, unique per key)."""
    gpu = re.sub(r"[^A-Za-z0-9]+", "-", key["gpu"]).strip("-").lower()
    prec = "fp16" if key["fp16"] else "fp32"
    prof = "-".join(str(p) for p in key["profile"])
    return cache / (f"{onnx_path.stem}-{key['onnx_sha256'][:16]}-{gpu}-trt{key['tensorrt']}-"
                    f"{prec}-b{prof}.engine")


def build_engine(trt: Any, logger: Any, onnx_path: Path, profile: tuple[int, int, int],
                 fp16: bool) -> bytes:
    """Parse ``onnx_path`` and build a serialized TensorRT engine. Every input's first
    dimension is the batch (optimisation profile ``(min, opt, max)``); all other dimensions
    must be static in the ONNX file.

    Raises:
        ModelError: the parser's errors, a dynamic non-batch dimension, or a failed build.
    """
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"tensorrt backend: cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    opt_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        rest = tuple(int(d) for d in inp.shape)[1:]
        if any(d < 0 for d in rest):
            raise ModelError(f"tensorrt backend: {onnx_path} input {inp.name!r} has a dynamic "
                             f"dimension besides the batch: {tuple(inp.shape)}")
        opt_profile.set_shape(inp.name, *((b, *rest) for b in profile))
    config.add_optimization_profile(opt_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"tensorrt backend: building the engine for {onnx_path} failed")
    return bytes(serialized)


def cached_engine(trt: Any, logger: Any, onnx_path: Path, cache: Path, key: dict[str, Any],
                  profile: tuple[int, int, int], fp16: bool, rebuild: bool) -> tuple[Any, bool, Path]:
    """The engine for ``onnx_path`` from ``cache`` when its key matches, else built and cached
    (written atomically, key beside it). Returns (engine, built now, engine file)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = engine_path(cache, onnx_path, key)
    meta = path.with_suffix(".json")
    runtime = trt.Runtime(logger)
    if not rebuild and path.is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()) == key:
                engine = runtime.deserialize_cuda_engine(path.read_bytes())
                if engine is not None:
                    return engine, False, path
        except (OSError, json.JSONDecodeError):
            pass
    serialized = build_engine(trt, logger, onnx_path, profile, fp16)
    tmp = path.with_suffix(".engine.tmp")
    tmp.write_bytes(serialized)
    tmp.replace(path)
    meta.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    engine = runtime.deserialize_cuda_engine(serialized)
    if engine is None:
        raise ModelError(f"tensorrt backend: the engine built from {onnx_path} does not deserialize")
    return engine, True, path


def execute_engine(ctx: Any, inputs: dict[str, NDArray[np.float32]], outputs: tuple[str, ...],
                   profile: tuple[int, int, int], device: torch.device) -> list[NDArray[np.float32]]:
    """Run one TensorRT execution context on numpy inputs (copied to ``device``) and return the
    named outputs as numpy arrays.

    Raises:
        ModelError: a batch outside the profile, or a failed execution.
    """
    for name, arr in inputs.items():
        if not profile[0] <= arr.shape[0] <= profile[2]:
            raise ModelError(
                f"tensorrt runtime: {name} batch {arr.shape[0]} is outside the engine's profile "
                f"[{profile[0]}, {profile[2]}]; open with a larger max_batch"
            )
    keep = []
    for name, arr in inputs.items():
        t = torch.from_numpy(arr).to(device).contiguous()
        keep.append(t)
        ctx.set_input_shape(name, tuple(t.shape))
        ctx.set_tensor_address(name, t.data_ptr())
    outs = []
    for name in outputs:
        t = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=torch.float32, device=device)
        outs.append(t)
        ctx.set_tensor_address(name, t.data_ptr())
    stream = torch.cuda.current_stream(device)
    if not ctx.execute_async_v3(stream.cuda_stream):
        raise ModelError("tensorrt runtime: engine execution failed")
    stream.synchronize()
    return [t.cpu().numpy() for t in outs]


class TensorRTBackend(_Runtime):
    """TensorRT engines built from the ONNX files (FP16), cached on disk."""

    name = "tensorrt"

    def __init__(self, folder: Path, options: RuntimeOptions):
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise ModelError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt

        card, d, a, lat = _card_dims(folder, options.verify)
        super().__init__(folder, d, a, lat)
        self.trt = trt
        self.device = torch.device(options.device or "cuda")
        self.gpu = torch.cuda.get_device_name(self.device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.cache = options.engine_cache or default_engine_cache()
        self.cache.mkdir(parents=True, exist_ok=True)
        self.profile = (options.min_batch, options.opt_batch, options.max_batch)
        self.built: dict[str, bool] = {}
        self.engine_files: dict[str, str] = {}
        self.contexts = {}
        for label, fname in (("encoder", ENCODER_ONNX), ("dynamics", DYNAMICS_ONNX)):
            engine = self._engine(folder / fname, label, options)
            self.contexts[label] = (engine, engine.create_execution_context())
        self.card = card

    def _engine(self, onnx_path: Path, label: str, options: RuntimeOptions) -> Any:
        key = engine_key(onnx_path, self.gpu, self.trt.__version__, options.fp16, self.profile)
        engine, built, path = cached_engine(self.trt, self.logger, onnx_path, self.cache, key,
                                            self.profile, options.fp16, options.rebuild_engine)
        self.engine_files[label] = str(path)
        self.built[label] = built
        return engine

    def _run(self, label: str, inputs: dict[str, NDArray[np.float32]], outputs: tuple[str, ...]
             ) -> list[NDArray[np.float32]]:
        _, ctx = self.contexts[label]
        return execute_engine(ctx, inputs, outputs, self.profile, self.device)

    def _encode(self, obs: NDArray[np.float32]) -> NDArray[np.float32]:
        return self._run("encoder", {"obs": obs}, ENCODER_IO[1])[0]

    def _step(self, z: NDArray[np.float32], a: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        return self._run("dynamics", {"z": z, "action": a}, DYNAMICS_IO[1])

    def describe(self) -> dict[str, Any]:
        """Backend, GPU, TensorRT version, engine files and whether they were (re)built now."""
        return {**super().describe(), "gpu": self.gpu, "tensorrt": self.trt.__version__,
                "engines": self.engine_files, "built_now": self.built, "profile": list(self.profile)}


BACKENDS: dict[str, Callable[[Path, RuntimeOptions], WorldModelRuntime]] = {
    "torch": TorchRuntime,
    "onnxruntime": OnnxRuntimeBackend,
    "tensorrt": TensorRTBackend,
}
"""Backend name → factory ``(model folder, options) → runtime``."""


def backend_status() -> dict[str, str]:
    """Backend name → "available" or the reason it cannot run here."""
    out: dict[str, str] = {}
    for name in BACKENDS:
        try:
            if name == "torch":
                import torch  # noqa: F401
            elif name == "onnxruntime":
                import onnxruntime  # noqa: F401
            else:
                reason = tensorrt_unavailable_reason()
                if reason:
                    out[name] = reason
                    continue
            out[name] = "available"
        except Exception as exc:
            out[name] = f"{name} cannot be imported ({exc})"
    return out


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    return [k for k, v in backend_status().items() if v == "available"]


def open_runtime(
    backend: str, folder: Path | str | None = None, options: RuntimeOptions | None = None
) -> WorldModelRuntime:
    """Open ``backend`` on a model folder (default ``<share>/models/wm_default``).

    Raises:
        ModelError: unknown backend (lists the known ones), a backend that cannot run here
            (says why), or a bad model folder.
    """
    from wm_agent.world_model.artifacts import default_model_dir

    if backend not in BACKENDS:
        raise ModelError(f"world-model backend {backend!r} is unknown; choose one of {sorted(BACKENDS)}")
    return BACKENDS[backend](Path(folder) if folder else default_model_dir(), options or RuntimeOptions())
