"""Task validation: each bad input is rejected with its code and reason, changing nothing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from wm_agent.errors import ConfigError
from wm_agent.fleet.coordinator import Coordinator, CoordinatorConfig
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.tasks import TaskSpec
from wm_agent.fleet.validation import RejectCode, validate_task
from wm_agent.sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "sim" / "scenarios" / "warehouse.yaml"


def warehouse_layout(cruise_speed_mps: float = 2.0) -> Layout:
    """Layout of the real default scenario file."""
    return Layout.from_scenario(load_scenario(SCENARIO, drones=152), cruise_speed_mps)

LAYOUT = warehouse_layout()
GOOD = TaskSpec("ok-1", "pick_a", "drop_b", priority=10, deadline_s=100.0, payload_kg=0.01)

BAD = [
    (TaskSpec("", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("x" * 65, "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("a\nb", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("dup", "pick_b", "drop_a"), RejectCode.DUPLICATE_ID, "task_id='dup'"),
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
    # Task.msg's id rule is [A-Za-z0-9_.-]{1,64}: printable is not enough
    (TaskSpec("a:b", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id='a:b'"),
    (TaskSpec("ėŠ", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec(" id", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("a\u00a0b", "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    (TaskSpec("é" * 64, "pick_a", "drop_a"), RejectCode.BAD_ID, "task_id"),
    # a pickup inside a shelf unit (8..10.4 × 6..6.8 × 0..3 m) or touching it
    (TaskSpec("b1", (9.0, 6.4, 1.5), "drop_a"), RejectCode.BLOCKED, "inside a shelf"),
    (TaskSpec("b2", (9.0, 6.84, 1.5), "drop_a"), RejectCode.BLOCKED, "inside a shelf"),
]


def test_good_task_and_shelf_slot_are_accepted() -> None:
    assert validate_task(GOOD, layout=LAYOUT, known_ids=set(), now_s=10.0) is None
    slot = TaskSpec("slot", (10.0, 5.7, 1.5), "drop_c", payload_kg=0.015)
    assert validate_task(slot, layout=LAYOUT, known_ids=set(), now_s=10.0) is None


def test_reasons_echo_at_most_a_short_piece_of_the_value() -> None:
    """A 1 MB id (or station name) is not sent back whole in the reason."""
    huge = "x" * 1_000_000
    for spec in (TaskSpec(huge, "pick_a", "drop_a"), TaskSpec("ok", huge, "drop_a"),
                 TaskSpec("ok", "pick_a", huge)):
        rej = validate_task(spec, layout=LAYOUT, known_ids=set(), now_s=10.0)
        assert rej is not None and len(rej.reason) < 500, len(rej.reason)
        assert "1000000 characters" in rej.reason


@pytest.mark.parametrize(("spec", "code", "text"), BAD,
                         ids=[b[0].task_id.encode("ascii", "replace").decode() or "empty" for b in BAD])
def test_bad_task_rejected_with_code_and_reason(spec: TaskSpec, code: RejectCode, text: str
                                                ) -> None:
    rej = validate_task(spec, layout=LAYOUT, known_ids={"dup"}, now_s=10.0)
    assert rej is not None and rej.code is code
    assert text in rej.reason


@pytest.mark.parametrize(("spec", "code", "text"), BAD,
                         ids=[b[0].task_id.encode("ascii", "replace").decode() or "empty" for b in BAD])
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
        Layout({"a": [1.0, 1.0, 1.0], "b": [2.0, 1.0, 1.0]}, ("a",), ("b",),
               np.zeros((0, 3)), np.zeros(3), np.full(3, 10.0), 1.0)
    with pytest.raises(ConfigError, match="outside the geofence"):
        Layout({"a": [99.0, 0.0, 0.0], "b": [1.0, 1.0, 1.0]}, ("a",), ("b",),
               np.zeros((1, 3)), np.zeros(3), np.full(3, 10.0), 1.0)
