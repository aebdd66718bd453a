"""Braking against obstacles and neighbours measured in the observation (pure numpy, vectorised).

Shared by the safety filter and the PID baseline so both brake the same way: for every obstacle
sector (or neighbour) closer than its margin, the velocity component towards it is scaled to
≤ 0 (removed; for neighbours made slightly negative so drones move apart); the remaining
components are kept. Removing a component never increases the speed (‖v − (v·u)u‖ ≤ ‖v‖); the
neighbour push may (callers cap the speed afterwards).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.world_model.spaces import ObservationSpec

_ANGLES = np.arange(8) * (np.pi / 4.0)
SECTOR_DIRS = np.stack([np.cos(_ANGLES), np.sin(_ANGLES), np.zeros(8)], axis=1)
"""(8, 3) unit vectors of the sector centres (sector j at j·45° CCW from east)."""


class BrakeResult(NamedTuple):
    """Attributes: cmd_vel (N, 3) [m/s] after braking; braked (N,) bool: a component was removed."""

    cmd_vel: NDArray[np.float64]
    braked: NDArray[np.bool_]


def _remove_towards(v: NDArray[np.float64], u: NDArray[np.float64], active: NDArray[np.bool_],
                    push: NDArray[np.float64] | float = 0.0) -> NDArray[np.float64]:
    """For rows where ``active``: v ← v − max(v·u + push, 0)·u (u unit vectors, (N, 3)), i.e.
    the component towards u becomes ≤ −push (≤ 0)."""
    along = np.einsum("nd,nd->n", v, u)
    cut = np.where(active, np.maximum(along + push, 0.0), 0.0)
    return v - cut[:, None] * u


def _grown(margin: float, speed: NDArray[np.float64], reaction_s: float,
           decel: float | None) -> NDArray[np.float64]:
    """``margin`` [m] plus the distance flown at ``speed`` [m/s] towards an obstacle before the
    drone has stopped: ``speed·reaction_s + speed²/(2·decel)`` (``decel`` None or 0: none)."""
    out = np.full(speed.shape, float(margin))
    if decel is not None and decel > 0:
        out = out + speed * reaction_s + speed**2 / (2.0 * decel)
    return out


def brake_velocity(
    cmd_vel: NDArray[np.floating],
    obs: NDArray[np.floating],
    spec: ObservationSpec,
    obstacle_margin: float,
    neighbour_margin: float,
    neighbour_push: float = 1.0,
    brake_decel: float | None = None,
    reaction_s: float = 0.0,
) -> BrakeResult:
    """Remove the command's components towards close obstacles and neighbours.

    Args:
        cmd_vel: (N, 3) velocity setpoints [m/s], finite.
        obs: (N, D) observations (rows must be finite; pass zeros for unknown rows — a zero
            sector reads as "touching" and brakes every horizontal direction).
        spec: observation layout. obstacle_margin: sector / up-clearance distance below which
            to brake [m]. neighbour_margin: neighbour distance below which to brake [m].
        neighbour_push: inside the neighbour margin the velocity towards the neighbour is made
            ≤ −neighbour_push·(margin − distance) [1/s] (moves apart; 0 = brake only).
        brake_decel: deceleration the airframe can be counted on for [m/s²]: each sector's margin
            grows by the stopping distance v²/(2·brake_decel) of the drone's *measured* velocity
            towards it (from the observation), so a fast drone starts braking early enough to stop
            before the margin; each neighbour's by c²/(4·brake_decel) of the closing speed c
            (relative velocity along the line between them: both drones brake). None = fixed
            margins.
        reaction_s: with ``brake_decel``, the margin also grows by the distance flown towards
            the sector before the brake acts, (measured speed towards it)·reaction_s [s] (e.g.
            one command period).

    Returns:
        :class:`BrakeResult`. Guarantee: for every sector j closer than the margin,
        v·u_j ≤ 1e-9 afterwards (if two passes leave one positive, the horizontal part is zeroed).
    """
    v = np.array(cmd_vel, dtype=np.float64, copy=True)
    o = np.asarray(obs, dtype=np.float64)
    n = v.shape[0]
    v0 = v.copy()
    sect = o[:, spec.slice("sectors")]
    vel = o[:, spec.slice("vel")]
    towards = np.clip(vel @ SECTOR_DIRS.T, 0.0, None)  # (N, 8) [m/s]
    margin = _grown(obstacle_margin, towards, reaction_s, brake_decel)
    # a reading at the sensor range is "nothing within range": it never brakes, however fast
    # the drone (its margin can grow past the range: 3.3 m at 3 m/s)
    in_range = spec.sensor_range - 1e-6
    close = (sect < margin) & (sect < in_range)  # (N, 8)
    nb_close = np.zeros((n, 0), bool)
    nb_dir = np.zeros((n, 0, 3))
    nb_push = np.zeros((n, 0))
    if spec.neighbours:
        nb = o[:, spec.slice("neighbours")].reshape(n, spec.neighbours, 7)
        dist = np.linalg.norm(nb[..., :3], axis=-1)
        nb_dir = nb[..., :3] / np.maximum(dist, 1e-9)[..., None]
        # closing speed: the relative velocity (neighbour − self) along the line between them;
        # both drones brake, so the closing stops at twice the deceleration
        closing = np.clip(-np.einsum("nkd,nkd->nk", nb[..., 3:6], nb_dir), 0.0, None)
        nb_margin = _grown(neighbour_margin, closing, reaction_s,
                           None if brake_decel is None else 2.0 * brake_decel)
        nb_close = (nb[..., 6] > 0.5) & (dist < nb_margin)
        nb_push = neighbour_push * np.clip(neighbour_margin - dist, 0.0, None)
    for _ in range(2):
        for j in range(8):
            v = _remove_towards(v, np.broadcast_to(SECTOR_DIRS[j], (n, 3)), close[:, j])
        for k in range(nb_close.shape[1]):
            v = _remove_towards(v, nb_dir[:, k], nb_close[:, k], nb_push[:, k])
    # Vertical: a box (or ceiling) above closer than the margin: no climbing; a box below (not the
    # floor: landing stays allowed) closer than the margin: no descending.
    clear = o[:, spec.slice("clearance")]
    altitude = o[:, spec.slice("altitude")][:, 0]
    # the margins grow like the sectors' with the speed up / down
    up_margin = _grown(obstacle_margin, np.clip(vel[:, 2], 0.0, None), reaction_s, brake_decel)
    down_margin = _grown(obstacle_margin, np.clip(-vel[:, 2], 0.0, None), reaction_s, brake_decel)
    up_close = (clear[:, 0] < up_margin) & (clear[:, 0] < in_range)
    box_below = (clear[:, 1] < down_margin) & (clear[:, 1] < in_range) & (clear[:, 1] < altitude - 1e-3)
    v[:, 2] = np.where(up_close, np.minimum(v[:, 2], 0.0), v[:, 2])
    v[:, 2] = np.where(box_below, np.maximum(v[:, 2], 0.0), v[:, 2])
    # Guarantee: any remaining positive component towards a close sector/neighbour → stop horizontally.
    bad = ((v @ SECTOR_DIRS.T > 1e-9) & close).any(1)
    if nb_close.shape[1]:
        bad |= ((np.einsum("nd,nkd->nk", v, nb_dir) > 1e-9) & nb_close).any(1)
    v[bad, 0:2] = 0.0
    if nb_close.shape[1]:
        # Zeroing x/y can leave a vertical component towards a neighbour above/below.
        still = ((np.einsum("nd,nkd->nk", v, nb_dir) > 1e-9) & nb_close).any(1)
        v[still] = 0.0
    braked = np.abs(v - v0).max(axis=1) > 1e-12 if n else np.zeros(0, bool)
    return BrakeResult(v, braked)
