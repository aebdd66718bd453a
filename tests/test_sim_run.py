"""`wm-agent sim`, end to end: real node processes over DDS, a run folder with a bag that an
independent reader decodes (TF and markers included), the report with its animation, the live
graph as `wm-agent graph` describes it, clean shutdown on SIGINT / SIGHUP with the interruption
in the exit status, no node left when the runner is killed, a node's [fatal] line on the console,
the fault scenario without task loss, and the same seed in lockstep mode giving the same run."""

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

from wm_agent.graph import FleetSimArgs, topics_of
from wm_agent.run import RunOptions, run_fleet, run_specs

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
    m = run(tmp_path, "a", duration=30.0, animation_interval_s=1.0)
    assert m["completed"] and not m["failed_nodes"], m
    assert m["verdict"]["valid"] and m["verdict"]["exit_code"] == 0, m["verdict"]
    assert m["planner_answered"]["fraction"] == 1.0, "lockstep: every state answered"
    assert m["tasks"]["delivered"] >= 1 and m["tasks"]["exactly_once"], m["tasks"]
    assert m["collisions"] == 0
    assert all(not r["forced"] and r["returncode"] == 0 for r in m["node_stops"]), m["node_stops"]
    bag = tmp_path / "a" / "bag"
    meta = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    # the bag names its scenario: wm-agent eval builds its map from it (it used the default)
    assert meta["custom_data"]["wm_agent.scenario"] == "warehouse"
    recorded = {t["topic_metadata"]["name"]: t["message_count"]
                for t in meta["topics_with_message_count"]}
    for topic in ("/fleet/state", "/fleet/cmd", "/clock", "/tasks/status", "/fleet/assignments",
                  "/fleet/planner_status", "/fleet/metrics", "/tf", "/world/markers", "/fleet/markers"):
        assert recorded.get(topic, 0) > 0, f"{topic} missing from the bag: {sorted(recorded)}"
    counts: dict[str, int] = {}
    with AnyReader([bag]) as reader:  # an independent reader decodes every message
        for conn, _t, raw in reader.messages():
            reader.deserialize(raw, conn.msgtype)
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
    assert counts == {k: v for k, v in recorded.items() if v}
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["tasks"] == m["tasks"]
    # every node's stage times came over /fleet/stage_times into the bag: wall ms per sim s
    budget = {(b["node"], b["stage"]): b for b in metrics["stages"]}
    for key in [("sim_bridge", s) for s in ("physics", "controller", "collisions", "state_out",
                                              "command_in")] + [
            ("fleet_planner", s) for s in ("state_in", "observations", "plan", "safety",
                                             "command_out")] + [
            ("fleet_coordinator", s) for s in ("state_in", "solve", "assignments_out")] + [
            ("recorder", "write")]:
        assert key in budget and budget[key]["ms_per_sim_s"] > 0, (key, sorted(budget))
    # lockstep: physics and the planner's state input run once per control period (48 Hz)
    assert budget[("sim_bridge", "physics")]["calls_per_sim_s"] == pytest.approx(48, rel=0.05)
    assert budget[("fleet_planner", "state_in")]["calls_per_sim_s"] == pytest.approx(48, rel=0.1)
    assert budget[("fleet_planner", "plan")]["calls_per_sim_s"] <= 12.5  # replan_every 4
    # the run's own report (its collisions are the console's: one source), with the animation
    report = json.loads((tmp_path / "a" / "report" / "metrics.json").read_text())
    assert report["collisions"] == m["collisions"] == 0
    assert report["run"]["options"]["seed"] == 0 and report["run"]["options"]["fidelity"] == "fleet"
    assert Path(report["run"]["options"]["model"]).name == "wm_plan", "the model folder as used"
    assert (tmp_path / "a" / "report" / "trajectories.png").stat().st_size > 0
    from PIL import Image

    with Image.open(tmp_path / "a" / "report" / "fleet.gif") as gif:
        assert gif.n_frames == 31, "one frame per second of a 30 s run, from t = 0"
    md = (tmp_path / "a" / "report" / "report.md").read_text()
    assert "![The fleet over the warehouse](fleet.gif)" in md
    # `wm-agent eval` on its bag
    from wm_agent.evaluation.bag_eval import evaluate_bag

    result = evaluate_bag(bag, tmp_path / "eval")
    pred = result.metrics["prediction"]
    assert pred["k"] == [1, 5, 10, 20] and pred["windows"] > 0
    errors = pred["position_error_m"]["world_model"] + pred["velocity_error_mps"]["world_model"]
    assert all(np.isfinite(e) for e in errors), errors
    assert (tmp_path / "eval" / "report.md").is_file()


