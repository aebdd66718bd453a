"""Coordinator core: dropout reassignment, stale epochs, exactly-once delivery, restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wm_agent.errors import ConfigError, FleetError
from wm_agent.fleet.coordinator import Coordinator, CoordinatorConfig, Phase
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.ledger import Ledger
from wm_agent.fleet.tasks import TaskSpec, TaskState
from wm_agent.fleet.validation import RejectCode

SCENARIO = Path(__file__).resolve().parents[1] / "sim" / "scenarios" / "warehouse.yaml"


def warehouse_layout(cruise_speed_mps: float = 2.0) -> Layout:
    """Layout of the real default scenario file."""
    with SCENARIO.open() as f:
        return Layout.from_scenario_dict(yaml.safe_load(f), cruise_speed_mps=cruise_speed_mps)

LAYOUT = warehouse_layout(cruise_speed_mps=2.0)
CFG = CoordinatorConfig(solve_period_s=0.5, lost_after_s=1.0, arrive_radius_m=0.3)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _fly(pos: np.ndarray, goals: np.ndarray, speed: float, dt: float) -> np.ndarray:
    """Straight-line kinematics: each drone moves at most speed*dt towards its goal."""
    step = goals - pos
    dist = np.linalg.norm(step, axis=1, keepdims=True)
    scale = np.minimum(1.0, speed * dt / np.maximum(dist, 1e-12))
    out: np.ndarray = pos + step * scale
    return out


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="lost_after_s"):
        CoordinatorConfig(lost_after_s=0.0)


def test_dropout_task_reassigned_within_two_seconds() -> None:
    clock = FakeClock()
    co = Coordinator(LAYOUT, CFG, clock=clock)
    ids = np.array([1, 2, 3])
    pos = np.array([[3.0, 6.0, 1.0], [20.0, 20.0, 1.0], [35.0, 28.0, 1.0]])
    co.observe_fleet(ids, pos, 0.0)
    assert co.submit(TaskSpec("j", "pick_a", "drop_a", payload_kg=0.01), 0.0).accepted
    co.maybe_solve(0.0)
    assert co.task("j").drone_id == 1
    silent_from = 0.0
    t = 0.0
    reassigned_at = None
    while t < 4.0:
        t = round(t + 0.1, 3)
        co.observe_fleet(ids[1:], pos[1:], t)  # drone 1 went silent after t=0
        co.maybe_solve(t)
        task = co.task("j")
        if task.state is TaskState.ASSIGNED and task.drone_id != 1:
            reassigned_at = t
            break
    assert reassigned_at is not None and reassigned_at - silent_from <= 2.0
    assert co.task("j").drone_id == 2  # nearer of the two others
    assert co.metrics(t).lost_drones == 1
    reasons = [tr.reason for tr in co.ledger.transitions("j")]
    assert "drone 1 lost" in reasons


def test_stale_epoch_is_ignored_until_register() -> None:
    co = Coordinator(LAYOUT, CFG, clock=FakeClock())
    co.observe_fleet([5], np.array([[3.0, 6.0, 1.0]]), 0.0, epochs=[1])
    co.observe_fleet([6], np.array([[30.0, 20.0, 1.0]]), 0.0)
    co.submit(TaskSpec("j", "pick_a", "drop_a"), 0.0)
    co.solve(0.0)
    old_epoch = co.task("j").epoch
    assert co.task("j").drone_id == 5 and old_epoch is not None
    co.observe_fleet([6], np.array([[30.0, 20.0, 1.0]]), 1.5)  # 5 silent → LOST
    assert co.task("j").state is TaskState.QUEUED
    # drone 5 comes back at the pickup with its old epoch: ignored, stays LOST
    co.observe_fleet([5], np.array([[3.0, 5.0, 1.0]]), 1.6, epochs=[old_epoch])
    assert co.metrics(1.6).lost_drones == 1
    assert not co.report_pickup(5, "j", old_epoch, 1.6)
    assert 5 not in co.assignments().drone_ids.tolist()
    new_epoch = co.register(5, 1.7)
    assert new_epoch > old_epoch
    co.observe_fleet([5, 6], np.array([[3.0, 5.0, 1.0], [30.0, 20.0, 1.0]]), 1.8,
                     epochs=[old_epoch, 1])
    assert co.health.last_seen_s[co.health.row_of(5)] == 1.7  # old epoch: ignored
    co.observe_fleet([5, 6], np.array([[3.0, 5.0, 1.0], [30.0, 20.0, 1.0]]), 1.9,
                     epochs=[new_epoch, 1])
    co.solve(1.9)
    task = co.task("j")
    assert task.drone_id == 5 and task.epoch is not None and task.epoch > new_epoch


def test_cancel_and_reports() -> None:
    co = Coordinator(LAYOUT, CFG, clock=FakeClock())
    co.observe_fleet([1], np.array([[20.0, 20.0, 1.0]]), 0.0)
    co.submit(TaskSpec("a", "pick_b", "drop_b"), 0.0)
    co.submit(TaskSpec("b", "pick_c", "drop_c"), 0.0)
    co.solve(0.0)
    held = next(t for t in co.tasks.values() if t.state is TaskState.ASSIGNED)
    other = "a" if held.task_id == "b" else "b"
    co.cancel(other, "operator", 0.1)
    assert co.task(other).state is TaskState.CANCELLED
    assert held.epoch is not None
    assert not co.report_pickup(1, held.task_id, held.epoch - 1, 0.2)  # stale epoch
    assert co.report_pickup(1, held.task_id, held.epoch, 0.2)
    with pytest.raises(FleetError, match="PICKED -> CANCELLED"):
        co.cancel(held.task_id, "too late", 0.3)
    assert co.report_delivery(1, held.task_id, held.epoch, 0.4)
    assert not co.report_delivery(1, held.task_id, held.epoch, 0.5)  # duplicate: ignored
    with pytest.raises(FleetError, match="unknown task"):
        co.cancel("nope")


def _run(co: Coordinator, ids: np.ndarray, pos: np.ndarray, t0: float, t1: float,
         speed: float = 2.0, dt: float = 0.1) -> tuple[np.ndarray, float]:
    t = t0
    while t < t1:
        co.maybe_solve(t)
        table = co.assignments()
        goals = pos.copy()
        rows = np.searchsorted(ids, table.drone_ids)
        goals[rows] = table.goals
        pos = _fly(pos, goals, speed, dt)
        t = round(t + dt, 6)
        co.observe_fleet(ids, pos, t, epochs=table.epochs[np.argsort(rows)])
    return pos, t


def test_exactly_once_delivery_through_a_simulated_run(tmp_path: Path) -> None:
    clock = FakeClock()
    co = Coordinator(LAYOUT, CFG, Ledger.open(tmp_path / "run.db"), clock=clock)
    ids = np.arange(4, dtype=np.int64)
    pos = LAYOUT.home_pads[:4] + np.array([0, 0, 1.0])
    co.observe_fleet(ids, pos, 0.0)
    rng = np.random.default_rng(0)
    names = [f"job{i}" for i in range(12)]
    for i, n in enumerate(names):
        pickup = (LAYOUT.pick_stations[i % 4] if i % 3 else
                  (float(rng.uniform(8, 20)), 5.7, 1.5))
        res = co.submit(TaskSpec(n, pickup, LAYOUT.drop_stations[(i + 1) % 4], priority=i,
                                 payload_kg=0.01), 0.0)
        assert res.accepted and res.code is RejectCode.OK
    pos, t = _run(co, ids, pos, 0.0, 400.0)
    m = co.metrics(t)
    assert m.delivered == 12 and m.queue_length == 0 and m.failed == 0
    assert m.tasks_per_hour > 0 and m.mean_wait_s >= 0
    trans = co.ledger.transitions()
    for n in names:
        chain = [tr.to_state for tr in trans if tr.task_id == n]
        assert chain.count(TaskState.DELIVERED) == 1 and chain[-1] is TaskState.DELIVERED
    table = co.assignments()
    assert set(table.phases.tolist()) <= {Phase.IDLE, Phase.TO_HOME}


@pytest.mark.parametrize("solver", ["auction", "multilevel"])
def test_large_fleet_solvers_deliver_everything_once(solver: str) -> None:
    """The same run with the solver the coordinator uses above dense_max / auction_max."""
    sizes = {"auction": (1, 10_000), "multilevel": (1, 1)}[solver]
    cfg = CoordinatorConfig(solve_period_s=0.5, lost_after_s=1.0, arrive_radius_m=0.3,
                            dense_max=sizes[0], auction_max=sizes[1])
    clock = FakeClock()
    co = Coordinator(LAYOUT, cfg, clock=clock)
    ids = np.arange(4, dtype=np.int64)
    pos = LAYOUT.home_pads[:4] + np.array([0, 0, 1.0])
    co.observe_fleet(ids, pos, 0.0)
    for i in range(10):
        spec = TaskSpec(f"job{i}", LAYOUT.pick_stations[i % 4], LAYOUT.drop_stations[(i + 1) % 4],
                        priority=i, payload_kg=0.01)
        assert co.submit(spec, 0.0).accepted
    pos, t = _run(co, ids, pos, 0.0, 400.0)
    m = co.metrics(t)
    assert m.delivered == 10 and m.queue_length == 0 and m.failed == 0
    delivered = [tr.task_id for tr in co.ledger.transitions() if tr.to_state is TaskState.DELIVERED]
    assert sorted(delivered) == sorted(f"job{i}" for i in range(10))


def test_restart_restores_tasks_and_epochs(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    co = Coordinator(LAYOUT, CFG, Ledger.open(path), clock=FakeClock())
    ids = np.array([1, 2])
    pos = np.array([[3.0, 6.0, 1.0], [30.0, 20.0, 1.0]])
    co.observe_fleet(ids, pos, 0.0)
    for i in range(3):
        co.submit(TaskSpec(f"t{i}", "pick_a", "drop_a"), 0.0)
    co.solve(0.0)
    before = co.tasks
    epochs = co.health.epoch.copy()
    co.ledger.close()
    co2 = Coordinator(LAYOUT, CFG, Ledger.open(path), clock=FakeClock())
    assert co2.tasks == before
    np.testing.assert_array_equal(co2.health.epoch, epochs)
    assert not co2.submit(TaskSpec("t0", "pick_a", "drop_a"), 0.0).accepted  # duplicate
    # drones never come back: after lost_after_s their tasks are re-queued, none lost
    co2.observe_fleet([9], np.array([[20.0, 20.0, 1.0]]), 1.5)
    co2.solve(1.5)
    states = {t.state for t in co2.tasks.values()}
    assert states <= {TaskState.QUEUED, TaskState.ASSIGNED}
    assert sum(t.drone_id == 9 for t in co2.tasks.values()) == 1


def test_observe_fleet_validates_shapes() -> None:
    co = Coordinator(LAYOUT, CFG, clock=FakeClock())
    with pytest.raises(FleetError, match="positions"):
        co.observe_fleet([1, 2], np.zeros((3, 3)), 0.0)


def test_drain_transitions_reports_each_committed_change_once() -> None:
    from wm_agent.fleet.coordinator import Coordinator
    from wm_agent.fleet.tasks import TaskSpec, TaskState

    layout = _layout_for_drain()
    co = Coordinator(layout, clock=lambda: 0.0)
    assert co.submit(TaskSpec("a", "pick_a", "drop_a"), 0.0).accepted
    assert not co.submit(TaskSpec("a", "pick_a", "drop_a"), 0.0).accepted  # duplicate: nothing
    first = co.drain_transitions()
    assert [(t.task_id, t.from_state, t.to_state) for t in first] == [("a", None, TaskState.QUEUED)]
    assert co.drain_transitions() == []
    co.cancel("a", "changed my mind", 1.0)
    (tr,) = co.drain_transitions()
    assert (tr.from_state, tr.to_state, tr.reason) == (TaskState.QUEUED, TaskState.CANCELLED,
                                                       "changed my mind")


def _layout_for_drain():  # type: ignore[no-untyped-def]
    import numpy as np

    from wm_agent.fleet.layout import Layout

    return Layout(
        stations={"pick_a": np.array([1.0, 1.0, 1.0]), "drop_a": np.array([5.0, 5.0, 1.0])},
        pick_stations=("pick_a",), drop_stations=("drop_a",),
        home_pads=np.zeros((2, 3)), geofence_min=np.array([0.0, 0.0, 0.0]),
        geofence_max=np.array([10.0, 10.0, 5.0]), max_payload_kg=0.015,
    )


def test_tasks_are_served_at_stable_bays_spread_over_the_station() -> None:
    from dataclasses import replace as dc_replace

    from wm_agent.fleet.layout import bay_grid

    layout = dc_replace(LAYOUT, bay_offsets=bay_grid(3, 3, 1.0))
    co = Coordinator(layout, CFG, ledger=Ledger.open(":memory:"), clock=FakeClock())
    picks = []
    for k in range(40):
        spec = TaskSpec(task_id=f"t{k}", pickup="pick_a", dropoff="drop_a", priority=1,
                        payload_kg=0.01, deadline_s=1e9)
        assert co.submit(spec, t_s=0.0).accepted
        picks.append(co._pickup[f"t{k}"])
        np.testing.assert_array_equal(layout.station_goal("pick_a", f"t{k}"), picks[-1])  # stable
    offsets = np.unique(np.round(np.array(picks) - layout.station("pick_a"), 6), axis=0)
    assert len(offsets) >= 6  # 40 tasks land on most of the 9 bays, not on one point
    assert np.all(np.abs(offsets[:, :2]) <= 1.0 + 1e-9) and np.all(offsets[:, 2] == 0.0)
    with pytest.raises(ConfigError, match="bay"):
        dc_replace(LAYOUT, bay_offsets=np.zeros((0, 3)))
