"""Report core: RunData arrays → PNGs, report.md and metrics.json; each plot only when its data is
present, the Markdown names the sections without data, metrics are finite JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wm_agent.errors import ConfigError
from wm_agent.evaluation.report import write_report
from wm_agent.evaluation.run_data import (
    EventLog,
    PlannerStats,
    PredictionErrors,
    RunData,
    TaskTransitions,
    Trajectories,
    cumulative_tasks,
    percentiles,
    summarise,
    task_counts,
)
from wm_agent.sim import load_scenario


def strict_json(path: Path) -> Any:
    """Parse JSON refusing NaN / Infinity."""
    def refuse(token: str) -> float:
        raise AssertionError(f"{path} holds {token}")
    return json.loads(path.read_text(), parse_constant=refuse)


def all_numbers_finite(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(all_numbers_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(all_numbers_finite(v) for v in obj)
    return not isinstance(obj, float) or math.isfinite(obj)


def tasks() -> TaskTransitions:
    # task 0: queued, assigned, picked, delivered; task 1: queued, failed; task 2: queued twice (re-queued)
    return TaskTransitions(
        t=np.array([0.0, 0.5, 1.0, 4.0, 0.2, 3.0, 1.0, 2.0, 2.5]),
        task=np.array([0, 0, 0, 0, 1, 1, 2, 2, 2]),
        state=np.array([0, 1, 2, 3, 0, 4, 0, 1, 0]),
        previous=np.array([0, 0, 1, 2, 0, 0, 0, 0, 1]),
        drone=np.array([-1, 3, 3, 3, -1, -1, -1, 2, -1]),
        task_ids=("a", "b", "c"),
    )


def full_run() -> RunData:
    t = np.arange(100) / 10.0
    pos = np.stack([np.stack([2 + 0.2 * t, 3 + i + 0.1 * t, np.ones_like(t)], 1) for i in range(3)], 1)
    pos[40:60, 1] = np.nan                        # drone 1 absent for 2 s
    rng = np.random.default_rng(0)
    return RunData(
        scenario="warehouse", source="unit", duration_s=10.0,
        trajectories=Trajectories(t, np.array([0, 1, 2]), pos),
        tasks=tasks(),
        planner=PlannerStats(t, rng.gamma(2.0, 1.0, t.size), rng.integers(0, 3, (t.size, 4)).astype(float),
                             np.full(t.size, 3)),
        events=EventLog(np.array([5.0, 6.0]), np.array([0, 7]), np.array([1, 2]), np.array([-1, -1]),
                        np.array([[3.0, 4.0, 1.0], [4.0, 5.0, 0.0]])),
        prediction=PredictionErrors((1, 5, 10, 20), 1 / 12, 10,
                                    {"world_model": [0.01, 0.03, 0.06, 0.1],
                                     "constant_velocity": [0.01, 0.1, 0.3, 1.0]},
                                    {"world_model": [0.1, 0.1, 0.1, 0.1],
                                     "constant_velocity": [0.1, 0.4, 0.8, 1.0]}),
        replay=True,
    )


def test_full_report_writes_every_plot_and_finite_metrics(tmp_path: Path) -> None:
    files = write_report(full_run(), tmp_path / "rep", load_scenario("warehouse"))
    assert set(files.plots) == {"trajectories", "tasks", "latency", "substitutions", "prediction"}
    for p in [files.markdown, files.metrics, *files.plots.values()]:
        assert p.is_file() and p.stat().st_size > 0
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in files.plots.values())
    m = strict_json(files.metrics)
    assert all_numbers_finite(m)
    assert m["tasks"] == {"accepted": 3, "assigned": 2, "picked": 1, "delivered": 1, "failed": 1,
                          "cancelled": 0, "rejected": 0, "delivered_per_min": 6.0}
    assert m["collisions"] == 1 and m["events"]["landed"] == 1
    assert m["prediction"]["wm_to_cv_position_ratio_at_10"] == pytest.approx(0.2)
    assert m["sections_without_data"] == ["replan"]
    md = files.markdown.read_text()
    for png in files.plots.values():
        assert f"]({png.name})" in md
    assert "Collisions (FleetEvent COLLISION): **1**" in md and "offline re-planning" in md


def test_live_run_with_only_trajectories_names_the_missing_sections(tmp_path: Path) -> None:
    run = full_run()
    run = RunData(scenario="warehouse", duration_s=10.0, trajectories=run.trajectories)
    files = write_report(run, tmp_path, None)        # no scenario: paths only
    assert list(files.plots) == ["trajectories"]
    assert files.missing == ("tasks", "latency", "substitutions", "events")
    md = files.markdown.read_text()
    assert "No data in this run" in md and "`/tasks/status`" in md and "`/fleet/events`" in md
    assert "prediction" not in md                     # a live run has no prediction section
    m = strict_json(files.metrics)
    assert m["tasks"] is None and m["planner"] is None and m["collisions"] is None


def test_empty_run_still_writes_a_report(tmp_path: Path) -> None:
    files = write_report(RunData(), tmp_path, None)
    assert files.plots == {} and files.markdown.stat().st_size > 0
    assert strict_json(files.metrics)["trajectories"] is None


def test_cumulative_tasks_count_first_arrivals() -> None:
    c = cumulative_tasks(tasks())
    np.testing.assert_allclose(c["accepted"][0], [0.0, 0.2, 1.0])     # task 2's re-queue not counted
    np.testing.assert_array_equal(c["accepted"][1], [1, 2, 3])
    np.testing.assert_allclose(c["delivered"][0], [4.0])
    np.testing.assert_allclose(c["failed"][0], [3.0])
    assert task_counts(tasks())["accepted"] == 3


def test_percentiles_ignore_non_finite_and_say_none_without_data() -> None:
    p = percentiles(np.array([1.0, 2.0, np.nan, 3.0, np.inf]))
    assert p["count"] == 3 and p["p50"] == 2.0 and p["max"] == 3.0
    assert percentiles(np.array([np.nan]))["p99"] is None


def test_summary_of_nan_values_is_none_not_nan() -> None:
    run = full_run()
    run.prediction = PredictionErrors((1,), 1 / 12, 0, {"world_model": [float("nan")]},
                                      {"world_model": [float("nan")]})
    m = summarise(run)
    assert m["prediction"]["position_error_m"]["world_model"] == [None]
    json.dumps(m, allow_nan=False)


def test_trajectory_shapes_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"expected shape \(T, N, 3\) = \(4, 2, 3\)"):
        Trajectories(np.zeros(4), np.array([0, 1]), np.zeros((4, 3, 3)))
