"""Two-level assignment for very large fleets: a coarse transport problem, then small exact ones.

Persons are the smaller side (P ≤ O); person ``i`` doing object ``j`` costs
``|x_i - y_j| / v + offset_j`` [s], minus ``incumbent_bonus_s`` on the incumbent edge.

1. **Groups.** Persons are binned on an (x, y) grid; objects are binned on the same grid and
   (when O > P, where the offsets decide who is served) by offset, and each bin is cut into
   chunks of at most ``object_chunk`` objects, cheapest offset first, so a pick station with
   hundreds of coincident tasks becomes several groups and tasks of different priority are
   not averaged together.
2. **Coarse transport.** Group counts are supplies and demands, centroid travel time plus the
   group's mean offset the unit cost; with O > P a dummy supply of O − P at zero cost takes the
   objects left unserved. Solved exactly by the network simplex of POT (``ot.emd``, C++),
   whose basic solutions are integral: ``F[g, t]`` persons of group g go to group t.
3. **Split.** Each person group with several destinations splits its members by a small
   optimal assignment (members × destination slots, cost to the destination's centroid).
4. **Refine.** Each object group solves an exact rectangular assignment between the persons
   sent to it and its objects (``scipy.optimize.linear_sum_assignment``) on the true costs.

The result is a feasible assignment of every person with no certificate of its own; its
quality is measured against the auction's dual bound in ``bench/assign_speed.py`` (about
1.002× at 10,000 × 10,000 on the warehouse instances, at ~0.3 s). Costs only enter through
distances and offsets, so the work is O(P + O) plus the transport problem on the groups.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from wm_agent.errors import FleetError
from wm_agent.fleet.cells import chunked_cells

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


class Groups(NamedTuple):
    """Points binned into groups (members of group g: ``order[start[g]:start[g + 1]]``)."""

    of: IntArray
    order: IntArray
    start: IntArray
    centroid: FloatArray
    mean_offset: FloatArray

    @property
    def counts(self) -> IntArray:
        """Members per group."""
        return np.diff(self.start)


def group_points(xyz: FloatArray, offsets: FloatArray, cell_m: float, chunk: int,
                 offset_bin_s: float = np.inf, layer_m: float = np.inf) -> Groups:
    """Bin points on an (x, y, z) grid of ``cell_m`` and by offset in bins of ``offset_bin_s``,
    and cut each bin into chunks of at most ``chunk`` points, cheapest offset first."""
    n = xyz.shape[0]
    ijk = np.floor((xyz - xyz.min(axis=0)) / [cell_m, cell_m, layer_m]).astype(np.int64)
    ob = (np.floor((offsets - offsets.min()) / offset_bin_s).astype(np.int64)
          if np.isfinite(offset_bin_s) and n else np.zeros(n, np.int64))
    ijk = np.column_stack([ijk, ob])
    cell = np.ravel_multi_index(ijk.T, tuple(int(v) + 1 for v in ijk.max(axis=0)))
    order, start, of = chunked_cells(cell.astype(np.int64), offsets, chunk)
    counts = np.diff(start).astype(np.float64)
    centroid = np.add.reduceat(xyz[order], start[:-1], axis=0) / counts[:, None]
    mean_offset = np.add.reduceat(offsets[order], start[:-1]) / counts
    return Groups(of, order, start, centroid, mean_offset)


def _transport(supply: FloatArray, demand: FloatArray, cost: FloatArray) -> IntArray:
    """Integral optimal transport plan (network simplex, POT)."""
    import ot  # POT: imported here so the rest of the fleet package loads without it

    plan, log = ot.emd(supply, demand, cost, numItermax=50_000_000, log=True)
    if log["warning"] is not None:
        raise FleetError(f"coarse transport problem not solved: {log['warning']}")
    flows: IntArray = np.rint(plan).astype(np.int64)
    return flows


def multilevel_assign(
    person_xyz: FloatArray,
    object_xyz: FloatArray,
    object_offsets: FloatArray,
    speed_mps: float,
    *,
    incumbent: IntArray | None = None,
    incumbent_bonus_s: float = 0.0,
    persons_per_group: float | None = None,
    object_chunk: int = 16,
    offset_bin_s: float = 2.0,
    object_layer_m: float = np.inf,
) -> IntArray:
    """Assign every person (P ≤ O) to a distinct object; returns (P,) object indices.

    Args:
        person_xyz: (P, 3) positions [m].
        object_xyz: (O, 3) positions [m].
        object_offsets: (O,) per-object cost offsets [s].
        speed_mps: speed [m/s].
        incumbent: (P,) object each person holds now, or -1.
        incumbent_bonus_s: cost reduction of the incumbent edge [s].
        persons_per_group: mean persons per grid cell of the person grid (sets the cell
            size; the object grid uses the same cell). Smaller: closer to optimal, slower.
            Default 4, growing to 8 as O reaches 2 P (the offset bins add object groups).
        object_chunk: most objects in one object group.
        offset_bin_s: objects whose offsets differ by more than this are not grouped
            together (only matters when O > P: the offsets then decide who is served).
        object_layer_m: also bin objects in height by this [m] (off by default: measured no
            better on the warehouse instances).

    Raises:
        FleetError: P > O or the transport problem failed.
    """
    n_p, n_o = person_xyz.shape[0], object_xyz.shape[0]
    if n_p > n_o:
        raise FleetError(f"multilevel_assign needs persons ≤ objects, got {n_p} > {n_o}")
    inc = np.full(n_p, -1, np.int64) if incumbent is None else np.asarray(incumbent, np.int64)
    if n_p == 0:
        return np.empty(0, np.int64)
    inv_v = 1.0 / speed_mps
    ppg = 4.0 * min(2.0, n_o / n_p) if persons_per_group is None else persons_per_group
    if not ppg > 0.0:
        raise FleetError(f"persons_per_group must be > 0, got {persons_per_group}")
    ext = np.ptp(person_xyz, axis=0)
    area = max(float(ext[0] * ext[1]), 1e-6)
    cell_m = max(float(np.sqrt(area * ppg / n_p)), 1e-3)  # (x, y) cells of ~ppg persons
    pg = group_points(person_xyz, np.zeros(n_p), cell_m, max(int(4 * ppg), 1))
    og = group_points(object_xyz, object_offsets, cell_m, object_chunk,
                      offset_bin_s if n_o > n_p else np.inf, object_layer_m)
    supply = pg.counts.astype(np.float64)
    demand = og.counts.astype(np.float64)
    cost = (np.linalg.norm(pg.centroid[:, None, :] - og.centroid[None, :, :], axis=2) * inv_v
            + og.mean_offset[None, :])
    if n_o > n_p:  # a dummy supply takes the unserved objects at no cost
        supply = np.append(supply, float(n_o - n_p))
        cost = np.vstack([cost, np.zeros(og.counts.size)])
    flows = _transport(supply, demand, cost)[: pg.counts.size]

    # split each person group among its destination object groups
    dest = np.empty(n_p, np.int64)
    n_dest = np.count_nonzero(flows, axis=1)
    single = n_dest == 1
    first_dest = np.argmax(flows > 0, axis=1)
    dest[:] = first_dest[pg.of]
    for g in np.flatnonzero(~single):
        members = pg.order[pg.start[g]: pg.start[g + 1]]
        targets = np.flatnonzero(flows[g])
        slots = np.repeat(targets, flows[g, targets])
        c = np.linalg.norm(person_xyz[members][:, None, :] - og.centroid[slots][None, :, :],
                           axis=2) * inv_v
        if incumbent_bonus_s:
            held = inc[members]
            c -= incumbent_bonus_s * ((held[:, None] >= 0)
                                      & (og.of[np.maximum(held, 0)][:, None] == slots[None, :]))
        rows, cols = linear_sum_assignment(c)
        dest[members[rows]] = slots[cols]

    # exact assignment inside every object group
    assigned = np.full(n_p, -1, np.int64)
    by_dest = np.argsort(dest, kind="stable")
    bounds = np.searchsorted(dest[by_dest], np.arange(og.counts.size + 1))
    for t in np.flatnonzero(np.diff(bounds)):
        members = by_dest[bounds[t]: bounds[t + 1]]
        objects = og.order[og.start[t]: og.start[t + 1]]
        c = (np.linalg.norm(person_xyz[members][:, None, :] - object_xyz[objects][None, :, :],
                            axis=2) * inv_v + object_offsets[objects][None, :])
        if incumbent_bonus_s:
            c -= incumbent_bonus_s * (inc[members][:, None] == objects[None, :])
        rows, cols = linear_sum_assignment(c)
        assigned[members[rows]] = objects[cols]
    if (assigned < 0).any() or np.unique(assigned).size != n_p:  # a bug, not an input
        raise FleetError("multilevel assignment produced an incomplete matching")
    return assigned
