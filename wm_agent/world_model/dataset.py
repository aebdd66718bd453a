"""Transition datasets: ``<name>.npz`` (arrays, no pickle) + ``<name>.json`` (metadata).

Transitions are stored flat, grouped by episode and in time order inside an episode, so a window
of H consecutive transitions is valid when its first and last rows share the episode id. Each
transition is one world-model step (:data:`wm_agent.world_model.spaces.WM_DT`).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ModelError
from wm_agent.world_model.spaces import SPEC_VERSION, ObservationSpec, goal_relative

FORMAT = "wm_agent.transitions"
FORMAT_VERSION = 1

# name → (dtype, trailing shape; "D" = observation size, "A" = action size)
FIELDS: dict[str, tuple[str, tuple[int | str, ...]]] = {
    "obs": ("float32", ("D",)),
    "action": ("float32", ("A",)),
    "next_obs": ("float32", ("D",)),
    "position": ("float64", (3,)),
    "next_position": ("float64", (3,)),
    "goal": ("float64", (3,)),
    "progress": ("float32", ()),
    "clearance": ("float32", ()),
    "collided": ("bool", ()),
    "failsafe": ("bool", ()),
    "done": ("bool", ()),
    "episode": ("int64", ()),
    "drone": ("int32", ()),
    "time": ("float64", ()),
}
"""Per-transition arrays (T rows each). Units: position/next_position/goal [m] map ENU; progress
= goal-distance decrease over the step [m]; clearance = :func:`min_clearance` of next_obs [m];
collided = the drone collided during the step; failsafe = the command was not delivered fresh or
the failsafe held/landed the drone (the action did not act); done = the episode ends after this
transition; time = sim time at the start [s]."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def meta_path(path: Path) -> Path:
    """The JSON metadata file next to ``<name>.npz``."""
    return path.with_suffix(".json")


