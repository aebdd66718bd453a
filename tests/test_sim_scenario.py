"""Scenario and airframe loading: valid files load into the documented arrays; every bad field
is rejected with its path."""

from __future__ import annotations

import copy
import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from wm_agent.errors import ConfigError
from wm_agent.sim import load_airframe, load_scenario, sim_data_dir

WAREHOUSE = sim_data_dir() / "scenarios" / "warehouse.yaml"


def _raw() -> dict[str, Any]:
    return yaml.safe_load(WAREHOUSE.read_text())


def _write(tmp_path: Path, data: dict[str, Any], name: str = "x.yaml") -> Path:
    scen = tmp_path / "scenarios"
    scen.mkdir(exist_ok=True)
    path = scen / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_warehouse_loads_into_arrays() -> None:
    s = load_scenario("warehouse")
    assert s.name == "warehouse" and s.drones == 50
    assert s.shelves.shape == (6 * 5, 2, 3)
    assert np.all(s.shelves[:, 1] > s.shelves[:, 0])
    # First unit: origin [8, 6, 0], size 2.4 × 0.8 × 3.0 along x; row 1 is 3.5 m further in y.
    np.testing.assert_allclose(s.shelves[0], [[8.0, 6.0, 0.0], [10.4, 6.8, 3.0]])
    np.testing.assert_allclose(s.shelves[5, 0], [8.0, 9.5, 0.0])
    assert s.walls.shape == (4, 2, 3) and s.floor.shape == (2, 3) and s.ceiling.shape == (2, 3)
    assert set(s.pick_stations) == {"pick_a", "pick_b", "pick_c", "pick_d"}
    assert set(s.stations) == set(s.pick_stations) | set(s.drop_stations)
    np.testing.assert_allclose(s.stations["drop_b"], [37.0, 12.0, 1.0])
    assert s.home_pads.shape == (50, 3)
    np.testing.assert_allclose(s.home_pads[1], [1.5, 1.0, 0.0])
    assert s.rates.substeps == 5 and s.airframe.name == "crazyflie2x"
    assert not s.shelves.flags.writeable


def test_drone_override_and_pad_shortage_message() -> None:
    assert load_scenario("warehouse", drones=152).home_pads.shape == (152, 3)
    with pytest.raises(ConfigError, match=r"home_pads: .*152 pads.*200 drones need 200 pads"):
        load_scenario("warehouse", drones=200)


def test_warehouse_10k_has_pads_for_10000() -> None:
    s = load_scenario("warehouse_10k")
    assert s.drones == 10_000 and s.home_pads.shape == (10_000, 3)


def test_warehouse_10k_spreads_pads_and_stations_through_the_building() -> None:
    """The reworked layout (issue 12): four pad fields, every drone's pad within 60 m of a pick
    and of a drop station (the old layout: stations 100+ m from the pads), tens of stations,
    every pad clear of the shelves (checked by the loader), and a 1,000-drone fleet on this
    map spread evenly over the four fields."""
    s = load_scenario("warehouse_10k")
    assert np.bincount(s.pad_field).tolist() == [2500] * 4
    pick = np.array(list(s.pick_stations.values()))[:, :2]
    drop = np.array(list(s.drop_stations.values()))[:, :2]
    assert len(pick) >= 16 and len(drop) >= 16
    pads = s.home_pads[:, :2]
    for stations in (pick, drop):
        nearest = np.linalg.norm(pads[:, None] - stations[None], axis=2).min(axis=1)
        assert nearest.max() < 60.0, nearest.max()
    assert np.bincount(load_scenario("warehouse_10k", drones=1000).pad_field).tolist() == [250] * 4


