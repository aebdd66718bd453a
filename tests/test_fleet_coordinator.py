"""Coordinator core: dropout reassignment, stale epochs, exactly-once delivery, restart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wm_agent.errors import ConfigError, FleetError
from wm_agent.fleet.coordinator import Coordinator, CoordinatorConfig, Phase
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.ledger import Ledger
from wm_agent.fleet.tasks import TaskSpec, TaskState
from wm_agent.fleet.validation import RejectCode
from wm_agent.sim.scenario import load_scenario

SCENARIO = Path(__file__).resolve().parents[1] / "sim" / "scenarios" / "warehouse.yaml"


def warehouse_layout(cruise_speed_mps: float = 2.0) -> Layout:
    """Layout of the real default scenario file."""
    return Layout.from_scenario(load_scenario(SCENARIO, drones=152), cruise_speed_mps)

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


def test_events_are_solved_at_most_every_min_solve_interval() -> None:
    """A new task after a solve waits until min_solve_interval_s (0.2 s) has passed since it
    (a 10,000-drone fleet has an event nearly every control period and a solve costs ~30 ms
    there); with 0 it is solved at once; without events the solve period still applies."""
    ids = np.array([1, 2])
    pos = np.array([[3.0, 6.0, 1.0], [20.0, 20.0, 1.0]])
    for interval, first_at in ((0.2, 0.2), (0.0, 0.05)):
        clock = FakeClock()
        co = Coordinator(LAYOUT, CoordinatorConfig(solve_period_s=0.5, min_solve_interval_s=interval),
                         clock=clock)
        co.observe_fleet(ids, pos, 0.0)
        assert co.maybe_solve(0.0) is not None  # the first solve
        assert co.submit(TaskSpec("j", "pick_a", "drop_a", payload_kg=0.01), 0.05).accepted
        solved_at = None
        for t in np.arange(0.05, 0.3, 1 / 48):
            if co.maybe_solve(float(t)) is not None and solved_at is None:
                solved_at = float(t)
        assert solved_at == pytest.approx(first_at, abs=1 / 48), (interval, solved_at)
        assert co.task("j").drone_id == 1
    with pytest.raises(ConfigError, match="min_solve_interval_s"):
        CoordinatorConfig(min_solve_interval_s=-0.1)


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
    assert co.task("j").state is TaskState.QUEUED  # at the pickup, but LOST: no pickup counted
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


def test_cancel_and_arrivals_by_epoch() -> None:
    co = Coordinator(LAYOUT, CFG, clock=FakeClock())
    co.observe_fleet([1], np.array([[20.0, 20.0, 1.0]]), 0.0, epochs=[1])
    co.submit(TaskSpec("a", "pick_b", "drop_b"), 0.0)
    co.submit(TaskSpec("b", "pick_c", "drop_c"), 0.0)
    co.solve(0.0)
    held = next(t for t in co.tasks.values() if t.state is TaskState.ASSIGNED)
    other = "a" if held.task_id == "b" else "b"
    co.cancel(other, "operator", 0.1)
    assert co.task(other).state is TaskState.CANCELLED
    assert held.epoch is not None
    pickup = co._pickup[held.task_id][None]
    co.observe_fleet([1], pickup, 0.2, epochs=[held.epoch - 1])  # still flying an older command
    assert co.task(held.task_id).state is TaskState.ASSIGNED
    co.observe_fleet([1], pickup, 0.3, epochs=[held.epoch])
    assert co.task(held.task_id).state is TaskState.PICKED
    with pytest.raises(FleetError, match="PICKED -> CANCELLED"):
        co.cancel(held.task_id, "too late", 0.4)
    drop = co._dropoff[held.task_id][None]
    co.observe_fleet([1], drop, 0.5, epochs=[held.epoch])
    co.observe_fleet([1], drop, 0.6, epochs=[held.epoch])  # still there: delivered once
    assert co.task(held.task_id).state is TaskState.DELIVERED
    delivered = [t for t in co.ledger.transitions(held.task_id) if t.to_state is TaskState.DELIVERED]
    assert len(delivered) == 1
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


def test_the_auction_path_delivers_everything_once() -> None:
    """The same run with the solver the coordinator uses above dense_max."""
    cfg = CoordinatorConfig(solve_period_s=0.5, lost_after_s=1.0, arrive_radius_m=0.3,
                            dense_max=1)
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
    again = co2.submit(TaskSpec("t0", "pick_a", "drop_a"), 0.0)  # the same request: idempotent
    assert again.accepted and "already accepted" in again.reason and co2.tasks == before
    assert not co2.submit(TaskSpec("t0", "pick_b", "drop_a"), 0.0).accepted  # other content
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
    assert co.submit(TaskSpec("a", "pick_a", "drop_a"), 0.0).accepted  # the same again: nothing
    assert not co.submit(TaskSpec("a", "pick_b", "drop_a"), 0.0).accepted  # a duplicate: nothing
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


def test_tasks_are_served_at_distinct_bays_spread_over_the_station() -> None:
    from dataclasses import replace as dc_replace

    from wm_agent.sim.scenario import bay_grid

    layout = dc_replace(LAYOUT, bay_offsets=bay_grid(3, 3, 1.0))
    co = Coordinator(layout, CFG, ledger=Ledger.open(":memory:"), clock=FakeClock())
    ids = np.arange(40, dtype=np.int64)
    co.observe_fleet(ids, layout.home_pads[:40] + np.array([0.0, 0.0, 1.0]), 0.0)
    for k in range(40):
        spec = TaskSpec(task_id=f"t{k}", pickup="pick_a", dropoff="drop_a", priority=1,
                        payload_kg=0.01, deadline_s=1e9)
        assert co.submit(spec, t_s=0.0).accepted
    co.solve(0.0)
    table = co.assignments()
    goals = table.goals[table.phases == Phase.TO_PICKUP]
    assert len(goals) == 9  # one task per bay; the other 31 wait for a free bay
    offsets = np.unique(np.round(goals - layout.station("pick_a"), 6), axis=0)
    assert len(offsets) == 9
    assert np.all(np.abs(offsets[:, :2]) <= 1.0 + 1e-9) and np.all(offsets[:, 2] == 0.0)
    with pytest.raises(ConfigError, match="bay"):
        dc_replace(LAYOUT, bay_offsets=np.zeros((0, 3)))


def test_admission_control_bounds_the_queue_per_station_and_in_all() -> None:
    cfg = CoordinatorConfig(max_open_tasks=8, max_open_per_station=3)
    co = Coordinator(LAYOUT, cfg, Ledger.open(":memory:"), clock=FakeClock())
    for k in range(3):
        assert co.submit(TaskSpec(f"a{k}", "pick_a", "drop_a"), 0.0).accepted
    res = co.submit(TaskSpec("a3", "pick_a", "drop_a"), 0.0)
    assert not res.accepted and res.code is RejectCode.QUEUE_FULL and "'pick_a'" in res.reason
    assert "a3" not in co.tasks
    for k in range(3):
        assert co.submit(TaskSpec(f"b{k}", "pick_b", "drop_a"), 0.0).accepted
    assert co.submit(TaskSpec("slot0", (10.0, 5.7, 1.5), "drop_a"), 0.0).accepted
    assert co.submit(TaskSpec("slot1", (10.0, 5.7, 1.5), "drop_a"), 0.0).accepted
    res = co.submit(TaskSpec("c0", "pick_c", "drop_a"), 0.0)
    assert res.code is RejectCode.QUEUE_FULL and "max_open_tasks 8" in res.reason
    # a task leaving the queue (cancelled here; picked up in a run) makes room again
    co.cancel("a0", t_s=1.0)
    assert co.submit(TaskSpec("a3", "pick_a", "drop_a"), 1.0).accepted


def test_admission_counts_survive_a_restart(tmp_path: Path) -> None:
    cfg = CoordinatorConfig(max_open_tasks=100, max_open_per_station=2)
    co = Coordinator(LAYOUT, cfg, Ledger.open(tmp_path / "l.db"), clock=FakeClock())
    for k in range(2):
        assert co.submit(TaskSpec(f"a{k}", "pick_a", "drop_a"), 0.0).accepted
    co.ledger.close()
    co2 = Coordinator(LAYOUT, cfg, Ledger.open(tmp_path / "l.db"), clock=FakeClock())
    assert co2.submit(TaskSpec("a2", "pick_a", "drop_a"), 0.0).code is RejectCode.QUEUE_FULL


def test_waiting_tasks_age_so_a_burst_elsewhere_cannot_starve_them() -> None:
    """One drone; an old task far away and, 200 s later, a fresh one next to the drone: with
    ageing the old task is served first (without it the near one always wins)."""
    drone = np.array([[LAYOUT.station("pick_a")[0], LAYOUT.station("pick_a")[1], 1.0]])
    far = LAYOUT.station("pick_d")
    assert np.linalg.norm(far - drone[0]) / LAYOUT.cruise_speed_mps > 8.0  # the far one is far

    def first_served(age_weight: float) -> str:
        co = Coordinator(LAYOUT, CoordinatorConfig(age_weight=age_weight),
                         Ledger.open(":memory:"), clock=FakeClock())
        co.observe_fleet(np.array([0]), drone, 0.0)
        assert co.submit(TaskSpec("old", "pick_d", "drop_a"), 0.0).accepted
        assert co.submit(TaskSpec("new", "pick_a", "drop_a"), 200.0).accepted
        co.observe_fleet(np.array([0]), drone, 200.0)
        co.solve(200.0)
        return co.assignments().task_ids[0]

    assert first_served(0.0) == "new"
    assert first_served(0.1) == "old"


def test_home_pads_follow_the_drone_id_not_the_registration_order() -> None:
    co = Coordinator(LAYOUT, CFG, Ledger.open(":memory:"), clock=FakeClock())
    ids = np.array([7, 3, 12])
    co.observe_fleet(ids, LAYOUT.home_pads[ids] + [0.0, 0.0, 1.0], 0.0)
    table = co.assignments()
    assert (table.phases == Phase.TO_HOME).all()
    np.testing.assert_array_equal(table.goals, LAYOUT.home_pads[table.drone_ids])


class RefusingLedger(Ledger):
    """A ledger whose writes fail once ``refuse`` is set (as a full disk or a constraint would)."""

    refuse = False

    def commit(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        if self.refuse:
            raise FleetError("write refused")
        super().commit(*args, **kwargs)  # type: ignore[arg-type]


def _health(co: Coordinator) -> tuple[np.ndarray, ...]:
    h = co.health
    return (h.ids.copy(), h.status.copy(), h.epoch.copy(), h.min_epoch.copy(), h.last_seen_s.copy())


def test_a_refused_ledger_write_leaves_drone_health_unchanged() -> None:
    ledger = RefusingLedger.open(":memory:")
    co = Coordinator(LAYOUT, CFG, ledger, clock=FakeClock())
    co.observe_fleet(np.array([1, 2]), LAYOUT.home_pads[[1, 2]] + [0.0, 0.0, 1.0], 0.0)
    assert co.submit(TaskSpec("t", "pick_a", "drop_a"), 0.0).accepted
    before = _health(co)
    ledger.refuse = True
    with pytest.raises(FleetError):
        co.register(1, 0.1)  # a new epoch
    with pytest.raises(FleetError):
        co.observe_fleet(np.array([5]), np.array([[1.0, 1.0, 1.0]]), 0.2)  # a new drone
    with pytest.raises(FleetError):
        co.solve(0.3)  # an assignment bumps an epoch
    with pytest.raises(FleetError):
        co.solve(5.0)  # both drones silent: LOST
    for now, was in zip(_health(co), before, strict=True):
        np.testing.assert_array_equal(now, was)
    ledger.refuse = False
    co.solve(0.3)
    assert co.tasks["t"].state is TaskState.ASSIGNED
