"""What a fleet run is, as arrays (no ROS messages): trajectories, task transitions, planner
statistics, events, and for a replay evaluation the prediction and re-planning errors.

Pure numpy, no rclpy. Both ``wm-agent sim`` run folders and ``wm-agent eval BAG`` fill a
:class:`RunData` and hand it to :func:`wm_agent.evaluation.report.write_report`; :func:`summarise`
turns it into the JSON-ready metrics of ``metrics.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wm_agent.errors import ConfigError

#: TaskStatus.state values (wm_agent_msgs/TaskStatus).
TASK_QUEUED, TASK_ASSIGNED, TASK_PICKED, TASK_DELIVERED, TASK_FAILED, TASK_CANCELLED, TASK_REJECTED = range(7)
TASK_STATE_NAMES = ("queued", "assigned", "picked", "delivered", "failed", "cancelled", "rejected")
#: PlannerStatus.SUB_* indices.
SUB_NAMES = ("non_finite", "speed_clamp", "brake", "fallback")
#: FleetEvent kinds (wm_agent_msgs/FleetEvent constants), index = kind.
EVENT_NAMES = ("collision", "failsafe_hold", "failsafe_land", "dropout", "invalid_command",
               "safety_substitution", "recovered", "landed", "planner_stall", "coordinator_restart")
EVENT_COLLISION = 0


@dataclass(frozen=True)
class Trajectories:
    """Positions of N drones at T sample times.

    Attributes:
        t: (T,) sample times [s] from the run's start.
        ids: (N,) drone ids.
        position: (T, N, 3) [m], map ENU; NaN where a drone was not reported.
    """

    t: NDArray[np.float64]
    ids: NDArray[np.int64]
    position: NDArray[np.float64]

    def __post_init__(self) -> None:
        t = np.asarray(self.t, np.float64).reshape(-1)
        ids = np.asarray(self.ids, np.int64).reshape(-1)
        pos = np.asarray(self.position, np.float64)
        if pos.shape != (t.size, ids.size, 3):
            raise ConfigError(
                f"trajectories: position: expected shape (T, N, 3) = ({t.size}, {ids.size}, 3) "
                f"from t and ids, got {pos.shape}"
            )
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "position", pos)

    @property
    def empty(self) -> bool:
        return self.t.size == 0 or self.ids.size == 0 or not np.isfinite(self.position).any()


@dataclass(frozen=True)
class TaskTransitions:
    """K TaskStatus transitions in time order.

    Attributes:
        t: (K,) [s]. task: (K,) task index into ``task_ids``. state, previous: (K,) TaskStatus states.
        drone: (K,) drone id, -1 when none. task_ids: the distinct task ids.
        rejections: rejected submissions (from /tasks/bulk_ack: never a TaskStatus, since a
            rejected request has no lifecycle; older bags carry REJECTED statuses instead).
    """

    t: NDArray[np.float64]
    task: NDArray[np.int64]
    state: NDArray[np.int64]
    previous: NDArray[np.int64]
    drone: NDArray[np.int64]
    task_ids: tuple[str, ...] = ()
    rejections: int = 0

    @property
    def empty(self) -> bool:
        return np.asarray(self.t).size == 0


@dataclass(frozen=True)
class PlannerStats:
    """P PlannerStatus messages.

    Attributes:
        t: (P,) [s]. latency_ms: (P,) plan latency [ms]. substitutions: (P, 4) counts of that
        step per SUB_* kind. batch_size: (P,) drones planned in the step.
    """

    t: NDArray[np.float64]
    latency_ms: NDArray[np.float64]
    substitutions: NDArray[np.float64]
    batch_size: NDArray[np.int64]

    @property
    def empty(self) -> bool:
        return np.asarray(self.t).size == 0


@dataclass(frozen=True)
class EventLog:
    """E fleet events.

    Attributes:
        t: (E,) [s]. kind: (E,) FleetEvent kind. drone, other: (E,) ids (other -1: none).
        position: (E, 3) [m].
    """

    t: NDArray[np.float64]
    kind: NDArray[np.int64]
    drone: NDArray[np.int64]
    other: NDArray[np.int64]
    position: NDArray[np.float64]

    @property
    def empty(self) -> bool:
        return np.asarray(self.t).size == 0

    def collisions(self) -> NDArray[np.bool_]:
        """(E,) mask of COLLISION events."""
        return np.asarray(self.kind) == EVENT_COLLISION


@dataclass(frozen=True)
class PredictionErrors:
    """Open-loop k-step errors of models on the same windows.

    Attributes:
        k: steps (of ``dt`` seconds). dt: [s]. windows: number of (drone, start) windows.
        position_m: model → mean position error [m] per k. velocity_mps: model → [m/s] per k.
        position_p95_m: model → 95th percentile position error [m] per k.
    """

    k: tuple[int, ...]
    dt: float
    windows: int
    position_m: dict[str, list[float]]
    velocity_mps: dict[str, list[float]]
    position_p95_m: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplanStats:
    """Offline re-planned actions vs the recorded commands.

    Attributes:
        samples: compared (drone, step) pairs. dv_mean, dv_p50, dv_p95, dv_max: |Δv| [m/s].
        backend: planner backend. config: short description of the planner configuration.
        latency_ms_mean: mean offline ``plan()`` latency per call [ms]. batch: drones per call.
    """

    samples: int
    dv_mean: float
    dv_p50: float
    dv_p95: float
    dv_max: float
    backend: str
    config: str
    latency_ms_mean: float
    batch: int


@dataclass
class RunData:
    """Everything a report shows; any part may be missing (None / empty).

    Attributes:
        scenario: scenario name (e.g. ``warehouse``). source: where the data came from (bag path,
        run folder). duration_s: length of the run [s]. trajectories, tasks, planner, events:
        recorded data. prediction, replan: replay-evaluation results. throughput: e.g.
        ``{"messages": n, "read_s": s, "messages_per_s": r}``. warnings: lines shown at the top
        of the report (e.g. truncated bag). notes: free lines (e.g. the choice of goals).
        replay: a replay evaluation (``wm-agent eval``): its report expects the prediction and
        re-planning sections and says when they had no data; a live run's report leaves them out.
    """

    scenario: str = ""
    source: str = ""
    duration_s: float = 0.0
    trajectories: Trajectories | None = None
    tasks: TaskTransitions | None = None
    planner: PlannerStats | None = None
    events: EventLog | None = None
    prediction: PredictionErrors | None = None
    replan: ReplanStats | None = None
    throughput: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    replay: bool = False


def _finite(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(float(x)) else None


def percentiles(values: NDArray[np.floating], qs: tuple[float, ...] = (50, 95, 99)
                ) -> dict[str, float | None]:
    """``{"mean", "p50", "p95", "p99", "max", "count"}`` of the finite values (None: no data)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    out: dict[str, float | None] = {"count": float(v.size)}
    if v.size == 0:
        return {**out, "mean": None, **{f"p{int(q)}": None for q in qs}, "max": None}
    out["mean"] = _finite(v.mean())
    for q in qs:
        out[f"p{int(q)}"] = _finite(np.percentile(v, q))
    out["max"] = _finite(v.max())
    return out


