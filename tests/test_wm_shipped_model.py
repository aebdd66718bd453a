"""The shipped models (models/wm_default, the accurate one; models/wm_plan, the planners'
small one): cards verify, they load on every available backend, the backends agree, and each
card's measured quality meets the issue's target."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wm_agent.inference import available_backends
from wm_agent.world_model.artifacts import PLAN_MODEL, default_model_dir, load_model
from wm_agent.world_model.runtime import open_runtime

MODELS = [default_model_dir(), default_model_dir(PLAN_MODEL)]


@pytest.mark.parametrize("folder", MODELS, ids=lambda p: p.name)
def test_card_hashes_verify_and_quality_target_is_recorded(folder: Path) -> None:
    model, card = load_model(folder)  # raises ModelError on any hash mismatch
    assert card["files"], "the card lists the model's files with their SHA-256"
    assert {"weights.safetensors", "encoder.onnx", "dynamics.onnx"} <= set(card["files"])
    ev = card["metrics"]["evaluation"]
    assert ev["k"] == [1, 5, 10, 20]
    err = ev["position_error_m"]
    k10 = ev["k"].index(10)
    ratio = err["world_model"][k10] / err["constant_velocity"][k10]
    assert ratio == pytest.approx(ev["wm_to_cv_position_ratio_at_10"], abs=1e-3)
    assert ratio <= 0.5, f"shipped model misses the k=10 target: {ratio:.3f} x constant velocity"
    assert sum(p.numel() for p in model.parameters()) < 2_000_000


@pytest.mark.parametrize("folder", MODELS, ids=lambda p: p.name)
@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "torch"])
def test_backends_agree_with_torch_on_the_shipped_model(backend: str, folder: Path) -> None:
    rng = np.random.default_rng(0)
    ref = open_runtime("torch", folder)
    other = open_runtime(backend, folder)
    obs = rng.normal(size=(33, ref.obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(33, 4)).astype(np.float32)
    z_ref = ref.encode(obs).z
    z_other = other.encode(obs).z
    np.testing.assert_allclose(z_other, z_ref, atol=1e-4)
    s_ref = ref.step(z_ref, act)
    s_other = other.step(z_ref, act)
    np.testing.assert_allclose(s_other.dpos, s_ref.dpos, atol=1e-4)
    np.testing.assert_allclose(s_other.z_next, s_ref.z_next, atol=1e-4)
