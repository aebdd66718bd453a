"""Run reports and replay evaluation, without rclpy.

* :mod:`wm_agent.evaluation.report` — :class:`RunData` (arrays) → PNG plots, ``report.md`` and
  ``metrics.json`` (:func:`write_report`); shared by ``wm-agent sim`` run folders and
  ``wm-agent eval``.
* :mod:`wm_agent.evaluation.bag_eval` — :func:`evaluate_bag` / :func:`eval_main` (``wm-agent eval
  BAG``): world-model k-step prediction error vs constant velocity, offline re-planning vs the
  recorded commands, planner latency, tasks, collisions, eval throughput.
* :mod:`wm_agent.evaluation.synthetic` — small simulated flights written as bags (tests, bench).

See docs/EVALUATION.md.
"""

from __future__ import annotations

from wm_agent.evaluation.run_data import (
    EventLog,
    PlannerStats,
    PredictionErrors,
    ReplanStats,
    RunData,
    TaskTransitions,
    Trajectories,
    summarise,
)

__all__ = [
    "EventLog",
    "PlannerStats",
    "PredictionErrors",
    "ReplanStats",
    "RunData",
    "TaskTransitions",
    "Trajectories",
    "summarise",
]
