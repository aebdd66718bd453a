"""Scenario loading and validation (schema: docs/SCENARIOS.md, example sim/scenarios/warehouse.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError
from wm_agent.sim import _validate as v
from wm_agent.sim.airframe import Airframe, load_airframe
from wm_agent.sim.paths import sim_data_dir

SCHEMA_VERSION = 1

_TOP_KEYS = (
    "name",
    "version",
    "seed",
    "airframe",
    "rates",
    "world",
    "geofence",
    "shelves",
    "stations",
    "home_pads",
    "drones",
    "tasks",
)
_SHELF_KEYS = ("rows", "row_spacing", "units_per_row", "unit_size", "unit_gap", "origin", "axis")


@dataclass(frozen=True)
class Rates:
    """Loop rates [Hz]; ``physics_hz`` is an integer multiple of ``control_hz``."""

    physics_hz: float
    control_hz: float
    state_pub_hz: float

    @property
    def substeps(self) -> int:
        """Physics steps per control period."""
        return round(self.physics_hz / self.control_hz)

    @property
    def physics_dt(self) -> float:
        """[s]."""
        return 1.0 / self.physics_hz

    @property
    def control_dt(self) -> float:
        """[s]."""
        return 1.0 / self.control_hz


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. All positions are ENU metres in the ``map`` frame.

    Attributes:
        name: scenario name. source: the YAML it came from. seed: default RNG seed.
        airframe: the drones' airframe constants.
        rates: loop rates.
        world_size: (3,) floor x, y extent and ceiling height [m].
        wall_thickness: [m].
        geofence_min, geofence_max: (3,) allowed flight box [m].
        shelves: (M, 2, 3) shelf-unit AABBs, [:, 0] = min corner, [:, 1] = max corner [m].
        shelf_names: M labels such as ``"shelves[0] row 1 unit 3"``.
        walls: (4, 2, 3) wall AABBs (west, east, south, north) [m].
        floor, ceiling: (2, 3) slab AABBs [m].
        pick_stations, drop_stations: name → (3,) position [m].
        stations: both of the above in one lookup.
        station_bays: (K, 3) offsets [m] of every station's bays (``stations.bays``: a
            ``{columns, rows, spacing}`` grid centred on the station; default one bay, the
            station itself); the coordinator serves each task at one bay.
        home_pads: (N, 3) pad positions for the N drones (drone i starts on pad i) [m].
        pad_field: (N,) the pad field (``home_pads`` entry) of each drone's pad.
        drones: N.
        task_rate_per_min: task arrival rate [1/min]. max_payload_kg: [kg].
    """

    name: str
    source: Path
    seed: int
    airframe: Airframe
    rates: Rates
    world_size: NDArray[np.float64]
    wall_thickness: float
    geofence_min: NDArray[np.float64]
    geofence_max: NDArray[np.float64]
    shelves: NDArray[np.float64]
    shelf_names: tuple[str, ...]
    walls: NDArray[np.float64]
    floor: NDArray[np.float64]
    ceiling: NDArray[np.float64]
    pick_stations: dict[str, NDArray[np.float64]]
    drop_stations: dict[str, NDArray[np.float64]]
    stations: dict[str, NDArray[np.float64]] = field(repr=False)
    home_pads: NDArray[np.float64] = field(repr=False)
    pad_field: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    drones: int = 0
    task_rate_per_min: float = 0.0
    max_payload_kg: float = 0.0
    station_bays: NDArray[np.float64] = field(default_factory=lambda: np.zeros((1, 3)), repr=False)