@dataclass(frozen=True)
class TransitionDataset:
    """Transitions plus metadata.

    Attributes:
        arrays: field name → (T, …) array, see :data:`FIELDS`.
        meta: JSON metadata (scenario, seed, sizes, sim_version, spec_version, spec, created, …).
    """

    arrays: dict[str, NDArray[Any]]
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.arrays["obs"].shape[0])

    @property
    def spec(self) -> ObservationSpec:
        """Observation spec the data was built with."""
        return ObservationSpec.from_dict(self.meta["spec"])

    @property
    def episodes(self) -> NDArray[np.int64]:
        """Sorted unique episode ids."""
        return np.unique(self.arrays["episode"])

    def validate(self, label: str = "dataset") -> None:
        """Check every field's presence, dtype and shape.

        Raises:
            ModelError: naming the field, the expected and the found dtype/shape.
        """
        d = int(self.meta.get("obs_dim", -1))
        a = int(self.meta.get("action_dim", -1))
        t = None
        for name, (dtype, trailing) in FIELDS.items():
            if name not in self.arrays:
                raise ModelError(f"{label}: field {name!r} is missing; re-collect the dataset")
            arr = self.arrays[name]
            shape = tuple(d if s == "D" else a if s == "A" else s for s in trailing)
            t = arr.shape[0] if t is None else t
            if arr.dtype != np.dtype(dtype) or arr.shape != (t, *shape):
                raise ModelError(
                    f"{label}: field {name!r}: expected dtype {dtype} shape {(t, *shape)}, got "
                    f"dtype {arr.dtype} shape {arr.shape}"
                )
        ep = self.arrays["episode"]
        if ep.size:
            # Episodes need not be sorted by id, but each must be one contiguous block.
            change = np.flatnonzero(np.diff(ep) != 0)
            if np.unique(ep[np.r_[0, change + 1]]).size != change.size + 1:
                raise ModelError(f"{label}: field 'episode': episodes are not contiguous blocks")

    def save(self, path: Path) -> Path:
        """Write ``path`` (.npz, deflate-compressed) and its .json metadata; returns the .npz path."""
        path = Path(path).with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.validate(str(path))
        savez: Any = np.savez_compressed
        savez(path, **self.arrays)
        meta = dict(self.meta)
        meta["format"] = FORMAT
        meta["format_version"] = FORMAT_VERSION
        meta["transitions"] = len(self)
        meta["episodes"] = int(self.episodes.size)
        meta["fields"] = {k: [str(v.dtype), list(v.shape[1:])] for k, v in self.arrays.items()}
        meta["npz_sha256"] = sha256_file(path)
        meta_path(path).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return path

    def select_episodes(self, episodes: NDArray[np.int64]) -> TransitionDataset:
        """Subset holding only the given episode ids (order kept)."""
        keep = np.isin(self.arrays["episode"], episodes)
        return replace(self, arrays={k: v[keep] for k, v in self.arrays.items()})

    def split(self, val_fraction: float, seed: int) -> tuple[TransitionDataset, TransitionDataset]:
        """Held-out split by episode: (train, validation); deterministic for a seed."""
        eps = self.episodes
        rng = np.random.default_rng([seed, 7919])
        perm = rng.permutation(eps)
        n_val = max(1, round(val_fraction * eps.size)) if eps.size > 1 else 0
        val = np.sort(perm[:n_val])
        train = np.sort(perm[n_val:])
        return self.select_episodes(train), self.select_episodes(val)

    def window_starts(self, horizon: int, exclude_failsafe: bool = True) -> NDArray[np.int64]:
        """Start rows of windows of ``horizon`` consecutive transitions (H + 1 observations) in
        one episode; with ``exclude_failsafe`` windows holding a failsafe transition are skipped
        (their action did not act)."""
        t = len(self)
        if horizon < 1 or t < horizon:
            return np.zeros(0, np.int64)
        ep = self.arrays["episode"]
        starts = np.arange(t - horizon + 1)
        ok = ep[starts] == ep[starts + horizon - 1]
        if exclude_failsafe:
            bad = np.concatenate([[0], np.cumsum(self.arrays["failsafe"].astype(np.int64))])
            ok &= (bad[starts + horizon] - bad[starts]) == 0
        return starts[ok].astype(np.int64)

    def windows(self, starts: NDArray[np.int64], horizon: int) -> dict[str, NDArray[Any]]:
        """Stack windows for multi-step training / evaluation.

        Returns (B = len(starts)):
            obs (B, H + 1, D) float32: obs[0] = observation at the start, obs[k] = next_obs of
                transition k − 1 with goal_rel recomputed for the start's goal (the goal is fixed
                along a world-model rollout);
            action (B, H, A) float32; dpos (B, H, 3) [m] position deltas; pos0 (B, 3) [m];
            progress (B, H) [m]; collided, clearance (B, H).
        """
        idx = starts[:, None] + np.arange(horizon)[None, :]
        a = self.arrays
        spec = self.spec
        nxt = a["next_obs"][idx].copy()
        g0 = a["goal"][starts]
        gs = spec.slice("goal_rel")
        nxt[..., gs] = goal_relative(a["next_position"][idx], g0[:, None, :], spec)
        pos = a["position"][idx]
        npos = a["next_position"][idx]
        dist0 = np.linalg.norm(g0[:, None, :] - pos, axis=-1)
        dist1 = np.linalg.norm(g0[:, None, :] - npos, axis=-1)
        return {
            "obs": np.concatenate([a["obs"][starts][:, None], nxt], axis=1).astype(np.float32),
            "action": a["action"][idx],
            "dpos": (npos - pos).astype(np.float32),
            "pos0": a["position"][starts],
            "progress": (dist0 - dist1).astype(np.float32),
            "collided": a["collided"][idx],
            "clearance": a["clearance"][idx],
        }


