"""One ONNX graph for the whole planning step: export, parity check, cache key.

``plan.onnx`` holds :class:`wm_agent.planning.plan_graph.PlanGraph` for one
:class:`~wm_agent.planning.config.PlannerConfig`: encode, the fixed iterations × horizon
rollouts (unrolled), costs, TopK elites and the refits.

* inputs: ``obs`` (batch, 51), ``pos`` (batch, 3) [m], ``goal`` (batch, 3) [m], ``prev_plan``
  (batch, H, 4), ``noise`` (noise_batch, I, S, D) with noise_batch = batch or 1;
* outputs: ``action`` (batch, 4), ``plan`` (batch, H, 4), ``cost`` (batch,),
  ``collision_prob`` (batch,), ``min_clearance`` (batch,) [m].

The noise is an input, so torch and ONNX Runtime given the same noise return the same plan (the
export is checked: max |Δaction| ≤ :data:`PARITY_TOLERANCE`). Files are cached in the inference
cache's ``plan/`` folder (:meth:`wm_agent.inference.InferenceOptions.cache_dir`), keyed by the
SHA-256 of the weights (and latent-action weights), the config, the torch version and the source
of every module traced into the graph; the model folder is never written.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agent.errors import ModelError
from wm_agent.inference import InferenceOptions
from wm_agent.planning.config import PlannerConfig
from wm_agent.planning.plan_graph import PlanGraph

PLAN_INPUTS = ("obs", "pos", "goal", "prev_plan", "noise")
PLAN_OUTPUTS = ("action", "plan", "cost", "collision_prob", "min_clearance")
PARITY_TOLERANCE = 1e-3
"""Max |torch − onnxruntime| on the first action (normalised units) accepted by the export check."""


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


def exported_graph(graph: PlanGraph, folder: Path, config: PlannerConfig, options: InferenceOptions,
                   check_parity: bool = True) -> Path:
    """The cached plan.onnx of ``graph`` (model ``folder``, ``config``), exported and
    parity-checked against torch when missing.

    Raises:
        ModelError: the export failed, or onnxruntime and torch disagree beyond the tolerance.
    """
    path = options.cache_dir("plan") / f"plan_{graph_key(folder, config, graph)[:24]}.onnx"
    if not path.is_file():
        export_plan_graph(graph, path)
        if check_parity:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            diff = parity(graph, sess)
            if not diff["action"] <= PARITY_TOLERANCE:
                path.unlink()
                raise ModelError(
                    f"plan export: onnxruntime and torch first actions differ by {diff['action']:.2e} "
                    f"> {PARITY_TOLERANCE} (all outputs: {diff})"
                )
    return path
