"""One home per setting: a parameter's default lives in its dataclass (a core's config nested in a
node's is declared under its own names, never restated), and the YAML parameter files hold only
overrides — every key a declared parameter, every value different from its default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wm_agent.nodes.common import parameter_fields
from wm_agent.nodes.fleet_coordinator import CoordinatorNodeConfig
from wm_agent.nodes.fleet_monitor import MonitorConfig
from wm_agent.nodes.planner import DroneConfig
from wm_agent.nodes.planning_common import PlannerNodeConfig
from wm_agent.nodes.recorder import RecorderConfig
from wm_agent.nodes.sim_bridge import SimBridgeConfig

CONFIG = Path(__file__).resolve().parent.parent / "config"
FILES: dict[str, tuple[type, ...]] = {
    "fleet_coordinator.yaml": (CoordinatorNodeConfig,),
    "fleet_planner.yaml": (PlannerNodeConfig,),
    "planner.yaml": (PlannerNodeConfig, DroneConfig),
    "sim_bridge.yaml": (SimBridgeConfig,),
    "recorder.yaml": (RecorderConfig,),
    "fleet_monitor.yaml": (MonitorConfig,),
}


def test_every_parameter_file_is_checked() -> None:
    assert sorted(p.name for p in CONFIG.glob("*.yaml")) == sorted(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_parameter_files_hold_only_overrides(name: str) -> None:
    doc = yaml.safe_load((CONFIG / name).read_text())
    params = doc["/**"]["ros__parameters"] or {}
    defaults = {n: d for cls in FILES[name] for n, d, _ in parameter_fields(cls)}
    for key, value in params.items():
        assert key in defaults, f"{name}: {key} is not a parameter of {FILES[name]}"
        default = list(defaults[key]) if isinstance(defaults[key], tuple) else defaults[key]
        assert value != default, f"{name}: {key}: {value!r} restates the default"


@pytest.mark.parametrize("cls", sorted({c for cs in FILES.values() for c in cs}, key=str))
def test_each_parameter_is_declared_once_with_a_description(cls: type) -> None:
    fields = parameter_fields(cls)  # raises when a name repeats (a core field restated)
    assert all(description for _, _, description in fields), [n for n, _, d in fields if not d]
