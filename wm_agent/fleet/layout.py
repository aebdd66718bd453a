"""Warehouse layout as the fleet coordinator sees it (stations, home pads, geofence).

The coordinator never imports the simulator: whoever loads the scenario YAML hands a
:class:`Layout` to the core. :meth:`Layout.from_scenario_dict` reads just the keys the
coordinator needs from the parsed scenario dict (``sim/scenarios/warehouse.yaml`` schema).
All positions are ENU in the ``map`` frame [m].
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError

#: Cruise speed used when neither the scenario nor the caller gives one [m/s].
DEFAULT_CRUISE_SPEED_MPS = 1.0


def _vec3(value: Any, name: str) -> NDArray[np.float64]:
    """Return ``value`` as a read-only finite float64 (3,) array or raise ConfigError."""
    try:
        arr = np.array(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be three numbers [m], got {value!r}") from exc
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be three finite numbers [m], got {value!r}")
    arr.setflags(write=False)
    return arr


def bay_grid(columns: int, rows: int, spacing: float) -> NDArray[np.float64]:
    """(columns·rows, 3) horizontal bay offsets [m] on a grid centred on the station.

    Raises:
        ConfigError: columns or rows < 1, or spacing not > 0 (when there is more than one bay).
    """
    if columns < 1 or rows < 1 or (columns * rows > 1 and not spacing > 0.0):
        raise ConfigError(f"stations.bays needs columns, rows >= 1 and spacing > 0 [m], got "
                          f"{columns}, {rows}, {spacing}")
    r, c = np.divmod(np.arange(rows * columns), columns)
    xy = np.stack([c - (columns - 1) / 2, r - (rows - 1) / 2], axis=1) * spacing
    return np.concatenate([xy, np.zeros((xy.shape[0], 1))], axis=1).astype(np.float64)


@dataclass(frozen=True, eq=False)
class Layout:
    """Static warehouse geometry used for validation, goals and costs.

    Attributes:
        stations: name -> position (3,) [m] of every pick and drop station.
        pick_stations: names of stations a pickup may name.
        drop_stations: names of stations a dropoff may name.
        home_pads: (P, 3) home/charging pad positions [m]; drone registered k-th uses pad
            ``k % P``.
        geofence_min: (3,) lower corner of the allowed box [m].
        geofence_max: (3,) upper corner of the allowed box [m].
        max_payload_kg: heaviest payload a drone may carry [kg].
        cruise_speed_mps: speed used to turn distance into travel time [m/s].
        bay_offsets: (K, 3) offsets [m] of the K bays every station has around its position;
            a task is served at bay ``crc32(task id) mod K`` of its station (spreads the drones
            converging on a busy station; default one bay at the station itself).
    """

    stations: Mapping[str, NDArray[np.float64]]
    pick_stations: tuple[str, ...]
    drop_stations: tuple[str, ...]
    home_pads: NDArray[np.float64]
    geofence_min: NDArray[np.float64]
    geofence_max: NDArray[np.float64]
    max_payload_kg: float
    cruise_speed_mps: float = DEFAULT_CRUISE_SPEED_MPS
    bay_offsets: NDArray[np.float64] = field(default_factory=lambda: np.zeros((1, 3)))

    def __post_init__(self) -> None:
        stations = {str(k): _vec3(v, f"stations[{k!r}]") for k, v in self.stations.items()}
        object.__setattr__(self, "stations", MappingProxyType(stations))
        object.__setattr__(self, "pick_stations", tuple(self.pick_stations))
        object.__setattr__(self, "drop_stations", tuple(self.drop_stations))
        for name in (*self.pick_stations, *self.drop_stations):
            if name not in stations:
                raise ConfigError(f"station {name!r} is listed but has no position")
        if not self.pick_stations or not self.drop_stations:
            raise ConfigError("a layout needs at least one pick and one drop station")
        pads = np.array(self.home_pads, dtype=np.float64)
        if pads.ndim != 2 or pads.shape[1] != 3 or pads.shape[0] == 0:
            raise ConfigError(f"home_pads must be a non-empty (P, 3) array, got {pads.shape}")
        if not np.all(np.isfinite(pads)):
            raise ConfigError("home_pads contains non-finite positions")
        pads.setflags(write=False)
        object.__setattr__(self, "home_pads", pads)
        lo = _vec3(self.geofence_min, "geofence.min")
        hi = _vec3(self.geofence_max, "geofence.max")
        if np.any(lo >= hi):
            raise ConfigError(f"geofence.min {lo.tolist()} must be below geofence.max {hi.tolist()}")
        object.__setattr__(self, "geofence_min", lo)
        object.__setattr__(self, "geofence_max", hi)
        if not np.isfinite(self.max_payload_kg) or self.max_payload_kg <= 0.0:
            raise ConfigError(f"max_payload_kg must be > 0 [kg], got {self.max_payload_kg}")
        if not np.isfinite(self.cruise_speed_mps) or self.cruise_speed_mps <= 0.0:
            raise ConfigError(f"cruise_speed_mps must be > 0 [m/s], got {self.cruise_speed_mps}")
        bays = np.array(self.bay_offsets, dtype=np.float64)
        if bays.ndim != 2 or bays.shape[1] != 3 or bays.shape[0] == 0 or not np.all(np.isfinite(bays)):
            raise ConfigError(f"bay_offsets must be a non-empty finite (K, 3) array, got {bays.shape}")
        bays.setflags(write=False)
        object.__setattr__(self, "bay_offsets", bays)
        for name, pos in stations.items():
            if not self.contains(pos[None, :] + bays).all():
                raise ConfigError(f"station {name!r} at {pos.tolist()} (or one of its bays) lies "
                                  "outside the geofence")

    def contains(self, points: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Return (N,) True where the (N, 3) ``points`` [m] lie inside the geofence box."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        inside: NDArray[np.bool_] = np.all(
            (pts >= self.geofence_min) & (pts <= self.geofence_max), axis=1
        )
        return inside

    def station(self, name: str) -> NDArray[np.float64]:
        """Return the (3,) position [m] of station ``name``; ConfigError if unknown."""
        try:
            return self.stations[name]
        except KeyError:
            raise ConfigError(
                f"unknown station {name!r}; known: {sorted(self.stations)}"
            ) from None

    def station_goal(self, name: str, task_id: str) -> NDArray[np.float64]:
        """(3,) position [m] where task ``task_id`` is served at station ``name``: the
        station's bay ``crc32(task_id) mod K`` (stable across runs and restarts)."""
        bay = zlib.crc32(task_id.encode()) % self.bay_offsets.shape[0]
        out: NDArray[np.float64] = self.station(name) + self.bay_offsets[bay]
        return out

    @classmethod
    def from_scenario_dict(
        cls, scenario: Mapping[str, Any], *, cruise_speed_mps: float | None = None
    ) -> Layout:
        """Build a layout from a parsed scenario YAML dict.

        Reads ``stations.pick/drop`` (``{name, position}`` lists), optional ``stations.bays``
        (``{columns, rows, spacing}``: :func:`bay_grid`), ``home_pads`` (grid of
        ``origin``, ``spacing`` [m], ``columns``, ``rows``; row-major), ``geofence.min/max``,
        ``tasks.max_payload_kg`` and, if present, ``fleet.cruise_speed_mps``. The keyword
        ``cruise_speed_mps`` [m/s] overrides the file; the default is 1.0 m/s.

        Raises:
            ConfigError: a key is missing or malformed (the message names it).
        """
        try:
            st = scenario["stations"]
            pick = [(str(s["name"]), s["position"]) for s in st["pick"]]
            drop = [(str(s["name"]), s["position"]) for s in st["drop"]]
            pads_cfg = scenario["home_pads"]
            origin = _vec3(pads_cfg["origin"], "home_pads.origin")
            spacing = float(pads_cfg["spacing"])
            columns = int(pads_cfg["columns"])
            rows = int(pads_cfg["rows"])
            fence_min = scenario["geofence"]["min"]
            fence_max = scenario["geofence"]["max"]
            max_payload = float(scenario["tasks"]["max_payload_kg"])
            bays_cfg = st.get("bays")
            bays = (bay_grid(int(bays_cfg["columns"]), int(bays_cfg["rows"]), float(bays_cfg["spacing"]))
                    if bays_cfg else np.zeros((1, 3)))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"scenario is missing or malforms key {exc}") from exc
        if columns <= 0 or rows <= 0 or not spacing > 0.0:
            raise ConfigError(
                f"home_pads needs columns, rows > 0 and spacing > 0 [m], got "
                f"{columns}, {rows}, {spacing}"
            )
        names = [n for n, _ in pick + drop]
        if len(set(names)) != len(names):
            raise ConfigError(f"station names must be unique, got {names}")
        r, c = np.divmod(np.arange(rows * columns), columns)
        pads = origin + spacing * np.stack([c, r, np.zeros_like(c)], axis=1).astype(np.float64)
        speed = cruise_speed_mps
        if speed is None:
            speed = float(
                (scenario.get("fleet") or {}).get("cruise_speed_mps", DEFAULT_CRUISE_SPEED_MPS)
            )
        return cls(
            stations={n: p for n, p in pick + drop},
            pick_stations=tuple(n for n, _ in pick),
            drop_stations=tuple(n for n, _ in drop),
            home_pads=pads,
            bay_offsets=bays,
            geofence_min=_vec3(fence_min, "geofence.min"),
            geofence_max=_vec3(fence_max, "geofence.max"),
            max_payload_kg=max_payload,
            cruise_speed_mps=speed,
        )
