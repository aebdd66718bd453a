"""Warehouse layout as the fleet coordinator sees it (stations, bays, home pads, shelves,
geofence).

The coordinator core takes a :class:`Layout`; :meth:`Layout.from_scenario` builds it from a
validated :class:`wm_agent.sim.scenario.Scenario` (the one scenario loader, so the nodes and the
tests see the same stations, bays and pads). All positions are ENU in the ``map`` frame [m].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError

if TYPE_CHECKING:
    from wm_agent.sim.scenario import Scenario

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


@dataclass(frozen=True, eq=False)
class Layout:
    """Static warehouse geometry used for validation, goals and costs.

    Attributes:
        stations: name -> position (3,) [m] of every pick and drop station.
        pick_stations: names of stations a pickup may name.
        drop_stations: names of stations a dropoff may name.
        home_pads: (P, 3) home/charging pad positions [m]; drone ``i`` uses pad ``i % P`` (the
            simulator starts drone i on pad i).
        geofence_min: (3,) lower corner of the allowed box [m].
        geofence_max: (3,) upper corner of the allowed box [m].
        max_payload_kg: heaviest payload a drone may carry [kg].
        cruise_speed_mps: speed used to turn distance into travel time [m/s].
        bay_offsets: (K, 3) offsets [m] of the K bays every station has around its position;
            the coordinator reserves a free one for each task (no two drones on one bay;
            default one bay at the station itself).
        shelves: (M, 2, 3) shelf AABBs [m] ([:, 0] min, [:, 1] max corner): no pickup inside.
        clearance_m: a point closer than this to a shelf counts as inside it [m] (the drone's
            collision radius).
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
    shelves: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 2, 3)))
    clearance_m: float = 0.0

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
        shelves = np.array(self.shelves, dtype=np.float64).reshape(-1, 2, 3)
        if not np.all(np.isfinite(shelves)) or np.any(shelves[:, 0] > shelves[:, 1]):
            raise ConfigError("shelves must be finite (M, 2, 3) boxes with min <= max corners")
        shelves.setflags(write=False)
        object.__setattr__(self, "shelves", shelves)
        if not (np.isfinite(self.clearance_m) and self.clearance_m >= 0.0):
            raise ConfigError(f"clearance_m must be >= 0 [m], got {self.clearance_m}")
        for name, pos in stations.items():
            if not self.contains(pos[None, :] + bays).all():
                raise ConfigError(f"station {name!r} at {pos.tolist()} (or one of its bays) lies "
                                  "outside the geofence")
            if self.blocked(pos[None, :] + bays).any():
                raise ConfigError(f"station {name!r} at {pos.tolist()} (or one of its bays) lies "
                                  "inside a shelf")

    def contains(self, points: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Return (N,) True where the (N, 3) ``points`` [m] lie inside the geofence box."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        inside: NDArray[np.bool_] = np.all(
            (pts >= self.geofence_min) & (pts <= self.geofence_max), axis=1
        )
        return inside

    def blocked(self, points: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Return (N,) True where the (N, 3) ``points`` [m] lie inside a shelf grown by
        ``clearance_m`` (a drone there would touch it)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        if self.shelves.shape[0] == 0:
            return np.zeros(pts.shape[0], dtype=bool)
        lo = self.shelves[None, :, 0] - self.clearance_m
        hi = self.shelves[None, :, 1] + self.clearance_m
        p = pts[:, None, :]
        out: NDArray[np.bool_] = np.all((p >= lo) & (p <= hi), axis=2).any(axis=1)
        return out

    def home_pad(self, drone_ids: NDArray[np.integer]) -> NDArray[np.float64]:
        """(N, 3) home pad [m] of each drone id (pad ``id % P``)."""
        out: NDArray[np.float64] = self.home_pads[np.asarray(drone_ids, np.int64) % len(self.home_pads)]
        return out

    def station(self, name: str) -> NDArray[np.float64]:
        """Return the (3,) position [m] of station ``name``; ConfigError if unknown."""
        try:
            return self.stations[name]
        except KeyError:
            raise ConfigError(
                f"unknown station {name!r}; known: {sorted(self.stations)}"
            ) from None

    def bay_position(self, name: str, bay: int) -> NDArray[np.float64]:
        """(3,) position [m] of bay ``bay`` of station ``name``; ConfigError if unknown."""
        out: NDArray[np.float64] = self.station(name) + self.bay_offsets[bay]
        return out

    @classmethod
    def from_scenario(cls, sc: Scenario, cruise_speed_mps: float = DEFAULT_CRUISE_SPEED_MPS
                      ) -> Layout:
        """The coordinator's view of a validated scenario: its stations, bays, pads (drone i on
        pad i), shelves (with the airframe's collision radius), geofence and payload limit."""
        return cls(
            stations=sc.stations,
            pick_stations=tuple(sc.pick_stations),
            drop_stations=tuple(sc.drop_stations),
            home_pads=sc.home_pads,
            bay_offsets=sc.station_bays,
            geofence_min=sc.geofence_min,
            geofence_max=sc.geofence_max,
            max_payload_kg=sc.max_payload_kg,
            cruise_speed_mps=cruise_speed_mps,
            shelves=sc.shelves,
            clearance_m=float(sc.airframe.collision_radius),
        )
