"""What the ROS tools (Foxglove, RViz) draw of a fleet: marker geometry as arrays. Pure, no rclpy.

* :func:`world_markers` — the scenario as a handful of markers (published once, latched, on
  ``/world/markers``): floor, walls and shelf units as ``CUBE_LIST``s (one per box size), pick and
  drop stations and their bays, home pads as flat ``CUBE_LIST``s, the geofence as a ``LINE_LIST``
  of its 12 edges, and a ``TEXT_VIEW_FACING`` label per station. Tens of markers whatever the
  scenario's size.
* :func:`status_colors` — one colour per drone from its FleetState status bits (what the sim
  bridge knows: flying, grounded, failsafe hold / land, collided, lost). The task phase lives in
  the coordinator's FleetAssignments, which the bridge does not read.
* :func:`fleet_marker_cdr` — the fleet as **one** ``SPHERE_LIST`` marker (a point and a colour
  per drone) in a ``MarkerArray``, serialized straight from numpy arrays into CDR bytes: building
  10,000 ``Point`` and ``ColorRGBA`` objects costs ~70 ms a message in rclpy, the bytes ~1 ms.
  The bytes around the two arrays come from a template serialized once by the node
  (:func:`split_template`), so every other field is exactly what rclpy writes.

Marker type numbers are visualization_msgs/Marker's (checked against the message in the tests).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import MessageError

CUBE, LINE_LIST, CUBE_LIST, SPHERE_LIST, TEXT_VIEW_FACING = 1, 5, 6, 7, 9

#: FleetState status bit -> RGBA, first match wins (most important first).
STATUS_COLOURS: tuple[tuple[int, tuple[float, float, float, float]], ...] = (
    (8, (0.90, 0.10, 0.10, 1.0)),     # COLLIDED: red
    (64, (0.75, 0.20, 0.85, 1.0)),    # LOST: violet
    (32, (1.00, 0.85, 0.10, 1.0)),    # FAILSAFE_LAND: yellow
    (16, (1.00, 0.55, 0.00, 1.0)),    # FAILSAFE_HOLD: orange
    (2, (0.15, 0.55, 0.95, 1.0)),     # FLYING: blue
    (4, (0.55, 0.55, 0.55, 1.0)),     # GROUNDED: grey
)
OTHER_COLOUR = (0.85, 0.85, 0.85, 1.0)
DRONE_DIAMETER_M = 0.4
FLEET_NS = "fleet"


@dataclass(frozen=True)
class MarkerSpec:
    """One marker: type, namespace + id, points (K, 3) [m] in the map frame (a CUBE's centre, the
    list's points, a LINE_LIST's segment ends, a text's position), scale (3,) [m], one RGBA colour,
    and text (TEXT_VIEW_FACING)."""

    ns: str
    id: int
    type: int
    points: NDArray[np.float64]
    scale: tuple[float, float, float]
    color: tuple[float, float, float, float]
    text: str = ""


def _box_lists(ns: str, boxes: NDArray[np.float64], color: tuple[float, float, float, float],
               first_id: int = 0) -> list[MarkerSpec]:
    """(M, 2, 3) min/max corners -> one CUBE_LIST per distinct box size (centres as points)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 2, 3)
    if boxes.shape[0] == 0:
        return []
    size = np.round(boxes[:, 1] - boxes[:, 0], 4)
    centre = boxes.mean(axis=1)
    sizes, group = np.unique(size, axis=0, return_inverse=True)
    return [MarkerSpec(ns, first_id + g, CUBE_LIST, centre[np.asarray(group).ravel() == g],
                       (float(s[0]), float(s[1]), float(s[2])), color)
            for g, s in enumerate(sizes)]


def _pads(ns: str, points: NDArray[np.float64], side: float, color: tuple[float, float, float, float]
          ) -> list[MarkerSpec]:
    pts = np.asarray(points, np.float64).reshape(-1, 3)
    if pts.shape[0] == 0:
        return []
    return [MarkerSpec(ns, 0, CUBE_LIST, pts + np.array([0.0, 0.0, 0.01]), (side, side, 0.02), color)]


def fence_edges(lo: NDArray[np.float64], hi: NDArray[np.float64]) -> NDArray[np.float64]:
    """The 12 edges of the box lo..hi as 24 LINE_LIST points."""
    corners = np.array([[(hi if (k >> a) & 1 else lo)[a] for a in range(3)] for k in range(8)])
    pairs = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]
    return np.array([corners[i] for pair in pairs for i in pair], np.float64)


