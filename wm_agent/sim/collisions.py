"""Collision detection: drone–obstacle (sphere vs AABB, grid broadphase) and drone–drone
(spatial hash: sort by cell, look up neighbour cells; O(N log N), never N²).

The simulator calls :meth:`CollisionDetector.detect` once per control period with the positions
at its start and end. Drone–drone contact is tested on the straight paths between them (closest
approach of two linearly moving spheres), so fast drones cannot pass through each other between
checks. Obstacles are tested at the end of the period; walls and the ceiling are half-spaces.
The floor is not handled here: the physics reports the touchdown speed and the simulator decides
between a landing and a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import SimError
from wm_agent.sim.scenario import Scenario

# Neighbour cells of a 2-D (x, y) grid visited from each cell: itself plus half of the eight
# neighbours, so that every pair of adjacent cells is visited exactly once.
_HALF_NEIGHBOURS = ((0, 0), (1, -1), (1, 0), (1, 1), (0, 1))
_EMPTY_PAIRS = np.zeros((0, 2), dtype=np.int64)
_BRUTE_FORCE_MAX = 48  # below this many drones the O(N²) pair test is cheaper than hashing


def brute_force_pairs(pos: NDArray[np.float64], cutoff: float) -> NDArray[np.int64]:
    """All pairs (i < j) with ``|pos_i − pos_j| < cutoff``, O(N²); reference for tests.

    Returns:
        (K, 2) int64, rows sorted lexicographically.
    """
    n = pos.shape[0]
    i, j = np.triu_indices(n, k=1)
    d = pos[i] - pos[j]
    keep = np.einsum("ij,ij->i", d, d) < cutoff * cutoff
    return np.stack([i[keep], j[keep]], axis=1).astype(np.int64)


def close_pairs(pos: NDArray[np.float64], cutoff: float) -> NDArray[np.int64]:
    """All pairs (i < j) with ``|pos_i − pos_j| < cutoff`` via a spatial hash.

    Points are binned in (x, y) cells of size ``cutoff``, sorted by cell key; each point looks up
    its own cell and four neighbour cells with ``searchsorted``; candidates are filtered by the
    exact 3-D distance.

    Args:
        pos: (N, 3) positions [m].
        cutoff: distance threshold [m], > 0.

    Returns:
        (K, 2) int64 pairs, i < j, rows sorted lexicographically (same as brute_force_pairs).

    Raises:
        SimError: non-positive cutoff or non-finite positions.
    """
    n = pos.shape[0]
    if not cutoff > 0.0:
        raise SimError(f"close_pairs: cutoff must be > 0, got {cutoff}")
    if n < 2:
        return _EMPTY_PAIRS
    if not np.all(np.isfinite(pos)):
        raise SimError("close_pairs: positions contain NaN or inf")
    cell = np.floor(pos[:, :2] * (1.0 / cutoff)).astype(np.int64)
    cell -= cell.min(axis=0)
    ny = int(cell[:, 1].max()) + 2  # +2: offsets of ±1 in y never alias another column
    if (int(cell[:, 0].max()) + 2) * ny > 2**62:
        return brute_force_pairs(pos, cutoff)
    key = cell[:, 0] * ny + cell[:, 1]
    order = np.argsort(key, kind="stable")
    skey = key[order]
    spos = pos[order]
    idx = np.arange(n)
    chunks_i: list[NDArray[np.int64]] = []
    chunks_j: list[NDArray[np.int64]] = []
    c2 = cutoff * cutoff
    for ox, oy in _HALF_NEIGHBOURS:
        target = skey + (ox * ny + oy)
        hi = np.searchsorted(skey, target, side="right")
        lo = idx + 1 if (ox, oy) == (0, 0) else np.searchsorted(skey, target, side="left")
        cnt = hi - lo
        np.maximum(cnt, 0, out=cnt)
        total = int(cnt.sum())
        if total == 0:
            continue
        a = np.repeat(idx, cnt)
        offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        b = np.repeat(lo, cnt) + offsets
        d = spos[a] - spos[b]
        keep = np.einsum("ij,ij->i", d, d) < c2
        chunks_i.append(order[a[keep]])
        chunks_j.append(order[b[keep]])
    if not chunks_i:
        return _EMPTY_PAIRS
    pi = np.concatenate(chunks_i)
    pj = np.concatenate(chunks_j)
    pairs = np.stack([np.minimum(pi, pj), np.maximum(pi, pj)], axis=1).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def sphere_aabb_overlap(
    centres: NDArray[np.float64], radius: float, boxes: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """(K,) whether sphere k (centre (K, 3), shared radius) overlaps box k ((K, 2, 3) min/max)."""
    closest = np.clip(centres, boxes[:, 0], boxes[:, 1])
    d = closest - centres
    return np.einsum("ij,ij->i", d, d) < radius * radius


class BoxGrid:
    """Uniform 2-D (x, y) grid over axis-aligned boxes for sphere queries.

    Each box, grown by the sphere radius, is registered in every cell it touches (CSR layout),
    so a query is one cell lookup per sphere plus an exact test against that cell's boxes.

    Args:
        boxes: (M, 2, 3) min/max corners [m].
        radius: sphere radius [m].
        cell: cell size [m].
    """

    def __init__(self, boxes: NDArray[np.float64], radius: float, cell: float = 1.0):
        self.boxes = boxes
        self.radius = radius
        self.cell = cell
        m = boxes.shape[0]
        if m == 0:
            self.origin = np.zeros(2)
            self.shape = (1, 1)
            self.starts = np.zeros(2, dtype=np.int64)
            self.box_ids = np.zeros(0, dtype=np.int64)
            return
        lo = boxes[:, 0, :2] - radius
        hi = boxes[:, 1, :2] + radius
        self.origin = lo.min(axis=0)
        c_lo = np.floor((lo - self.origin) / cell).astype(np.int64)
        c_hi = np.floor((hi - self.origin) / cell).astype(np.int64)
        self.shape = (int(c_hi[:, 0].max()) + 1, int(c_hi[:, 1].max()) + 1)
        cells: list[NDArray[np.int64]] = []
        ids: list[NDArray[np.int64]] = []
        for k in range(m):  # once at construction, M boxes
            gx, gy = np.meshgrid(
                np.arange(c_lo[k, 0], c_hi[k, 0] + 1), np.arange(c_lo[k, 1], c_hi[k, 1] + 1)
            )
            flat = (gx * self.shape[1] + gy).ravel()
            cells.append(flat)
            ids.append(np.full(flat.shape, k, dtype=np.int64))
        all_cells = np.concatenate(cells)
        all_ids = np.concatenate(ids)
        order = np.argsort(all_cells, kind="stable")
        self.box_ids = all_ids[order]
        counts = np.bincount(all_cells, minlength=self.shape[0] * self.shape[1])
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def query(self, pos: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Sphere–box overlaps.

        Args:
            pos: (N, 3) sphere centres [m].

        Returns:
            (sphere index (K,), box index (K,)) of every overlapping pair.
        """
        if self.box_ids.size == 0 or pos.shape[0] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        c = np.floor((pos[:, :2] - self.origin) / self.cell).astype(np.int64)
        inside = (c[:, 0] >= 0) & (c[:, 0] < self.shape[0]) & (c[:, 1] >= 0)
        inside &= c[:, 1] < self.shape[1]
        flat = np.where(inside, c[:, 0] * self.shape[1] + c[:, 1], 0)
        lo = self.starts[flat]
        cnt = np.where(inside, self.starts[flat + 1] - lo, 0)
        total = int(cnt.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        drone = np.repeat(np.arange(pos.shape[0]), cnt)
        offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        box = self.box_ids[np.repeat(lo, cnt) + offsets]
        hit = sphere_aabb_overlap(pos[drone], self.radius, self.boxes[box])
        return drone[hit], box[hit]


@dataclass(frozen=True)
class Collisions:
    """New collisions found in one period (K events).

    Attributes:
        drone: (K,) drone index.
        other: (K,) other drone index, or -1 for an obstacle.
        where: (K, 3) drone position at contact [m].
        fraction: (K,) contact time as a fraction of the period [0, 1].
        detail: K labels (obstacle name, or "drone j").
    """

    drone: NDArray[np.int64]
    other: NDArray[np.int64]
    where: NDArray[np.float64]
    fraction: NDArray[np.float64]
    detail: tuple[str, ...]


class CollisionDetector:
    """Drone–shelf/wall/ceiling and drone–drone collisions for a scenario.

    Args:
        scenario: geometry (shelves, world size) and the airframe's collision radius.
        cell: broadphase cell size for the shelf grid [m].
    """

    def __init__(self, scenario: Scenario, cell: float = 1.0):
        self.radius = scenario.airframe.collision_radius
        self.size = np.asarray(scenario.world_size, dtype=np.float64)
        self.shelf_names = scenario.shelf_names
        self.grid = BoxGrid(np.asarray(scenario.shelves), self.radius, cell)

    def obstacles(self, pos: NDArray[np.float64], active: NDArray[np.bool_]) -> dict[int, str]:
        """First obstacle hit by each active drone at ``pos`` (N, 3): {drone: obstacle label}."""
        r, (sx, sy, sz) = self.radius, self.size
        hits: dict[int, str] = {}
        sel = np.flatnonzero(active)
        p = pos[sel]
        drone, box = self.grid.query(p)
        for d, b in zip(drone.tolist(), box.tolist(), strict=True):
            hits.setdefault(int(sel[d]), self.shelf_names[b])
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        wall = (x < r) | (x > sx - r) | (y < r) | (y > sy - r)
        ceiling = z > sz - r
        for d in np.flatnonzero(wall | ceiling).tolist():
            hits.setdefault(int(sel[d]), "wall" if wall[d] else "ceiling")
        return hits

    def detect(
        self, p0: NDArray[np.float64], p1: NDArray[np.float64], active: NDArray[np.bool_]
    ) -> Collisions:
        """Collisions of active drones moving from ``p0`` to ``p1`` (both (N, 3)) in one period."""
        drones: list[int] = []
        others: list[int] = []
        where: list[NDArray[np.float64]] = []
        frac: list[float] = []
        detail: list[str] = []
        for d, label in sorted(self.obstacles(p1, active).items()):
            drones.append(d)
            others.append(-1)
            where.append(p1[d])
            frac.append(1.0)
            detail.append(label)

        sel = np.flatnonzero(active)
        if sel.size >= 2:
            a0, a1 = p0[sel], p1[sel]
            disp = a1 - a0
            max_disp = float(np.sqrt(np.einsum("ij,ij->i", disp, disp).max()))
            contact = 2.0 * self.radius
            cutoff = contact + 2.0 * max_disp
            small = sel.size <= _BRUTE_FORCE_MAX
            cand = brute_force_pairs(a0, cutoff) if small else close_pairs(a0, cutoff)
            if cand.size:
                i, j = cand[:, 0], cand[:, 1]
                r0 = a0[i] - a0[j]
                dr = disp[i] - disp[j]
                dd = np.einsum("ij,ij->i", dr, dr)
                s = np.clip(-np.einsum("ij,ij->i", r0, dr) / np.maximum(dd, 1e-300), 0.0, 1.0)
                closest = r0 + dr * s[:, None]
                hit = np.einsum("ij,ij->i", closest, closest) < contact * contact
                for k in np.flatnonzero(hit).tolist():
                    di, dj = int(sel[i[k]]), int(sel[j[k]])
                    drones.append(di)
                    others.append(dj)
                    where.append(a0[i[k]] + disp[i[k]] * s[k])
                    frac.append(float(s[k]))
                    detail.append(f"drone {dj}")
        return Collisions(
            drone=np.asarray(drones, dtype=np.int64),
            other=np.asarray(others, dtype=np.int64),
            where=np.asarray(where, dtype=np.float64).reshape(-1, 3),
            fraction=np.asarray(frac, dtype=np.float64),
            detail=tuple(detail),
        )
