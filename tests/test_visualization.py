"""Marker geometry of the scenario and the fleet (wm_agent.visualization), without DDS: the map's
markers against the scenario, status colours, and the fleet's CDR bytes decoding to the same
MarkerArray that rclpy builds from Point / ColorRGBA objects."""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import Point
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from wm_agent import visualization as vis
from wm_agent.errors import MessageError
from wm_agent.sim import load_scenario


def test_marker_types_are_the_message_constants() -> None:
    assert (vis.CUBE, vis.LINE_LIST, vis.CUBE_LIST, vis.SPHERE_LIST, vis.TEXT_VIEW_FACING) == (
        Marker.CUBE, Marker.LINE_LIST, Marker.CUBE_LIST, Marker.SPHERE_LIST, Marker.TEXT_VIEW_FACING)


def test_world_markers_cover_the_scenario() -> None:
    sc = load_scenario("warehouse")
    markers = vis.world_markers(sc)
    by_ns: dict[str, list[vis.MarkerSpec]] = {}
    for m in markers:
        by_ns.setdefault(m.ns, []).append(m)
    assert len(markers) < 60, "a handful of markers, not one per box"
    shelves = np.concatenate([m.points for m in by_ns["shelves"]])
    np.testing.assert_allclose(np.sort(shelves, axis=0), np.sort(np.asarray(sc.shelves).mean(axis=1), axis=0))
    for m in by_ns["shelves"] + by_ns["walls"]:          # each list: boxes of its one size
        assert m.type == vis.CUBE_LIST
        boxes = [b for b in np.concatenate([sc.shelves, sc.walls])
                 if np.allclose(b.mean(axis=0), m.points[0])]
        np.testing.assert_allclose(boxes[0][1] - boxes[0][0], m.scale)
    assert sum(len(m.points) for m in by_ns["walls"]) == 4
    assert len(by_ns["home_pads"][0].points) == len(sc.home_pads)
    fence = by_ns["geofence"][0]
    assert fence.type == vis.LINE_LIST and fence.points.shape == (24, 3)
    seg = fence.points[1::2] - fence.points[0::2]
    assert ((np.abs(seg) > 0).sum(axis=1) == 1).all(), "every edge along one axis"
    np.testing.assert_allclose(np.sort(np.abs(seg).sum(axis=1)),
                               np.sort(np.repeat(np.asarray(sc.geofence_max) - sc.geofence_min, 4)))
    texts = {m.text for m in by_ns["station_names"]}
    assert texts == set(sc.pick_stations) | set(sc.drop_stations)


def test_status_colours_most_important_first() -> None:
    flying, grounded, hold, collided = 2, 4, 16, 8
    c = vis.status_colors(np.array([flying, grounded, flying | hold, flying | collided | hold, 0]))
    colours = dict(vis.STATUS_COLOURS)
    np.testing.assert_allclose(c[0], colours[flying])
    np.testing.assert_allclose(c[1], colours[grounded])
    np.testing.assert_allclose(c[2], colours[hold])
    np.testing.assert_allclose(c[3], colours[collided])
    np.testing.assert_allclose(c[4], vis.OTHER_COLOUR)


def _rclpy_fleet(pos: np.ndarray, col: np.ndarray, stamp_ns: int) -> MarkerArray:
    m = Marker()
    m.header.frame_id = "map"
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    m.ns, m.type = vis.FLEET_NS, Marker.SPHERE_LIST
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = vis.DRONE_DIAMETER_M
    m.points = [Point(x=x, y=y, z=z) for x, y, z in pos.tolist()]
    m.colors = [ColorRGBA(r=r, g=g, b=b, a=a) for r, g, b, a in col.tolist()]
    return MarkerArray(markers=[m])


@pytest.mark.parametrize("n", [0, 1, 3, 1000])
def test_fleet_marker_bytes_decode_like_the_rclpy_message(n: int) -> None:
    template = vis.split_template(serialize_message(
        _rclpy_fleet(np.array([vis.POINT_SENTINEL]), np.array([vis.COLOR_SENTINEL], np.float32), 0)))
    rng = np.random.default_rng(n)
    pos = rng.uniform(-50, 50, (n, 3))
    col = vis.status_colors(rng.integers(0, 128, n))
    data = vis.fleet_marker_cdr(template, pos, col, 12_345_678_901)
    assert deserialize_message(data, MarkerArray) == _rclpy_fleet(pos, col, 12_345_678_901)


def test_bad_templates_and_arrays_raise_message_error() -> None:
    with pytest.raises(MessageError, match="sentinel"):
        vis.split_template(serialize_message(MarkerArray(markers=[Marker()])))
    with pytest.raises(MessageError, match="little-endian"):
        vis.split_template(b"\x00\x00\x00\x00")
    template = vis.split_template(serialize_message(
        _rclpy_fleet(np.array([vis.POINT_SENTINEL]), np.array([vis.COLOR_SENTINEL], np.float32), 0)))
    with pytest.raises(MessageError, match="3 positions but 2 colours"):
        vis.fleet_marker_cdr(template, np.zeros((3, 3)), np.zeros((2, 4)), 0)
