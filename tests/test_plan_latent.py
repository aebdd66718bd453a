"""Latent action autoencoder: roundtrip error bound, save/load with hash check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from wm_agent.errors import ModelError
from wm_agent.planning.latent_actions import (
    WEIGHTS,
    LatentActionConfig,
    load_autoencoder,
    read_latent_card,
    roundtrip_error,
    save_autoencoder,
    train_autoencoder,
)


def smooth_chunks(n: int, horizon: int, seed: int = 0) -> np.ndarray:
    """Action chunks like the dataset's: piecewise-constant velocities with small noise, a few
    switching mid-chunk; yaw rate constant per chunk."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.35, 0.35, (n, 1, 4)).repeat(horizon, axis=1)
    switch = rng.random(n) < 0.2
    at = rng.integers(1, horizon, n)
    b = rng.uniform(-0.35, 0.35, (n, 4))
    for i in np.flatnonzero(switch):
        a[i, at[i]:, :3] = b[i, :3]
    return (a + rng.normal(0, 0.01, a.shape)).astype(np.float32)


def test_roundtrip_error_is_small(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    cfg = LatentActionConfig(horizon=8, latent_dim=4, hidden=64, steps=600, batch_size=256)
    train = smooth_chunks(20000, 8)
    held = smooth_chunks(2000, 8, seed=1)
    ae, losses = train_autoencoder(train, cfg)
    assert losses[-1] < 0.2 * losses[0]
    err = roundtrip_error(ae, held)
    # Normalised units; 0.06 ≈ 0.5 m/s (the chunks span ±2.9 m/s).
    assert err["rms_mean"] < 0.06, err
    save_autoencoder(ae, tmp_path, {"envelope": {"lo": [0.0], "hi": [1.0]}})
    back = load_autoencoder(tmp_path, horizon=8)
    x = torch.from_numpy(held[:16])
    with torch.no_grad():
        torch.testing.assert_close(back(x), ae(x))
    card = read_latent_card(tmp_path)
    assert card["architecture"] == {"horizon": 8, "latent_dim": 4, "hidden": 64}


def test_load_refuses_tampered_or_mismatched(tmp_path: Path) -> None:
    save_autoencoder(train_autoencoder(smooth_chunks(512, 4),
                                       LatentActionConfig(horizon=4, steps=5))[0], tmp_path, {})
    with pytest.raises(ModelError, match="trained for horizon 4"):
        load_autoencoder(tmp_path, horizon=8)
    data = bytearray((tmp_path / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the card"):
        load_autoencoder(tmp_path)
    with pytest.raises(ModelError, match="not found"):
        read_latent_card(tmp_path / "nothing")