def test_several_pad_fields_fill_round_robin_and_are_checked(tmp_path: Path) -> None:
    data = _raw()
    west = {"origin": [1.0, 1.0, 0.0], "spacing": 0.6, "columns": 4, "rows": 2}
    east = {"origin": [30.0, 1.0, 0.0], "spacing": 0.6, "columns": 2, "rows": 1}
    data["home_pads"] = [west, east]
    data["drones"] = 6
    s = load_scenario(_write(tmp_path, data))
    # pad k of every field before pad k + 1: w0 e0 w1 e1 w2 w3 (east has only 2)
    np.testing.assert_allclose(s.home_pads[:, :2], [[1.0, 1.0], [30.0, 1.0], [1.6, 1.0],
                                                    [30.6, 1.0], [2.2, 1.0], [2.8, 1.0]])
    assert s.pad_field.tolist() == [0, 1, 0, 1, 0, 0]
    with pytest.raises(ConfigError, match=r"the 2 fields have 10 pads, but 11 drones"):
        load_scenario(_write(tmp_path, data), drones=11)
    data["home_pads"] = [west, {**east, "origin": [1.05, 1.0, 0.0]}]
    with pytest.raises(ConfigError, match=r"closer than two collision radii .*overlap"):
        load_scenario(_write(tmp_path, data))
    data["home_pads"] = [west, {**east, "origin": [30.0, 1.0, 0.5]}]
    with pytest.raises(ConfigError, match=r"home_pads\[1\]\.origin: z must be 0"):
        load_scenario(_write(tmp_path, data))
    data["home_pads"] = [west, {**east, "rows": 0}]
    with pytest.raises(ConfigError, match=r"home_pads\[1\]\.rows"):
        load_scenario(_write(tmp_path, data))
    data["home_pads"] = []
    with pytest.raises(ConfigError, match=r"home_pads: expected a pad field"):
        load_scenario(_write(tmp_path, data))


def test_warehouse_1k_puts_pads_between_shelves_and_stations_around_them() -> None:
    """The layout issue 12 asked for: 1,000 pads in the middle band, every pad and bay clear of
    the two shelf blocks, pick stations on the west and east walls, drop stations on the south
    and north walls, a pad-to-station distance of tens of metres (not 100+)."""
    s = load_scenario("warehouse_1k")
    assert s.drones == 1000 and s.home_pads.shape == (1000, 3)
    pads = s.home_pads[:, :2]
    shelf_y = s.shelves[:, :, 1]
    assert (pads[:, 1] > shelf_y[shelf_y[:, 1] < 28.0, 1].max()).all()  # north of the south block
    assert (pads[:, 1] < shelf_y[shelf_y[:, 0] > 28.0, 0].min()).all()  # south of the north block
    pick = np.array(list(s.pick_stations.values()))
    drop = np.array(list(s.drop_stations.values()))
    assert len(pick) == 8 and set(np.round(pick[:, 0])) == {5.0, 75.0}
    assert len(drop) == 6 and set(np.round(drop[:, 1], 1)) == {3.5, 52.5}
    centre = pads.mean(axis=0)
    far = np.linalg.norm(np.concatenate([pick, drop])[:, :2] - centre, axis=1).max()
    assert far < 45.0, far


def test_unknown_scenario_name() -> None:
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario("no_such_scenario")


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value


