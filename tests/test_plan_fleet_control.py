"""FleetController without ROS: warm starts by drone id, and the pad-field speed limit."""

from __future__ import annotations

import numpy as np
import pytest

from wm_agent.errors import ConfigError
from wm_agent.planning.fleet_control import (
    PHASE_TO_PICKUP,
    FleetControlConfig,
    FleetController,
)
from wm_agent.planning.safety import SafetyConfig, SafetyFilter
from wm_agent.sim.scenario import load_scenario


def controller(**cfg: float) -> tuple[FleetController, np.ndarray]:
    sc = load_scenario("warehouse", drones=12)
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)),
                          FleetControlConfig(**cfg))
    return ctl, np.asarray(sc.home_pads, np.float64)


def test_pad_zone_limit_slows_only_drones_over_the_pad_field() -> None:
    ctl, pads = controller(pad_zone_speed=1.0, pad_zone_margin=0.5)
    pos = np.array([pads[0] + [0.0, 0.0, 1.0],          # over the pads
                    pads[0] + [0.0, 0.4, 1.0],          # inside the margin
                    [20.0, 15.0, 1.0],                  # the warehouse floor
                    pads[0] + [0.0, 0.0, 1.0]])         # over the pads, already slow
    cmd = np.array([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [3.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    out = ctl.pad_zone_limit(pos, cmd)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0, 3.0, 0.5])
    np.testing.assert_allclose(out[0] / np.linalg.norm(out[0]), [1.0, 0.0, 0.0])  # direction kept
    off, _ = controller(pad_zone_speed=0.0)
    np.testing.assert_array_equal(off.pad_zone_limit(pos, cmd), cmd)


def test_pad_zone_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="pad_zone"):
        FleetControlConfig(pad_zone_speed=-1.0)
    with pytest.raises(ConfigError, match="pad_zone"):
        FleetControlConfig(pad_zone_margin=float("nan"))


def test_commands_over_the_pads_respect_the_limit_and_warm_starts_follow_ids() -> None:
    ctl, pads = controller(pad_zone_speed=0.8)
    ids = np.array([7, 3])
    pos = pads[[0, 10]] + [0.0, 0.0, 1.0]  # 5 m apart: no neighbour push from the safety filter
    z = np.zeros((2, 3))
    quat = np.tile([0.0, 0.0, 0.0, 1.0], (2, 1))
    goals = np.array([[30.0, 20.0, 1.0], [30.0, 25.0, 1.0]])
    phases = np.full(2, PHASE_TO_PICKUP)
    for _ in range(40):  # the acceleration limit ramps the command up
        out = ctl.command(ids, pos, z, quat, z, np.zeros(2, bool), goals, phases, np.ones(2, bool))
    assert (np.linalg.norm(out.velocity, axis=1) <= 0.8 + 1e-9).all()
    assert (np.linalg.norm(out.velocity, axis=1) > 0.5).all()
    assert ctl._ids.tolist() == [3, 7]  # the table is sorted by id, whatever the call order
    np.testing.assert_allclose(ctl._prev_cmd[[1, 0]], out.velocity)


def test_routes_to_a_station_bay_lead_to_the_station_then_straight_to_the_bay() -> None:
    sc = load_scenario("warehouse_10k", drones=12)
    assert sc.station_bays.shape[0] > 1
    ctl = FleetController(sc, None, SafetyFilter(SafetyConfig.from_airframe(sc.airframe)))
    station = np.asarray(sc.stations["pick_a"], np.float64)
    bay = station + sc.station_bays[-1]
    goals = np.array([bay, [60.0, 20.0, 1.0]])  # a bay of pick_a; an ordinary point
    via, approach = ctl.route_goals(goals)
    np.testing.assert_allclose(via[0, :2], station[:2])
    np.testing.assert_allclose(approach[0], np.linalg.norm(sc.station_bays[-1, :2]))
    np.testing.assert_array_equal(via[1], goals[1])
    assert approach[1] == 0.0
    far = np.array([[station[0] + 30.0, station[1], 1.0]])
    near = np.array([[station[0] + 1.0, station[1], 1.0]])
    both = np.concatenate([far, near])
    carrots = ctl.grid.carrots(both, np.stack([bay, bay]), 2.0, np.stack([via[0]] * 2), approach[0])
    to_station = ctl.grid.carrots(far, station[None], 2.0)
    np.testing.assert_allclose(carrots[0], to_station[0])  # far: on the route to the station
    np.testing.assert_allclose(carrots[1], bay)  # near: the bay itself
    assert len(ctl.grid._cache) == 1  # one distance field served both drones