def resolve_scenario_path(path_or_name: str | Path) -> Path:
    """``"warehouse"`` → ``<sim_data_dir>/scenarios/warehouse.yaml``; a path is returned as is."""
    text = str(path_or_name)
    if isinstance(path_or_name, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    return sim_data_dir() / "scenarios" / f"{text}.yaml"


_A = TypeVar("_A", bound=np.ndarray)


def _frozen(a: _A) -> _A:
    a.setflags(write=False)
    return a


def _shelf_boxes(
    label: str, shelves: Any, world_size: NDArray[np.float64]
) -> tuple[NDArray[np.float64], list[str]]:
    if not isinstance(shelves, list):
        raise ConfigError(f"{label}: shelves: expected a list of shelf blocks, got {shelves!r}")
    boxes: list[NDArray[np.float64]] = []
    names: list[str] = []
    for i, block in enumerate(shelves):
        f = f"shelves[{i}]"
        v.check_keys(label, f, block, _SHELF_KEYS)
        rows = v.integer(label, f"{f}.rows", block["rows"], minimum=1)
        row_spacing = v.number(label, f"{f}.row_spacing", block["row_spacing"], positive=True)
        units = v.integer(label, f"{f}.units_per_row", block["units_per_row"], minimum=1)
        size = v.vec3(label, f"{f}.unit_size", block["unit_size"], positive=True)
        gap = v.number(label, f"{f}.unit_gap", block["unit_gap"], non_negative=True)
        origin = v.vec3(label, f"{f}.origin", block["origin"])
        axis = block["axis"]
        if axis not in ("x", "y"):
            raise ConfigError(f"{label}: {f}.axis: expected 'x' or 'y', got {axis!r}")
        if row_spacing < size[1]:
            raise ConfigError(
                f"{label}: {f}.row_spacing: {row_spacing} m is less than the unit depth "
                f"{size[1]} m (unit_size[1]); rows would overlap"
            )
        along, across = (0, 1) if axis == "x" else (1, 0)
        extent = np.empty(3)
        extent[along], extent[across], extent[2] = size[0], size[1], size[2]
        for r in range(rows):
            for u in range(units):
                lo = origin.copy()
                lo[along] += u * (size[0] + gap)
                lo[across] += r * row_spacing
                hi = lo + extent
                if np.any(lo < 0.0) or np.any(hi > world_size):
                    raise ConfigError(
                        f"{label}: {f}: row {r} unit {u} spans {lo.tolist()}..{hi.tolist()}, "
                        f"outside the world [0, 0, 0]..{world_size.tolist()}; move origin or "
                        "reduce rows/units_per_row"
                    )
                boxes.append(np.stack([lo, hi]))
                names.append(f"{f} row {r} unit {u}")
    arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 3)
    return arr, names


@dataclass(frozen=True)
class Obstacles:
    """Obstacle geometry of a scenario as the observation builder wants it.

    Attributes:
        boxes_min, boxes_max: (M, 3) shelf and wall AABBs [m]. shelves: (S, 2, 3) shelf AABBs [m].
        floor_z, ceiling_z: [m]. fence_min, fence_max: (3,) geofence [m].
    """

    boxes_min: NDArray[np.float64]
    boxes_max: NDArray[np.float64]
    shelves: NDArray[np.float64]
    floor_z: float
    ceiling_z: float
    fence_min: NDArray[np.float64]
    fence_max: NDArray[np.float64]

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> Obstacles:
        """From a scenario: shelves + walls as boxes, floor top, ceiling bottom, geofence."""
        boxes = np.concatenate([np.asarray(scenario.shelves).reshape(-1, 2, 3),
                                np.asarray(scenario.walls).reshape(-1, 2, 3)])
        return cls(
            boxes_min=boxes[:, 0].copy(),
            boxes_max=boxes[:, 1].copy(),
            shelves=np.asarray(scenario.shelves, np.float64).reshape(-1, 2, 3),
            floor_z=float(scenario.floor[1, 2]),
            ceiling_z=float(scenario.ceiling[0, 2]),
            fence_min=np.asarray(scenario.geofence_min, np.float64),
            fence_max=np.asarray(scenario.geofence_max, np.float64),
        )


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


def _bays(label: str, bays: Any) -> NDArray[np.float64]:
    """``stations.bays`` (optional ``{columns, rows, spacing}``) → (K, 3) offsets [m]."""

    if bays is None:
        return np.zeros((1, 3))
    b = v.check_keys(label, "stations.bays", bays, ("columns", "rows", "spacing"))
    columns = v.integer(label, "stations.bays.columns", b["columns"], minimum=1)
    rows = v.integer(label, "stations.bays.rows", b["rows"], minimum=1)
    spacing = v.number(label, "stations.bays.spacing", b["spacing"], positive=True)
    return bay_grid(columns, rows, spacing)


def _stations(
    label: str, stations: Any, gmin: NDArray[np.float64], gmax: NDArray[np.float64]
) -> tuple[dict[str, NDArray[np.float64]], dict[str, NDArray[np.float64]]]:
    v.check_keys(label, "stations", stations, ("pick", "drop"), ("bays",))
    out: list[dict[str, NDArray[np.float64]]] = []
    seen: set[str] = set()
    for kind in ("pick", "drop"):
        items = stations[kind]
        if not isinstance(items, list) or not items:
            raise ConfigError(f"{label}: stations.{kind}: expected a non-empty list, got {items!r}")
        table: dict[str, NDArray[np.float64]] = {}
        for j, item in enumerate(items):
            f = f"stations.{kind}[{j}]"
            v.check_keys(label, f, item, ("name", "position"))
            name = v.string(label, f"{f}.name", item["name"])
            if name in seen:
                raise ConfigError(f"{label}: {f}.name: duplicate station name {name!r}")
            seen.add(name)
            pos = v.vec3(label, f"{f}.position", item["position"])
            if np.any(pos < gmin) or np.any(pos > gmax):
                raise ConfigError(
                    f"{label}: {f}.position: {pos.tolist()} is outside the geofence "
                    f"{gmin.tolist()}..{gmax.tolist()}"
                )
            table[name] = _frozen(pos)
        out.append(table)
    return out[0], out[1]