BAD_FIELDS = [
    ("shelves.0.unit_size", [1, -2, 3], r"shelves\[0\]\.unit_size: expected 3 positive numbers"),
    ("shelves.0.rows", 0, r"shelves\[0\]\.rows: expected an integer >= 1"),
    ("shelves.0.rows", 2.5, r"shelves\[0\]\.rows: expected an integer"),
    ("shelves.0.axis", "z", r"shelves\[0\]\.axis: expected 'x' or 'y'"),
    ("shelves.0.unit_gap", -1.0, r"shelves\[0\]\.unit_gap: expected a number >= 0"),
    ("shelves.0.row_spacing", 0.5, r"shelves\[0\]\.row_spacing: .*rows would overlap"),
    ("shelves.0.origin", [38.0, 6.0, 0.0], r"shelves\[0\]: row 0 unit 0 spans .* outside the world"),
    ("shelves.0.colour", "red", r"shelves\[0\]\.colour: unknown key"),
    ("rates.physics_hz", 250, r"rates\.physics_hz: .*integer multiple of rates\.control_hz"),
    ("rates.control_hz", -48, r"rates\.control_hz: expected a positive number"),
    ("rates.state_pub_hz", 100, r"rates\.state_pub_hz: .*exceeds rates\.control_hz"),
    ("world.size", [40.0, 30.0], r"world\.size: expected 3 positive numbers"),
    ("world.wall_thickness", float("nan"), r"world\.wall_thickness: expected a finite number"),
    ("geofence.min", [0.3, 0.3, 6.0], r"geofence: min .* must be below max"),
    ("geofence.max", [41.0, 29.7, 5.5], r"geofence: .* extends outside the world"),
    ("stations.pick.0.position", [3.0, 5.0, 9.0], r"stations\.pick\[0\]\.position: .*outside"),
    ("stations.pick.0.position", [9.0, 6.4, 1.0], r"stations\.pick\[0\]\.position: .*within"),
    ("stations.drop.1.name", "pick_a", r"stations\.drop\[1\]\.name: duplicate station name"),
    ("stations.drop", [], r"stations\.drop: expected a non-empty list"),
    ("stations.bays", {"columns": 0, "rows": 2, "spacing": 1.0},
     r"stations\.bays\.columns: expected an integer >= 1"),
    ("stations.bays", {"columns": 2, "rows": 2}, r"stations\.bays\.spacing: missing required key"),
    ("stations.bays", {"columns": 9, "rows": 9, "spacing": 1.0},
     r"stations\.bays: a bay of 'pick_a' .* outside the geofence"),
    ("home_pads.spacing", 0.1, r"home_pads\.spacing: .*less than two collision radii"),
    ("home_pads.rows", 0, r"home_pads\.rows: expected an integer >= 1"),
    ("home_pads.origin", [9.0, 6.0, 0.0], r"home_pads: pad 0 .* is under shelves\[0\] row 0"),
    ("drones", 0, r"drones: expected an integer >= 1"),
    ("drones", True, r"drones: expected an integer"),
    ("version", 2, r"version: expected 1"),
    ("seed", -1, r"seed: expected an integer >= 0"),
    ("airframe", "jumbo", r"airframe: no airframe file 'jumbo'"),
    ("tasks.max_payload_kg", 0.5, r"tasks\.max_payload_kg: .*exceeds the airframe's max_payload"),
    ("tasks.rate_per_min", -1.0, r"tasks\.rate_per_min: expected a number >= 0"),
    ("bogus", 1, r"bogus: unknown key"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS, ids=[b[0] for b in BAD_FIELDS])
def test_bad_field_is_rejected_with_its_path(
    tmp_path: Path, field: str, value: Any, message: str
) -> None:
    data = _raw()
    _set(data, field, value)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=message) as info:
        load_scenario(path)
    assert str(info.value).startswith(str(path) + ": ")


@pytest.mark.parametrize("key", ["rates", "world", "geofence", "shelves", "home_pads", "tasks"])
def test_missing_key_is_rejected(tmp_path: Path, key: str) -> None:
    data = _raw()
    del data[key]
    with pytest.raises(ConfigError, match=rf"{key}: missing required key"):
        load_scenario(_write(tmp_path, data))


def test_missing_nested_key(tmp_path: Path) -> None:
    data = _raw()
    del data["home_pads"]["spacing"]
    with pytest.raises(ConfigError, match=r"home_pads\.spacing: missing required key"):
        load_scenario(_write(tmp_path, data))


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_scenario(path)


