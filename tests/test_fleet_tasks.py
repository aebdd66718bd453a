"""Task lifecycle state machine: every allowed and every refused transition."""

from __future__ import annotations

import itertools

import pytest

from wm_agent.errors import FleetError
from wm_agent.fleet.tasks import (
    ALLOWED_TRANSITIONS,
    FINAL_STATES,
    Task,
    TaskSpec,
    TaskState,
    advance,
    new_task,
)

SPEC = TaskSpec("t1", "pick_a", "drop_a", priority=5, payload_kg=0.01)
ALL_PAIRS = list(itertools.product(TaskState, TaskState))
VALID = [(a, b) for a, b in ALL_PAIRS if b in ALLOWED_TRANSITIONS[a]]
INVALID = [(a, b) for a, b in ALL_PAIRS if b not in ALLOWED_TRANSITIONS[a]]


def _task_in(state: TaskState) -> Task:
    return Task(SPEC, state, created_s=0.0, updated_s=0.0,
                drone_id=7 if state in (TaskState.ASSIGNED, TaskState.PICKED) else None,
                epoch=3 if state in (TaskState.ASSIGNED, TaskState.PICKED) else None)


def test_the_documented_happy_path_and_drone_loss_are_allowed() -> None:
    assert TaskState.ASSIGNED in ALLOWED_TRANSITIONS[TaskState.QUEUED]
    assert TaskState.PICKED in ALLOWED_TRANSITIONS[TaskState.ASSIGNED]
    assert TaskState.DELIVERED in ALLOWED_TRANSITIONS[TaskState.PICKED]
    assert TaskState.QUEUED in ALLOWED_TRANSITIONS[TaskState.ASSIGNED]
    assert TaskState.QUEUED in ALLOWED_TRANSITIONS[TaskState.PICKED]
    for final in FINAL_STATES:
        assert not ALLOWED_TRANSITIONS[final]


@pytest.mark.parametrize(("src", "dst"), VALID, ids=[f"{a.name}->{b.name}" for a, b in VALID])
def test_valid_transition_is_time_stamped(src: TaskState, dst: TaskState) -> None:
    task = _task_in(src)
    nxt, tr = advance(task, dst, 12.5, drone_id=9, epoch=4, reason="why")
    assert nxt.state is dst and nxt.updated_s == 12.5
    assert (tr.from_state, tr.to_state, tr.t_s, tr.reason) == (src, dst, 12.5, "why")
    assert task.state is src  # pure: the old value is unchanged
    if dst is TaskState.ASSIGNED:
        assert (nxt.drone_id, nxt.epoch, nxt.attempts) == (9, 4, 1)
    if dst in (TaskState.QUEUED, TaskState.FAILED, TaskState.CANCELLED):
        assert nxt.drone_id is None and nxt.epoch is None
    if dst in FINAL_STATES:
        assert nxt.finished_s == 12.5 and nxt.is_final


@pytest.mark.parametrize(
    ("src", "dst"), INVALID, ids=[f"{a.name}->{b.name}" for a, b in INVALID]
)
def test_invalid_transition_raises_naming_from_and_to(src: TaskState, dst: TaskState) -> None:
    with pytest.raises(FleetError, match=rf"{src.name} -> {dst.name}"):
        advance(_task_in(src), dst, 1.0, drone_id=1, epoch=1)


def test_assignment_needs_drone_and_epoch() -> None:
    task, tr = new_task(SPEC, 3.0)
    assert task.state is TaskState.QUEUED and tr.from_state is None and tr.t_s == 3.0
    with pytest.raises(FleetError, match="drone_id"):
        advance(task, TaskState.ASSIGNED, 4.0)


def test_full_lifecycle_records_times() -> None:
    task, _ = new_task(SPEC, 0.0)
    task, _ = advance(task, TaskState.ASSIGNED, 1.0, drone_id=2, epoch=5)
    task, _ = advance(task, TaskState.QUEUED, 2.0, reason="drone lost")
    task, _ = advance(task, TaskState.ASSIGNED, 3.0, drone_id=4, epoch=1)
    task, _ = advance(task, TaskState.PICKED, 4.0)
    task, tr = advance(task, TaskState.DELIVERED, 5.0)
    assert (task.first_assigned_s, task.picked_s, task.finished_s) == (1.0, 4.0, 5.0)
    assert task.attempts == 2 and task.drone_id == 4 and tr.drone_id == 4 and tr.epoch == 1
