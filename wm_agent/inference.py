"""The one inference stack behind every model the project runs (world model, plan graph).

One options type (:class:`InferenceOptions`), one backend list (:class:`Backend`), one answer to
"can this backend run here and if not why" (:func:`backend_status`), one cache folder
(``$WM_AGENT_CACHE`` or ``~/.cache/wm_agent``: exported plan graphs under ``plan/``, TensorRT
engines under ``trt/``) and one TensorRT engine cache: an engine is a cache of an ONNX file, keyed
by the ONNX SHA-256, the GPU name, the TensorRT version, the precision and the batch profile, and
rebuilt only when one of those changes (or when asked). :mod:`wm_agent.world_model.runtime` and
:mod:`wm_agent.planning.backends` build their backends on it.

TensorRT needs an NVIDIA GPU, the ``tensorrt`` package and CUDA-enabled torch (for device
buffers); without them :func:`tensorrt_unavailable_reason` says which is missing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError, ModelError

if TYPE_CHECKING:  # torch is imported where a model runs (the backend list stays light)
    import torch

TENSORRT_UNAVAILABLE = "no NVIDIA GPU / TensorRT"


class Backend(StrEnum):
    """Where a model runs (the values are what users type)."""

    TORCH = "torch"              # the reference: PyTorch eager (CUDA when present, else CPU)
    ONNXRUNTIME = "onnxruntime"  # the exported ONNX file (CUDA provider first where present)
    TENSORRT = "tensorrt"        # that ONNX file built into a TensorRT engine (GPU / Jetson)


@dataclass(frozen=True)
class InferenceOptions:
    """How to run a model (every backend reads what applies to it).

    Attributes:
        device: torch device ("cpu", "cuda", "cuda:1"); None = CUDA when available, else CPU.
        providers: onnxruntime providers in order of preference; None = CUDA (when onnxruntime
            has it), then CPU.
        threads: CPU threads for onnxruntime / torch on CPU (0 = library default).
        cache: cache folder (None: ``$WM_AGENT_CACHE`` or ``~/.cache/wm_agent``).
        rebuild_engine: TensorRT: rebuild even when the cached engine's key matches.
        fp16: TensorRT: build with FP16 enabled.
        min_batch, opt_batch, max_batch: TensorRT optimisation profile of the batch dimension.
        verify: verify the model card's file hashes when opening.
    """

    device: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int = 0
    cache: Path | None = None
    rebuild_engine: bool = False
    fp16: bool = True
    min_batch: int = 1
    opt_batch: int = 256
    max_batch: int = 4096
    verify: bool = True

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ConfigError(f"inference options: threads must be >= 0, got {self.threads}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ConfigError(
                f"inference options: expected 1 <= min_batch ({self.min_batch}) <= opt_batch "
                f"({self.opt_batch}) <= max_batch ({self.max_batch})")

    @property
    def profile(self) -> tuple[int, int, int]:
        """TensorRT batch profile (min, opt, max)."""
        return self.min_batch, self.opt_batch, self.max_batch

    def cache_dir(self, kind: str) -> Path:
        """The cache subfolder ``kind`` ("plan", "trt")."""
        root = self.cache or Path(os.environ.get("WM_AGENT_CACHE") or Path.home() / ".cache" / "wm_agent")
        return Path(root) / kind

    def torch_device(self) -> torch.device:
        """The torch device to run on (CUDA when available unless told)."""
        import torch

        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def apply_torch_threads(self, device: torch.device) -> None:
        """Set torch's CPU threads when asked (on CPU only)."""
        import torch

        if device.type == "cpu" and self.threads > 0:
            torch.set_num_threads(self.threads)


def onnx_session(path: Path, options: InferenceOptions) -> Any:
    """An onnxruntime session on ``path`` with the preferred available providers, the thread
    count and full graph optimisation; ``session.get_providers()`` says what it really uses."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if options.threads > 0:
        so.intra_op_num_threads = options.threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = ort.get_available_providers()
    wanted = list(options.providers or ("CUDAExecutionProvider", "CPUExecutionProvider"))
    providers = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), so, providers=providers)


def tensorrt_unavailable_reason() -> str | None:
    """None when TensorRT can run here, else why not (starts with :data:`TENSORRT_UNAVAILABLE`)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:
        return f"{TENSORRT_UNAVAILABLE}: the 'tensorrt' Python package cannot be imported ({exc})"
    import torch

    if not torch.cuda.is_available():
        return (f"{TENSORRT_UNAVAILABLE}: no CUDA device visible to torch (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda})")
    return None


