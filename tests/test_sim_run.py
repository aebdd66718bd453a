"""`wm-agent sim`, end to end: real node processes over DDS, a run folder with a bag that an
independent reader decodes, clean shutdown on SIGINT, and the fault scenario without task loss.
and the same seed in lockstep mode giving the same run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader

from wm_agent.graph import FleetSimArgs
from wm_agent.run import RunOptions, run_fleet

pytestmark = [pytest.mark.dds, pytest.mark.slow]


def run(tmp: Path, name: str, **kw: Any) -> dict[str, Any]:
    graph = FleetSimArgs(drones=kw.pop("drones", 3), mode=kw.pop("mode", "lockstep"), fidelity="fleet",
                         seed=kw.pop("seed", 0), task_rate_per_min=kw.pop("task_rate", 90.0))
    # a domain of its own per run (101..200): a leftover node of another run can never answer
    domain = 101 + (int(os.environ["ROS_DOMAIN_ID"]) + sum(map(ord, name))) % 100
    opts = RunOptions(graph=graph, duration_s=kw.pop("duration", 30.0), out=tmp / name,
                      domain_id=domain, progress=False, **kw)
    return run_fleet(opts)


def test_run_delivers_and_its_bag_reads_back_independently(tmp_path: Path) -> None:
    m = run(tmp_path, "a", duration=30.0)
    assert m["completed"] and not m["failed_nodes"], m
    assert m["tasks"]["delivered"] >= 1 and m["tasks"]["exactly_once"], m["tasks"]
    assert m["collisions"] == 0
    assert all(not r["forced"] and r["returncode"] == 0 for r in m["node_stops"]), m["node_stops"]
    bag = tmp_path / "a" / "bag"
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    recorded = {t["topic_metadata"]["name"]: t["message_count"]
                for t in meta["topics_with_message_count"]}
    for topic in ("/fleet/state", "/fleet/cmd", "/clock", "/tasks/status", "/fleet/assignments",
                  "/fleet/planner_status", "/fleet/metrics"):
        assert recorded.get(topic, 0) > 0, f"{topic} missing from the bag: {sorted(recorded)}"
    counts: dict[str, int] = {}
    with AnyReader([bag]) as reader:  # an independent reader decodes every message
        for conn, _t, raw in reader.messages():
            reader.deserialize(raw, conn.msgtype)
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    assert counts == {k: v for k, v in recorded.items() if v}
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["tasks"] == m["tasks"]
    # the run's own report, and `wm-agent eval` on its bag
    assert (tmp_path / "a" / "report" / "report.md").is_file()
    assert (tmp_path / "a" / "report" / "trajectories.png").stat().st_size > 0
    from wm_agent.evaluation.bag_eval import evaluate_bag

    result = evaluate_bag(bag, tmp_path / "eval")
    pred = result.metrics["prediction"]
    assert pred["k"] == [1, 5, 10, 20] and pred["windows"] > 0
    errors = pred["position_error_m"]["world_model"] + pred["velocity_error_mps"]["world_model"]
    assert all(np.isfinite(e) for e in errors), errors
    assert (tmp_path / "eval" / "report.md").is_file()


def states_by_step(bag: Path) -> dict[int, np.ndarray]:
    out = {}
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == "/fleet/state"]
        for conn, _t, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            out[int(msg.step)] = np.asarray(msg.position).reshape(-1, 3)
    return out


def test_same_seed_lockstep_runs_are_the_same(tmp_path: Path) -> None:
    a = run(tmp_path, "a", duration=10.0, seed=5, report=False)
    b = run(tmp_path, "b", duration=10.0, seed=5, report=False)
    assert a["completed"] and b["completed"]
    sa = states_by_step(tmp_path / "a" / "bag")
    sb = states_by_step(tmp_path / "b" / "bag")
    assert max(sa) == max(sb) == 10 * 48, "the run ends at its last step and the bag has it"
    common = sorted(set(sa) & set(sb))
    # the bridge holds step 0 until the recorder has subscribed: every step is in both bags
    assert common == list(range(10 * 48 + 1)), "lockstep records every step from 0"
    moved = np.linalg.norm(sa[max(common)] - sa[min(common)], axis=1)
    assert moved.max() > 1.0, "the drones flew (the comparison is not between parked fleets)"
    for k in common:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=f"step {k}")
    assert a["tasks"] == b["tasks"]


def test_fault_scenario_loses_no_task(tmp_path: Path) -> None:
    # realtime: the faults are timed in wall seconds (a stall, a restart that takes seconds)
    m = run(tmp_path, "f", drones=4, duration=30.0, faults=True, report=False, mode="realtime")
    assert m["completed"] and not m["failed_nodes"], m
    f = m["faults"]
    assert f["dropout"]["marked_lost_after_s"] is not None
    assert f["planner_stall"]["failsafe_hold_after_s"] is not None
    assert f["coordinator_restart"]["first_metrics_after_restart_s"] is not None
    assert f["planner_stall"]["recovered_after_resume_s"] is not None
    tasks = m["tasks"]
    assert tasks["exactly_once"] and tasks["delivered_twice"] == []
    assert tasks["accepted"] == tasks["delivered"] + tasks["in_progress"] + tasks["failed"] \
        + tasks["cancelled"], "an accepted task went missing"
    # what was fed is what the ledger holds: nothing fed while the coordinator was down vanished
    assert tasks["submitted"] >= tasks["accepted"] > 0 and tasks["lost"] == [], tasks


def test_sigint_stops_every_node_within_5_s_and_closes_the_bag(tmp_path: Path) -> None:
    out = tmp_path / "s"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "wm-agent"), "sim", "--drones", "2", "--duration", "600",
         "--fidelity", "fleet", "--out", str(out), "--no-progress", "--no-report",
         "--domain-id", os.environ["ROS_DOMAIN_ID"]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    while not list((out / "bag").glob("*.mcap")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the recorder is up once its first file exists
    time.sleep(6.0)  # the rest of the graph comes up and flies a little
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, text
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == "SIGINT"
    assert all(r["seconds"] < 5.0 and not r["forced"] for r in m["node_stops"]), m["node_stops"]
    with AnyReader([out / "bag"]) as reader:
        assert sum(1 for _ in reader.messages()) > 0