def _pad_grid(label: str, key: str, pads: Any, radius: float) -> NDArray[np.float64]:
    """Every pad of one field ``{origin, spacing, columns, rows}``, row-major (P, 3) [m]."""
    v.check_keys(label, key, pads, ("origin", "spacing", "columns", "rows"))
    origin = v.vec3(label, f"{key}.origin", pads["origin"])
    spacing = v.number(label, f"{key}.spacing", pads["spacing"], positive=True)
    columns = v.integer(label, f"{key}.columns", pads["columns"], minimum=1)
    rows = v.integer(label, f"{key}.rows", pads["rows"], minimum=1)
    if spacing < 2.0 * radius:
        raise ConfigError(
            f"{label}: {key}.spacing: {spacing} m is less than two collision radii "
            f"({2.0 * radius} m); neighbouring drones would start in collision"
        )
    if origin[2] != 0.0:
        raise ConfigError(f"{label}: {key}.origin: z must be 0 (pads lie on the floor), got "
                          f"{origin[2]}")
    idx = np.arange(columns * rows)
    out = np.empty((idx.size, 3))
    out[:, 0] = origin[0] + (idx % columns) * spacing
    out[:, 1] = origin[1] + (idx // columns) * spacing
    out[:, 2] = 0.0
    return out


def _home_pads(
    label: str, pads: Any, drones: int, world_size: NDArray[np.float64], radius: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """``home_pads``: one pad field or a list of them. The drones' pads (N, 3) [m] and each
    drone's field (N,): with several fields, drones take pads round-robin over the fields (pad
    k of every field before pad k + 1 of any), so a fleet smaller than the pads is spread over
    every cluster; a field that is full drops out of the round."""
    fields = pads if isinstance(pads, list) else [pads]
    if not fields:
        raise ConfigError(f"{label}: home_pads: expected a pad field or a non-empty list of them")
    keys = ["home_pads"] if not isinstance(pads, list) else [f"home_pads[{i}]" for i in range(len(fields))]
    grids = [_pad_grid(label, k, f, radius) for k, f in zip(keys, fields, strict=True)]
    total = sum(g.shape[0] for g in grids)
    if total < drones:
        if len(grids) == 1:
            columns, rows = int(fields[0]["columns"]), int(fields[0]["rows"])
            raise ConfigError(
                f"{label}: home_pads: {columns} columns × {rows} rows = {total} pads, but "
                f"{drones} drones need {drones} pads; set rows >= {-(-drones // columns)} or "
                f"columns >= {-(-drones // rows)}"
            )
        raise ConfigError(f"{label}: home_pads: the {len(grids)} fields have {total} pads, but "
                          f"{drones} drones need {drones} pads; add rows or fields")
    slot = np.concatenate([np.arange(g.shape[0]) for g in grids])
    field_of = np.concatenate([np.full(g.shape[0], f) for f, g in enumerate(grids)])
    order = np.lexsort((field_of, slot))[:drones]  # by slot, then field: round-robin
    out = np.concatenate(grids)[order]
    lo, hi = out.min(axis=0), out.max(axis=0)
    if np.any(lo[:2] < radius) or np.any(hi[:2] > world_size[:2] - radius):
        raise ConfigError(
            f"{label}: home_pads: the {drones} pads span {lo.tolist()}..{hi.tolist()}; they must "
            f"lie at least {radius} m inside the walls (world size {world_size.tolist()})"
        )
    if len(grids) > 1:  # pads of different fields closer than two collision radii
        from scipy.spatial import cKDTree

        close = cKDTree(out[:, :2]).query_pairs(2.0 * radius * (1.0 - 1e-9), output_type="ndarray")
        if close.size:
            a, b = close[0]
            raise ConfigError(
                f"{label}: home_pads: pads {a} at {out[a].tolist()} and {b} at {out[b].tolist()} "
                f"are closer than two collision radii ({2.0 * radius} m); the fields overlap")
    return out, field_of[order].astype(np.int64)


def _airframe(label: str, path: Path, data: dict[str, Any]) -> Airframe:
    """``airframe``: a file beside the scenario's folder, else the shipped one."""
    airframe_name = v.string(label, "airframe", data["airframe"])
    local = path.parent.parent / "airframes" / f"{airframe_name}.yaml"
    shared = sim_data_dir() / "airframes" / f"{airframe_name}.yaml"
    if not (local.is_file() or shared.is_file()):
        raise ConfigError(
            f"{label}: airframe: no airframe file {airframe_name!r} (tried {local}, {shared})"
        )
    return load_airframe(local if local.is_file() else shared)


def _rates(label: str, data: dict[str, Any]) -> Rates:
    """``rates``: physics an integer multiple of control, state no faster than control."""
    r = v.check_keys(label, "rates", data["rates"], ("physics_hz", "control_hz", "state_pub_hz"))
    rates = Rates(
        physics_hz=v.number(label, "rates.physics_hz", r["physics_hz"], positive=True),
        control_hz=v.number(label, "rates.control_hz", r["control_hz"], positive=True),
        state_pub_hz=v.number(label, "rates.state_pub_hz", r["state_pub_hz"], positive=True),
    )
    ratio = rates.physics_hz / rates.control_hz
    if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
        raise ConfigError(
            f"{label}: rates.physics_hz: {rates.physics_hz} must be an integer multiple of "
            f"rates.control_hz ({rates.control_hz})"
        )
    if rates.state_pub_hz > rates.control_hz:
        raise ConfigError(
            f"{label}: rates.state_pub_hz: {rates.state_pub_hz} exceeds rates.control_hz "
            f"({rates.control_hz}); state only changes once per control period"
        )
    return rates


def _world(label: str, data: dict[str, Any]
           ) -> tuple[NDArray[np.float64], float, NDArray[np.float64], NDArray[np.float64]]:
    """``world`` and ``geofence``: (size (3,) [m], wall thickness [m], fence min, fence max)."""
    w = v.check_keys(label, "world", data["world"], ("size", "wall_thickness"))
    size = v.vec3(label, "world.size", w["size"], positive=True)
    thick = v.number(label, "world.wall_thickness", w["wall_thickness"], positive=True)
    g = v.check_keys(label, "geofence", data["geofence"], ("min", "max"))
    gmin = v.vec3(label, "geofence.min", g["min"])
    gmax = v.vec3(label, "geofence.max", g["max"])
    if np.any(gmin >= gmax):
        raise ConfigError(
            f"{label}: geofence: min {gmin.tolist()} must be below max {gmax.tolist()} on every axis"
        )
    if np.any(gmin < 0.0) or np.any(gmax > size):
        raise ConfigError(
            f"{label}: geofence: {gmin.tolist()}..{gmax.tolist()} extends outside the world "
            f"[0, 0, 0]..{size.tolist()}"
        )
    return size, thick, gmin, gmax


def _check_stations_clear(label: str, tables: dict[str, dict[str, NDArray[np.float64]]],
                          bays: NDArray[np.float64], shelves: NDArray[np.float64],
                          shelf_names: list[str], gmin: NDArray[np.float64],
                          gmax: NDArray[np.float64], radius: float) -> None:
    """Every station and bay inside the geofence and at least ``radius`` [m] from any shelf."""
    for kind, table in tables.items():
        for j, (sname, pos) in enumerate(table.items()):
            for bay in pos + bays:
                if np.any(bay < gmin) or np.any(bay > gmax):
                    raise ConfigError(f"{label}: stations.bays: a bay of {sname!r} at "
                                      f"{bay.tolist()} is outside the geofence")
                inside = np.all((bay >= shelves[:, 0] - radius) & (bay <= shelves[:, 1] + radius), 1)
                if np.any(inside):
                    k = int(np.argmax(inside))
                    raise ConfigError(
                        f"{label}: stations.{kind}[{j}].position: station {sname!r} (or a bay) at "
                        f"{bay.tolist()} is within {radius} m of {shelf_names[k]}"
                    )


def _drone_count(label: str, data: dict[str, Any], drones: int | None) -> int:
    """The file's ``drones``, or the override."""
    n = v.integer(label, "drones", data["drones"], minimum=1)
    if drones is not None:
        if isinstance(drones, bool) or not isinstance(drones, int) or drones < 1:
            raise ConfigError(f"{label}: drones: override must be an integer >= 1, got {drones!r}")
        n = drones
    return n


def _check_pads_clear(label: str, pads: NDArray[np.float64], shelves: NDArray[np.float64],
                      shelf_names: list[str], radius: float) -> None:
    """No home pad under a shelf (grown by ``radius`` [m])."""
    if not len(shelves):
        return
    lo, hi = shelves[:, 0, :2] - radius, shelves[:, 1, :2] + radius
    under = np.all((pads[:, None, :2] >= lo) & (pads[:, None, :2] <= hi), axis=2)
    if np.any(under):
        i, k = np.argwhere(under)[0]
        raise ConfigError(
            f"{label}: home_pads: pad {i} at {pads[i].tolist()} is under {shelf_names[k]}; "
            "move home_pads.origin or the shelves"
        )


def _tasks(label: str, data: dict[str, Any], airframe: Airframe) -> tuple[float, float]:
    """``tasks``: (arrival rate [1/min], max payload [kg] within the airframe's)."""
    t = v.check_keys(label, "tasks", data["tasks"], ("rate_per_min", "max_payload_kg"))
    rate = v.number(label, "tasks.rate_per_min", t["rate_per_min"], non_negative=True)
    payload = v.number(label, "tasks.max_payload_kg", t["max_payload_kg"], positive=True)
    if payload > airframe.max_payload:
        raise ConfigError(
            f"{label}: tasks.max_payload_kg: {payload} kg exceeds the airframe's max_payload "
            f"({airframe.max_payload} kg)"
        )
    return rate, payload


def _enclosure(size: NDArray[np.float64], thick: float
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(4, 2, 3) walls (west, east, south, north), (2, 3) floor and ceiling slabs [m]."""
    x, y, z = size
    walls = np.array(
        [
            [[-thick, -thick, 0.0], [0.0, y + thick, z]],
            [[x, -thick, 0.0], [x + thick, y + thick, z]],
            [[-thick, -thick, 0.0], [x + thick, 0.0, z]],
            [[-thick, y, 0.0], [x + thick, y + thick, z]],
        ]
    )
    floor = np.array([[-thick, -thick, -thick], [x + thick, y + thick, 0.0]])
    ceiling = np.array([[-thick, -thick, z], [x + thick, y + thick, z + thick]])
    return walls, floor, ceiling


def load_scenario(path_or_name: str | Path, *, drones: int | None = None) -> Scenario:
    """Load and validate a scenario.

    Args:
        path_or_name: a YAML path, or a name resolved to ``<sim_data_dir>/scenarios/<name>.yaml``.
        drones: number of drones; overrides the file's ``drones`` when given.

    Raises:
        ConfigError: anything invalid; the message starts with the file and the field path,
            e.g. ``sim/scenarios/x.yaml: shelves[0].unit_size: expected 3 positive numbers,
            got [1, -2, 3]``.
    """
    path = resolve_scenario_path(path_or_name)
    label = str(path)
    if not path.is_file():
        raise ConfigError(f"{label}: scenario file not found (scenario {str(path_or_name)!r})")
    data = v.read_yaml_mapping(path, label)
    v.check_keys(label, "", data, _TOP_KEYS)
    name = v.string(label, "name", data["name"])
    version = v.integer(label, "version", data["version"])
    if version != SCHEMA_VERSION:
        raise ConfigError(f"{label}: version: expected {SCHEMA_VERSION}, got {version!r}")
    seed = v.integer(label, "seed", data["seed"], minimum=0)
    airframe = _airframe(label, path, data)
    rates = _rates(label, data)
    size, thick, gmin, gmax = _world(label, data)
    shelves, shelf_names = _shelf_boxes(label, data["shelves"], size)
    pick, drop = _stations(label, data["stations"], gmin, gmax)
    bays = _bays(label, data["stations"].get("bays"))
    radius = airframe.collision_radius
    _check_stations_clear(label, {"pick": pick, "drop": drop}, bays, shelves, shelf_names,
                          gmin, gmax, radius)
    n = _drone_count(label, data, drones)
    pads, pad_field = _home_pads(label, data["home_pads"], n, size, radius)
    _check_pads_clear(label, pads, shelves, shelf_names, radius)
    rate, payload = _tasks(label, data, airframe)
    walls, floor, ceiling = _enclosure(size, thick)
    return Scenario(
        name=name,
        source=path,
        seed=seed,
        airframe=airframe,
        rates=rates,
        world_size=_frozen(size),
        wall_thickness=thick,
        geofence_min=_frozen(gmin),
        geofence_max=_frozen(gmax),
        shelves=_frozen(shelves),
        shelf_names=tuple(shelf_names),
        walls=_frozen(walls),
        floor=_frozen(floor),
        ceiling=_frozen(ceiling),
        pick_stations=pick,
        drop_stations=drop,
        stations={**pick, **drop},
        home_pads=_frozen(pads),
        pad_field=_frozen(pad_field),
        drones=n,
        task_rate_per_min=rate,
        max_payload_kg=payload,
        station_bays=_frozen(bays),
    )
