"""The report an operator needs (issue #14): the run's options as used, its verdict, speed,
latency, tasks, collisions with where and when, the fault timeline, and an animation of the
fleet over the warehouse with one frame per chosen interval. Pure: arrays in, files out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wm_agent.errors import ConfigError
from wm_agent.evaluation.animation import (
    MAX_FRAMES,
    default_interval,
    frame_times,
    positions_at,
    write_animation,
)
from wm_agent.evaluation.report import write_report
from wm_agent.evaluation.run_data import EventLog, PlannerStats, RunData, Trajectories
from wm_agent.sim import load_scenario


def fleet(seconds: float = 10.0, n: int = 3, hz: float = 24.0, moving: bool = True) -> Trajectories:
    t = np.arange(0.0, seconds + 1e-9, 1.0 / hz)
    pos = np.zeros((t.size, n, 3))
    pos[:, :, 0] = 2.0 + (t[:, None] * 1.5 if moving else 0.0) + np.arange(n)[None, :]
    pos[:, :, 1] = 2.0 + np.arange(n)[None, :]
    pos[:, :, 2] = 1.0
    pos[: t.size // 4, 2] = np.nan                     # drone 2 reports late
    return Trajectories(t, np.arange(n), pos)


def collisions() -> EventLog:
    return EventLog(t=np.array([3.2, 7.9]), kind=np.array([0, 0]), drone=np.array([1, 0]),
                    other=np.array([-1, 2]), position=np.array([[6.8, 3.0, 1.0], [14.0, 2.1, 0.9]]))


@pytest.mark.parametrize("interval, frames", [(0.5, 21), (1.0, 11), (3.0, 4)])
def test_the_animation_has_one_frame_per_interval(tmp_path: Path, interval: float, frames: int) -> None:
    gif = write_animation(tmp_path / "fleet.gif", fleet(), load_scenario("warehouse"), collisions(),
                          interval_s=interval)
    assert gif.frames == frames == frame_times(0.0, 10.0, interval).size
    with Image.open(gif.path) as im:
        assert im.format == "GIF" and im.n_frames == frames and im.size == gif.size


def test_a_still_fleet_still_gets_every_frame(tmp_path: Path) -> None:
    """Pillow merges identical consecutive GIF frames: the clock in the corner keeps them apart."""
    gif = write_animation(tmp_path / "still.gif", fleet(moving=False), None, None, interval_s=0.5)
    with Image.open(gif.path) as im:
        assert im.n_frames == 21


def test_frames_show_each_drone_where_it_last_was() -> None:
    traj = fleet()
    at = positions_at(traj, np.array([0.0, 5.0, 10.0]))
    assert np.isnan(at[0, 2]).all(), "drone 2 has not reported yet at t = 0"
    np.testing.assert_allclose(at[1, 0], [2.0 + 7.5, 2.0, 1.0])
    np.testing.assert_allclose(at[2, 1], traj.position[-1, 1])


def test_default_interval_caps_the_frames() -> None:
    assert default_interval(60.0) == 0.5
    for duration in (60.0, 600.0, 3600.0, 86400.0):
        assert frame_times(0.0, duration, default_interval(duration)).size <= MAX_FRAMES
    with pytest.raises(ConfigError, match="interval"):
        frame_times(0.0, 1.0, 0.0)


def run_info() -> dict[str, object]:
    return {
        "options": {"scenario": "warehouse", "drones": 3, "seed": 7, "mode": "lockstep",
                    "fidelity": "fleet", "backend": "onnxruntime", "model": "/m/wm_plan",
                    "task_rate_per_min": 90.0, "faults": True, "duration_s": 10.0, "domain_id": 42,
                    "odom_drones": 16},
        "verdict": {"valid": False, "exit_code": 1, "summary": "invalid run: the recorder lost 3 message(s)",
                    "problems": ["the recorder lost 3 message(s) (/clock 3)"]},
        "sim_time_s": 10.0, "wall_time_s": 23.7, "real_time_factor": 0.84,
        "state_to_command_latency_ms": {"p50": 12.5, "p99": 40.0, "samples": 230},
        "planner_answered": {"states": 239, "answered": 239, "fraction": 1.0},
        "tasks": {"submitted": 12, "accepted": 12, "delivered": 5, "exactly_once": True},
        "delivered_fraction": 5 / 12,
        "faults": {"plan": {"dropout_drone": 0, "dropout_start_s": 3.0, "dropout_s": 4.0},
                   "dropout": {"drone": 0, "marked_lost_after_s": 1.5, "task_requeued_after_s": 1.6,
                               "task_reassigned_after_s": 1.7},
                   "planner_stall": {"stall_s": 2.0, "stopped_sim_s": 5.0, "resumed_sim_s": 7.0,
                                     "failsafe_hold_after_s": 0.5, "drones_held": 3,
                                     "recovered_after_resume_s": 0.4},
                   "coordinator_restart": {"killed_sim_s": 7.0, "down_s": 1.0,
                                           "first_assignments_after_restart_s": 0.8,
                                           "first_metrics_after_restart_s": 1.1}},
    }


def test_the_report_shows_the_run_its_collisions_faults_and_animation(tmp_path: Path) -> None:
    t = np.linspace(0.0, 10.0, 120)
    planner = PlannerStats(t=t, latency_ms=np.full(120, 30.0), substitutions=np.zeros((120, 4)),
                           batch_size=np.full(120, 3))
    run = RunData(scenario="warehouse", source="bag", duration_s=10.0, trajectories=fleet(),
                  planner=planner, events=collisions())
    files = write_report(run, tmp_path / "report", load_scenario("warehouse"), run_info=run_info(),
                         animation=True, animation_interval_s=1.0)
    md = files.markdown.read_text()
    assert files.plots["animation"].name == "fleet.gif"
    assert "![The fleet over the warehouse](fleet.gif)" in md and "11 frames (" in md
    for row in ("| seed | 7 |", "| mode | lockstep |", "| fidelity | fleet |", "| model | `/m/wm_plan` |",
                "| real-time factor (while stepping) | 0.84 |",
                "| state → command latency p50 / p99 [ms] | 12.5 / 40.0 (230 samples) |",
                "| delivered fraction (of accepted) | 0.417 |",
                "**invalid run: the recorder lost 3 message(s)**"):
        assert row in md, row
    assert "| 3.20 | 1 | obstacle / floor | 6.80 | 3.00 | 1.00 |" in md
    assert "| 7.90 | 0 | drone 2 | 14.00 | 2.10 | 0.90 |" in md
    assert "| radio dropout of drone 0 | 3.0 – 7.0 | marked lost after 1.50 s" in md
    assert "| fleet planner stalled (SIGSTOP) for 2 s | 5.0 – 7.0 | failsafe hold after 0.50 s" in md
    assert "plan period [ms]" in md and "| 83.3 |" in md
    assert "Of 360 planned drone commands" in md
    assert json.loads(files.metrics.read_text())["run"]["options"]["seed"] == 7
