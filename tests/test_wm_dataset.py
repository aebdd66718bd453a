"""Transition datasets: collect → save → load roundtrip, refusal of mismatched or corrupt files,
windows that never cross an episode boundary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wm_agent.errors import ModelError
from wm_agent.world_model.collect import CollectConfig, collect, collect_main
from wm_agent.world_model.dataset import FIELDS, TransitionDataset, load_dataset


@pytest.fixture(scope="module")
def tiny() -> TransitionDataset:
    return collect(CollectConfig(drones=6, runs=2, run_seconds=4.0, seed=3), progress=False)


def test_collect_produces_consistent_transitions(tiny: TransitionDataset) -> None:
    a = tiny.arrays
    assert len(tiny) > 200
    tiny.validate()
    assert set(FIELDS) == set(a)
    spec = tiny.spec
    assert a["obs"].shape[1] == spec.size and a["action"].shape[1] == 4
    assert np.abs(a["action"]).max() <= 1.0
    # Each episode is a contiguous block ending with done, in time order.
    ep = a["episode"]
    for e in np.unique(ep):
        rows = np.flatnonzero(ep == e)
        assert np.all(np.diff(rows) == 1)
        assert a["done"][rows[-1]] and not a["done"][rows[:-1]].any()
        assert np.all(np.diff(a["time"][rows]) > 0)
        # next state of one transition is the state of the following one
        np.testing.assert_allclose(a["next_position"][rows[:-1]], a["position"][rows[1:]])
    # the decoder target (position delta) and the velocity agree to first order
    dt = spec.dt
    ok = ~a["collided"]
    mean_vel = 0.5 * (a["obs"][ok, 0:3] + a["next_obs"][ok, 0:3])
    err = np.abs((a["next_position"] - a["position"])[ok] - mean_vel * dt)
    assert np.median(err) < 0.01


def test_roundtrip(tmp_path: Path, tiny: TransitionDataset) -> None:
    path = tiny.save(tmp_path / "d.npz")
    meta = json.loads((tmp_path / "d.json").read_text())
    for key in ("scenario", "seed", "sim_version", "spec_version", "created", "transitions"):
        assert key in meta
    back = load_dataset(path, scenario="warehouse")
    for k in FIELDS:
        np.testing.assert_array_equal(back.arrays[k], tiny.arrays[k])
        assert back.arrays[k].dtype == tiny.arrays[k].dtype


def test_refuses_other_spec_version_and_scenario(tmp_path: Path, tiny: TransitionDataset) -> None:
    path = tiny.save(tmp_path / "d.npz")
    with pytest.raises(ModelError, match="'scenario'"):
        load_dataset(path, scenario="hangar")
    meta = json.loads((tmp_path / "d.json").read_text())
    meta["spec_version"] = 999
    (tmp_path / "d.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="'spec_version'"):
        load_dataset(path)
    assert len(load_dataset(path, allow_mismatch=True)) == len(tiny)


def test_refuses_corrupt_file(tmp_path: Path, tiny: TransitionDataset) -> None:
    path = tiny.save(tmp_path / "d.npz")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_dataset(path)


def test_refuses_wrong_dtype_naming_the_field(tmp_path: Path, tiny: TransitionDataset) -> None:
    arrays = dict(tiny.arrays)
    arrays["action"] = arrays["action"].astype(np.float64)
    with pytest.raises(ModelError, match="'action': expected dtype float32"):
        TransitionDataset(arrays, tiny.meta).save(tmp_path / "bad.npz")
    arrays = dict(tiny.arrays)
    del arrays["clearance"]
    with pytest.raises(ModelError, match="'clearance' is missing"):
        TransitionDataset(arrays, tiny.meta).validate()


def test_windows_stay_inside_episodes(tiny: TransitionDataset) -> None:
    h = 6
    starts = tiny.window_starts(h, exclude_failsafe=False)
    ep = tiny.arrays["episode"]
    assert starts.size > 0
    assert np.all(ep[starts] == ep[starts + h - 1])
    strict = tiny.window_starts(h)
    fs = tiny.arrays["failsafe"]
    assert all(not fs[s : s + h].any() for s in strict)
    w = tiny.windows(strict[:10], h)
    assert w["obs"].shape == (10, h + 1, tiny.spec.size)
    assert w["action"].shape == (10, h, 4) and w["dpos"].shape == (10, h, 3)
    np.testing.assert_array_equal(w["obs"][:, 0], tiny.arrays["obs"][strict[:10]])


def test_split_is_by_episode_and_deterministic(tiny: TransitionDataset) -> None:
    tr, va = tiny.split(0.25, seed=1)
    assert not set(tr.episodes) & set(va.episodes)
    assert len(tr) + len(va) == len(tiny)
    _, va2 = tiny.split(0.25, seed=1)
    np.testing.assert_array_equal(va.episodes, va2.episodes)


def test_collect_cli(tmp_path: Path) -> None:
    out = tmp_path / "c.npz"
    assert collect_main(["--drones", "3", "--runs", "1", "--run-seconds", "1.5", "--out", str(out),
                         "--no-progress"]) == 0
    assert len(load_dataset(out)) > 0
    assert collect_main(["--drones", "0", "--out", str(out), "--no-progress"]) == 2
