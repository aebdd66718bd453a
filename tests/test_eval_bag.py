"""``wm-agent eval BAG`` end to end on bags built here from a short simulated flight (4 drones,
12 s, P controller between waypoints; wm_agent.evaluation.synthetic): finite k-step errors, the
report files, the world model beating constant velocity with the shipped model, a truncated bag
warned about and still reported, a per-drone Odometry + cmd_vel bag, a bag with nothing usable."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wm_agent.bags import BagTruncatedWarning, BagWriter, open_bag
from wm_agent.errors import BagError
from wm_agent.evaluation.bag_eval import EvalConfig, EvalResult, eval_main, evaluate_bag, report_bag
from wm_agent.evaluation.synthetic import Flight, simulate_flight, write_fleet_bag, write_odometry_bag

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "wm_default"
KS = [1, 5, 10, 20]


def finite_json(path: Path) -> dict[str, Any]:
    def refuse(token: str) -> float:
        raise AssertionError(f"{path} holds {token}")
    data = json.loads(path.read_text(), parse_constant=refuse)

    def check(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                check(v)
        elif isinstance(x, list):
            for v in x:
                check(v)
        elif isinstance(x, float):
            assert math.isfinite(x)
    check(data)
    return dict(data)


@pytest.fixture(scope="module")
def flight() -> Flight:
    return simulate_flight(drones=4, seconds=12.0, seed=0)


@pytest.fixture(scope="module")
def fleet_bag(flight: Flight, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fleet") / "run1"
    write_fleet_bag(path, flight, chunk_bytes=16 * 1024)      # small chunks: a cut loses little
    return path


@pytest.fixture(scope="module")
def fleet_eval(fleet_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> EvalResult:
    out = tmp_path_factory.mktemp("fleet_eval")
    return evaluate_bag(fleet_bag, out, EvalConfig(model=MODEL, replan_samples=96))


def test_fleet_bag_errors_are_finite_for_every_k(fleet_eval: EvalResult) -> None:
    p = fleet_eval.metrics["prediction"]
    assert p["k"] == KS and p["windows"] >= 200
    for table in (p["position_error_m"], p["velocity_error_mps"]):
        assert set(table) == {"world_model", "constant_velocity"}
        for values in table.values():
            assert len(values) == 4 and all(v is not None and math.isfinite(v) and v >= 0 for v in values)
    wm = p["position_error_m"]["world_model"]
    assert wm == sorted(wm)                                   # error grows with the horizon


def test_world_model_beats_constant_velocity_at_k10(fleet_eval: EvalResult) -> None:
    p = fleet_eval.metrics["prediction"]
    i = KS.index(10)
    wm, cv = p["position_error_m"]["world_model"][i], p["position_error_m"]["constant_velocity"][i]
    assert wm < 0.5 * cv, (wm, cv)                            # the card's target, on replayed data
    assert p["wm_to_cv_position_ratio_at_10"] == pytest.approx(wm / cv, rel=1e-3)


def test_report_files_exist_and_metrics_are_finite(fleet_eval: EvalResult) -> None:
    files = fleet_eval.files
    assert files is not None
    assert set(files.plots) == {"trajectories", "tasks", "latency", "substitutions", "prediction"}
    for p in [files.markdown, files.metrics, *files.plots.values()]:
        assert p.is_file() and p.stat().st_size > 0
    m = finite_json(files.metrics)
    assert m["sections_without_data"] == []
    assert m["tasks"]["delivered"] >= 1 and m["tasks"]["delivered_per_min"] > 0
    assert m["tasks"]["accepted"] >= m["tasks"]["delivered"] and m["tasks"]["failed"] == 0
    assert m["planner"]["latency_ms"]["p99"] is not None
    assert m["planner"]["substitutions_total"]["speed_clamp"] > 0     # the P controller's clamps
    assert m["collisions"] == 0
    assert m["replan"]["samples"] == 96 and 0 <= m["replan"]["dv_p50_mps"] <= 2 * 8.333
    assert m["throughput"]["messages_per_s"] > 0
    md = files.markdown.read_text()
    assert "assignment goal for 100 %" in md and "## Warnings" not in md


def test_torch_backend_agrees_with_onnxruntime(fleet_bag: Path, fleet_eval: EvalResult) -> None:
    r = evaluate_bag(fleet_bag, None, EvalConfig(backend="torch", model=MODEL, replan_samples=0))
    a, b = r.metrics["prediction"], fleet_eval.metrics["prediction"]
    assert a["windows"] == b["windows"]
    np.testing.assert_allclose(a["position_error_m"]["world_model"], b["position_error_m"]["world_model"],
                               atol=1e-3)
    assert r.metrics["replan"] is None


def test_truncated_bag_warns_and_still_reports(fleet_bag: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(fleet_bag, cut)
    mcap = next(cut.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(BagTruncatedWarning, match=r"messages lost|\d+ lost"):
        r = evaluate_bag(cut, tmp_path / "rep", EvalConfig(model=MODEL, replan_samples=0))
    assert r.files is not None and r.metrics["prediction"]["windows"] > 0
    assert r.metrics["duration_s"] < 11.0
    md = r.files.markdown.read_text()
    assert "## Warnings" in md and "truncated or corrupt" in md and "readable part only" in md
    assert finite_json(r.files.metrics)["warnings"]
    # the CLI says so too, and still exits 0 with a report
    rc = eval_main([str(cut), "--out", str(tmp_path / "cli"), "--model", str(MODEL), "--replan-samples", "0"])
    out = capsys.readouterr()
    assert rc == 0 and "WARNING" in out.err and "truncated or corrupt" in out.err
    assert "world_model" in out.out and (tmp_path / "cli" / "report.md").is_file()


def test_odometry_and_cmd_vel_bag(flight: Flight, tmp_path: Path) -> None:
    bag = tmp_path / "odom"
    write_odometry_bag(bag, flight)
    r = evaluate_bag(bag, tmp_path / "rep", EvalConfig(model=MODEL, replan_samples=32, max_drones=3))
    p = r.metrics["prediction"]
    assert r.metrics["trajectories"]["drones"] == 3
    assert all(v is not None and math.isfinite(v) for v in p["position_error_m"]["world_model"])
    i = KS.index(10)
    assert p["position_error_m"]["world_model"][i] < p["position_error_m"]["constant_velocity"][i]
    assert r.metrics["tasks"] is None and r.metrics["planner"] is None and r.metrics["replan"] is not None
    assert r.files is not None
    assert set(r.files.plots) == {"trajectories", "prediction"}
    md = r.files.markdown.read_text()
    assert "layout: odometry" in md and "assignment goal for 0 %" in md and "No data in this run" in md


def test_sqlite3_copy_gives_the_same_errors(fleet_bag: Path, fleet_eval: EvalResult, tmp_path: Path) -> None:
    from rosbags.rosbag2 import Writer

    src = open_bag(fleet_bag)
    with Writer(tmp_path / "sq", version=9) as w:          # default storage: sqlite3
        conns = {t: w.add_connection(t, i.msgtype, msgdef="", rihs01="RIHS01_" + "0" * 64)
                 for t, i in src.topics.items()}
        for m in src.messages():
            w.write(conns[m.topic], m.timestamp_ns, m.data)
    r = evaluate_bag(tmp_path / "sq", None, EvalConfig(model=MODEL, replan_samples=0))
    assert r.metrics["prediction"]["position_error_m"] == fleet_eval.metrics["prediction"]["position_error_m"]
    assert r.metrics["tasks"] == fleet_eval.metrics["tasks"]


def test_bag_without_usable_topics_names_what_it_looked_for(tmp_path: Path) -> None:
    from wm_agent.evaluation.synthetic import Serializer

    bag = tmp_path / "tasks_only"
    with BagWriter(bag) as w:
        w.add_topic("/tasks/status", "wm_agent_msgs/msg/TaskStatus")
        w.write("/tasks/status", Serializer().task_status(0.0, "t1", 0, 0, -1), 1)
    with pytest.raises(BagError, match=r"/fleet/state.*/drone_<id>/odom.*holds /tasks/status"):
        evaluate_bag(bag, None, EvalConfig(model=MODEL))
    assert eval_main([str(bag), "--model", str(MODEL)]) == 2


def test_report_bag_is_the_live_run_report_without_the_model(fleet_bag: Path, tmp_path: Path) -> None:
    files = report_bag(fleet_bag, tmp_path)
    assert set(files.plots) == {"trajectories", "tasks", "latency", "substitutions"}
    assert files.missing == ()
    m = finite_json(files.metrics)
    assert m["prediction"] is None and m["tasks"]["delivered"] >= 1
    assert "prediction" not in files.markdown.read_text().lower()


def test_times_are_header_stamps_not_log_times(
    fleet_bag: Path, fleet_eval: EvalResult, tmp_path: Path
) -> None:
    """A recorder that lags (lockstep runs) logs messages up to ~1 s after the sim time they carry:
    eval times every message by its header stamp where it has one, so such a bag evaluates exactly
    like one logged on time (issue #13 item 16)."""
    rng = np.random.default_rng(3)
    src = open_bag(fleet_bag)
    late = tmp_path / "late"
    with BagWriter(late) as w:
        for topic, info in src.topics.items():
            w.add_topic(topic, info.msgtype)
        for m in src.messages():
            w.write(m.topic, m.data, m.timestamp_ns + int(rng.integers(0, 900_000_000)))
    r = evaluate_bag(late, None, EvalConfig(model=MODEL, replan_samples=0))
    assert r.metrics["prediction"] == fleet_eval.metrics["prediction"]
    assert r.metrics["tasks"] == fleet_eval.metrics["tasks"]
    assert r.metrics["duration_s"] == pytest.approx(fleet_eval.metrics["duration_s"])


def _moved_bag(flight: Flight, tmp_path: Path, name: str, offset: tuple[float, float, float]) -> Path:
    from dataclasses import replace

    d = np.asarray(offset)
    moved = replace(flight, position=flight.position + d, goal=flight.goal + d)
    path = tmp_path / name
    write_fleet_bag(path, moved)
    return path


def test_a_bag_that_does_not_fit_the_scenario_is_warned_about(
    flight: Flight, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A foreign bag's poses are put into the scenario's obstacle map: when its drones fly
    outside the walls or through shelves, eval says so (issue #13 item 18)."""
    from wm_agent.evaluation.scenario_fit import ScenarioFitWarning

    outside = _moved_bag(flight, tmp_path, "outside", (-20.0, 0.0, 0.0))       # west of the west wall
    with pytest.warns(ScenarioFitWarning, match=r"does not fit scenario warehouse: 100\.0 % of .* outside "
                      r"its walls .*4 of 4 drones.*--scenario none"):
        r = evaluate_bag(outside, tmp_path / "rep", EvalConfig(model=MODEL, replan_samples=0))
    assert r.files is not None and "does not fit scenario warehouse" in r.files.markdown.read_text()
    shelves = _moved_bag(flight, tmp_path, "shelves", (8.5, 0.0, 0.0))         # across the shelf rows
    with pytest.warns(ScenarioFitWarning, match=r"\d+\.\d % of .* inside its shelves"):
        evaluate_bag(shelves, None, EvalConfig(model=MODEL, replan_samples=0))
    rc = eval_main([str(outside), "--out", str(tmp_path / "cli"), "--model", str(MODEL),
                    "--replan-samples", "0"])
    assert rc == 0 and "WARNING" in capsys.readouterr().err


def test_scenario_none_evaluates_without_obstacles(flight: Flight, tmp_path: Path) -> None:
    import warnings

    from wm_agent.evaluation.scenario_fit import ScenarioFitWarning

    outside = _moved_bag(flight, tmp_path, "outside", (-20.0, 0.0, 0.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScenarioFitWarning)
        r = evaluate_bag(outside, tmp_path / "rep",
                         EvalConfig(model=MODEL, replan_samples=16, scenario="none"))
    assert r.metrics["scenario"] == "none"
    p = r.metrics["prediction"]
    assert p["windows"] > 0 and all(math.isfinite(v) for v in p["position_error_m"]["world_model"])
    assert r.metrics["replan"]["samples"] == 16
    assert r.files is not None and "no obstacle features" in r.files.markdown.read_text()
    assert set(report_bag(outside, tmp_path / "run", scenario="none").plots) >= {"trajectories"}


def test_a_bag_inside_its_scenario_is_not_warned_about(fleet_bag: Path) -> None:
    import warnings

    from wm_agent.evaluation.scenario_fit import ScenarioFitWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", ScenarioFitWarning)
        report_bag(fleet_bag, fleet_bag.parent / "fit_rep")


def test_a_rate_limited_fleet_state_is_named_in_the_notes() -> None:
    from wm_agent.evaluation.bag_eval import EvalConfig, _rate_notes

    assert _rate_notes({}, EvalConfig()) == []
    custom = {"wm_agent.rate./fleet/state": "2", "wm_agent.decimated./fleet/state": "10"}
    (note,) = _rate_notes({"custom_data": custom}, EvalConfig())
    assert "at most 2 Hz" in note and "10 states not recorded" in note
    assert "few or no prediction windows" in note  # 0.5 s apart > max_gap_s 0.25 s
    (note,) = _rate_notes({"custom_data": {**custom, "wm_agent.rate./fleet/state": "5"}},
                          EvalConfig())
    assert "interpolated" in note and "few or no" not in note
