"""Model folder: safetensors + card roundtrip; corrupt, truncated or mismatched files are refused
with an error naming the file and the expected hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from wm_agent.errors import ModelError
from wm_agent.world_model.artifacts import CARD, WEIGHTS, load_model, read_card, save_model, update_card
from wm_agent.world_model.model import WorldModel, WorldModelConfig, parameter_count

CFG = WorldModelConfig(hidden_dim=32, latent_dim=16, head_hidden=32)


def tiny_model(seed: int = 0) -> WorldModel:
    torch.manual_seed(seed)
    m = WorldModel(CFG)
    with torch.no_grad():
        m.obs_mean.uniform_(-1, 1)
        m.obs_std.uniform_(0.5, 2)
        m.dpos_std.fill_(0.1)
    return m.eval()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    save_model(tiny_model(), tmp_path / "m", {"data": {"scenario": "warehouse"}, "metrics": {}})
    return tmp_path / "m"


def test_roundtrip(folder: Path) -> None:
    model, card = load_model(folder)
    ref = tiny_model()
    for k, v in ref.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert card["architecture"]["config"] == CFG.to_dict()
    assert card["architecture"]["parameters"] == parameter_count(ref)
    assert card["files"][WEIGHTS]["bytes"] == (folder / WEIGHTS).stat().st_size
    assert card["spec_version"] == 1
    obs = torch.randn(5, CFG.obs_dim)
    torch.testing.assert_close(model.encode(obs), ref.encode(obs))


def test_corrupted_byte_is_refused_naming_file_and_hash(folder: Path) -> None:
    expected = read_card(folder)["files"][WEIGHTS]["sha256"]
    data = bytearray((folder / WEIGHTS).read_bytes())
    data[-10] ^= 0x01
    (folder / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        load_model(folder)
    assert WEIGHTS in str(err.value) and expected in str(err.value)


def test_truncated_file_is_refused(folder: Path) -> None:
    expected = read_card(folder)["files"][WEIGHTS]["sha256"]
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated") as err:
        load_model(folder)
    assert expected in str(err.value)


def test_wrong_hash_in_card_is_refused(folder: Path) -> None:
    card = json.loads((folder / CARD).read_text())
    card["files"][WEIGHTS]["sha256"] = "0" * 64
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=f"{WEIGHTS}.*expected sha256 {'0' * 64}"):
        load_model(folder)


def test_other_listed_file_is_checked_too(folder: Path) -> None:
    (folder / "notes.txt").write_text("hello")
    update_card(folder, metrics={"x": 1})  # rehash: notes.txt now listed
    (folder / "notes.txt").write_text("hellO")
    with pytest.raises(ModelError, match=r"notes\.txt"):
        load_model(folder)


def test_missing_file_and_mismatched_architecture(folder: Path) -> None:
    card = json.loads((folder / CARD).read_text())
    card["architecture"]["config"]["latent_dim"] = 24
    (folder / CARD).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="do not fit the card's architecture"):
        load_model(folder)
    (folder / WEIGHTS).unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model(folder)


def test_other_spec_version_is_refused(folder: Path) -> None:
    update_card(folder, spec_version=99)
    with pytest.raises(ModelError, match="spec_version 99"):
        load_model(folder)