def world_markers(scenario: Any) -> list[MarkerSpec]:
    """The scenario's static map (see the module doc)."""
    out = _box_lists("floor", np.asarray(scenario.floor).reshape(1, 2, 3), (0.82, 0.82, 0.80, 1.0))
    out += _box_lists("walls", scenario.walls, (0.35, 0.35, 0.38, 0.35))
    out += _box_lists("shelves", scenario.shelves, (0.80, 0.68, 0.45, 1.0))
    bays = np.asarray(scenario.station_bays, np.float64).reshape(-1, 3)
    for kind, stations, colour in (("pick_stations", scenario.pick_stations, (0.14, 0.44, 0.64, 1.0)),
                                   ("drop_stations", scenario.drop_stations, (0.12, 0.52, 0.29, 1.0))):
        pos = np.array([np.asarray(p, np.float64) for p in stations.values()]).reshape(-1, 3)
        out += _pads(kind, pos, 1.2, colour)
        if bays.shape[0] > 1:
            out += _pads(f"{kind}_bays", (pos[:, None, :] + bays[None, :, :]).reshape(-1, 3), 0.4,
                         (colour[0], colour[1], colour[2], 0.6))
    out += _pads("home_pads", scenario.home_pads, 0.5, (0.30, 0.30, 0.30, 1.0))
    out.append(MarkerSpec("geofence", 0, LINE_LIST,
                          fence_edges(np.asarray(scenario.geofence_min), np.asarray(scenario.geofence_max)),
                          (0.05, 0.0, 0.0), (0.95, 0.25, 0.25, 0.8)))
    for i, (name, p) in enumerate({**scenario.pick_stations, **scenario.drop_stations}.items()):
        out.append(MarkerSpec("station_names", i, TEXT_VIEW_FACING,
                              np.asarray(p, np.float64).reshape(1, 3) + np.array([0.0, 0.0, 1.0]),
                              (0.0, 0.0, 0.5), (1.0, 1.0, 1.0, 1.0), str(name)))
    return out


def status_colors(status: NDArray[np.integer]) -> NDArray[np.float32]:
    """(N,) FleetState status bits -> (N, 4) RGBA (see STATUS_COLOURS)."""
    st = np.asarray(status).astype(np.int64).ravel()
    out = np.tile(np.array(OTHER_COLOUR, np.float32), (st.size, 1))
    done = np.zeros(st.size, bool)
    for bit, colour in STATUS_COLOURS:
        hit = ((st & bit) != 0) & ~done
        out[hit] = colour
        done |= hit
    return out


class CdrTemplate(NamedTuple):
    """A one-marker MarkerArray's CDR bytes around its ``points`` and ``colors`` arrays."""

    prefix: bytes          # encapsulation .. frame_locked (stamp at bytes 8..16)
    pad: int               # zero bytes between the points count and the first point (alignment)
    suffix: bytes          # texture_resource .. mesh_use_embedded_materials


#: Values written into the template's single point and colour, to find them in the bytes.
POINT_SENTINEL = (1.2345678901234e300, -2.3456789012345e299, 3.4567890123456e298)
COLOR_SENTINEL = (0.123456789, 0.234567891, 0.345678912, 0.456789123)


def split_template(serialized: bytes) -> CdrTemplate:
    """Split the CDR of a MarkerArray holding one marker whose only point is POINT_SENTINEL and
    only colour COLOR_SENTINEL (little-endian CDR, as rclpy serializes)."""
    data = bytes(serialized)
    if data[:2] != b"\x00\x01":
        raise MessageError("marker template: expected little-endian CDR")
    p = data.find(struct.pack("<3d", *POINT_SENTINEL))
    c = data.find(struct.pack("<4f", *COLOR_SENTINEL))
    if p < 0 or c < 0 or data.count(struct.pack("<3d", *POINT_SENTINEL)) != 1:
        raise MessageError("marker template: the sentinel point or colour is not in the bytes")
    one = struct.pack("<I", 1)
    count_at = p - 4 if data[p - 4:p] == one else p - 8
    if data[count_at:count_at + 4] != one or data[c - 4:c] != one or c - 4 != p + 24:
        raise MessageError("marker template: unexpected layout around points/colors")
    return CdrTemplate(data[:count_at], p - count_at - 4, data[c + 16:])


def fleet_marker_cdr(template: CdrTemplate, position: NDArray[np.floating], colors: NDArray[np.floating],
                     stamp_ns: int) -> bytes:
    """The fleet MarkerArray (one SPHERE_LIST, a point and a colour per drone) as CDR bytes:
    `position` (N, 3) [m], `colors` (N, 4) RGBA, the marker's header stamp `stamp_ns`."""
    pos = np.ascontiguousarray(position, dtype="<f8").reshape(-1, 3)
    col = np.ascontiguousarray(colors, dtype="<f4").reshape(-1, 4)
    n = pos.shape[0]
    if col.shape[0] != n:
        raise MessageError(f"fleet markers: {n} positions but {col.shape[0]} colours")
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    head = bytearray(template.prefix)
    struct.pack_into("<iI", head, 8, sec, nanosec)        # markers[0].header.stamp
    count = struct.pack("<I", n)
    # an empty sequence has no alignment padding before its (absent) first element
    pad = b"\x00" * template.pad if n else b""
    return b"".join((head, count, pad, pos.tobytes(), count, col.tobytes(), template.suffix))
