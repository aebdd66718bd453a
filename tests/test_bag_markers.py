"""The sim bridge's markers, recorded: a bag of a short run holds the latched warehouse map and the
fleet's SPHERE_LIST, decoded by an independent reader (mcap + mcap_ros2, not wm_agent's reader),
the fleet's points equal to the FleetState of the same stamp (issue #14 item 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from wm_agent import topics
from wm_agent.nodes.recorder import Recorder
from wm_agent.nodes.sim_bridge import SimBridge
from wm_agent.sim import load_scenario

pytestmark = pytest.mark.dds
SPHERE_LIST, CUBE_LIST, LINE_LIST, TEXT_VIEW_FACING = 7, 6, 5, 9


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def decoded(bag: Path) -> dict[str, list[tuple[int, str, Any]]]:
    """topic -> [(log time, schema name, message)] through mcap_ros2's decoder."""
    out: dict[str, list[tuple[int, str, Any]]] = {}
    for path in sorted(bag.glob("*.mcap")):
        with path.open("rb") as f:
            for schema, channel, message, msg in make_reader(
                    f, decoder_factories=[DecoderFactory()]).iter_decoded_messages():
                out.setdefault(channel.topic, []).append((message.log_time, schema.name, msg))
    return out


def test_recorded_markers_decode_independently(ros_context: Any, spin: Any, tmp_path: Path) -> None:
    bridge = SimBridge(context=ros_context, parameter_overrides=[
        Parameter("drones", value=3), Parameter("fidelity", value="fleet"),
        Parameter("mode", value="realtime"),
        Parameter("duration_s", value=1.0), Parameter("markers_rate_hz", value=5.0),
        Parameter("start_subscribers", value=1), Parameter("odom_max_drones", value=0),
    ])
    out = tmp_path / "run"
    recorder = Recorder(context=ros_context, parameter_overrides=[
        Parameter("output", value=str(out)),
        Parameter("topics", value=[topics.FLEET_STATE, topics.FLEET_MARKERS, topics.WORLD_MARKERS]),
        Parameter("discovery_period_s", value=0.1),
        Parameter("use_sim_time", value=True), Parameter("time_source", value="ros"),
    ])
    ex = SingleThreadedExecutor(context=ros_context)
    ex.add_node(bridge)
    ex.add_node(recorder)
    assert spin(ex, lambda: bridge.sim.sim_time >= 1.0 - 1e-9, 30.0), bridge.sim.sim_time
    spin(ex, lambda: recorder.writer.counts.get(topics.FLEET_MARKERS, 0) >= 4
         and recorder.writer.counts.get(topics.WORLD_MARKERS, 0) >= 1, 5.0)
    recorder.close()
    ex.shutdown()
    bridge.close()
    bridge.destroy_node()
    recorder.destroy_node()

    got = decoded(out)
    scenario = load_scenario("warehouse", drones=3)
    # the map: latched, recorded once, every shelf centre, the geofence's 12 edges, station names
    (_, schema, world), = got[topics.WORLD_MARKERS]
    assert schema == "visualization_msgs/msg/MarkerArray"
    by_ns: dict[str, list[Any]] = {}
    for m in world.markers:
        assert m.header.frame_id == "map" and m.action == 0
        by_ns.setdefault(m.ns, []).append(m)
    shelf_points = np.array([[p.x, p.y, p.z] for m in by_ns["shelves"] for p in m.points])
    assert all(m.type == CUBE_LIST for m in by_ns["shelves"])
    np.testing.assert_allclose(np.sort(shelf_points, axis=0),
                               np.sort(np.asarray(scenario.shelves).mean(axis=1), axis=0), atol=1e-9)
    (fence,) = by_ns["geofence"]
    assert fence.type == LINE_LIST and len(fence.points) == 24
    names = {m.text for m in by_ns["station_names"]}
    assert names == set(scenario.pick_stations) | set(scenario.drop_stations)
    assert len(by_ns["home_pads"][0].points) == 3
    # the fleet: one SPHERE_LIST a message, a point and a colour per drone, equal to the state
    states = {_ns(msg.header.stamp): np.asarray(msg.position, np.float64).reshape(-1, 3)
              for _, _, msg in got[topics.FLEET_STATE]}
    fleet = got[topics.FLEET_MARKERS]
    assert len(fleet) >= 4                       # steps 10, 20, 30, 40 of 48 (4.8 Hz)
    matched = 0
    for log_time, schema, msg in fleet:
        assert schema == "visualization_msgs/msg/MarkerArray"
        (m,) = msg.markers
        assert m.type == SPHERE_LIST and m.ns == "fleet" and m.header.frame_id == "map"
        assert len(m.points) == len(m.colors) == 3
        assert log_time == _ns(m.header.stamp), "log time = the marker's stamp (sim time)"
        assert all(c.b > 0.5 or c.r > 0.5 for c in m.colors) and all(c.a == 1.0 for c in m.colors)
        if _ns(m.header.stamp) in states:
            matched += 1
            pts = np.array([[p.x, p.y, p.z] for p in m.points])
            np.testing.assert_allclose(pts, states[_ns(m.header.stamp)], atol=1e-5)
    assert matched >= 3, "fleet markers and fleet states share their stamps"
    stamps = sorted(_ns(msg.markers[0].header.stamp) for _, _, msg in fleet)
    assert np.all(np.diff(stamps) >= 0.2e9 - 1e6), "markers_rate_hz (5 Hz: every 10 of 48 steps)"
