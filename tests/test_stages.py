"""Stage times (wm_agent.stages) without ROS: a timer's accumulation and reset, the per-sim-second
budget over many nodes' reports, and a StageTimes message checked on the way in."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from wm_agent.conversions import stage_report_from_msg
from wm_agent.errors import MessageError
from wm_agent.stages import (
    PeriodicReports,
    StageReport,
    StageTimer,
    format_budget,
    per_sim_second,
)


def test_a_timer_accumulates_per_stage_and_resets_on_take() -> None:
    t = StageTimer()
    t.add("plan", 2.0)
    t.add("plan", 3.0, calls=2)
    t.add_all({"safety": 1.5, "plan": 1.0})
    with t.stage("sleep"):
        time.sleep(0.01)
    r = t.take("fleet_planner", 0.5)
    got = dict(zip(r.stages, zip(r.wall_ms, r.calls, strict=True), strict=True))
    assert got["plan"] == (6.0, 4) and got["safety"] == (1.5, 1)
    assert 9.0 <= got["sleep"][0] < 200.0 and got["sleep"][1] == 1
    assert r.node == "fleet_planner" and r.sim_s == 0.5
    empty = t.take("fleet_planner", 1.0)
    assert empty.stages == () and empty.wall_ms == ()


def test_the_budget_divides_each_nodes_time_by_its_own_sim_time() -> None:
    reports = [
        StageReport("sim_bridge", ("physics", "state_out"), (100.0, 20.0), (48, 24), 1.0),
        StageReport("sim_bridge", ("physics",), (140.0,), (48,), 1.0),
        StageReport("fleet_planner", ("plan",), (300.0,), (6,), 0.5),
        StageReport("recorder", ("write",), (5.0,), (10,), 0.0),  # covered no sim time: left out
    ]
    budget = per_sim_second(reports)
    assert [(b.node, b.stage) for b in budget] == [
        ("fleet_planner", "plan"), ("sim_bridge", "physics"), ("sim_bridge", "state_out")]
    assert budget[0].ms_per_sim_s == pytest.approx(600.0) and budget[0].calls_per_sim_s == 12
    assert budget[1].ms_per_sim_s == pytest.approx(120.0) and budget[1].calls_per_sim_s == 48
    assert budget[2].ms_per_sim_s == pytest.approx(10.0)
    line = format_budget(budget, top=2)
    assert line == ("wall ms per sim s: 730 = fleet_planner/plan 600, sim_bridge/physics 120, "
                    "others 10")


def _msg(**kw: object) -> SimpleNamespace:
    base = {"node": "sim_bridge", "stages": ["physics"], "wall_ms": [1.0], "calls": [2],
            "sim_s": 1.0}
    return SimpleNamespace(**{**base, **kw})


def test_a_stage_times_message_is_checked() -> None:
    r = stage_report_from_msg(_msg())
    assert r == StageReport("sim_bridge", ("physics",), (1.0,), (2,), 1.0)
    for bad, why in ((_msg(wall_ms=[1.0, 2.0]), "1 stages, 2 wall times"),
                     (_msg(wall_ms=[float("nan")]), "finite"),
                     (_msg(wall_ms=[-1.0]), ">= 0"),
                     (_msg(sim_s=float("inf")), "finite")):
        with pytest.raises(MessageError, match=why):
            stage_report_from_msg(bad)


def test_reports_cover_every_period_and_keep_time_of_data_that_arrives_out_of_order() -> None:
    """A report is due once period_s of sim time passed since the previous one. The recorder
    ticks with each message's own stamp, and messages of different topics arrive a step or two
    out of time order: one stamped just before the last report, arriving after it, keeps the
    time counted since the report (it used to restart the period there and drop that time); a
    jump back by more than a period is a new run and starts over."""
    r = PeriodicReports("recorder", period_s=1.0)
    assert r.tick(0.0) is None  # the first data starts the clock
    for k in range(1, 49):
        r.timer.add("write", 1.0)
        report = r.tick(k / 48)
    assert report is not None and report.sim_s == 1.0 and report.wall_ms == (48.0,)
    r.timer.add("write", 1.0)
    assert r.tick(1.0 + 1 / 48) is None
    r.timer.add("write", 1.0)
    assert r.tick(1.0 - 1 / 48) is None  # stamped a step before the report, arrived after it
    for k in range(2, 49):
        r.timer.add("write", 1.0)
        report = r.tick(1.0 + k / 48)
    assert report is not None and report.sim_s == pytest.approx(1.0)
    assert report.wall_ms == (49.0,) and report.calls == (49,), "no write lost to a step back"
    r.timer.add("write", 5.0)
    assert r.tick(0.1) is None  # back by more than a period: a new run, counted from here
    r.timer.add("write", 2.0)
    later = r.tick(1.1)
    assert later is not None and later.sim_s == pytest.approx(1.0) and later.wall_ms == (2.0,)
