"""Task validation: each bad input is rejected with its code and reason, changing nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from wm_agent.errors import ConfigError
from wm_agent.fleet.coordinator import Coordinator, CoordinatorConfig
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.tasks import TaskSpec
from wm_agent.fleet.validation import RejectCode, validate_task

SCENARIO = Path(__file__).resolve().parents[1] / "sim" / "scenarios" / "warehouse.yaml"


def warehouse_layout(cruise_speed_mps: float = 2.0) -> Layout:
    """Layout of the real default scenario file."""
    with SCENARIO.open() as f:
        return Layout.from_scenario_dict(yaml.safe_load(f), cruise_speed_mps=cruise_speed_mps)

LAYOUT = warehouse_layout()
GOOD = TaskSpec("ok-1", "pick_a", "drop_b", priority=10, deadline_s=100.0, payload_kg=0.01)

BAD = [
    (TaskSpec("", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("x" * 65, "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("a\nb", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("dup", "pick_a", "drop_a"), RejectCode.DUPLICATE_ID, "task_id='dup'"),
    (TaskSpec("p1", "pick_a", "drop_a", priority=256), RejectCode.BAD_PRIORITY, "priority=256"),
    (TaskSpec("p2", "pick_a", "drop_a", priority=-1), RejectCode.BAD_PRIORITY, "priority=-1"),
    (TaskSpec("p3", "pick_a", "drop_a", priority=True), RejectCode.BAD_PRIORITY, "priority"),
    (TaskSpec("n1", "pick_a", "drop_a", payload_kg=math.nan), RejectCode.NON_FINITE,
     "payload_kg=nan"),
    (TaskSpec("n2", "pick_a", "drop_a", payload_kg=-0.1), RejectCode.NON_FINITE, "payload_kg"),
    (TaskSpec("n3", "pick_a", "drop_a", deadline_s=math.inf), RejectCode.NON_FINITE,
     "deadline_s=inf"),
    (TaskSpec("n4", (1.0, math.nan, 1.0), "drop_a"), RejectCode.NON_FINITE, "pickup"),
    (TaskSpec("n5", (1.0, 2.0), "drop_a"), RejectCode.NON_FINITE, "pickup"),  # type: ignore[arg-type]
    (TaskSpec("s1", "nowhere", "drop_a"), RejectCode.UNKNOWN_STATION, "pickup='nowhere'"),
    (TaskSpec("s2", "drop_a", "drop_a"), RejectCode.UNKNOWN_STATION, "pickup='drop_a'"),
    (TaskSpec("s3", "pick_a", "pick_b"), RejectCode.UNKNOWN_STATION, "dropoff='pick_b'"),
    (TaskSpec("g1", (50.0, 5.0, 1.0), "drop_a"), RejectCode.OUT_OF_GEOFENCE, "pickup=[50.0"),
    (TaskSpec("g2", (5.0, 5.0, 9.0), "drop_a"), RejectCode.OUT_OF_GEOFENCE, "geofence"),
    (TaskSpec("w1", "pick_a", "drop_a", payload_kg=0.5), RejectCode.PAYLOAD_TOO_HEAVY,
     "payload_kg=0.5"),
    (TaskSpec("d1", "pick_a", "drop_a", deadline_s=5.0), RejectCode.DEADLINE_PASSED,
     "deadline_s=5.0"),
]


def test_good_task_and_shelf_slot_are_accepted() -> None:
    assert validate_task(GOOD, layout=LAYOUT, known_ids=set(), now_s=10.0) is None
    slot = TaskSpec("slot", (10.0, 5.7, 1.5), "drop_c", payload_kg=0.015)
    assert validate_task(slot, layout=LAYOUT, known_ids=set(), now_s=10.0) is None


@pytest.mark.parametrize(("spec", "code", "text"), BAD, ids=[b[0].task_id or "empty" for b in BAD])
def test_bad_task_rejected_with_code_and_reason(spec: TaskSpec, code: RejectCode, text: str
                                                ) -> None:
    rej = validate_task(spec, layout=LAYOUT, known_ids={"dup"}, now_s=10.0)
    assert rej is not None and rej.code is code
    assert text in rej.reason


@pytest.mark.parametrize(("spec", "code", "text"), BAD, ids=[b[0].task_id or "empty" for b in BAD])
def test_rejection_leaves_coordinator_unchanged(spec: TaskSpec, code: RejectCode, text: str
                                               ) -> None:
    coord = Coordinator(LAYOUT, CoordinatorConfig(), clock=lambda: 10.0)
    assert coord.submit(TaskSpec("dup", "pick_a", "drop_a")).accepted
    before = (coord.tasks, coord.ledger.transitions(), coord.metrics())
    res = coord.submit(spec)
    assert not res.accepted and res.code is code and text in res.reason
    assert (coord.tasks, coord.ledger.transitions(), coord.metrics()) == before


def test_layout_from_real_scenario() -> None:
    assert LAYOUT.pick_stations == ("pick_a", "pick_b", "pick_c", "pick_d")
    assert LAYOUT.home_pads.shape == (152, 3)
    np.testing.assert_allclose(LAYOUT.home_pads[77], [1.5, 1.5, 0.0])
    np.testing.assert_allclose(LAYOUT.station("drop_d"), [37.0, 26.0, 1.0])
    assert LAYOUT.max_payload_kg == pytest.approx(0.015)


def test_layout_rejects_bad_scenario() -> None:
    with pytest.raises(ConfigError, match="home_pads"):
        Layout.from_scenario_dict({"stations": {"pick": [], "drop": []}})
    with pytest.raises(ConfigError, match="outside the geofence"):
        Layout({"a": [99.0, 0.0, 0.0], "b": [1.0, 1.0, 1.0]}, ("a",), ("b",),
               np.zeros((1, 3)), np.zeros(3), np.full(3, 10.0), 1.0)