def backend_status() -> dict[str, str]:
    """Backend name → "available" or the reason it cannot run here."""
    out = {Backend.TORCH.value: "available"}
    try:
        import onnxruntime  # noqa: F401

        out[Backend.ONNXRUNTIME.value] = "available"
    except Exception as exc:
        out[Backend.ONNXRUNTIME.value] = f"onnxruntime cannot be imported ({exc})"
    out[Backend.TENSORRT.value] = tensorrt_unavailable_reason() or "available"
    return out


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    return [k for k, v in backend_status().items() if v == "available"]


def require_backend(name: str, what: str) -> Backend:
    """``name`` as a :class:`Backend` that can run here.

    Raises:
        ModelError: unknown (lists the known ones) or unavailable here (says why).
    """
    try:
        backend = Backend(name)
    except ValueError:
        raise ModelError(f"{what} backend {name!r} is unknown; choose one of "
                         f"{sorted(b.value for b in Backend)}") from None
    status = backend_status()[backend.value]
    if status != "available":
        raise ModelError(f"{what} backend {backend.value} unavailable: {status}")
    return backend


# -- TensorRT engines: a cache of ONNX files ------------------------------------------------------
def engine_key(onnx_path: Path, gpu_name: str, trt_version: str, fp16: bool,
               profile: tuple[int, int, int]) -> dict[str, Any]:
    """What a cached engine depends on: ONNX SHA-256, GPU name, TensorRT version (+ precision and
    batch profile, which are options of this build)."""
    from wm_agent.world_model.dataset import sha256_file

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
                 fp16: bool) -> bytes:  # pragma: no cover - needs an NVIDIA GPU and TensorRT
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


class TensorRtEngine:  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    """One ONNX file as a TensorRT engine from the cache (built and cached when its key does not
    match), with an execution context on ``options.torch_device()``.

    Attributes:
        gpu, trt_version, built (built now, not loaded), path (engine file), profile.
    """

    def __init__(self, onnx_path: Path, options: InferenceOptions) -> None:
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise ModelError(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt
        import torch

        self.device = torch.device(options.device or "cuda")
        self.gpu = torch.cuda.get_device_name(self.device)
        self.trt_version = trt.__version__
        self.profile = options.profile
        logger = trt.Logger(trt.Logger.WARNING)
        key = engine_key(onnx_path, self.gpu, trt.__version__, options.fp16, self.profile)
        cache = options.cache_dir("trt")
        cache.mkdir(parents=True, exist_ok=True)
        self.path = engine_path(cache, onnx_path, key)
        meta = self.path.with_suffix(".json")
        runtime = trt.Runtime(logger)
        self.engine, self.built = None, False
        if not options.rebuild_engine and self.path.is_file() and meta.is_file():
            try:
                if json.loads(meta.read_text()) == key:
                    self.engine = runtime.deserialize_cuda_engine(self.path.read_bytes())
            except (OSError, json.JSONDecodeError):
                self.engine = None
        if self.engine is None:
            serialized = build_engine(trt, logger, onnx_path, self.profile, options.fp16)
            tmp = self.path.with_suffix(".engine.tmp")
            tmp.write_bytes(serialized)
            tmp.replace(self.path)
            meta.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
            self.engine = runtime.deserialize_cuda_engine(serialized)
            self.built = True
            if self.engine is None:
                raise ModelError(f"tensorrt backend: the engine built from {onnx_path} does not "
                                 "deserialize")
        self.context = self.engine.create_execution_context()
        self.tensor_names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]

    def run(self, inputs: dict[str, NDArray[np.float32]], outputs: tuple[str, ...]
            ) -> list[NDArray[np.float32]]:
        """Run on numpy inputs (copied to the device); the named outputs as numpy arrays.

        Raises:
            ModelError: a batch outside the profile, or a failed execution.
        """
        for name, arr in inputs.items():
            if not self.profile[0] <= arr.shape[0] <= self.profile[2]:
                raise ModelError(
                    f"tensorrt runtime: {name} batch {arr.shape[0]} is outside the engine's profile "
                    f"[{self.profile[0]}, {self.profile[2]}]; open with a larger max_batch"
                )
        import torch

        ctx = self.context
        keep = []
        for name, arr in inputs.items():
            t = torch.from_numpy(arr).to(self.device).contiguous()
            keep.append(t)
            ctx.set_input_shape(name, tuple(t.shape))
            ctx.set_tensor_address(name, t.data_ptr())
        outs = []
        for name in outputs:
            t = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
            outs.append(t)
            ctx.set_tensor_address(name, t.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not ctx.execute_async_v3(stream.cuda_stream):
            raise ModelError("tensorrt runtime: engine execution failed")
        stream.synchronize()
        return [t.cpu().numpy() for t in outs]

    def describe(self) -> dict[str, Any]:
        """GPU, TensorRT version, engine file, whether it was built now, the batch profile."""
        return {"gpu": self.gpu, "tensorrt": self.trt_version, "engine": str(self.path),
                "built_now": self.built, "profile": list(self.profile)}
