"""Learned world model of a drone in the warehouse: learned in the sim, exported to ONNX, run by
torch, ONNX Runtime or TensorRT (see docs/WORLD_MODEL.md).

Modules (import what you need; only ``spaces`` is imported here, so building observations does
not pull in torch):

* ``spaces``    — observation/action spec and the vectorised ``build_observations``.
* ``dataset``   — transition datasets (.npz + .json), window sampling.
* ``collect``   — scripted exploration in the simulator core (``collect_main``).
* ``model``     — ``WorldModel`` / ``WorldModelConfig``.
* ``train``     — multi-step training (``train_main``).
* ``artifacts`` — safetensors + model card, hash-verified ``load_model``.
* ``export``    — ONNX export with roundtrip check (``export_main``).
* ``runtime``   — ``WorldModelRuntime`` Protocol, backends torch / onnxruntime / tensorrt.
* ``evaluate``  — k-step open-loop error vs baselines (``evaluate_main``).
"""

from __future__ import annotations

from wm_agent.world_model.spaces import (
    SPEC_VERSION,
    WM_DT,
    ActionSpec,
    NeighbourPool,
    ObservationBatch,
    ObservationSpec,
    build_observations,
)

__all__ = [
    "SPEC_VERSION",
    "WM_DT",
    "ActionSpec",
    "NeighbourPool",
    "ObservationBatch",
    "ObservationSpec",
    "build_observations",
]
