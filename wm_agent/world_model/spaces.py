"""Observation and action spaces of the world model, defined once.

Frames and units: positions and velocities are ENU in the ``map`` frame [m, m/s]; attitude enters
only as the gravity direction in the body frame (yaw-free); body rates are FLU body-frame
[rad/s]. The observation never holds the absolute position (it is translation invariant); the
world model predicts the position *delta* per step and callers integrate it.

Observation layout (``ObservationSpec.size`` = 51 with the defaults), in this order:

=============  ====  =======  =================================================================
name           size  unit     meaning
=============  ====  =======  =================================================================
vel            3     m/s      velocity, map ENU
gravity_body   3     1        unit gravity direction in the body frame ((0, 0, -1) when level)
body_rates     3     rad/s    angular velocity, body frame
altitude       1     m        height of the centre of mass above the floor
goal_rel       3     m        goal − position, map ENU, norm clipped to ``goal_clip``
sectors        8     m        per azimuth sector, horizontal distance to the nearest obstacle box
clearance      2     m        up (to ceiling / box above), down (to floor / box below)
neighbours     28    mixed    K = 4 nearest drones: rel. position [m] (3), rel. velocity [m/s] (3),
                              mask [1] (1); sorted by distance, zero-padded
=============  ====  =======  =================================================================

Sector j covers azimuths ``[j·45° − 22.5°, j·45° + 22.5°)`` counter-clockwise from east (+x).
Its value is the exact minimum horizontal distance from the drone's centre to any obstacle AABB
(restricted to the wedge) among boxes whose vertical extent overlaps ``z ± vertical_band``;
clipped to ``sensor_range``. For a convex box the wedge minimum is either the box's closest point
(when its bearing lies in the wedge) or where a wedge edge ray enters the box, so 8 edge rays plus
the closest point give it exactly.

Action: ``(vx, vy, vz, yaw_rate)`` velocity setpoint in map ENU divided by the airframe's
``max_speed`` and yaw rate divided by ``max_yaw_rate``: each component in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from wm_agent.errors import ConfigError, ModelError

SPEC_VERSION = 1
"""Bumped whenever the observation/action layout or semantics change."""

WM_DT = 1.0 / 12.0
"""World-model step [s]: 4 control periods at 48 Hz; an action is held for one step."""

_BRUTE_FORCE_NEIGHBOURS = 64 * 64
"""Query × pool sizes up to this use the O(N·P) path; larger ones use the spatial grid."""

_CHUNK_ELEMENTS = 1 << 21
"""Drone × box pairs tested per chunk in the obstacle broadphase (bounds memory)."""


@dataclass(frozen=True)
class ObsField:
    """One named block of the observation vector.

    Attributes:
        name: block name. size: number of entries. unit: physical unit. description: meaning.
    """

    name: str
    size: int
    unit: str
    description: str


@dataclass(frozen=True)
class ObservationSpec:
    """Layout and parameters of the observation (see the module docstring).

    Attributes:
        version: :data:`SPEC_VERSION`.
        dt: world-model step [s].
        sectors: number of azimuth sectors (fixed at 8 by the exact-sector construction).
        sensor_range: clip of sector and clearance distances [m].
        vertical_band: a box counts for the sectors if it overlaps ``z ± vertical_band`` [m].
        goal_clip: maximum norm of ``goal_rel`` [m].
        neighbours: K nearest drones reported.
        neighbour_radius: drones farther than this are not reported [m].
    """

    version: int = SPEC_VERSION
    dt: float = WM_DT
    sectors: int = 8
    sensor_range: float = 3.0
    vertical_band: float = 0.3
    goal_clip: float = 10.0
    neighbours: int = 4
    neighbour_radius: float = 5.0
    fields: tuple[ObsField, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.sectors != 8:
            raise ConfigError(f"observation spec: sectors: only 8 is supported, got {self.sectors}")
        for name in ("sensor_range", "vertical_band", "goal_clip", "neighbour_radius", "dt"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(f"observation spec: {name}: expected > 0, got {value!r}")
        if self.neighbours < 0:
            raise ConfigError(f"observation spec: neighbours: expected >= 0, got {self.neighbours}")
        fields = (
            ObsField("vel", 3, "m/s", "velocity, map ENU"),
            ObsField("gravity_body", 3, "1", "unit gravity direction in the body frame"),
            ObsField("body_rates", 3, "rad/s", "angular velocity, body frame"),
            ObsField("altitude", 1, "m", "centre of mass above the floor"),
            ObsField("goal_rel", 3, "m", f"goal - position, map ENU, norm <= {self.goal_clip}"),
            ObsField("sectors", self.sectors, "m",
                     f"nearest obstacle per 45 deg azimuth sector from east, <= {self.sensor_range}"),
            ObsField("clearance", 2, "m", f"up, down clearance, <= {self.sensor_range}"),
            ObsField("neighbours", 7 * self.neighbours, "m, m/s, 1",
                     "K nearest drones: rel. pos (3), rel. vel (3), mask (1)"),
        )
        object.__setattr__(self, "fields", fields)

    @property
    def size(self) -> int:
        """Length of the observation vector."""
        return sum(f.size for f in self.fields)

    def slice(self, name: str) -> slice:
        """Slice of block ``name`` in the observation vector.

        Raises:
            ModelError: unknown block name (the message lists the known ones).
        """
        start = 0
        for f in self.fields:
            if f.name == name:
                return slice(start, start + f.size)
            start += f.size
        raise ModelError(
            f"observation spec: no block {name!r}; known: {[f.name for f in self.fields]}"
        )

    def element_names(self) -> list[str]:
        """One name per entry, e.g. ``vel[0]``, ``neighbours[13]``."""
        return [f"{f.name}[{i}]" for f in self.fields for i in range(f.size)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in dataset metadata and the model card)."""
        return {
            "version": self.version,
            "dt": self.dt,
            "sectors": self.sectors,
            "sensor_range": self.sensor_range,
            "vertical_band": self.vertical_band,
            "goal_clip": self.goal_clip,
            "neighbours": self.neighbours,
            "neighbour_radius": self.neighbour_radius,
            "size": self.size,
            "fields": [
                {"name": f.name, "size": f.size, "unit": f.unit, "description": f.description}
                for f in self.fields
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObservationSpec:
        """Inverse of :meth:`to_dict`.

        Raises:
            ModelError: missing keys or a layout that differs from what this code builds.
        """
        try:
            spec = cls(
                version=int(data["version"]),
                dt=float(data["dt"]),
                sectors=int(data["sectors"]),
                sensor_range=float(data["sensor_range"]),
                vertical_band=float(data["vertical_band"]),
                goal_clip=float(data["goal_clip"]),
                neighbours=int(data["neighbours"]),
                neighbour_radius=float(data["neighbour_radius"]),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelError(f"observation spec: invalid description ({exc}): {data!r}") from exc
        if "size" in data and int(data["size"]) != spec.size:
            raise ModelError(
                f"observation spec: size: stored {data['size']}, this code builds {spec.size}"
            )
        return spec


@dataclass(frozen=True)
class ActionSpec:
    """Action normalisation by the airframe limits.

    Attributes:
        max_speed: velocity setpoint limit [m/s] (the airframe's ``max_speed``).
        max_yaw_rate: yaw-rate limit [rad/s].
        names: component names; units of the denormalised values are m/s, m/s, m/s, rad/s.
    """

    max_speed: float = 8.333
    max_yaw_rate: float = math.radians(200.0)
    names: tuple[str, ...] = ("vx", "vy", "vz", "yaw_rate")

    def __post_init__(self) -> None:
        for name in ("max_speed", "max_yaw_rate"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ConfigError(f"action spec: {name}: expected > 0, got {value!r}")

    @property
    def size(self) -> int:
        """Length of the action vector (4)."""
        return len(self.names)

    @classmethod
    def from_airframe(cls, airframe: Any) -> ActionSpec:
        """From a :class:`wm_agent.sim.Airframe` (``max_speed`` [m/s], ``max_yaw_rate_deg``)."""
        return cls(float(airframe.max_speed), math.radians(float(airframe.max_yaw_rate_deg)))

    def normalise(
        self, cmd_vel: NDArray[np.floating], yaw_rate: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """(N, 3) [m/s] and (N,) [rad/s] → (N, 4) float32 in [-1, 1] (clipped)."""
        a = np.concatenate(
            [np.asarray(cmd_vel, np.float64) / self.max_speed,
             np.asarray(yaw_rate, np.float64)[:, None] / self.max_yaw_rate],
            axis=1,
        )
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def denormalise(
        self, action: NDArray[np.floating]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(N, 4) normalised → velocity setpoint (N, 3) [m/s], yaw rate (N,) [rad/s]."""
        a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        return a[:, :3] * self.max_speed, a[:, 3] * self.max_yaw_rate

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        return {
            "names": list(self.names),
            "units": ["m/s", "m/s", "m/s", "rad/s"],
            "frame": "map ENU",
            "max_speed": self.max_speed,
            "max_yaw_rate": self.max_yaw_rate,
            "normalised": "component / limit, clipped to [-1, 1]",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(float(data["max_speed"]), float(data["max_yaw_rate"]))
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ModelError(f"action spec: invalid description ({exc}): {data!r}") from exc


@dataclass(frozen=True)
class NeighbourPool:
    """Drones that may be reported as neighbours (e.g. the whole fleet from the fleet state).

    Attributes:
        pos: (P, 3) positions [m], map ENU. vel: (P, 3) velocities [m/s].
        ids: (P,) int drone ids; a pool entry with the query's own id is never its neighbour.
    """

    pos: NDArray[np.float64]
    vel: NDArray[np.float64]
    ids: NDArray[np.int64]


class ObservationBatch(NamedTuple):
    """Result of :func:`build_observations`.

    Attributes:
        obs: (N, D) float32 observations; rows of invalid drones are all zero.
        valid: (N,) bool, False where an input of that drone was non-finite (NaN/inf) or its
            quaternion had zero norm.
    """

    obs: NDArray[np.float32]
    valid: NDArray[np.bool_]


def gravity_in_body(quat: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 4) unit quaternions (x, y, z, w), body→map → (N, 3) gravity direction in the body
    frame, i.e. ``Rᵀ · (0, 0, −1)`` = minus the third row of R."""
    x, y, z, w = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    return -np.stack([2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)], 1)


def goal_relative(
    pos: NDArray[np.floating], goals: NDArray[np.floating], spec: ObservationSpec
) -> NDArray[np.float64]:
    """(N, 3) ``goal − pos`` [m] with its norm clipped to ``spec.goal_clip`` (direction kept)."""
    rel = np.asarray(goals, np.float64) - np.asarray(pos, np.float64)
    norm = np.linalg.norm(rel, axis=-1, keepdims=True)
    scale = np.minimum(1.0, spec.goal_clip / np.maximum(norm, 1e-12))
    return rel * scale


def obstacle_features(
    pos: NDArray[np.float64],
    boxes_min: NDArray[np.float64],
    boxes_max: NDArray[np.float64],
    spec: ObservationSpec,
    floor_z: float = 0.0,
    ceiling_z: float = math.inf,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Sector distances and up/down clearance for every drone.

    Args:
        pos: (N, 3) finite positions [m].
        boxes_min, boxes_max: (M, 3) obstacle AABB corners [m] (shelves and walls).
        spec: ranges and band.
        floor_z, ceiling_z: floor and ceiling heights [m].

    Returns:
        sectors (N, 8) [m] and clearance (N, 2) = (up, down) [m], all in [0, sensor_range].
    """
    n = pos.shape[0]
    rng = spec.sensor_range
    sectors = np.full((n, 8), rng)
    up = ceiling_z - pos[:, 2]
    down = pos[:, 2] - floor_z
    bmin = np.asarray(boxes_min, np.float64).reshape(-1, 3)
    bmax = np.asarray(boxes_max, np.float64).reshape(-1, 3)
    m = bmin.shape[0]
    if not (m and n):
        return np.clip(sectors, 0.0, rng), np.clip(np.stack([up, down], axis=1), 0.0, rng)
    # Only (drone, box) pairs whose box can matter: a box whose xy centre is farther than
    # sensor_range + its half diagonal can be neither in range nor overhead. Large boxes (walls)
    # are paired with every drone; the others through a grid of their centres (never N × M).
    half = 0.5 * np.hypot(bmax[:, 0] - bmin[:, 0], bmax[:, 1] - bmin[:, 1])
    big = half > _BIG_BOX_M
    small = np.flatnonzero(~big)
    grid = n * small.size > _DENSE_PAIRS  # else few enough: every (drone, box) pair
    every = np.flatnonzero(big) if grid else np.arange(m)  # boxes paired with every drone
    qi, bj = np.repeat(np.arange(n), every.size), np.tile(every, n)
    if grid:
        centres = 0.5 * (bmin[small] + bmax[small])
        gq, gb = _grid_candidates(pos, centres, rng + float(half[small].max()) + 1e-6)
        qi, bj = np.concatenate([qi, gq]), np.concatenate([bj, small[gb]])
    for start in range(0, qi.size, _CHUNK_ELEMENTS):
        sl = slice(start, start + _CHUNK_ELEMENTS)
        _obstacle_pairs(pos, qi[sl], bj[sl], bmin, bmax, spec, sectors, up, down)
    clearance = np.clip(np.stack([up, down], axis=1), 0.0, rng)
    return np.clip(sectors, 0.0, rng), clearance


_DENSE_PAIRS = 1 << 15
"""Up to this many (drone, box) pairs every pair is checked; above, a grid of box centres
prefilters them (1,000 drones × 1,440 shelf units: 44 → ~3 ms)."""

_BIG_BOX_M = 5.0
"""Boxes with a larger xy half diagonal [m] (walls) are checked against every drone."""

# Edge ray e (azimuth 22.5° + e·45°) separates sector e and sector e + 1 (mod 8).
_EDGE_ANGLES = np.pi / 8.0 + np.arange(8) * np.pi / 4.0
_EDGE_DIRS = np.stack([np.cos(_EDGE_ANGLES), np.sin(_EDGE_ANGLES)], axis=1)


def _obstacle_pairs(
    p: NDArray[np.float64],
    qi: NDArray[np.int64],
    bj: NDArray[np.int64],
    bmin: NDArray[np.float64],
    bmax: NDArray[np.float64],
    spec: ObservationSpec,
    sectors: NDArray[np.float64],
    up: NDArray[np.float64],
    down: NDArray[np.float64],
) -> None:
    """Update ``sectors`` (N, 8), ``up`` (N,), ``down`` (N,) in place with the (drone qi[k],
    box bj[k]) pairs."""
    rng = spec.sensor_range
    px, py, pz = p[qi, 0], p[qi, 1], p[qi, 2]
    lo, hi = bmin[bj], bmax[bj]
    dx = np.clip(px, lo[:, 0], hi[:, 0]) - px  # to the closest point of the footprint
    dy = np.clip(py, lo[:, 1], hi[:, 1]) - py
    dist = np.hypot(dx, dy)

    # Up/down clearance through boxes whose footprint holds the drone.
    inside_xy = dist <= 0.0
    above = inside_xy & (lo[:, 2] >= pz)
    below = inside_xy & (hi[:, 2] <= pz)
    if above.any():
        np.minimum.at(up, qi[above], lo[above, 2] - pz[above])
    if below.any():
        np.minimum.at(down, qi[below], pz[below] - hi[below, 2])

    # Horizontal sectors: boxes in range whose height overlaps the band around the drone.
    band = spec.vertical_band
    near = (dist < rng) & (lo[:, 2] < pz + band) & (hi[:, 2] > pz - band)
    if not near.any():
        return
    q, d = qi[near], dist[near]
    flat = sectors.reshape(-1)
    bearing = np.arctan2(dy[near], dx[near])
    sector = np.floor((bearing + np.pi / 8.0) / (np.pi / 4.0)).astype(np.int64) % 8
    np.minimum.at(flat, q * 8 + sector, d)
    inside = q[d <= 0.0]
    if inside.size:
        sectors[inside] = 0.0
    # Edge rays: slab test in 2-D; directions never have a zero component.
    ox, oy = px[near], py[near]
    nlo, nhi = lo[near], hi[near]
    inv = 1.0 / _EDGE_DIRS  # (8, 2)
    tx1 = (nlo[:, 0:1] - ox[:, None]) * inv[None, :, 0]
    tx2 = (nhi[:, 0:1] - ox[:, None]) * inv[None, :, 0]
    ty1 = (nlo[:, 1:2] - oy[:, None]) * inv[None, :, 1]
    ty2 = (nhi[:, 1:2] - oy[:, None]) * inv[None, :, 1]
    t_near = np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2))
    t_far = np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2))
    hit = (t_near <= t_far) & (t_far >= 0.0)
    t_hit = np.where(hit, np.maximum(t_near, 0.0), np.inf)  # (P, 8)
    edges = np.arange(8)
    rows = np.repeat(q * 8, 8).reshape(-1, 8)
    np.minimum.at(flat, (rows + edges[None, :]).ravel(), t_hit.ravel())
    np.minimum.at(flat, (rows + (edges[None, :] + 1) % 8).ravel(), t_hit.ravel())


def _grid_candidates(
    q: NDArray[np.float64], pool: NDArray[np.float64], cell: float
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Candidate (query, pool) index pairs from a 2-D (x, y) grid of cell size ``cell``:
    sort the pool by cell key, look up the 3 × 3 cells around each query with ``searchsorted``.
    O((N + P) log P + pairs), never N × P."""
    pc = np.floor(pool[:, :2] / cell).astype(np.int64)
    qc = np.floor(q[:, :2] / cell).astype(np.int64)
    lo = np.minimum(pc.min(axis=0), qc.min(axis=0)) - 1
    span = np.maximum(pc.max(axis=0), qc.max(axis=0)) - lo + 2
    key = (pc[:, 0] - lo[0]) * span[1] + (pc[:, 1] - lo[1])
    order = np.argsort(key, kind="stable")
    skey = key[order]
    qs: list[NDArray[np.int64]] = []
    ps: list[NDArray[np.int64]] = []
    for ox in (-1, 0, 1):
        for oy in (-1, 0, 1):
            k = (qc[:, 0] + ox - lo[0]) * span[1] + (qc[:, 1] + oy - lo[1])
            a = np.searchsorted(skey, k, side="left")
            b = np.searchsorted(skey, k, side="right")
            count = b - a
            total = int(count.sum())
            if total == 0:
                continue
            qi = np.repeat(np.arange(q.shape[0]), count)
            offs = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
            qs.append(qi)
            ps.append(order[np.repeat(a, count) + offs])
    if not qs:
        empty = np.zeros(0, np.int64)
        return empty, empty
    return np.concatenate(qs), np.concatenate(ps)


def _nearest_k(qi: NDArray[np.int64], pj: NDArray[np.int64], pos: NDArray[np.float64],
               self_ids: NDArray[np.int64], pool: NDArray[np.float64],
               pool_ids: NDArray[np.int64], radius: float, k: int
               ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64],
                          NDArray[np.int64]]:
    """Of candidate (query, pool) pairs, the k nearest pool drones of every query within
    ``radius`` (not itself), nearest first, ties by pool index: (qi, pj, rel (·, 3), rank)."""
    rel = pool[pj] - pos[qi]
    d = np.linalg.norm(rel, axis=1)
    keep = (d < radius) & (pool_ids[pj] != self_ids[qi])
    qi, pj, rel, d = qi[keep], pj[keep], rel[keep], d[keep]
    order = np.lexsort((pj, d, qi))  # by query, then distance, ties by pool index
    qi, pj, rel = qi[order], pj[order], rel[order]
    first = np.searchsorted(qi, np.arange(pos.shape[0]), side="left")
    rank = np.arange(qi.size) - first[qi]
    sel = rank < k
    return qi[sel], pj[sel], rel[sel], rank[sel]


#: extra nearest drones the k-d tree returns beyond k + 1 (itself), so the ones tied at the
#: k-th distance are seen and ordered by pool index; a query whose tie runs past them is
#: answered from the grid instead
_TIE_MARGIN = 4


def _nearest_k_tree(pos: NDArray[np.float64], self_ids: NDArray[np.int64],
                    pool: NDArray[np.float64], pool_ids: NDArray[np.int64], radius: float,
                    k: int) -> tuple[NDArray[np.int64], NDArray[np.int64],
                                     NDArray[np.float64], NDArray[np.int64]]:
    """:func:`_nearest_k` over the whole pool through a k-d tree (scipy ``cKDTree``): the
    same neighbours, slots and order; O((N + P) log P), no sort of all pairs in range."""
    n, p = pos.shape[0], pool.shape[0]
    m = min(k + 1 + _TIE_MARGIN, p)
    dist, nn = cKDTree(pool).query(pos, k=m, distance_upper_bound=radius * (1.0 + 1e-9))
    dist = np.asarray(dist, np.float64).reshape(n, m)  # ascending per query
    nn = np.asarray(nn, np.int64).reshape(n, m)
    found = nn < p
    qi = np.repeat(np.arange(n, dtype=np.int64), m)[found.ravel()]
    pj = nn[found]
    qi, pj, rel, rank = _nearest_k(qi, pj, pos, self_ids, pool, pool_ids, radius, k)
    # a query whose m returned drones are all in range may have more at its k-th distance
    full = found.all(axis=1)
    if full.any():
        d_full = dist[full]
        tie = np.flatnonzero(full)[d_full[:, -1] <= d_full[:, min(k, m - 1)] + 1e-12]
        if tie.size:
            redo = np.isin(qi, tie)
            gq, gp = _grid_candidates(pos[tie], pool, radius)
            tq, tp, trel, trank = _nearest_k(gq, gp, pos[tie], self_ids[tie], pool, pool_ids,
                                             radius, k)
            qi = np.concatenate([qi[~redo], tie[tq]])
            pj = np.concatenate([pj[~redo], tp])
            rel = np.concatenate([rel[~redo], trel])
            rank = np.concatenate([rank[~redo], trank])
    return qi, pj, rel, rank


def neighbour_features(
    pos: NDArray[np.float64],
    vel: NDArray[np.float64],
    self_ids: NDArray[np.int64],
    pool: NDArray[np.float64],
    pool_vel: NDArray[np.float64],
    pool_ids: NDArray[np.int64],
    spec: ObservationSpec,
) -> NDArray[np.float64]:
    """K nearest pool drones within ``neighbour_radius`` of each query drone.

    Args:
        pos, vel: (N, 3) query positions [m] and velocities [m/s] (finite).
        self_ids: (N,) query drone ids (never their own neighbour).
        pool, pool_vel, pool_ids: (P, 3), (P, 3), (P,) candidate drones (finite rows only).

    Returns:
        (N, 7·K): per slot rel. position (3) [m], rel. velocity (3) [m/s], mask (1), nearest first.
    """
    n, k = pos.shape[0], spec.neighbours
    out = np.zeros((n, k, 7))
    if k == 0 or n == 0 or pool.shape[0] == 0:
        return out.reshape(n, 7 * k)
    radius = spec.neighbour_radius
    if n * pool.shape[0] <= _BRUTE_FORCE_NEIGHBOURS:
        qi, pj = (a.ravel() for a in np.meshgrid(np.arange(n), np.arange(pool.shape[0]),
                                                 indexing="ij"))
        qi, pj, rel, rank = _nearest_k(qi, pj, pos, self_ids, pool, pool_ids, radius, k)
    else:
        qi, pj, rel, rank = _nearest_k_tree(pos, self_ids, pool, pool_ids, radius, k)
    out[qi, rank, 0:3] = rel
    out[qi, rank, 3:6] = pool_vel[pj] - vel[qi]
    out[qi, rank, 6] = 1.0
    return out.reshape(n, 7 * k)


def build_observations(
    pos: NDArray[np.floating],
    vel: NDArray[np.floating],
    quat: NDArray[np.floating],
    body_rates: NDArray[np.floating],
    goals: NDArray[np.floating],
    boxes_min: NDArray[np.floating],
    boxes_max: NDArray[np.floating],
    neighbours: NeighbourPool | None = None,
    *,
    self_ids: NDArray[np.integer] | None = None,
    floor_z: float = 0.0,
    ceiling_z: float = math.inf,
    spec: ObservationSpec | None = None,
) -> ObservationBatch:
    """Observations of N drones in one vectorised call.

    Args:
        pos: (N, 3) positions [m], map ENU (used for relative quantities only).
        vel: (N, 3) velocities [m/s], map ENU.
        quat: (N, 4) attitude (x, y, z, w), body→map (normalised here).
        body_rates: (N, 3) angular velocity, body frame [rad/s].
        goals: (N, 3) goal positions [m], map ENU.
        boxes_min, boxes_max: (M, 3) obstacle AABBs [m] (shelf units and walls).
        neighbours: pool of drones that may be neighbours; ``None`` = these N drones themselves.
        self_ids: (N,) ids of the query drones (default ``arange(N)``; must match the pool's ids).
        floor_z, ceiling_z: floor and ceiling heights [m].
        spec: layout (default :class:`ObservationSpec()`).

    Returns:
        :class:`ObservationBatch` — (N, D) float32 and the (N,) valid mask. A drone with any
        non-finite input gets a zero row and ``valid = False``; it is also left out of every
        other drone's neighbours, so NaN never reaches another row.

    Raises:
        ModelError: an input has the wrong shape (the message names it and the expected shape).
    """
    spec = spec or ObservationSpec()
    n = np.asarray(pos).shape[0] if np.ndim(pos) == 2 else -1
    arrays: dict[str, NDArray[np.float64]] = {}
    for name, value, width in (("pos", pos, 3), ("vel", vel, 3), ("quat", quat, 4),
                               ("body_rates", body_rates, 3), ("goals", goals, 3)):
        a = np.asarray(value, dtype=np.float64)
        if a.shape != (n, width):
            raise ModelError(
                f"build_observations: {name}: expected shape (N, {width}) with N = {n} "
                f"(from pos), got {a.shape}"
            )
        arrays[name] = a
    qn = np.linalg.norm(arrays["quat"], axis=1)
    valid = np.ones(n, dtype=bool)
    for a in arrays.values():
        valid &= np.isfinite(a).all(axis=1)
    valid &= qn > 1e-9
    ids = np.arange(n, dtype=np.int64) if self_ids is None else np.asarray(self_ids, np.int64)
    if ids.shape != (n,):
        raise ModelError(f"build_observations: self_ids: expected shape ({n},), got {ids.shape}")

    # Invalid rows are replaced by harmless values before any computation, zeroed at the end.
    p = np.where(valid[:, None], arrays["pos"], 0.0)
    v = np.where(valid[:, None], arrays["vel"], 0.0)
    q = np.where(valid[:, None], arrays["quat"] / np.where(qn > 1e-9, qn, 1.0)[:, None],
                 np.array([0.0, 0.0, 0.0, 1.0]))
    w = np.where(valid[:, None], arrays["body_rates"], 0.0)
    g = np.where(valid[:, None], arrays["goals"], 0.0)

    if neighbours is None:
        pool_pos, pool_vel, pool_ids, pool_ok = p, v, ids, valid
    else:
        pool_pos = np.asarray(neighbours.pos, np.float64).reshape(-1, 3)
        pool_vel = np.asarray(neighbours.vel, np.float64).reshape(-1, 3)
        pool_ids = np.asarray(neighbours.ids, np.int64).reshape(-1)
        if pool_vel.shape != pool_pos.shape or pool_ids.shape != (pool_pos.shape[0],):
            raise ModelError(
                "build_observations: neighbours: expected pos (P, 3), vel (P, 3), ids (P,); got "
                f"{pool_pos.shape}, {pool_vel.shape}, {pool_ids.shape}"
            )
        pool_ok = np.asarray(np.isfinite(pool_pos).all(axis=1) & np.isfinite(pool_vel).all(axis=1))
    sectors, clearance = obstacle_features(
        p, np.asarray(boxes_min, np.float64), np.asarray(boxes_max, np.float64), spec,
        floor_z, ceiling_z,
    )
    nb = neighbour_features(p, v, ids, pool_pos[pool_ok], pool_vel[pool_ok], pool_ids[pool_ok],
                            spec)
    obs = np.concatenate(
        [v, gravity_in_body(q), w, (p[:, 2] - floor_z)[:, None], goal_relative(p, g, spec),
         sectors, clearance, nb],
        axis=1,
    ).astype(np.float32)
    obs[~valid] = 0.0
    return ObservationBatch(obs, valid)


def min_clearance(obs: NDArray[np.floating], spec: ObservationSpec) -> NDArray[np.float64]:
    """(…, D) observations → (…,) smallest distance to an obstacle or neighbour [m]: the minimum
    of the sectors, the up clearance and the nearest reported neighbour's distance (floor
    excluded: take-off and landing are not a collision risk)."""
    o = np.asarray(obs, np.float64)
    sect = o[..., spec.slice("sectors")].min(axis=-1)
    up = o[..., spec.slice("clearance")][..., 0]
    out = np.minimum(sect, up)
    if spec.neighbours:
        nb = o[..., spec.slice("neighbours")].reshape(*o.shape[:-1], spec.neighbours, 7)
        dist = np.where(nb[..., 6] > 0.5, np.linalg.norm(nb[..., :3], axis=-1), np.inf)
        out = np.minimum(out, dist.min(axis=-1))
    return out