def _check_meta(
    meta: dict[str, Any], label: str, spec_version: int, scenario: str | None, allow_mismatch: bool
) -> None:
    for key in ("scenario", "seed", "spec_version", "sim_version", "spec", "obs_dim",
                "action_dim", "created", "npz_sha256"):
        if key not in meta:
            raise ModelError(f"{label}: metadata field {key!r} is missing; re-collect the dataset")
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{label}: metadata field 'format': expected {FORMAT} v{FORMAT_VERSION}, got "
            f"{meta.get('format')} v{meta.get('format_version')}"
        )
    if allow_mismatch:
        return
    if meta["spec_version"] != spec_version:
        raise ModelError(
            f"{label}: metadata field 'spec_version': dataset has {meta['spec_version']}, this "
            f"code expects {spec_version}; re-collect, or pass allow_mismatch=True"
        )
    if scenario is not None and meta["scenario"] != scenario:
        raise ModelError(
            f"{label}: metadata field 'scenario': dataset is from {meta['scenario']!r}, expected "
            f"{scenario!r}; pass allow_mismatch=True to use it anyway"
        )


def load_dataset(
    path: Path | str,
    *,
    scenario: str | None = None,
    spec_version: int = SPEC_VERSION,
    allow_mismatch: bool = False,
) -> TransitionDataset:
    """Load and validate a dataset written by :meth:`TransitionDataset.save`.

    Args:
        path: the .npz file (its .json sits next to it).
        scenario: expected scenario name (None: any).
        spec_version: expected observation-spec version.
        allow_mismatch: accept another spec version / scenario.

    Raises:
        ModelError: missing or corrupt file (hash mismatch, broken archive), a missing field, a
            wrong dtype/shape, or a spec-version/scenario mismatch; the message names the field.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    mpath = meta_path(path)
    for p in (path, mpath):
        if not p.is_file():
            raise ModelError(f"dataset {p}: file not found; run `wm-agent collect` first")
    try:
        meta = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"dataset {mpath}: metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelError(f"dataset {mpath}: metadata must be a JSON object")
    _check_meta(meta, str(mpath), spec_version, scenario, allow_mismatch)
    digest = sha256_file(path)
    if digest != meta["npz_sha256"]:
        raise ModelError(
            f"dataset {path}: SHA-256 {digest} does not match the metadata's npz_sha256 "
            f"{meta['npz_sha256']}; the file is corrupt or was changed — re-collect it"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ModelError(f"dataset {path}: cannot read the archive ({exc})") from exc
    ds = TransitionDataset(arrays, meta)
    ds.validate(str(path))
    if not allow_mismatch and int(meta["obs_dim"]) != ds.spec.size:
        raise ModelError(
            f"dataset {path}: metadata field 'obs_dim': {meta['obs_dim']} but the spec builds "
            f"{ds.spec.size}"
        )
    return ds


def new_meta(
    scenario: str, seed: int, spec: ObservationSpec, action: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """Metadata skeleton for a new dataset (``save`` adds sizes and the hash)."""
    import wm_agent

    return {
        "scenario": scenario,
        "seed": seed,
        "sim_version": wm_agent.__version__,
        "spec_version": spec.version,
        "spec": spec.to_dict(),
        "action_spec": action,
        "obs_dim": spec.size,
        "action_dim": len(action["names"]),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def concat(datasets: list[TransitionDataset]) -> TransitionDataset:
    """One dataset from several (episode ids renumbered so they stay unique)."""
    if not datasets:
        raise ModelError("concat: no datasets given")
    out: dict[str, list[NDArray[Any]]] = {k: [] for k in FIELDS}
    offset = 0
    for ds in datasets:
        for k in FIELDS:
            v = ds.arrays[k]
            out[k].append(v + offset if k == "episode" else v)
        if len(ds):
            offset = int(out["episode"][-1].max()) + 1
    return TransitionDataset({k: np.concatenate(v) for k, v in out.items()}, dict(datasets[0].meta))