def test_tf_and_markers_decode_from_the_bag_with_an_independent_reader(tmp_path: Path) -> None:
    """mcap_ros2 decodes with the schemas the bag carries: /tf holds map -> drone_<id>/base_link
    of every drone with odometry at the FleetState's pose; the latched warehouse and the fleet
    markers are there; the live graph is the one `wm-agent graph` prints."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    m = run(tmp_path, "tf", drones=3, duration=4.0, report=False, task_rate=0.0)
    assert m["verdict"]["valid"], m["verdict"]
    tf: dict[int, dict[str, tuple[float, float, float]]] = {}
    states: dict[int, np.ndarray] = {}
    markers: dict[str, list[object]] = {"/world/markers": [], "/fleet/markers": []}
    for f in sorted((tmp_path / "tf" / "bag").glob("*.mcap")):
        with f.open("rb") as stream:
            decoded = list(make_reader(stream, decoder_factories=[DecoderFactory()]).iter_decoded_messages(
                topics=["/tf", "/fleet/state", *markers]))
        for _schema, channel, _message, ros in decoded:
            topic = channel.topic
            if topic == "/tf":
                t = ros.transforms[0].header.stamp
                tf[t.sec * 10**9 + t.nanosec] = {
                    (x.header.frame_id + ">" + x.child_frame_id): (x.transform.translation.x,
                                                                   x.transform.translation.y,
                                                                   x.transform.translation.z)
                    for x in ros.transforms}
            elif topic == "/fleet/state":
                t = ros.header.stamp
                states[t.sec * 10**9 + t.nanosec] = np.asarray(ros.position).reshape(-1, 3)
            else:
                markers[topic].append(ros)
    assert len(tf) >= 4 * 24, "a TFMessage with every fleet state"
    frames = {f"map>drone_{i}/base_link" for i in range(3)}
    stamp = max(set(tf) & set(states))
    assert set(tf[stamp]) == frames
    for i in range(3):
        np.testing.assert_allclose(tf[stamp][f"map>drone_{i}/base_link"], states[stamp][i], atol=1e-5)
    world = markers["/world/markers"]
    assert len(world) == 1 and {mk.ns for mk in world[0].markers} >= {"shelves", "geofence", "home_pads"}
    assert markers["/fleet/markers"] and len(markers["/fleet/markers"][-1].markers[0].points) == 3
    # the live graph (metrics.json "graph") is the one `wm-agent graph` prints
    specs = run_specs(FleetSimArgs(drones=3, mode="lockstep", fidelity="fleet", task_rate_per_min=0.0),
                      tmp_path / "tf", 4.0, False)
    live = m["graph"]
    published = set()
    for spec in specs:
        if spec.name == "recorder":
            continue
        want = topics_of(spec, expand=True)
        got = live[spec.name]
        assert got is not None, spec.name
        assert set(got["publishes"]) == set(want.publishes), spec.name
        assert set(got["subscribes"]) == set(want.subscribes), spec.name
        assert set(got["services"]) == set(want.services) and set(got["clients"]) == set(want.clients)
        published |= set(got["publishes"])
    assert set(live["recorder"]["subscribes"]) == published, "the recorder records every topic"


def states_by_step(bag: Path) -> dict[int, np.ndarray]:
    out = {}
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == "/fleet/state"]
        for conn, _t, raw in reader.messages(connections=conns):
            msg = reader.deserialize(raw, conn.msgtype)
            out[int(msg.step)] = np.asarray(msg.position).reshape(-1, 3)
    return out


def command_steps(bag: Path) -> list[int]:
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == "/fleet/cmd"]
        return sorted({int(reader.deserialize(raw, c.msgtype).step)
                       for c, _t, raw in reader.messages(connections=conns)})


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
    # ... and until it has subscribed to the commands: every command from the first (they
    # started at step 5-7 when only the fleet-state subscribers were counted)
    assert command_steps(tmp_path / "a" / "bag") == list(range(1, 10 * 48 + 2))
    moved = np.linalg.norm(sa[max(common)] - sa[min(common)], axis=1)
    assert moved.max() > 1.0, "the drones flew (the comparison is not between parked fleets)"
    for k in common:
        np.testing.assert_array_equal(sa[k], sb[k], err_msg=f"step {k}")
    assert a["tasks"] == b["tasks"]


def test_fault_scenario_loses_no_task(tmp_path: Path) -> None:
    # realtime: the faults are timed in wall seconds (a stall, a restart that takes seconds)
    m = run(tmp_path, "f", drones=4, duration=40.0, faults=True, report=False, mode="realtime")
    assert m["completed"] and not m["failed_nodes"], m
    assert m["verdict"]["valid"], "the stall's unanswered states do not count against the planner"
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


def start_cli(out: Path, *extra: str) -> subprocess.Popen[str]:
    """`wm-agent sim` as a user starts it, for a long run; returns once the recorder's first
    file exists (the graph is coming up)."""
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "wm-agent"), "sim", "--drones", "2", "--duration", "600",
         "--fidelity", "fleet", "--out", str(out), "--no-progress", "--no-report",
         "--domain-id", os.environ["ROS_DOMAIN_ID"], *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list((out / "bag").glob("*.mcap")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the recorder is up once its first file exists
    return proc


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_every_node_within_5_s_closes_the_bag_and_exits_non_zero(
        tmp_path: Path, sig: signal.Signals) -> None:
    out = tmp_path / "s"
    proc = start_cli(out)
    log = out / "logs" / "sim_bridge.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (log.is_file() and "starting the clock" in log.read_text()):
        time.sleep(0.2)  # poll: the whole graph is up once the bridge starts its clock
    assert "starting the clock" in log.read_text(), "the sim bridge never started its clock"
    proc.send_signal(sig)
    text, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig.value, text + err
    assert err.splitlines()[-1].startswith(f"wm-agent sim: interrupted by {sig.name} at "), err
    assert err.splitlines()[-1].endswith(" / 600 s of sim time: the run is incomplete"), err
    m = json.loads((out / "metrics.json").read_text())
    assert m["stopped_by"] == sig.name and not m["verdict"]["valid"]
    assert all(r["seconds"] < 5.0 and not r["forced"] for r in m["node_stops"]), m["node_stops"]
    with AnyReader([out / "bag"]) as reader:
        assert sum(1 for _ in reader.messages()) > 0


def children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a parent to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_no_node_outlives_a_killed_runner(tmp_path: Path) -> None:
    """SIGKILL of `wm-agent sim` (it cannot stop anything): the kernel's parent-death signal
    stops every node; the recorder still closes its bag."""
    out = tmp_path / "k"
    proc = start_cli(out)
    deadline = time.monotonic() + 60
    nodes: list[int] = []
    while len(nodes) < 6 and time.monotonic() < deadline:
        time.sleep(0.5)
        nodes = children(proc.pid)
    assert len(nodes) == 6, f"recorder, bridge, planner, coordinator, monitor, feeder: {nodes}"
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while any(alive(p) for p in nodes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in nodes if alive(p)] == [], "node processes outlived the runner"
    with AnyReader([out / "bag"]) as reader:  # closed on SIGTERM: readable
        assert reader.duration >= 0


def test_a_node_that_refuses_to_start_is_reported_by_its_fatal_line(tmp_path: Path) -> None:
    """What the checks cannot see (here a model whose card names another observation spec: the
    card and every file hash are fine): the planner's [fatal] line is the console's one line."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(Path(__file__).resolve().parent.parent / "models" / "wm_plan", model)
    card = json.loads((model / "card.json").read_text())
    card["spec_version"] = 999
    (model / "card.json").write_text(json.dumps(card))
    out = tmp_path / "f"
    r = subprocess.run(
        [str(Path(sys.executable).parent / "wm-agent"), "sim", "--drones", "2", "--duration", "5",
         "--fidelity", "fleet", "--model", str(model), "--out", str(out), "--no-progress",
         "--domain-id", os.environ["ROS_DOMAIN_ID"]],
        capture_output=True, text=True, timeout=300)
    lines = r.stderr.splitlines()
    assert r.returncode == 2, r.stdout + r.stderr
    assert lines == [f"wm-agent sim: error: fleet_planner: model card {model / 'card.json'}: spec_version "
                     "999 but this code builds observations of spec version "
                     f"{card_spec()}; retrain the model"], r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["verdict"]["exit_code"] == 2 and not (out / "report").exists()


def card_spec() -> int:
    from wm_agent.world_model.spaces import SPEC_VERSION

    return SPEC_VERSION
