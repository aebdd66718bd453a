"""Does a recording fit a scenario's map? Pure numpy, no rclpy.

Eval builds the world model's obstacle features (and the re-planner's geofence) from a scenario.
A foreign bag — another site, another origin — put into the shipped warehouse gives features of
walls and shelves that were never there. :func:`scenario_fit` counts the recorded positions
outside the scenario's walls (beyond floor, ceiling or a wall's inner face by more than `tol`) or
inside one of its shelf units (deeper than `tol`); :meth:`ScenarioFit.fits` is False when more
than `max_share` of them are, and :meth:`ScenarioFit.describe` says so in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MAX_SAMPLES = 200_000      # positions checked at most (evenly spaced): the shares are estimates above


class ScenarioFitWarning(UserWarning):
    """The recorded positions do not fit the scenario the evaluation puts them in."""


@dataclass(frozen=True)
class ScenarioFit:
    """Positions checked against one scenario's map (counts of samples and of drones)."""

    scenario: str
    samples: int
    outside: int
    in_shelves: int
    drones: int
    drones_outside: int
    drones_in_shelves: int
    extent_min: tuple[float, float, float]
    extent_max: tuple[float, float, float]
    interior_min: tuple[float, float, float]
    interior_max: tuple[float, float, float]

    def fits(self, max_share: float = 0.01) -> bool:
        return self.samples == 0 or max(self.outside, self.in_shelves) <= max_share * self.samples

    def describe(self, note: str = "") -> str:
        """One line: what does not fit, where the bag flies, what to do."""
        def box(lo: tuple[float, ...], hi: tuple[float, ...]) -> str:
            return ", ".join(f"{a} {lo[i]:.1f}..{hi[i]:.1f}" for i, a in enumerate("xyz")) + " m"

        parts = []
        if self.outside:
            parts.append(f"{100.0 * self.outside / self.samples:.1f} % of its positions are outside its "
                         f"walls ({box(self.interior_min, self.interior_max)}; {self.drones_outside} of "
                         f"{self.drones} drones)")
        if self.in_shelves:
            parts.append(f"{100.0 * self.in_shelves / self.samples:.1f} % of its positions are inside its "
                         f"shelves ({self.drones_in_shelves} of {self.drones} drones)")
        return (f"the bag does not fit scenario {self.scenario}: " + " and ".join(parts)
                + f"; the bag flies in {box(self.extent_min, self.extent_max)}{note}. The obstacle "
                "features are built from this map: pass --scenario with the bag's site, or "
                "--scenario none (no obstacle features)")


def interior(scenario: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(min, max) corners of the space inside the walls (west, east, south, north), above the
    floor and below the ceiling [m]."""
    w = np.asarray(scenario.walls, np.float64).reshape(4, 2, 3)
    lo = np.array([w[0, 1, 0], w[2, 1, 1], float(np.asarray(scenario.floor)[1, 2])])
    hi = np.array([w[1, 0, 0], w[3, 0, 1], float(np.asarray(scenario.ceiling)[0, 2])])
    return lo, hi


def scenario_fit(position: NDArray[np.floating], scenario: Any, tol: float = 0.1) -> ScenarioFit:
    """Check (T, N, 3) positions [m] (NaN where absent) against `scenario` (see the module doc)."""
    pos = np.asarray(position, np.float64)
    n = pos.shape[1] if pos.ndim == 3 else 0
    flat = pos.reshape(-1, 3)
    drone = np.tile(np.arange(n), pos.shape[0]) if n else np.zeros(0, np.int64)
    ok = np.isfinite(flat).all(axis=1)
    flat, drone = flat[ok], drone[ok]
    if flat.shape[0] > MAX_SAMPLES:
        keep = np.linspace(0, flat.shape[0] - 1, MAX_SAMPLES).astype(np.int64)
        flat, drone = flat[keep], drone[keep]
    lo, hi = interior(scenario)
    out = ((flat < lo - tol) | (flat > hi + tol)).any(axis=1)
    shelves = np.asarray(scenario.shelves, np.float64).reshape(-1, 2, 3)
    inside = np.zeros(flat.shape[0], bool)
    for start in range(0, flat.shape[0], 20_000):        # (chunk, shelves, 3) at a time
        p = flat[start:start + 20_000, None, :]
        within = (p > shelves[None, :, 0] + tol) & (p < shelves[None, :, 1] - tol)
        inside[start:start + 20_000] = np.all(within, axis=2).any(axis=1)
    empty = flat.shape[0] == 0
    return ScenarioFit(
        scenario=str(scenario.name), samples=int(flat.shape[0]), outside=int(out.sum()),
        in_shelves=int(inside.sum()), drones=int(np.unique(drone).size),
        drones_outside=int(np.unique(drone[out]).size), drones_in_shelves=int(np.unique(drone[inside]).size),
        extent_min=tuple(float(x) for x in (np.zeros(3) if empty else flat.min(axis=0))),  # type: ignore[arg-type]
        extent_max=tuple(float(x) for x in (np.zeros(3) if empty else flat.max(axis=0))),  # type: ignore[arg-type]
        interior_min=tuple(float(x) for x in lo),  # type: ignore[arg-type]
        interior_max=tuple(float(x) for x in hi),  # type: ignore[arg-type]
    )
