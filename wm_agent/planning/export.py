"""One ONNX graph for the whole planning step, and the planner backends.

``plan.onnx`` holds :class:`wm_agent.planning.mppi.PlanGraph` for one :class:`PlannerConfig`:
encode, the fixed iterations × horizon rollouts (unrolled), costs, TopK elites and the refits.

* inputs: ``obs`` (batch, 51), ``pos`` (batch, 3) [m], ``goal`` (batch, 3) [m], ``prev_plan``
  (batch, H, 4), ``noise`` (noise_batch, I, S, D) with noise_batch = batch or 1;
* outputs: ``action`` (batch, 4), ``plan`` (batch, H, 4), ``cost`` (batch,),
  ``collision_prob`` (batch,), ``min_clearance`` (batch,) [m].

The noise is an input, so torch and ONNX Runtime given the same noise return the same plan (the
export is checked: max |Δaction| ≤ :data:`PARITY_TOLERANCE`). Files are cached under
``$WM_AGENT_PLAN_CACHE`` or ``~/.cache/wm_agent/plan/``, keyed by the SHA-256 of the weights (and
latent-action weights) and the config; the model folder is never written.

``open_planner(backend, model_folder, config)`` with ``backend`` in :data:`PLAN_BACKENDS`:
``torch`` (eager, CUDA when present), ``onnxruntime`` (CUDA provider first when present, else
CPU), ``tensorrt`` (the same plan.onnx built into a TensorRT engine, FP16 by default, cached;
raises :class:`ModelError` with the reason when there is no GPU/TensorRT).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from wm_agent.errors import ConfigError, ModelError
from wm_agent.planning.mppi import PlanGraph, Planner, PlannerConfig, TorchPlanBackend
from wm_agent.world_model.spaces import ActionSpec, ObservationSpec

PLAN_INPUTS = ("obs", "pos", "goal", "prev_plan", "noise")
PLAN_OUTPUTS = ("action", "plan", "cost", "collision_prob", "min_clearance")
PARITY_TOLERANCE = 1e-3
"""Max |torch − onnxruntime| on the first action (normalised units) accepted by the export check."""


@dataclass(frozen=True)
class PlannerOptions:
    """Backend options.

    Attributes:
        device: torch device (None: CUDA when available, else CPU).
        threads: CPU threads for onnxruntime / torch (0: library default).
        cache: folder of exported plan graphs (None: ``$WM_AGENT_PLAN_CACHE`` or
            ``~/.cache/wm_agent/plan``).
        verify: check the model card's hashes when loading.
        seed: seed of the planner's noise generator.
        check_parity: after an export, compare torch and ONNX Runtime on a batch.
        fp16: TensorRT: build the engine with FP16 enabled.
        opt_batch, max_batch: TensorRT: optimisation profile of the batch (drones per call;
            the engine's activation memory grows with max_batch × samples).
        rebuild_engine: TensorRT: rebuild even when the cached engine's key matches.
    """

    device: str | None = None
    threads: int = 0
    cache: Path | None = None
    verify: bool = True
    seed: int = 0
    check_parity: bool = True
    fp16: bool = True
    opt_batch: int = 1
    max_batch: int = 1024
    rebuild_engine: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.opt_batch <= self.max_batch:
            raise ConfigError(f"planner options: expected 1 <= opt_batch ({self.opt_batch}) <= "
                             f"max_batch ({self.max_batch})")


def build_graph(model_folder: Path | str, config: PlannerConfig, *, device: str | torch.device = "cpu",
                verify: bool = True) -> tuple[PlanGraph, ActionSpec, dict[str, Any]]:
    """Load the model (hash-verified) and, for latent actions, the autoencoder; build the graph."""
    from wm_agent.world_model.artifacts import load_model

    folder = Path(model_folder)
    model, card = load_model(folder, device=device, verify=verify)
    act = ActionSpec.from_dict(card["action_spec"]) if "action_spec" in card else ActionSpec()
    spec = ObservationSpec.from_dict(card["observation_spec"]) if "observation_spec" in card else None
    codec = None
    if config.action_space == "latent":
        from wm_agent.planning.latent_actions import load_autoencoder

        codec = load_autoencoder(folder, config.horizon).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    graph = PlanGraph(model, config, act, codec, spec).to(device).eval()
    return graph, act, card


def graph_sources(graph: PlanGraph) -> list[Path]:
    """Source files whose code is traced into ``plan.onnx``: the module of every ``nn.Module``
    class in the graph (plan graph, world model, latent-action decoder, …) and every wm_agent
    module those import (specs, helper functions), sorted."""
    import sys
    import types

    names = {type(m).__module__ for m in graph.modules()}
    found: set[str] = set()
    for name in names:
        mod = sys.modules.get(name)
        if mod is None or not name.startswith("wm_agent."):
            continue
        found.add(name)
        for value in vars(mod).values():
            used = value if isinstance(value, types.ModuleType) else sys.modules.get(
                getattr(value, "__module__", "") or "")
            if used is not None and used.__name__.startswith("wm_agent."):
                found.add(used.__name__)
    return sorted(Path(str(sys.modules[n].__file__)) for n in found)


def graph_key(model_folder: Path | str, config: PlannerConfig, graph: PlanGraph) -> str:
    """SHA-256 over the weights file(s), the config, the torch version and the source of every
    module traced into the graph (:func:`graph_sources`): the cache key of ``plan.onnx``."""
    from wm_agent.world_model.dataset import sha256_file

    folder = Path(model_folder)
    h = hashlib.sha256()
    h.update(sha256_file(folder / "weights.safetensors").encode())
    if config.action_space == "latent":
        h.update(sha256_file(folder / "latent_actions.safetensors").encode())
    h.update(json.dumps(config.to_dict(), sort_keys=True).encode())
    h.update(torch.__version__.encode())
    for src in graph_sources(graph):  # the graph's code is part of the key
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()


def sample_plan_inputs(graph: PlanGraph, batch: int, seed: int = 0, noise_batch: int | None = None
                       ) -> dict[str, torch.Tensor]:
    """Plausible inputs for export and parity checks."""
    g = torch.Generator().manual_seed(seed)
    m = graph.model
    c = graph.config
    obs = m.obs_mean + m.obs_std * torch.randn(batch, m.config.obs_dim, generator=g)
    pos = torch.rand(batch, 3, generator=g) * torch.tensor([30.0, 20.0, 3.0]) + 2.0
    goal = pos + torch.randn(batch, 3, generator=g) * 3.0
    prev = (torch.rand(batch, c.horizon, 4, generator=g) * 2 - 1) * 0.2
    nb = batch if noise_batch is None else noise_batch
    noise = torch.randn(nb, max(c.iterations, 1), c.samples, graph.param_dim, generator=g)
    return {"obs": obs.float(), "pos": pos.float(), "goal": goal.float(), "prev_plan": prev.float(),
            "noise": noise.float()}


def export_plan_graph(graph: PlanGraph, path: Path | str, opset: int = 18) -> Path:
    """Export ``graph`` (CPU) to ``path`` with a dynamic batch (weights embedded).

    Raises:
        ModelError: the exporter failed (the message carries the exporter's reason).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = graph.cpu().eval()
    x = sample_plan_inputs(graph, 3)
    tmp = path.with_name(path.name + ".tmp.onnx")
    graph.for_export = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph, tuple(x[k] for k in PLAN_INPUTS), str(tmp), dynamo=False,
                opset_version=opset, input_names=list(PLAN_INPUTS), output_names=list(PLAN_OUTPUTS),
                dynamic_axes={"obs": {0: "batch"}, "pos": {0: "batch"}, "goal": {0: "batch"},
                              "prev_plan": {0: "batch"}, "noise": {0: "noise_batch"},
                              **{o: {0: "batch"} for o in PLAN_OUTPUTS}},
            )
    except Exception as exc:
        raise ModelError(f"plan export: torch.onnx.export failed: {exc}") from exc
    finally:
        graph.for_export = False
    tmp.replace(path)
    return path


def parity(graph: PlanGraph, session: Any, batch: int = 5, seed: int = 1) -> dict[str, float]:
    """Max |torch − onnxruntime| per output on the same inputs and noise."""
    x = sample_plan_inputs(graph, batch, seed)
    with torch.no_grad():
        ref = [t.cpu().numpy() for t in graph.cpu()(*(x[k] for k in PLAN_INPUTS))]
    names = {i.name for i in session.get_inputs()}  # ``noise`` is dropped with 0 iterations
    outs = session.run(None, {k: x[k].numpy() for k in PLAN_INPUTS if k in names})
    return {name: float(np.max(np.abs(np.asarray(o) - r)))
            for name, r, o in zip(PLAN_OUTPUTS, ref, outs, strict=True)}


def _cache_dir(options: PlannerOptions) -> Path:
    if options.cache is not None:
        return Path(options.cache)
    env = os.environ.get("WM_AGENT_PLAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "wm_agent" / "plan"


class OnnxPlanBackend:
    """The exported plan graph in onnxruntime."""

    name = "onnxruntime"

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if threads > 0:
            so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        available = ort.get_available_providers()
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.path = path
        # Inputs the graph reads (the exporter drops ``noise`` when iterations is 0).
        self.inputs = tuple(i.name for i in self.session.get_inputs())

    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """See :class:`wm_agent.planning.mppi.PlanBackend`."""
        given = dict(zip(PLAN_INPUTS, (obs, pos, goal, prev_plan, noise), strict=True))
        feeds = {k: given[k] for k in self.inputs}
        return [np.asarray(o) for o in self.session.run(None, feeds)]

    def describe(self) -> dict[str, Any]:
        """Backend, providers actually used, graph file."""
        return {"backend": self.name, "providers": self.session.get_providers(), "graph": str(self.path)}


def tensorrt_unavailable_reason() -> str | None:
    """Why the TensorRT plan backend cannot run here (None: it could)."""
    if not torch.cuda.is_available():
        return "tensorrt plan backend unavailable: no NVIDIA GPU (torch.cuda.is_available() is False)"
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        return f"tensorrt plan backend unavailable: the tensorrt package cannot be imported ({exc})"
    return None


def _open_torch(folder: Path, config: PlannerConfig, options: PlannerOptions) -> Planner:
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" and options.threads > 0:
        torch.set_num_threads(options.threads)
    graph, act, _ = build_graph(folder, config, device=device, verify=options.verify)
    return Planner(TorchPlanBackend(graph), config, act, graph.param_dim,
                   graph.model.config.obs_dim, seed=options.seed)


def _exported(folder: Path, config: PlannerConfig, options: PlannerOptions
              ) -> tuple[Path, PlanGraph, ActionSpec]:
    """The cached plan.onnx for (model, config), exported and parity-checked when missing."""
    graph, act, _ = build_graph(folder, config, verify=options.verify)
    path = _cache_dir(options) / f"plan_{graph_key(folder, config, graph)[:24]}.onnx"
    if not path.is_file():
        export_plan_graph(graph, path)
        if options.check_parity:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            diff = parity(graph, sess)
            if not diff["action"] <= PARITY_TOLERANCE:
                path.unlink()
                raise ModelError(
                    f"plan export: onnxruntime and torch first actions differ by {diff['action']:.2e} "
                    f"> {PARITY_TOLERANCE} (all outputs: {diff})"
                )
    return path, graph, act


def _open_onnx(folder: Path, config: PlannerConfig, options: PlannerOptions) -> Planner:
    path, graph, act = _exported(folder, config, options)
    return Planner(OnnxPlanBackend(path, options.threads), config, act, graph.param_dim,
                   graph.model.config.obs_dim, seed=options.seed)


class TensorRTPlanBackend:  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    """The exported plan graph as a TensorRT engine (FP16 unless disabled), built once and
    cached beside the plan graph keyed by the graph's SHA-256, GPU name, TensorRT version,
    precision and batch profile (the world-model runtime's engine cache code)."""

    name = "tensorrt"

    def __init__(self, path: Path, options: PlannerOptions):
        import tensorrt as trt

        from wm_agent.world_model.runtime import cached_engine, engine_key

        self.device = torch.device(options.device or "cuda")
        self.gpu = torch.cuda.get_device_name(self.device)
        self.profile = (1, options.opt_batch, options.max_batch)
        self.fp16 = options.fp16
        logger = trt.Logger(trt.Logger.WARNING)
        key = engine_key(path, self.gpu, trt.__version__, options.fp16, self.profile)
        self.engine, self.built, self.engine_file = cached_engine(
            trt, logger, path, _cache_dir(options), key, self.profile, options.fp16,
            options.rebuild_engine)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = tuple(n for n in PLAN_INPUTS if n in names)
        self.path = path
        self.trt_version = trt.__version__

    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """See :class:`wm_agent.planning.mppi.PlanBackend`."""
        from wm_agent.world_model.runtime import execute_engine

        given = dict(zip(PLAN_INPUTS, (obs, pos, goal, prev_plan, noise), strict=True))
        return execute_engine(self.context, {k: given[k] for k in self.inputs}, PLAN_OUTPUTS,
                              self.profile, self.device)

    def describe(self) -> dict[str, Any]:
        """Backend, GPU, TensorRT version, precision, engine file, whether it was built now."""
        return {"backend": self.name, "gpu": self.gpu, "tensorrt": self.trt_version,
                "fp16": self.fp16, "engine": str(self.engine_file), "built_now": self.built,
                "profile": list(self.profile), "graph": str(self.path)}


def _open_tensorrt(folder: Path, config: PlannerConfig, options: PlannerOptions) -> Planner:
    reason = tensorrt_unavailable_reason()
    if reason:
        raise ModelError(reason)
    path, graph, act = _exported(folder, config, options)  # pragma: no cover - needs a GPU
    return Planner(TensorRTPlanBackend(path, options), config, act,  # pragma: no cover
                   graph.param_dim, graph.model.config.obs_dim, seed=options.seed)


PLAN_BACKENDS: dict[str, Callable[[Path, PlannerConfig, PlannerOptions], Planner]] = {
    "torch": _open_torch,
    "onnxruntime": _open_onnx,
    "tensorrt": _open_tensorrt,
}
"""Backend name → factory ``(model folder, config, options) → Planner``."""


def plan_backend_status() -> dict[str, str]:
    """Backend name → "available" or the reason it cannot run here."""
    out = {"torch": "available"}
    try:
        import onnxruntime  # noqa: F401

        out["onnxruntime"] = "available"
    except ImportError as exc:
        out["onnxruntime"] = f"onnxruntime cannot be imported ({exc})"
    out["tensorrt"] = tensorrt_unavailable_reason() or "available"
    return out


def open_planner(backend: str, model_folder: Path | str | None = None,
                 config: PlannerConfig | None = None, options: PlannerOptions | None = None) -> Planner:
    """Open a planner on a model folder (default ``<share>/models/wm_plan``).

    Raises:
        ModelError: unknown backend (lists the known ones), a backend that cannot run here (says
            why), a bad model folder, or a failed export/parity check.
    """
    from wm_agent.world_model.artifacts import default_plan_model_dir

    if backend not in PLAN_BACKENDS:
        raise ModelError(f"planner backend {backend!r} is unknown; choose one of {sorted(PLAN_BACKENDS)}")
    folder = Path(model_folder) if model_folder else default_plan_model_dir()
    return PLAN_BACKENDS[backend](folder, config or PlannerConfig(), options or PlannerOptions())
