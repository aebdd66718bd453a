"""Task model and lifecycle state machine of the fleet coordinator.

A task (job) moves a payload from a pickup (a pick station or an explicit shelf slot xyz)
to a drop station::

    QUEUED ──► ASSIGNED ──► PICKED ──► DELIVERED   (final, written once)
      ▲  │        │  │         │
      │  │        │  └─────────┴──► QUEUED   (drone lost / reassigned; payload re-queued)
      │  └────────┴──► CANCELLED  (operator; not once picked)
      └── any non-final state ──► FAILED   (deadline passed, unrecoverable)

Everything here is pure: :func:`advance` returns a new frozen :class:`Task` and the
:class:`Transition` that records the change; invalid transitions raise
:class:`~wm_agent.errors.FleetError` naming both states. Times are seconds on the
coordinator's clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum

from wm_agent.errors import FleetError


class TaskState(IntEnum):
    """Lifecycle state of a task (values are stored in the ledger: never renumber)."""

    QUEUED = 0
    ASSIGNED = 1
    PICKED = 2
    DELIVERED = 3
    FAILED = 4
    CANCELLED = 5


#: States a task never leaves.
FINAL_STATES: frozenset[TaskState] = frozenset(
    {TaskState.DELIVERED, TaskState.FAILED, TaskState.CANCELLED}
)

#: from-state -> states it may move to.
ALLOWED_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.QUEUED: frozenset({TaskState.ASSIGNED, TaskState.CANCELLED, TaskState.FAILED}),
    TaskState.ASSIGNED: frozenset(
        {TaskState.PICKED, TaskState.QUEUED, TaskState.CANCELLED, TaskState.FAILED}
    ),
    TaskState.PICKED: frozenset({TaskState.DELIVERED, TaskState.QUEUED, TaskState.FAILED}),
    TaskState.DELIVERED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}

#: Pickup given as an explicit shelf-slot position (x, y, z) [m].
Xyz = tuple[float, float, float]


@dataclass(frozen=True)
class TaskSpec:
    """What a client asks for; validated by :func:`wm_agent.fleet.validation.validate_task`.

    Attributes:
        task_id: unique, non-empty printable id (≤ 64 characters).
        pickup: pick-station name, or an explicit shelf-slot position (x, y, z) [m].
        dropoff: drop-station name.
        priority: 0..255, higher is more urgent.
        deadline_s: latest delivery time [s, coordinator clock]; None = no deadline.
        payload_kg: payload mass [kg].
    """

    task_id: str
    pickup: str | Xyz
    dropoff: str
    priority: int = 0
    deadline_s: float | None = None
    payload_kg: float = 0.0


@dataclass(frozen=True)
class Transition:
    """One time-stamped lifecycle change (one ledger row).

    ``from_state`` is None for the creation of a task (→ QUEUED). ``drone_id``/``epoch``
    name the drone and its assignment epoch involved, or are None.
    """

    task_id: str
    from_state: TaskState | None
    to_state: TaskState
    t_s: float
    drone_id: int | None = None
    epoch: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Task:
    """Current state of one accepted task (immutable; :func:`advance` makes the next one).

    Attributes:
        spec: the accepted request.
        state: lifecycle state.
        drone_id: drone holding the task (ASSIGNED/PICKED), else None.
        epoch: assignment epoch of that drone, else None.
        created_s, updated_s: acceptance and last-transition times [s].
        first_assigned_s, picked_s, finished_s: first ASSIGNED, last PICKED and final
            transition times [s], or None.
        attempts: how many times the task has been assigned.
        reason: reason of the last transition (why it failed, was cancelled, re-queued).
    """

    spec: TaskSpec
    state: TaskState
    created_s: float
    updated_s: float
    drone_id: int | None = None
    epoch: int | None = None
    first_assigned_s: float | None = None
    picked_s: float | None = None
    finished_s: float | None = None
    attempts: int = 0
    reason: str = ""

    @property
    def task_id(self) -> str:
        """The task's id."""
        return self.spec.task_id

    @property
    def is_final(self) -> bool:
        """True once DELIVERED, FAILED or CANCELLED."""
        return self.state in FINAL_STATES


def new_task(spec: TaskSpec, t_s: float) -> tuple[Task, Transition]:
    """Create the QUEUED task for an accepted ``spec`` at time ``t_s`` [s]."""
    task = Task(spec=spec, state=TaskState.QUEUED, created_s=t_s, updated_s=t_s)
    return task, Transition(spec.task_id, None, TaskState.QUEUED, t_s, reason="accepted")


def check_transition(from_state: TaskState, to_state: TaskState, task_id: str = "?") -> None:
    """Raise FleetError unless ``from_state -> to_state`` is an allowed lifecycle step."""
    if to_state not in ALLOWED_TRANSITIONS[from_state]:
        allowed = sorted(s.name for s in ALLOWED_TRANSITIONS[from_state]) or ["none: final"]
        raise FleetError(
            f"task {task_id!r}: invalid transition {from_state.name} -> {to_state.name}; "
            f"allowed from {from_state.name}: {', '.join(allowed)}"
        )


def advance(
    task: Task,
    to_state: TaskState,
    t_s: float,
    *,
    drone_id: int | None = None,
    epoch: int | None = None,
    reason: str = "",
) -> tuple[Task, Transition]:
    """Return ``(next_task, transition)`` for moving ``task`` to ``to_state`` at ``t_s`` [s].

    ASSIGNED needs ``drone_id`` and ``epoch``; PICKED/DELIVERED keep the current drone;
    QUEUED, FAILED and CANCELLED release it.

    Raises:
        FleetError: the transition is not allowed (message names from and to), or an
            assignment lacks its drone/epoch.
    """
    check_transition(task.state, to_state, task.task_id)
    changes: dict[str, object] = {"state": to_state, "updated_s": t_s, "reason": reason}
    if to_state is TaskState.ASSIGNED:
        if drone_id is None or epoch is None:
            raise FleetError(f"task {task.task_id!r}: ASSIGNED needs a drone_id and an epoch")
        changes.update(drone_id=drone_id, epoch=epoch, attempts=task.attempts + 1)
        if task.first_assigned_s is None:
            changes["first_assigned_s"] = t_s
    elif to_state is TaskState.PICKED:
        changes["picked_s"] = t_s
    elif to_state in FINAL_STATES or to_state is TaskState.QUEUED:
        if to_state in FINAL_STATES:
            changes["finished_s"] = t_s
        if to_state is not TaskState.DELIVERED:
            changes.update(drone_id=None, epoch=None)
    trans = Transition(
        task.task_id,
        task.state,
        to_state,
        t_s,
        drone_id=drone_id if drone_id is not None else task.drone_id,
        epoch=epoch if epoch is not None else task.epoch,
        reason=reason,
    )
    return dataclasses.replace(task, **changes), trans  # type: ignore[arg-type]
