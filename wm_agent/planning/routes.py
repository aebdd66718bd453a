"""Global routing for the local planner: carrots along shortest paths around the shelves.

The world-model planner looks 8 steps (0.67 s) ahead, too short to find a way around a shelf
row, so it is given a *carrot*: the point `lookahead` metres along the shortest 8-connected grid
path from the drone to its goal, with shelves inflated by a clearance. One distance field per
goal cell (scipy's Dijkstra over the grid, cached), then every drone heading to that goal walks
the field's next-cell map in one vectorised gather per grid step. Entering an inflated cell
costs `blocked_penalty`× its length, so a drone that already is inside one still finds the way
out. Pure numpy/scipy.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from wm_agent.errors import ConfigError
from wm_agent.sim.scenario import Scenario

_OFFSETS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]


class NavGrid:
    """Occupancy grid of a scenario's floor plan and cached distance fields to goals.

    Args:
        scenario: a :class:`wm_agent.sim.Scenario` (geofence, shelf boxes).
        clearance: shelf inflation [m]. cell: grid resolution [m].
        blocked_penalty: length factor of entering an inflated cell.
        cache_size: distance fields kept (one per distinct goal cell).
    """

    def __init__(self, scenario: Scenario, clearance: float = 0.7, cell: float = 0.25,
                 blocked_penalty: float = 50.0, cache_size: int = 256) -> None:
        if not (cell > 0 and clearance >= 0 and blocked_penalty >= 1):
            raise ConfigError(
                f"nav grid: need cell > 0, clearance >= 0, blocked_penalty >= 1; got {cell}, "
                f"{clearance}, {blocked_penalty}"
            )
        self.cell = float(cell)
        self.lo = np.asarray(scenario.geofence_min[:2], np.float64)
        hi = np.asarray(scenario.geofence_max[:2], np.float64)
        self.nx = int((hi[0] - self.lo[0]) / cell) + 1
        self.ny = int((hi[1] - self.lo[1]) / cell) + 1
        xs = self.lo[0] + np.arange(self.nx) * cell
        ys = self.lo[1] + np.arange(self.ny) * cell
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        blocked = np.zeros((self.nx, self.ny), bool)
        for box in np.asarray(scenario.shelves, np.float64).reshape(-1, 2, 3):
            blocked |= ((gx > box[0, 0] - clearance) & (gx < box[1, 0] + clearance)
                        & (gy > box[0, 1] - clearance) & (gy < box[1, 1] + clearance))
        self.blocked = blocked
        self.centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
        # edges u -> v with weight = length x (penalty if v is blocked); reversed for dist-to-goal
        idx = np.arange(self.nx * self.ny).reshape(self.nx, self.ny)
        src, dst, w = [], [], []
        self._nbr = np.full((self.nx * self.ny, len(_OFFSETS)), -1, np.int64)
        self._nbr_w = np.full((self.nx * self.ny, len(_OFFSETS)), np.inf)
        flat_blocked = blocked.ravel()
        for k, (dx, dy) in enumerate(_OFFSETS):
            a = idx[max(0, -dx): self.nx - max(0, dx), max(0, -dy): self.ny - max(0, dy)].ravel()
            b = idx[max(0, dx): self.nx - max(0, -dx) or None, max(0, dy): self.ny - max(0, -dy) or None]
            b = b.ravel()
            length = math.hypot(dx, dy) * cell
            weight = np.where(flat_blocked[b], length * blocked_penalty, length)
            src.append(a)
            dst.append(b)
            w.append(weight)
            self._nbr[a, k] = b
            self._nbr_w[a, k] = weight
        n = self.nx * self.ny
        forward = coo_matrix((np.concatenate(w), (np.concatenate(src), np.concatenate(dst))), (n, n))
        self._reverse = forward.T.tocsr()
        self._cache: OrderedDict[int, tuple[NDArray[np.float64], NDArray[np.int64]]] = OrderedDict()
        self._cache_size = cache_size

    def cell_of(self, xy: NDArray[np.floating]) -> NDArray[np.int64]:
        """(k,) flat cell index of (k, 2) points [m] (clipped into the grid)."""
        ij = np.rint((np.asarray(xy, np.float64) - self.lo) / self.cell).astype(np.int64)
        i = np.clip(ij[:, 0], 0, self.nx - 1)
        j = np.clip(ij[:, 1], 0, self.ny - 1)
        return i * self.ny + j

    def field(self, goal_cell: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """(distance to goal [m], next cell) for every cell; cached per goal cell."""
        hit = self._cache.get(goal_cell)
        if hit is not None:
            self._cache.move_to_end(goal_cell)
            return hit
        dist = dijkstra(self._reverse, directed=True, indices=goal_cell)
        cand = self._nbr_w + np.where(self._nbr >= 0, dist[np.maximum(self._nbr, 0)], np.inf)
        best = np.argmin(cand, axis=1)
        nxt = self._nbr[np.arange(self._nbr.shape[0]), best]
        stay = ~np.isfinite(cand[np.arange(cand.shape[0]), best]) | (np.arange(nxt.size) == goal_cell)
        nxt = np.where(stay | (nxt < 0), np.arange(nxt.size), nxt)
        self._cache[goal_cell] = (dist, nxt)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return dist, nxt

    def carrots(self, pos: NDArray[np.floating], goals: NDArray[np.floating],
                lookahead: float = 2.0, route_goals: NDArray[np.floating] | None = None,
                approach: NDArray[np.floating] | float = 0.0) -> NDArray[np.float64]:
        """(N, 3) local goals: `lookahead` m along each drone's path to its goal.

        The carrot keeps the goal's altitude; a drone closer to its goal than `lookahead` (along
        the path) gets the goal itself. With ``route_goals`` the paths lead there instead (one
        distance field for many nearby goals, e.g. a station's bays) and a drone within
        ``lookahead + approach`` of its route goal (along the path; ``approach`` (N,) or scalar:
        how far the goal is from its route goal [m]) gets its own goal.
        """
        pos = np.asarray(pos, np.float64).reshape(-1, 3)
        goals = np.asarray(goals, np.float64).reshape(-1, 3)
        out = goals.copy()
        start = self.cell_of(pos[:, :2])
        via = goals if route_goals is None else np.asarray(route_goals, np.float64).reshape(-1, 3)
        reach = lookahead + np.broadcast_to(np.asarray(approach, np.float64), (goals.shape[0],))
        goal_cells = self.cell_of(via[:, :2])
        steps = max(1, math.ceil(lookahead / self.cell))
        for g in np.unique(goal_cells):
            rows = np.flatnonzero(goal_cells == g)
            dist, nxt = self.field(int(g))
            c = start[rows]
            far = dist[c] > reach[rows]
            for _ in range(steps):
                c = nxt[c]
            out[rows[far], :2] = self.centres[c[far]]
        return out
