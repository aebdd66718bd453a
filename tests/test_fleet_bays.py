"""Bay reservations (issue 12, item 2): a task's bays are chosen by occupancy, never two
drones on one bay at overlapping times, a task waits in the queue while its stations' bays are
all busy, and reservations live in the ledger (a restarted coordinator neither double-books
nor forgets a bay)."""

from __future__ import annotations

from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fleet_coordinator import CFG, LAYOUT, FakeClock, _fly

from wm_agent.errors import FleetError
from wm_agent.fleet.coordinator import Coordinator, Phase
from wm_agent.fleet.ledger import Ledger
from wm_agent.fleet.tasks import TaskSpec, TaskState
from wm_agent.sim.scenario import bay_grid

PICKS = sorted(LAYOUT.pick_stations)
DROPS = sorted(LAYOUT.drop_stations)


def _layout(bays: int) -> object:
    return dc_replace(LAYOUT, bay_offsets=bay_grid(bays, 1, 1.0))


def _station_goals_unique(co: Coordinator) -> None:
    """No two drones are sent to the same bay (pickup or drop-off, any station)."""
    table = co.assignments()
    at_station = []
    for tid, phase, goal in zip(table.task_ids, table.phases, table.goals, strict=True):
        if not tid:
            continue
        spec = co.task(tid).spec
        if phase == Phase.TO_DROPOFF or isinstance(spec.pickup, str):
            at_station.append(np.round(goal, 6))
    if at_station:
        goals = np.array(at_station)
        assert len(np.unique(goals, axis=0)) == len(goals), "two drones sent to one bay"


def _held(co: Coordinator) -> dict[tuple[str, int], str]:
    return {k: v for k, v in co.bay_holders().items()}


@settings(max_examples=8, deadline=None)
@given(n_drones=st.integers(2, 8), tasks_per_drone=st.integers(1, 3), bays=st.integers(1, 3),
       seed=st.integers(0, 2**31), restart_at=st.integers(0, 300))
def test_never_two_drones_on_one_bay_and_a_restart_keeps_the_reservations(
        tmp_path_factory: pytest.TempPathFactory, n_drones: int, tasks_per_drone: int,
        bays: int, seed: int, restart_at: int) -> None:
    rng = np.random.default_rng(seed)
    n_tasks = n_drones * tasks_per_drone
    layout = _layout(bays)
    path = tmp_path_factory.mktemp("bays") / "ledger.db"
    clock = FakeClock()
    co = Coordinator(layout, CFG, Ledger.open(path), clock=clock)
    ids = np.arange(n_drones, dtype=np.int64)
    pos = layout.home_pads[:n_drones] + np.array([0.0, 0.0, 1.0])
    for k in range(n_tasks):
        spec = TaskSpec(f"t{k}", PICKS[rng.integers(len(PICKS))], DROPS[rng.integers(len(DROPS))],
                        priority=int(rng.integers(0, 256)), payload_kg=0.01)
        assert co.submit(spec, 0.0).accepted
    t = 0.0
    for step in range(3000):
        co.observe_fleet(ids, pos, t)
        co.maybe_solve(t)
        _station_goals_unique(co)
        if step == restart_at:
            before = _held(co)
            co = Coordinator(layout, CFG, Ledger.open(path), clock=clock)
            assert _held(co) == before  # neither forgotten nor double-booked
            co.observe_fleet(ids, pos, t)
        table = co.assignments()
        rows = np.searchsorted(ids, table.drone_ids)
        pos[rows] = _fly(pos[rows], table.goals, 5.0, 0.2)
        t = round(t + 0.2, 3)
        clock.t = t
        if co.metrics(t).delivered == n_tasks:
            break
    assert co.metrics(t).delivered == n_tasks
    assert _held(co) == {}


def test_a_station_with_all_bays_busy_keeps_its_tasks_queued() -> None:
    layout = _layout(2)
    co = Coordinator(layout, CFG, Ledger.open(":memory:"), clock=FakeClock())
    ids = np.arange(6, dtype=np.int64)
    pos = layout.home_pads[:6] + np.array([0.0, 0.0, 1.0])
    co.observe_fleet(ids, pos, 0.0)
    for k in range(6):
        assert co.submit(TaskSpec(f"t{k}", PICKS[0], DROPS[k % len(DROPS)], payload_kg=0.01),
                         0.0).accepted
    co.solve(0.0)
    states = [co.task(f"t{k}").state for k in range(6)]
    assert states.count(TaskState.ASSIGNED) == 2  # two bays at the pick station
    assert states.count(TaskState.QUEUED) == 4
    held = _held(co)
    assert sorted(b for (s, b) in held if s == PICKS[0]) == [0, 1]


def test_the_ledger_refuses_a_second_task_on_a_held_bay() -> None:
    led = Ledger.open(":memory:")
    co = Coordinator(_layout(1), CFG, led, clock=FakeClock())
    co.observe_fleet([1, 2], LAYOUT.home_pads[:2] + np.array([0.0, 0.0, 1.0]), 0.0)
    assert co.submit(TaskSpec("a", PICKS[0], DROPS[0], payload_kg=0.01), 0.0).accepted
    assert co.submit(TaskSpec("b", PICKS[1], DROPS[1], payload_kg=0.01), 0.0).accepted
    co.solve(0.0)
    (station, bay), holder = next(iter(_held(co).items()))
    other = "b" if holder == "a" else "a"
    with pytest.raises(FleetError, match="refused"):
        led.commit([], [], bays_reserved=[(station, bay, other, 0)])


def test_a_ledger_of_schema_1_gains_the_bay_table(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    led = Ledger.open(path)
    led._conn.execute("DROP TABLE bays")
    led._conn.execute("PRAGMA user_version=1")
    led.close()
    co = Coordinator(LAYOUT, CFG, Ledger.open(path), clock=FakeClock())
    assert co.bay_holders() == {}