def test_shelves_along_y_and_empty_shelves(tmp_path: Path) -> None:
    data = _raw()
    data["shelves"][0]["axis"] = "y"
    data["shelves"][0]["origin"] = [8.0, 6.0, 0.0]
    data["shelves"][0]["rows"] = 2
    data["shelves"][0]["units_per_row"] = 2
    s = load_scenario(_write(tmp_path, data))
    np.testing.assert_allclose(s.shelves[1], [[8.0, 8.4, 0.0], [8.8, 10.8, 3.0]])
    np.testing.assert_allclose(s.shelves[2, 0], [11.5, 6.0, 0.0])
    data["shelves"] = []
    assert load_scenario(_write(tmp_path, data)).shelves.shape == (0, 2, 3)


# ---- airframe ------------------------------------------------------------------------------

AIRFRAME = sim_data_dir() / "airframes" / "crazyflie2x.yaml"


def test_airframe_values_and_derived() -> None:
    af = load_airframe("crazyflie2x")
    assert af.mass == 0.027 and af.kf == 3.16e-10 and af.km == 7.94e-12
    assert af.ixx == af.iyy == 1.4e-5 and af.izz == 2.17e-5
    assert af.kd_xy == 9.1785e-7 and af.kd_z == 10.311e-7
    assert af.ground_effect_coeff == 11.36859 and af.prop_radius == 2.31348e-2
    # Hover: 4·kf·ω² = m·g.
    assert 4 * af.kf * af.hover_rpm**2 == pytest.approx(af.weight)
    assert af.max_rpm == pytest.approx(af.hover_rpm * math.sqrt(2.25))


@pytest.mark.parametrize("field", ["mass", "kf", "km", "ixx", "kd_z", "max_speed", "prop_radius"])
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "abc"])
def test_airframe_field_must_be_finite_positive(tmp_path: Path, field: str, bad: Any) -> None:
    data = yaml.safe_load(AIRFRAME.read_text())
    data[field] = bad
    (tmp_path / "airframes").mkdir()
    path = tmp_path / "airframes" / "af.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"af\.yaml: {field}: expected a"):
        load_airframe(path)


def test_airframe_unknown_key(tmp_path: Path) -> None:
    data = yaml.safe_load(AIRFRAME.read_text())
    data2 = copy.deepcopy(data)
    data2["wingspan"] = 1.0
    path = tmp_path / "af.yaml"
    path.write_text(yaml.safe_dump(data2))
    with pytest.raises(ConfigError, match="wingspan: unknown key"):
        load_airframe(path)


def test_urdf_agrees_with_airframe_yaml() -> None:
    af = load_airframe("crazyflie2x")
    root = ET.parse(af.urdf).getroot()
    inertial = root.find("link/inertial")
    assert inertial is not None
    mass = inertial.find("mass")
    inertia = inertial.find("inertia")
    cyl = root.find("link/collision/geometry/cylinder")
    assert mass is not None and inertia is not None and cyl is not None
    assert float(mass.get("value", "nan")) == af.mass
    assert float(inertia.get("ixx", "nan")) == af.ixx
    assert float(inertia.get("iyy", "nan")) == af.iyy
    assert float(inertia.get("izz", "nan")) == af.izz
    assert float(cyl.get("radius", "nan")) == af.collision_radius
    assert float(cyl.get("length", "nan")) / 2 == af.body_half_height


def test_station_bays_are_a_centred_grid(tmp_path: Path) -> None:
    data = _raw()
    data["stations"]["bays"] = {"columns": 3, "rows": 2, "spacing": 1.0}
    sc = load_scenario(_write(tmp_path, data))
    assert sc.station_bays.shape == (6, 3)
    np.testing.assert_allclose(sc.station_bays.mean(0), 0.0, atol=1e-12)  # centred on the station
    np.testing.assert_allclose(sorted(set(sc.station_bays[:, 0])), [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(sorted(set(sc.station_bays[:, 1])), [-0.5, 0.5])
    del data["stations"]["bays"]
    assert load_scenario(_write(tmp_path, data)).station_bays.shape == (1, 3)  # the station itself
    assert load_scenario("warehouse").station_bays.shape == (9, 3)
