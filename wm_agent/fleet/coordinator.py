"""Fleet coordinator core: tasks in, assignments out, nothing lost.

Pure Python + numpy; the ROS node converts messages once and calls:

* :meth:`Coordinator.submit` / :meth:`Coordinator.cancel` from service callbacks,
* :meth:`Coordinator.observe_fleet` on every fleet-state message (liveness, pickup and
  delivery detection by distance),
* :meth:`Coordinator.maybe_solve` from a timer (solves every ``solve_period_s`` and as
  soon as an event made the last solution stale),
* :meth:`Coordinator.assignments` to publish one batched message,
* :meth:`Coordinator.metrics` for diagnostics.

Every state change — tasks and drone liveness/epochs alike — is written to the
:class:`~wm_agent.fleet.ledger.Ledger` (one SQLite transaction per call) *before* it is applied in
memory, so a refused write leaves the coordinator unchanged and a restart restores exactly what
was committed. Submitting a task again with the same content is idempotent (accepted, nothing
changes), so a bulk submitter can retry what it got no answer for. Admission control bounds
the tasks waiting for a pickup (in all, and per pick station); waiting tasks age (get cheaper in
the assignment) so none starves.

*Bays.* A station serves its tasks at K bays (``Layout.bay_offsets``). A task holds a bay at
its pick station (while ASSIGNED) and one at its drop station (from ASSIGNED until DELIVERED),
chosen at assignment among the free ones (the nearest to the drone, resp. to the pickup), so
no two drones are sent to one bay at overlapping times. A task whose stations have no free bay
waits in the queue (the drone stays where it is) instead of sending a drone to converge on a
full station; the most urgent waiting tasks get the bays first. Reservations are ledger rows
written with the task changes that take and free them, so a restart keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from wm_agent.errors import ConfigError, FleetError
from wm_agent.fleet.assignment import Matching, solve, task_offsets
from wm_agent.fleet.health import DroneStatus, FleetHealth
from wm_agent.fleet.layout import Layout
from wm_agent.fleet.ledger import Ledger
from wm_agent.fleet.tasks import Task, TaskSpec, TaskState, Transition, advance, new_task
from wm_agent.fleet.validation import RejectCode, validate_task

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_OPEN = (TaskState.QUEUED, TaskState.ASSIGNED)  # waiting for a pickup: what admission counts
PICKUP, DROPOFF = 0, 1  # the roles of a task's two bays (ledger values: never renumber)


def _p(default: Any, description: str) -> Any:
    """A config field with its description (what a node's ROS parameter says)."""
    return field(default=default, metadata={"description": description})


class Phase(IntEnum):
    """What a drone is doing (values go on the wire: never renumber)."""

    IDLE = 0
    TO_PICKUP = 1
    TO_DROPOFF = 2
    TO_HOME = 3


@dataclass(frozen=True)
class CoordinatorConfig:
    """Coordinator parameters: one frozen value, each setting defined here once with its
    description (the fleet_coordinator node declares them as ROS parameters from these fields)."""

    solve_period_s: float = _p(0.5, "longest time between two solves [s]")
    min_solve_interval_s: float = _p(0.2, "shortest time between two solves [s]: an event (a "
                                     "new task, a pickup, a delivery) waits at most this long "
                                     "for its solve (0 = solve at every event; at most "
                                     "solve_period_s)")
    lost_after_s: float = _p(1.0, "a drone silent this long is LOST [s]")
    reassign_threshold_s: float = _p(2.0, "a busy drone switches task only if that saves more [s]")
    arrive_radius_m: float = _p(0.3, "a drone this close to its pickup/dropoff has arrived [m]")
    dense_max: int = _p(300, "the optimal dense solver up to this many drones and tasks, the "
                        "auction above (faster from ~300: docs/COORDINATOR.md)")
    knn_k: int = _p(8, "starting candidate tasks per bidder of the auction solver")
    priority_weight_s: float = _p(0.05, "travel time one priority step is worth [s]")
    urgency_weight_s: float = _p(10.0, "travel time an imminent deadline is worth [s]")
    urgency_horizon_s: float = _p(60.0, "urgency grows over this time before the deadline [s]")
    age_weight: float = _p(0.1, "travel time one second of waiting is worth [s/s]: old tasks get "
                           "cheaper, so a burst at one station cannot starve the rest")
    age_cap_s: float = _p(300.0, "waiting counts up to this long [s] (largest ageing bonus "
                          "age_weight * age_cap_s)")
    max_open_tasks: int = _p(10_000, "tasks waiting for a pickup (QUEUED or ASSIGNED) at most; "
                             "more are rejected QUEUE_FULL")
    max_open_per_station: int = _p(200, "the same per pick station (shelf-slot pickups count "
                                   "only towards max_open_tasks)")
    ledger_path: str = field(default=":memory:", metadata={
        "parameter": False, "description": "SQLite ledger file, or ':memory:'"})

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_solve_interval_s) and self.min_solve_interval_s >= 0.0):
            raise ConfigError(f"coordinator: min_solve_interval_s must be >= 0, got "
                              f"{self.min_solve_interval_s}")
        for name in ("solve_period_s", "lost_after_s", "arrive_radius_m", "urgency_horizon_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0.0):
                raise ConfigError(f"CoordinatorConfig.{name} must be finite and > 0, got {value}")
        for name in ("reassign_threshold_s", "priority_weight_s", "urgency_weight_s",
                     "age_weight", "age_cap_s"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0.0):
                raise ConfigError(f"CoordinatorConfig.{name} must be finite and ≥ 0, got {value}")
        if self.max_open_tasks < 1 or self.max_open_per_station < 1:
            raise ConfigError(
                f"CoordinatorConfig.max_open_tasks and max_open_per_station must be ≥ 1, got "
                f"{self.max_open_tasks}, {self.max_open_per_station}"
            )
        if self.dense_max < 1 or self.knn_k < 1:
            raise ConfigError(
                f"CoordinatorConfig.dense_max and knn_k must be ≥ 1, got {self.dense_max}, "
                f"{self.knn_k}"
            )


class SubmitResult(NamedTuple):
    """Answer to a submission: ``code`` is RejectCode.OK when accepted."""

    accepted: bool
    code: RejectCode
    reason: str


class AssignmentTable(NamedTuple):
    """Per-drone commands for one batched message (ACTIVE drones only, row order).

    Attributes:
        drone_ids: (D,) int64.
        task_ids: D task ids ("" when none).
        epochs: (D,) int64 current epoch of each drone (echo it back).
        phases: (D,) uint8 :class:`Phase` values.
        goals: (D, 3) goal positions [m]: pickup, dropoff or home pad.
    """

    drone_ids: IntArray
    task_ids: list[str]
    epochs: IntArray
    phases: NDArray[np.uint8]
    goals: FloatArray


class FleetMetrics(NamedTuple):
    """Snapshot of the coordinator's counters.

    ``tasks_per_hour`` counts deliveries over the last hour (or since the first
    submission when shorter); ``mean_wait_s`` is submission → first assignment and
    ``mean_delivery_s`` submission → delivery, over the tasks that got there [s].
    """

    queue_length: int
    assigned: int
    picked: int
    delivered: int
    failed: int
    cancelled: int
    active_drones: int
    lost_drones: int
    tasks_per_hour: float
    mean_wait_s: float
    mean_delivery_s: float


class Coordinator:
    """Owns tasks, drone liveness/epochs and the assignment; persists through a Ledger."""

    def __init__(
        self,
        layout: Layout,
        config: CoordinatorConfig | None = None,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the coordinator and restore whatever ``ledger`` holds.

        Args:
            layout: warehouse geometry.
            config: parameters (defaults if None).
            ledger: persistence; opened at ``config.ledger_path`` if None.
            clock: time source [s] used when a call gets no explicit time.
        """
        self.layout = layout
        self.config = config or CoordinatorConfig()
        self.ledger = ledger if ledger is not None else Ledger.open(self.config.ledger_path)
        self.clock = clock
        self.health = FleetHealth(self.config.lost_after_s)
        self._tasks: dict[str, Task] = {}
        self._pickup: dict[str, FloatArray] = {}
        self._dropoff: dict[str, FloatArray] = {}  # dropoff bay [m] per task
        self._pos: FloatArray = np.zeros((0, 3))
        self._task_of: list[str] = []
        self._dirty = True
        self._last_solve_s = -np.inf
        self._first_submit_s: float | None = None
        self._outbox: list[Transition] = []
        self._open: dict[str, int] = {}  # tasks waiting for a pickup, per pickup key
        self._bay: dict[tuple[str, int], tuple[str, int]] = {}  # (task, role) -> (station, bay)
        self._holder: dict[tuple[str, int], str] = {}  # (station, bay) -> task holding it
        self._restore(self.clock())

    # ----------------------------------------------------------------- bookkeeping
    def _restore(self, now_s: float) -> None:
        state = self.ledger.restore()
        if state.drone_epochs:
            ids = np.fromiter(state.drone_epochs, np.int64, len(state.drone_epochs))
            ep = np.array([state.drone_epochs[int(i)] for i in ids], np.int64).reshape(-1, 2)
            rows = self.health.add(ids, now_s, ep[:, 0])
            self.health.min_epoch[rows] = ep[:, 1]
            self._grow()
        for tid, task in state.tasks.items():
            self._tasks[tid] = task
            self._pickup[tid] = self._pickup_xyz(task.spec)
            self._dropoff[tid] = self._dropoff_xyz(task.spec)
            if task.state in (TaskState.ASSIGNED, TaskState.PICKED) and task.drone_id is not None:
                row = int(self.health.rows_of([task.drone_id])[0])
                if row < 0:
                    row = int(self.health.add(np.array([task.drone_id]), now_s)[0])
                    self._grow()
                self._task_of[row] = tid
        for (tid, role), (station, bay) in state.bays.items():
            self._take_bay(tid, role, station, bay)
        if state.tasks:
            self._first_submit_s = min(t.created_s for t in state.tasks.values())
        for task in self._tasks.values():
            if task.state in _OPEN:
                self._count_open(task.spec, +1)

    def _grow(self) -> None:
        n = len(self.health)
        extra = n - self._pos.shape[0]
        if extra > 0:
            self._pos = np.concatenate([self._pos, np.full((extra, 3), np.nan)])
            self._task_of.extend([""] * extra)

    def _pickup_xyz(self, spec: TaskSpec) -> FloatArray:
        """The pickup [m]: the shelf slot, or the pick station (its bay once one is held)."""
        if isinstance(spec.pickup, str):
            return self.layout.station(spec.pickup)
        return np.asarray(spec.pickup, dtype=np.float64)

    def _dropoff_xyz(self, spec: TaskSpec) -> FloatArray:
        """The drop station [m] (its bay once one is held)."""
        return self.layout.station(spec.dropoff)

    def _take_bay(self, tid: str, role: int, station: str, bay: int) -> None:
        """Record a reservation (already in the ledger) and aim the task's goal at the bay."""
        self._bay[(tid, role)] = (station, bay)
        self._holder[(station, bay)] = tid
        goal = self.layout.bay_position(station, bay)
        (self._pickup if role == PICKUP else self._dropoff)[tid] = goal

    def _free_bay(self, tid: str, role: int) -> None:
        station, bay = self._bay.pop((tid, role))
        del self._holder[(station, bay)]
        spec = self._tasks[tid].spec
        if role == PICKUP:
            self._pickup[tid] = self._pickup_xyz(spec)
        else:
            self._dropoff[tid] = self._dropoff_xyz(spec)

    def _bays_freed_by(self, changes: Sequence[tuple[Task, Transition]]) -> list[tuple[str, int]]:
        """(task, role) reservations the transitions end: a task back in the queue or final
        frees both, a pickup frees the pick bay, a delivery the drop bay."""
        out: list[tuple[str, int]] = []
        for _, tr in changes:
            if tr.to_state is TaskState.PICKED:
                roles: tuple[int, ...] = (PICKUP,)
            elif tr.to_state is TaskState.DELIVERED:
                roles = (DROPOFF,)
            elif tr.to_state in (TaskState.QUEUED, TaskState.CANCELLED, TaskState.FAILED):
                roles = (PICKUP, DROPOFF)
            else:
                continue
            out.extend((tr.task_id, r) for r in roles
                       if (tr.task_id, r) in self._bay and (tr.task_id, r) not in out)
        return out

    def bay_holders(self) -> dict[tuple[str, int], str]:
        """(station, bay index) -> id of the task holding it, for every held bay."""
        return dict(self._holder)

    def _drone_rows_record(self, rows: IntArray) -> list[tuple[int, int, int]]:
        h = self.health
        return [(int(h.ids[r]), int(h.epoch[r]), int(h.min_epoch[r])) for r in rows]

    def _commit(
        self, changes: Sequence[tuple[Task, Transition]], drone_rows: IntArray | None = None,
        drone_records: Sequence[tuple[int, int, int]] | None = None,
        reserve: Sequence[tuple[str, int, str, int]] = (),
    ) -> None:
        """Persist then apply ``changes`` (several per task allowed, in order). Drones are
        written from their rows' current values, or as ``drone_records`` (id, epoch,
        min_epoch) when the caller applies the change to FleetHealth only after the write.
        The bays the transitions free are released and ``reserve`` (task, role, station,
        bay) taken in the same transaction."""
        if not changes and (drone_rows is None or drone_rows.size == 0):
            return
        freed = self._bays_freed_by(changes)
        latest: dict[str, Task] = {}
        for task, _ in changes:
            latest[task.task_id] = task
        if drone_records is None:
            drone_records = self._drone_rows_record(drone_rows) if drone_rows is not None else []
        self.ledger.commit(list(latest.values()), [tr for _, tr in changes], drone_records,
                           bays_freed=freed,
                           bays_reserved=[(st, b, tid, role) for tid, role, st, b in reserve])
        for task, tr in changes:
            was, now = tr.from_state in _OPEN, tr.to_state in _OPEN
            if was != now:
                self._count_open(task.spec, +1 if now else -1)
        self._tasks.update(latest)
        for tid, role in freed:
            self._free_bay(tid, role)
        for tid, role, station, bay in reserve:
            self._take_bay(tid, role, station, bay)
        self._outbox.extend(tr for _, tr in changes)
        self._dirty = True

    def _now(self, t_s: float | None) -> float:
        return float(self.clock() if t_s is None else t_s)

    # ----------------------------------------------------------------- public API
    def drain_transitions(self) -> list[Transition]:
        """Transitions committed since the last call, in commit order (for status topics)."""
        out, self._outbox = self._outbox, []
        return out

    def task(self, task_id: str) -> Task:
        """Current state of one task; FleetError if unknown."""
        try:
            return self._tasks[task_id]
        except KeyError:
            raise FleetError(f"unknown task {task_id!r}") from None

    @property
    def tasks(self) -> dict[str, Task]:
        """Copy of all tasks by id (submission order)."""
        return dict(self._tasks)

    def submit(self, spec: TaskSpec, t_s: float | None = None) -> SubmitResult:
        """Validate and accept a task (QUEUED, persisted) or reject it changing nothing.

        The same request again (same id and content) is accepted without a change (code OK,
        the reason says it was known); the same id with other content is DUPLICATE_ID. A task
        beyond ``max_open_tasks`` / ``max_open_per_station`` is QUEUE_FULL.
        """
        now = self._now(t_s)
        known = self._tasks.get(spec.task_id) if isinstance(spec.task_id, str) else None
        if known is not None and known.spec == spec:
            return SubmitResult(True, RejectCode.OK,
                                f"already accepted (now {known.state.name}); nothing changed")
        rej = validate_task(spec, layout=self.layout, known_ids=self._tasks, now_s=now)
        if rej is not None:
            return SubmitResult(False, rej.code, rej.reason)
        full = self._queue_full(spec)
        if full:
            return SubmitResult(False, RejectCode.QUEUE_FULL, full)
        task, tr = new_task(spec, now)
        self.ledger.commit([task], [tr], new=True)
        self._count_open(spec, +1)
        self._outbox.append(tr)
        self._tasks[spec.task_id] = task
        self._pickup[spec.task_id] = self._pickup_xyz(spec)
        self._dropoff[spec.task_id] = self._dropoff_xyz(spec)
        if self._first_submit_s is None:
            self._first_submit_s = now
        self._dirty = True
        return SubmitResult(True, RejectCode.OK, "accepted")

    def cancel(self, task_id: str, reason: str = "cancelled", t_s: float | None = None) -> None:
        """Cancel a QUEUED or ASSIGNED task.

        Raises:
            FleetError: unknown task, or its state cannot be cancelled (PICKED or final).
        """
        task = self.task(task_id)
        drone = task.drone_id
        nxt = advance(task, TaskState.CANCELLED, self._now(t_s), reason=reason)
        self._commit([nxt])
        if drone is not None:
            self._release_rows(self.health.rows_of([drone]))

    def register(self, drone_id: int, t_s: float | None = None) -> int:
        """(Re)register a drone and return its new epoch (a LOST drone becomes ACTIVE).

        Raises:
            FleetError: the ledger refused the write (nothing changed).
        """
        now = self._now(t_s)
        did = int(drone_id)
        row = int(self.health.rows_of([did])[0])
        epoch = 1 if row < 0 else int(self.health.epoch[row]) + 1
        self.ledger.commit([], [], [(did, epoch, epoch)])
        self.health.register(did, now)
        self._grow()
        self._dirty = True
        return epoch

    def observe_fleet(
        self,
        drone_ids: NDArray[np.integer] | Sequence[int],
        positions: FloatArray,
        t_s: float,
        epochs: NDArray[np.integer] | Sequence[int] | None = None,
    ) -> None:
        """Take one fleet-state sample.

        Args:
            drone_ids: (D,) ids. Unknown ids are registered (epoch 1).
            positions: (D, 3) positions [m]; rows with non-finite values are ignored.
            t_s: sample time [s].
            epochs: (D,) epoch each drone echoes (its latest command's); None to skip the
                check. Samples from LOST drones or with an epoch older than the drone's
                last registration are ignored.

        Marks silent drones LOST (re-queuing their tasks), and advances ASSIGNED → PICKED →
        DELIVERED when the drone is within ``arrive_radius_m`` of its pickup / dropoff.
        """
        ids = np.asarray(drone_ids, dtype=np.int64).reshape(-1)
        pos = np.asarray(positions, dtype=np.float64)
        if pos.shape != (ids.size, 3):
            raise FleetError(f"positions must be ({ids.size}, 3) [m], got {pos.shape}")
        ep = None if epochs is None else np.asarray(epochs, dtype=np.int64).reshape(-1)
        if ep is not None and ep.shape != ids.shape:
            raise FleetError(f"epochs must be ({ids.size},), got {ep.shape}")
        rows = self.health.rows_of(ids)
        unknown = rows < 0
        if np.any(unknown):
            new_ids = np.unique(ids[unknown])
            self.ledger.commit([], [], [(int(i), 1, 1) for i in new_ids])
            self.health.add(new_ids, t_s)
            self._grow()
            rows = self.health.rows_of(ids)
            self._dirty = True
        finite = np.all(np.isfinite(pos), axis=1)
        rows, pos = rows[finite], pos[finite]
        ep = None if ep is None else ep[finite]
        ok = self.health.heard(rows, t_s, ep)
        rows, pos = rows[ok], pos[ok]
        ep = None if ep is None else ep[ok]
        self._pos[rows] = pos
        self._check_lost(t_s)
        self._detect_arrivals(rows, pos, ep, t_s)

    def maybe_solve(self, t_s: float | None = None) -> Matching | None:
        """Solve if ``solve_period_s`` elapsed, or an event made the last solve stale and
        ``min_solve_interval_s`` elapsed (a 10,000-drone fleet has an event nearly every
        control period; a solve there costs ~30 ms)."""
        now = self._now(t_s)
        since = now - self._last_solve_s
        cfg = self.config
        if since >= cfg.solve_period_s or (
                self._dirty and since >= min(cfg.min_solve_interval_s, cfg.solve_period_s)):
            return self.solve(now)
        return None

    def solve(self, t_s: float | None = None) -> Matching:
        """Assign open tasks to free (or re-assignable ASSIGNED) drones now.

        QUEUED tasks whose deadline passed are FAILED first. Drones carrying a payload keep
        it; ASSIGNED drones keep their task unless switching saves more than
        ``reassign_threshold_s``. Returns the matching (indices into this solve's arrays).
        """
        now = self._now(t_s)
        self._check_lost(now)
        cfg = self.config
        changes: list[tuple[Task, Transition]] = []
        for task in self._tasks.values():
            if (task.state is TaskState.QUEUED and task.spec.deadline_s is not None
                    and task.spec.deadline_s <= now):
                changes.append(advance(task, TaskState.FAILED, now, reason="deadline passed"))
        self._commit(changes)
        h = self.health
        n = len(h)
        busy = np.zeros(n, bool)
        for r in range(n):
            tid = self._task_of[r]
            if tid and self._tasks[tid].state is TaskState.PICKED:
                busy[r] = True
        eligible = np.nonzero(h.active_mask() & np.all(np.isfinite(self._pos), axis=1) & ~busy)[0]
        eligible_ids = set(h.ids[eligible].tolist())
        open_ids = [
            tid for tid, tk in self._tasks.items()
            if tk.state is TaskState.QUEUED
            or (tk.state is TaskState.ASSIGNED and tk.drone_id in eligible_ids)
        ]
        self._last_solve_s = now
        self._dirty = False
        if not open_ids or eligible.size == 0:
            return Matching(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
        specs = [self._tasks[t].spec for t in open_ids]
        pri = np.array([s.priority for s in specs], np.float64)
        dl = np.array([np.inf if s.deadline_s is None else s.deadline_s for s in specs])
        off = task_offsets(
            pri, dl, now, priority_weight_s=cfg.priority_weight_s,
            urgency_weight_s=cfg.urgency_weight_s, urgency_horizon_s=cfg.urgency_horizon_s,
        )
        waited = now - np.array([self._tasks[t].created_s for t in open_ids])
        off -= cfg.age_weight * np.clip(waited, 0.0, cfg.age_cap_s)  # old tasks get cheaper
        keep = self._bays_allow(open_ids, off, self._pos[eligible])
        open_ids = [t for t, k in zip(open_ids, keep, strict=True) if k]
        off = off[keep]
        if not open_ids:
            return Matching(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
        col = {tid: j for j, tid in enumerate(open_ids)}
        incumbent = np.array(
            [col.get(self._task_of[r], -1) for r in eligible], dtype=np.int64
        )
        q = np.stack([self._pickup[t] for t in open_ids])
        match = solve(
            self._pos[eligible], q, off, self.layout.cruise_speed_mps,
            dense_max=cfg.dense_max, k=cfg.knn_k,
            incumbent=incumbent, incumbent_bonus_s=cfg.reassign_threshold_s,
        )
        self._apply_matching(eligible, open_ids, incumbent, match, now)
        return match

    def assignments(self) -> AssignmentTable:
        """Commands for every ACTIVE drone (see :class:`AssignmentTable`)."""
        h = self.health
        rows = np.nonzero(h.active_mask())[0]
        goals = self.layout.home_pad(h.ids[rows]).copy()
        phases = np.full(rows.size, Phase.TO_HOME, np.uint8)
        task_of = self._task_of
        task_ids = [task_of[r] for r in rows.tolist()]
        for i in [i for i, tid in enumerate(task_ids) if tid]:  # the drones with a task
            tid = task_ids[i]
            if self._tasks[tid].state is TaskState.ASSIGNED:
                phases[i], goals[i] = Phase.TO_PICKUP, self._pickup[tid]
            else:
                phases[i] = Phase.TO_DROPOFF
                goals[i] = self._dropoff[tid]
        home = phases == Phase.TO_HOME
        near = np.linalg.norm(self._pos[rows] - goals, axis=1) <= self.config.arrive_radius_m
        phases[home & near] = Phase.IDLE
        return AssignmentTable(h.ids[rows].copy(), task_ids, h.epoch[rows].copy(), phases, goals)

    def metrics(self, t_s: float | None = None) -> FleetMetrics:
        """Counters and rates now (see :class:`FleetMetrics`)."""
        now = self._now(t_s)
        counts = dict.fromkeys(TaskState, 0)
        waits: list[float] = []
        deliveries: list[float] = []
        recent = 0
        for task in self._tasks.values():
            counts[task.state] += 1
            if task.first_assigned_s is not None:
                waits.append(task.first_assigned_s - task.created_s)
            if task.state is TaskState.DELIVERED and task.finished_s is not None:
                deliveries.append(task.finished_s - task.created_s)
                recent += task.finished_s >= now - 3600.0
        window = min(3600.0, now - self._first_submit_s) if self._first_submit_s is not None else 0
        lost = int(np.count_nonzero(self.health.status == DroneStatus.LOST))
        return FleetMetrics(
            queue_length=counts[TaskState.QUEUED],
            assigned=counts[TaskState.ASSIGNED],
            picked=counts[TaskState.PICKED],
            delivered=counts[TaskState.DELIVERED],
            failed=counts[TaskState.FAILED],
            cancelled=counts[TaskState.CANCELLED],
            active_drones=len(self.health) - lost,
            lost_drones=lost,
            tasks_per_hour=recent * 3600.0 / window if window > 0 else 0.0,
            mean_wait_s=float(np.mean(waits)) if waits else 0.0,
            mean_delivery_s=float(np.mean(deliveries)) if deliveries else 0.0,
        )

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _pickup_key(spec: TaskSpec) -> str:
        return spec.pickup if isinstance(spec.pickup, str) else ""

    def _count_open(self, spec: TaskSpec, delta: int) -> None:
        key = self._pickup_key(spec)
        self._open[key] = self._open.get(key, 0) + delta

    def _queue_full(self, spec: TaskSpec) -> str:
        """Why ``spec`` would exceed the admission limits ("" when it fits)."""
        cfg = self.config
        total = sum(self._open.values())
        if total >= cfg.max_open_tasks:
            return (f"queue full: {total} tasks wait for a pickup (max_open_tasks "
                    f"{cfg.max_open_tasks}); submit again later")
        key = self._pickup_key(spec)
        if key and self._open.get(key, 0) >= cfg.max_open_per_station:
            return (f"queue full at pick station {key!r}: {self._open[key]} tasks wait there "
                    f"(max_open_per_station {cfg.max_open_per_station}); submit again later")
        return ""

    def _bays_allow(self, open_ids: list[str], offsets: FloatArray, drone_xyz: FloatArray
                    ) -> NDArray[np.bool_]:
        """Which open tasks may be assigned now: those holding their bays already, and
        waiting ones while their pick and drop stations have a bay left, cheapest first by
        the assignment's own cost (offset + travel time from the nearest drone)."""
        n_bays = int(self.layout.bay_offsets.shape[0])
        free: dict[str, int] = {}
        for station, _ in self._holder:
            free[station] = free.get(station, n_bays) - 1
        pickups = np.stack([self._pickup[t] for t in open_ids])
        nearest, _ = cKDTree(drone_xyz).query(pickups)
        score = offsets + np.asarray(nearest) / self.layout.cruise_speed_mps
        keep = np.zeros(len(open_ids), bool)
        for j in np.argsort(score, kind="stable"):
            task = self._tasks[open_ids[j]]
            if task.state is not TaskState.QUEUED:
                keep[j] = True
                continue
            need = [task.spec.dropoff]
            if isinstance(task.spec.pickup, str):
                need.append(task.spec.pickup)
            if all(free.get(st, n_bays) >= need.count(st) for st in need):
                for st in need:
                    free[st] = free.get(st, n_bays) - 1
                keep[j] = True
        return keep

    def _choose_bay(self, tid: str, role: int, station: str, near: FloatArray,
                    taken: set[tuple[str, int]]) -> int | None:
        """The task's own bay at ``station`` if it holds one, else the free bay nearest
        ``near`` [m] not in ``taken``; None when every bay is held."""
        own = self._bay.get((tid, role))
        if own is not None and own[0] == station:
            return own[1]
        best, best_d = None, np.inf
        for k in range(self.layout.bay_offsets.shape[0]):
            if (station, k) in self._holder or (station, k) in taken:
                continue
            d = float(np.linalg.norm(self.layout.bay_position(station, k) - near))
            if d < best_d:
                best, best_d = k, d
        return best

    def _bays_for(self, tid: str, drone_xyz: FloatArray, taken: set[tuple[str, int]]
                  ) -> list[tuple[str, int, str, int]] | None:
        """(task, role, station, bay) reservations for assigning ``tid`` to a drone at
        ``drone_xyz``, or None when its stations have no free bay."""
        spec = self._tasks[tid].spec
        out: list[tuple[str, int, str, int]] = []
        pickup_xyz = self._pickup_xyz(spec)
        if isinstance(spec.pickup, str):
            bay = self._choose_bay(tid, PICKUP, spec.pickup, drone_xyz, taken)
            if bay is None:
                return None
            out.append((tid, PICKUP, spec.pickup, bay))
            pickup_xyz = self.layout.bay_position(spec.pickup, bay)
        bay = self._choose_bay(tid, DROPOFF, spec.dropoff, pickup_xyz,
                               taken | {(st, b) for _, _, st, b in out})
        if bay is None:
            return None
        out.append((tid, DROPOFF, spec.dropoff, bay))
        return out

    def _release_rows(self, rows: IntArray) -> None:
        for r in rows:
            if r >= 0:
                self._task_of[int(r)] = ""
        self._dirty = True

    def _check_lost(self, t_s: float) -> None:
        lost = self.health.silent(t_s)
        if lost.size == 0:
            return
        changes = []
        for r in lost:
            tid = self._task_of[int(r)]
            if tid:
                task = self._tasks[tid]
                why = f"drone {int(self.health.ids[r])} lost"
                if task.state is TaskState.PICKED:
                    why += "; payload re-queued from its pickup"
                changes.append(advance(task, TaskState.QUEUED, t_s, reason=why))
        h = self.health
        self._commit(changes, lost, [(int(h.ids[r]), int(h.epoch[r]) + 1, int(h.min_epoch[r]))
                                     for r in lost])
        h.mark_lost(lost)
        self._release_rows(lost)

    def _detect_arrivals(
        self, rows: IntArray, pos: FloatArray, epochs: IntArray | None, t_s: float
    ) -> None:
        if rows.size == 0:
            return
        tids = [self._task_of[int(r)] for r in rows]
        has = np.array([bool(t) for t in tids])
        if not np.any(has):
            return
        idx = np.nonzero(has)[0]
        goals = np.empty((idx.size, 3))
        for j, i in enumerate(idx):
            task = self._tasks[tids[i]]
            goals[j] = (self._pickup[tids[i]] if task.state is TaskState.ASSIGNED
                        else self._dropoff[tids[i]])
        arrived = idx[np.linalg.norm(pos[idx] - goals, axis=1) <= self.config.arrive_radius_m]
        changes: list[tuple[Task, Transition]] = []
        freed: list[int] = []
        for i in arrived:
            task = self._tasks[tids[i]]
            if epochs is not None and task.epoch is not None and epochs[i] < task.epoch:
                continue  # drone still flying an older command
            if task.state is TaskState.ASSIGNED:
                changes.append(advance(task, TaskState.PICKED, t_s, reason="at pickup"))
            elif task.state is TaskState.PICKED:
                changes.append(advance(task, TaskState.DELIVERED, t_s, reason="at dropoff"))
                freed.append(int(rows[i]))
        self._commit(changes)
        self._release_rows(np.array(freed, np.int64))

    def _apply_matching(
        self,
        eligible: IntArray,
        open_ids: list[str],
        incumbent: IntArray,
        match: Matching,
        now: float,
    ) -> None:
        new_task_of = np.full(eligible.size, -1, np.int64)
        new_task_of[match.drone_idx] = match.task_idx
        reserve: list[tuple[str, int, str, int]] = []
        taken: set[tuple[str, int]] = set()
        for i in np.nonzero((new_task_of != incumbent) & (new_task_of >= 0))[0]:
            bays = self._bays_for(open_ids[new_task_of[i]], self._pos[eligible[i]], taken)
            if bays is None:  # its stations filled up in this solve: it waits
                new_task_of[i] = -1
                continue
            reserve.extend(bays)
            taken.update((st, b) for _, _, st, b in bays)
        changed = np.nonzero(new_task_of != incumbent)[0]
        if changed.size == 0:
            return
        current = {tid: self._tasks[tid] for tid in open_ids}
        changes: list[tuple[Task, Transition]] = []
        for i in changed:  # 1) release tasks leaving their drone
            if incumbent[i] >= 0:
                tid = open_ids[incumbent[i]]
                nxt = advance(current[tid], TaskState.QUEUED, now, reason="reassigned")
                current[tid] = nxt[0]
                changes.append(nxt)
        rows = eligible[changed]
        new_epochs = self.health.epoch[rows] + 1
        for i, ep in zip(changed, new_epochs, strict=True):  # 2) assign
            if new_task_of[i] >= 0:
                tid = open_ids[new_task_of[i]]
                drone = int(self.health.ids[eligible[i]])
                nxt = advance(current[tid], TaskState.ASSIGNED, now, drone_id=drone,
                              epoch=int(ep))
                current[tid] = nxt[0]
                changes.append(nxt)
        h = self.health
        self._commit(changes, rows, [(int(h.ids[r]), int(e), int(h.min_epoch[r]))
                                     for r, e in zip(rows, new_epochs, strict=True)],
                     reserve=reserve)
        h.epoch[rows] = new_epochs
        for i in changed:
            self._task_of[int(eligible[i])] = (
                open_ids[new_task_of[i]] if new_task_of[i] >= 0 else ""
            )
