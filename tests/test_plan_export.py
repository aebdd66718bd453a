"""One-graph ONNX plan export: torch and onnxruntime agree given the same noise; backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wm_agent.errors import ModelError
from wm_agent.inference import InferenceOptions
from wm_agent.planning.backends import open_planner, plan_backend_status
from wm_agent.planning.config import PlannerConfig
from wm_agent.planning.export import PARITY_TOLERANCE
from wm_agent.planning.latent_actions import ActionAutoencoder, save_autoencoder
from wm_agent.world_model.artifacts import save_model
from wm_agent.world_model.model import WorldModel, WorldModelConfig
from wm_agent.world_model.spaces import ActionSpec, ObservationSpec

CFG = PlannerConfig(samples=32, elites=4, iterations=2, horizon=4, action_space="raw")


def make_folder(out: Path, shared_head: bool) -> Path:
    """A random-weights world model folder (+ latent actions) — no trained model needed."""
    torch.manual_seed(0)
    m = WorldModel(WorldModelConfig(latent_dim=16, hidden_dim=32, head_hidden=16,
                                    shared_head=shared_head))
    with torch.no_grad():
        m.obs_std.fill_(2.0)
        m.dpos_std.fill_(0.1)
    save_model(m, out, {"action_spec": ActionSpec().to_dict(),
                        "observation_spec": ObservationSpec().to_dict()})
    torch.manual_seed(1)
    save_autoencoder(ActionAutoencoder(CFG.horizon, 3, 16), out, {"envelope": {
        "lo": [-50.0] * 51, "hi": [50.0] * 51}})
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("plan_model"), shared_head=False)


@pytest.fixture(scope="module")
def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same with the planning model's shared transition head."""
    return make_folder(tmp_path_factory.mktemp("plan_model_shared"), shared_head=True)


def inputs(b: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(0, 1, (b, 51)).astype(np.float32)
    pos = rng.uniform((5, 5, 1), (10, 10, 3), (b, 3)).astype(np.float32)
    goal = (pos + rng.normal(0, 3, (b, 3))).astype(np.float32)
    return obs, pos, goal


@pytest.mark.parametrize("space", ["raw", "latent"])
@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("model", ["folder", "shared_folder"])
def test_onnx_and_torch_plans_agree_given_the_same_noise(
    request: pytest.FixtureRequest, model: str, tmp_path: Path, space: str, batch: int
) -> None:
    folder = request.getfixturevalue(model)
    cfg = PlannerConfig(samples=32, elites=4, iterations=2, horizon=4, action_space=space)
    opts = InferenceOptions(cache=tmp_path, threads=1)
    pt = open_planner("torch", folder, cfg, opts)
    po = open_planner("onnxruntime", folder, cfg, opts)
    assert list((tmp_path / "plan").glob("plan_*.onnx")) and not list(tmp_path.glob("*.data"))
    obs, pos, goal = inputs(batch)
    noise = pt.draw_noise(batch)
    prev = np.random.default_rng(1).uniform(-0.1, 0.1, (batch, 4, 4)).astype(np.float32)
    a = pt.plan(obs, pos, goal, prev, noise=noise)
    b = po.plan(obs, pos, goal, prev, noise=noise)
    assert np.max(np.abs(a.action - b.action)) <= PARITY_TOLERANCE
    assert np.max(np.abs(a.plan - b.plan)) <= PARITY_TOLERANCE
    np.testing.assert_allclose(a.cost, b.cost, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(a.min_clearance, b.min_clearance, rtol=1e-3, atol=1e-3)
    assert po.describe()["providers"] == ["CPUExecutionProvider"]


def test_onnx_graph_has_topk_and_a_dynamic_batch(folder: Path, tmp_path: Path) -> None:
    import onnx

    open_planner("onnxruntime", folder, CFG, InferenceOptions(cache=tmp_path))
    (path,) = (tmp_path / "plan").glob("plan_*.onnx")
    g = onnx.load(str(path)).graph
    ops = {n.op_type for n in g.node}
    assert "TopK" in ops and "Loop" not in ops
    assert [i.name for i in g.input] == ["obs", "pos", "goal", "prev_plan", "noise"]
    assert g.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_cached_graph_is_reused(folder: Path, tmp_path: Path) -> None:
    open_planner("onnxruntime", folder, CFG, InferenceOptions(cache=tmp_path))
    (path,) = (tmp_path / "plan").glob("plan_*.onnx")
    stamp = path.stat().st_mtime_ns
    open_planner("onnxruntime", folder, CFG, InferenceOptions(cache=tmp_path))
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("module", ["wm_agent.world_model.model", "wm_agent.planning.plan_graph",
                                    "wm_agent.planning.latent_actions"])
def test_cached_graph_is_rebuilt_when_traced_code_changes(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    """The world model's code is traced into plan.onnx as much as the planner's: editing it
    must not reuse a stale graph."""
    import importlib

    cfg = PlannerConfig(samples=32, elites=4, iterations=2, horizon=4, action_space="latent")
    open_planner("onnxruntime", folder, cfg, InferenceOptions(cache=tmp_path))
    edited = tmp_path / "edited.py"
    mod = importlib.import_module(module)
    edited.write_bytes(Path(str(mod.__file__)).read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(mod, "__file__", str(edited))
    open_planner("onnxruntime", folder, cfg, InferenceOptions(cache=tmp_path))
    assert len(list((tmp_path / "plan").glob("plan_*.onnx"))) == 2  # a new key, a fresh export


def test_backend_status_and_errors(folder: Path, tmp_path: Path) -> None:
    status = plan_backend_status()
    assert status["torch"] == "available" and status["onnxruntime"] == "available"
    if not torch.cuda.is_available():
        assert "no NVIDIA GPU" in status["tensorrt"]
        with pytest.raises(ModelError, match="planner backend tensorrt unavailable: no NVIDIA GPU"):
            open_planner("tensorrt", folder, CFG)
    with pytest.raises(ModelError, match="unknown; choose one of"):
        open_planner("tflite", folder, CFG)
    with pytest.raises(ModelError, match="card"):
        open_planner("torch", tmp_path, CFG)


def test_planner_options_are_validated() -> None:
    from wm_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="opt_batch"):
        InferenceOptions(opt_batch=2000, max_batch=1000)


@pytest.mark.gpu
@pytest.mark.parametrize("fp16", [False, True])
def test_tensorrt_plan_agrees_with_torch_on_gpu(shared_folder: Path, tmp_path: Path, fp16: bool) -> None:
    from wm_agent.inference import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cfg = PlannerConfig(samples=32, elites=4, iterations=2, horizon=4, action_space="latent")
    opts = InferenceOptions(cache=tmp_path, fp16=fp16, opt_batch=8, max_batch=64)
    trt_pl = open_planner("tensorrt", shared_folder, cfg, opts)
    assert trt_pl.describe()["built_now"]
    ref = open_planner("torch", shared_folder, cfg, InferenceOptions(device="cpu", cache=tmp_path))
    obs, pos, goal = inputs(7)
    noise = ref.draw_noise(7)
    a = ref.plan(obs, pos, goal, noise=noise)
    b = trt_pl.plan(obs, pos, goal, noise=noise)
    assert b.valid.all()
    tol = 5e-2 if fp16 else 1e-2  # TF32 GEMMs even without FP16; FP16 can swap near-tied elites
    np.testing.assert_allclose(b.cost, a.cost, rtol=tol, atol=tol)
    assert np.median(np.abs(a.action - b.action)) <= tol
    again = open_planner("tensorrt", shared_folder, cfg, opts)
    assert not again.describe()["built_now"]  # the cached engine is reused
