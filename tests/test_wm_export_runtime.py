"""ONNX export with a dynamic batch, backend parity, input checks and NaN isolation, TensorRT
availability reporting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_agent.errors import ModelError
from wm_agent.inference import (
    TENSORRT_UNAVAILABLE,
    InferenceOptions,
    available_backends,
    backend_status,
    tensorrt_unavailable_reason,
)
from wm_agent.world_model.artifacts import CARD, load_model, read_card, save_model
from wm_agent.world_model.export import (
    DEFAULT_TOLERANCE,
    DYNAMICS_ONNX,
    ENCODER_ONNX,
    export_folder,
    export_main,
    sample_inputs,
)
from wm_agent.world_model.model import WorldModel, WorldModelConfig
from wm_agent.world_model.runtime import BACKENDS, open_runtime

CFG = WorldModelConfig(hidden_dim=32, latent_dim=16, head_hidden=32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    m = WorldModel(CFG)
    with torch.no_grad():
        m.obs_std.uniform_(0.5, 2.0)
        m.dpos_std.fill_(0.2)
    out = tmp_path_factory.mktemp("wm_model") / "m"
    save_model(m.eval(), out, {"data": {}})
    export_folder(out)
    return out


def inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, CFG.obs_dim)).astype(np.float32),
            rng.uniform(-1, 1, (n, CFG.action_dim)).astype(np.float32))


def test_export_writes_embedded_weights_and_card(folder: Path) -> None:
    import onnx

    card = read_card(folder)
    for name in (ENCODER_ONNX, DYNAMICS_ONNX):
        assert (folder / name).is_file() and not (folder / (name + ".data")).exists()
        assert card["files"][name]["sha256"] == card["onnx"]["files"][name]
        model = onnx.load(str(folder / name))
        assert model.graph.initializer, "weights must be embedded"
        for inp in model.graph.input:
            dim0 = inp.type.tensor_type.shape.dim[0]
            assert dim0.dim_param and not dim0.dim_value, "batch dimension must be dynamic"
    rt = card["onnx"]["roundtrip"]
    assert rt["tolerance_abs"] == DEFAULT_TOLERANCE
    assert max(rt["max_abs_diff"].values()) <= DEFAULT_TOLERANCE
    load_model(folder)  # hashes still valid after the card update


@pytest.mark.parametrize("batch", [1, 37])
def test_onnx_roundtrip_dynamic_batch(folder: Path, batch: int) -> None:
    import onnxruntime as ort

    model, _ = load_model(folder)
    x = sample_inputs(model, batch, seed=batch)
    enc = ort.InferenceSession(str(folder / ENCODER_ONNX), providers=["CPUExecutionProvider"])
    dyn = ort.InferenceSession(str(folder / DYNAMICS_ONNX), providers=["CPUExecutionProvider"])
    (z,) = enc.run(None, {"obs": x["obs"].numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(z, model.encode(x["obs"]).numpy(), atol=DEFAULT_TOLERANCE, rtol=0)
        ref = model.step(x["z"], x["action"])
    outs = dyn.run(None, {"z": x["z"].numpy(), "action": x["action"].numpy()})
    assert outs[0].shape == (batch, CFG.latent_dim) and outs[4].shape == (batch, CFG.obs_dim)
    for o, r in zip(outs, ref, strict=True):
        np.testing.assert_allclose(o, r.numpy(), atol=DEFAULT_TOLERANCE, rtol=0)


def test_backend_parity_on_the_same_inputs(folder: Path) -> None:
    names = [b for b in available_backends() if b != "tensorrt"]
    assert {"torch", "onnxruntime"} <= set(names)
    obs, act = inputs(37)
    results = {}
    for name in names:
        rt = open_runtime(name, folder, InferenceOptions(device="cpu"))
        assert rt.describe()["backend"] == name
        e = rt.encode(obs)
        results[name] = (e, rt.step(e.z, act))
    ref_e, ref_s = results["torch"]
    for name, (e, s) in results.items():
        np.testing.assert_allclose(e.z, ref_e.z, atol=1e-4, rtol=0, err_msg=name)
        for a, b in zip(s[:5], ref_s[:5], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=0, err_msg=name)


def test_onnxruntime_reports_the_providers_it_uses(folder: Path) -> None:
    import onnxruntime as ort

    d = open_runtime("onnxruntime", folder).describe()
    assert d["providers"] and set(d["providers"]) <= set(ort.get_available_providers())
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert d["providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_nan_row_is_flagged_and_isolated(folder: Path, backend: str) -> None:
    rt = open_runtime(backend, folder, InferenceOptions(device="cpu"))
    obs, act = inputs(8, seed=2)
    clean = rt.encode(obs)
    bad = obs.copy()
    bad[3, 7] = np.nan
    e = rt.encode(bad)
    assert e.valid.tolist() == [True] * 3 + [False] + [True] * 4
    assert not e.z[3].any()
    np.testing.assert_array_equal(np.delete(e.z, 3, 0), np.delete(clean.z, 3, 0))
    a = act.copy()
    a[5, 0] = np.inf
    s = rt.step(clean.z, a)
    assert not s.valid[5] and s.valid.sum() == 7
    assert all(np.isfinite(x).all() for x in s[:5])
    ref = rt.step(clean.z, act)
    np.testing.assert_array_equal(np.delete(s.next_obs, 5, 0), np.delete(ref.next_obs, 5, 0))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_wrong_shape_or_dtype_names_the_expected_shape(folder: Path, backend: str) -> None:
    rt = open_runtime(backend, folder, InferenceOptions(device="cpu"))
    obs, act = inputs(4)
    expected = rf"obs: expected a float32 numpy array of shape \(N, {CFG.obs_dim}\)"
    with pytest.raises(ModelError, match=expected):
        rt.encode(obs[:, :-1])
    with pytest.raises(ModelError, match=r"float32.*got dtype float64"):
        rt.encode(obs.astype(np.float64))
    z = rt.encode(obs).z
    with pytest.raises(ModelError, match=rf"action: expected .* shape \(N, {CFG.action_dim}\)"):
        rt.step(z, act[:, :3])
    with pytest.raises(ModelError, match="same N"):
        rt.step(z, act[:2])


def test_tensorrt_reports_unavailable_with_reason(folder: Path) -> None:
    reason = tensorrt_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT and a GPU are present here; see test_tensorrt_parity_on_gpu")
    assert reason.startswith(TENSORRT_UNAVAILABLE)
    assert backend_status()["tensorrt"] == reason
    assert "tensorrt" not in available_backends()
    with pytest.raises(ModelError, match=f"world-model backend tensorrt unavailable: {TENSORRT_UNAVAILABLE}"):
        open_runtime("tensorrt", folder)


@pytest.mark.gpu
def test_tensorrt_parity_on_gpu(folder: Path, tmp_path: Path) -> None:
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    opts = InferenceOptions(cache=tmp_path, opt_batch=64, max_batch=512)
    trt_rt = open_runtime("tensorrt", folder, opts)
    assert all(trt_rt.describe()["built_now"].values())
    ref = open_runtime("torch", folder, InferenceOptions(device="cpu"))
    obs, act = inputs(37)
    e, r = trt_rt.encode(obs), ref.encode(obs)
    np.testing.assert_allclose(e.z, r.z, atol=2e-2, rtol=2e-2)  # FP16 engine
    s, rs = trt_rt.step(r.z, act), ref.step(r.z, act)
    np.testing.assert_allclose(s.dpos, rs.dpos, atol=2e-2, rtol=2e-2)
    # Second open: engines come from the cache, not rebuilt.
    again = open_runtime("tensorrt", folder, opts)
    assert not any(again.describe()["built_now"].values())


def test_unknown_backend_and_missing_onnx(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="choose one of"):
        open_runtime("tflite", tmp_path)
    assert set(BACKENDS) == {"torch", "onnxruntime", "tensorrt"}
    save_model(WorldModel(CFG), tmp_path / "m", {})
    with pytest.raises(ModelError, match="wm-agent export"):
        open_runtime("onnxruntime", tmp_path / "m")


def test_tampered_onnx_is_refused(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    expected = json.loads((copy / CARD).read_text())["files"][DYNAMICS_ONNX]["sha256"]
    with (copy / DYNAMICS_ONNX).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match=expected):
        open_runtime("onnxruntime", copy)


def test_export_cli_and_help(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wm_agent.world_model.collect import collect_main
    from wm_agent.world_model.evaluate import evaluate_main
    from wm_agent.world_model.train import train_main

    for main in (collect_main, train_main, export_main, evaluate_main):
        with pytest.raises(SystemExit) as ex:
            main(["--help"])
        assert ex.value.code == 0
    assert export_main(["--model", str(folder.parent / "nope")]) == 2
    assert "not found" in capsys.readouterr().out