def task_counts(tasks: TaskTransitions) -> dict[str, int]:
    """Number of tasks that reached each state (accepted = entered QUEUED at least once)."""
    state = np.asarray(tasks.state, np.int64)
    task = np.asarray(tasks.task, np.int64)
    out: dict[str, int] = {}
    for s, name in enumerate(TASK_STATE_NAMES):
        out[name] = int(np.unique(task[state == s]).size)
    out["accepted"] = out.pop("queued")
    out["rejected"] += int(tasks.rejections)
    return out


def cumulative_tasks(tasks: TaskTransitions) -> dict[str, tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """name → (times [s], cumulative count) of delivered, accepted (first QUEUED) and failed tasks."""
    t = np.asarray(tasks.t, np.float64)
    state = np.asarray(tasks.state, np.int64)
    task = np.asarray(tasks.task, np.int64)
    out: dict[str, tuple[NDArray[np.float64], NDArray[np.int64]]] = {}
    for name, s in (("accepted", TASK_QUEUED), ("delivered", TASK_DELIVERED), ("failed", TASK_FAILED)):
        idx = np.flatnonzero(state == s)
        _, first = np.unique(task[idx], return_index=True)   # first time each task reached s
        times = np.sort(t[idx[first]])
        out[name] = (times, np.arange(1, times.size + 1, dtype=np.int64))
    return out


def summarise(run: RunData) -> dict[str, Any]:
    """JSON-ready metrics (every number finite; a missing section is None)."""
    m: dict[str, Any] = {"scenario": run.scenario, "source": run.source,
                         "duration_s": _finite(run.duration_s)}
    tr = run.trajectories
    if tr is not None and not tr.empty:
        seen = np.isfinite(tr.position).all(axis=2)
        steps = np.linalg.norm(np.diff(tr.position, axis=0), axis=2)
        m["trajectories"] = {
            "drones": int(seen.any(axis=0).sum()),
            "samples": int(tr.t.size),
            "distance_m_total": _finite(np.nansum(steps)),
        }
    else:
        m["trajectories"] = None
    minutes = run.duration_s / 60.0
    if run.tasks is not None and not run.tasks.empty:
        counts = task_counts(run.tasks)
        m["tasks"] = {**counts, "delivered_per_min": _finite(counts["delivered"] / minutes)
                      if minutes > 0 else None}
    else:
        m["tasks"] = None
    if run.planner is not None and not run.planner.empty:
        subs = np.nan_to_num(np.asarray(run.planner.substitutions, np.float64))
        m["planner"] = {
            "latency_ms": percentiles(run.planner.latency_ms),
            "substitutions_total": {n: int(subs[:, i].sum()) for i, n in enumerate(SUB_NAMES)},
            "steps": int(np.asarray(run.planner.t).size),
        }
    else:
        m["planner"] = None
    if run.events is not None:
        kinds = np.asarray(run.events.kind, np.int64)
        m["events"] = {name: int((kinds == i).sum()) for i, name in enumerate(EVENT_NAMES)}
        m["collisions"] = int(run.events.collisions().sum())
    else:
        m["events"] = None
        m["collisions"] = None
    if run.prediction is not None:
        p = run.prediction
        m["prediction"] = {"k": list(p.k), "dt_s": p.dt, "windows": p.windows,
                           "position_error_m": _clean_lists(p.position_m),
                           "velocity_error_mps": _clean_lists(p.velocity_mps),
                           "position_error_p95_m": _clean_lists(p.position_p95_m)}
        wm, cv = p.position_m.get("world_model"), p.position_m.get("constant_velocity")
        if wm and cv and 10 in p.k and cv[p.k.index(10)] > 0:
            i = p.k.index(10)
            m["prediction"]["wm_to_cv_position_ratio_at_10"] = _finite(wm[i] / cv[i])
    else:
        m["prediction"] = None
    if run.replan is not None:
        r = run.replan
        m["replan"] = {"samples": r.samples, "dv_mean_mps": _finite(r.dv_mean),
                       "dv_p50_mps": _finite(r.dv_p50), "dv_p95_mps": _finite(r.dv_p95),
                       "dv_max_mps": _finite(r.dv_max), "backend": r.backend, "config": r.config,
                       "latency_ms_mean": _finite(r.latency_ms_mean), "batch": r.batch}
    else:
        m["replan"] = None
    m["throughput"] = {k: _finite(v) for k, v in run.throughput.items()} or None
    m["warnings"] = list(run.warnings)
    return m


def _clean_lists(d: dict[str, list[float]]) -> dict[str, list[float | None]]:
    return {k: [_finite(x) for x in v] for k, v in d.items()}
