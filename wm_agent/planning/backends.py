"""Planner backends: the plan graph in torch, onnxruntime or TensorRT, behind one factory.

``open_planner(backend, model_folder, config, options)`` with ``backend`` a
:class:`wm_agent.inference.Backend` (``torch``: eager, CUDA when present; ``onnxruntime``: the
exported plan.onnx, CUDA provider first when present, else CPU; ``tensorrt``: the same plan.onnx
built into a cached TensorRT engine, FP16 by default — :class:`ModelError` with the reason when
there is no GPU/TensorRT). ``classical`` (:data:`PlannerBackend.CLASSICAL`) is the PID baseline,
which needs no model: the fleet controller runs it instead of a planner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.inference import (
    Backend,
    InferenceOptions,
    TensorRtEngine,
    backend_status,
    onnx_session,
    require_backend,
)
from wm_agent.planning.config import PlannerConfig
from wm_agent.planning.export import PLAN_INPUTS, PLAN_OUTPUTS, exported_graph
from wm_agent.planning.plan_graph import build_graph
from wm_agent.planning.planner import Planner, TorchPlanBackend


class OnnxPlanBackend:
    """The exported plan graph in onnxruntime."""

    name = "onnxruntime"

    def __init__(self, path: Path, options: InferenceOptions):
        self.session = onnx_session(path, options)
        self.path = path
        # Inputs the graph reads (the exporter drops ``noise`` when iterations is 0).
        self.inputs = tuple(i.name for i in self.session.get_inputs())

    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """See :class:`wm_agent.planning.planner.PlanBackend`."""
        given = dict(zip(PLAN_INPUTS, (obs, pos, goal, prev_plan, noise), strict=True))
        feeds = {k: given[k] for k in self.inputs}
        return [np.asarray(o) for o in self.session.run(None, feeds)]

    def describe(self) -> dict[str, Any]:
        """Backend, providers actually used, graph file."""
        return {"backend": self.name, "providers": self.session.get_providers(), "graph": str(self.path)}


class TensorRTPlanBackend:  # pragma: no cover - needs an NVIDIA GPU and TensorRT
    """The exported plan graph as a cached TensorRT engine (:class:`wm_agent.inference.TensorRtEngine`)."""

    name = "tensorrt"

    def __init__(self, path: Path, options: InferenceOptions):
        self.engine = TensorRtEngine(path, options)
        self.inputs = tuple(n for n in PLAN_INPUTS if n in self.engine.tensor_names)
        self.path = path
        self.fp16 = options.fp16

    def run(self, obs: NDArray[np.float32], pos: NDArray[np.float32], goal: NDArray[np.float32],
            prev_plan: NDArray[np.float32], noise: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        """See :class:`wm_agent.planning.planner.PlanBackend`."""
        given = dict(zip(PLAN_INPUTS, (obs, pos, goal, prev_plan, noise), strict=True))
        return self.engine.run({k: given[k] for k in self.inputs}, PLAN_OUTPUTS)

    def describe(self) -> dict[str, Any]:
        """Backend, GPU, TensorRT version, precision, engine file, whether it was built now."""
        return {"backend": self.name, "fp16": self.fp16, "graph": str(self.path),
                **self.engine.describe()}


def _open_torch(folder: Path, config: PlannerConfig, options: InferenceOptions, seed: int,
                check_parity: bool) -> Planner:
    device = options.torch_device()
    options.apply_torch_threads(device)
    graph, act, _ = build_graph(folder, config, device=device, verify=options.verify)
    return Planner(TorchPlanBackend(graph), config, act, graph.param_dim,
                   graph.model.config.obs_dim, seed=seed)


def _open_exported(make: Callable[[Path, InferenceOptions], Any]
                   ) -> Callable[[Path, PlannerConfig, InferenceOptions, int, bool], Planner]:
    def open_(folder: Path, config: PlannerConfig, options: InferenceOptions, seed: int,
              check_parity: bool) -> Planner:
        graph, act, _ = build_graph(folder, config, verify=options.verify)
        path = exported_graph(graph, folder, config, options, check_parity)
        return Planner(make(path, options), config, act, graph.param_dim,
                       graph.model.config.obs_dim, seed=seed)
    return open_


PLAN_BACKENDS: dict[Backend, Callable[[Path, PlannerConfig, InferenceOptions, int, bool], Planner]] = {
    Backend.TORCH: _open_torch,
    Backend.ONNXRUNTIME: _open_exported(OnnxPlanBackend),
    Backend.TENSORRT: _open_exported(TensorRTPlanBackend),
}
"""Backend → factory ``(model folder, config, options, seed, check_parity) → Planner``."""


def plan_backend_status() -> dict[str, str]:
    """Backend name → "available" or the reason it cannot run here."""
    return backend_status()


def open_planner(backend: str, model_folder: Path | str | None = None,
                 config: PlannerConfig | None = None, options: InferenceOptions | None = None,
                 *, seed: int = 0, check_parity: bool = True) -> Planner:
    """Open a planner on a model folder (default ``<share>/models/wm_plan``).

    Args:
        seed: seed of the planner's noise generator. check_parity: after an export, compare
            torch and ONNX Runtime on a batch.

    Raises:
        ModelError: unknown backend (lists the known ones), a backend that cannot run here (says
            why), a bad model folder, or a failed export/parity check.
    """
    from wm_agent.world_model.artifacts import default_plan_model_dir

    chosen = require_backend(backend, "planner")
    folder = Path(model_folder) if model_folder else default_plan_model_dir()
    return PLAN_BACKENDS[chosen](folder, config or PlannerConfig(), options or InferenceOptions(),
                                 seed, check_parity)
