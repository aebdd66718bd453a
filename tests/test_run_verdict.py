"""A run is valid or says it is not (issue #14): the verdict of `wm-agent sim` from what the bag
recorded — the planner's answers to the fleet states, the recorder's losses, an interruption, a
node that exited — and the exit status it sets. Pure: synthetic bags and metrics, no nodes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wm_agent.bags import BagWriter
from wm_agent.evaluation.synthetic import Serializer
from wm_agent.run import MIN_ANSWERED, node_failure, planner_answered, recorder_losses, verdict


def write_bag(path: Path, steps: list[int], answered: list[int], lost: dict[str, int] | None = None,
              received: dict[str, int] | None = None) -> Path:
    """A bag with FleetStates of `steps` (24 Hz) and FleetCommands answering `answered`, and the
    recorder's loss counts in custom_data."""
    ser, ids = Serializer(), np.arange(2)
    custom = {f"wm_agent.lost.{t}": str(n) for t, n in (lost or {}).items()}
    custom |= {f"wm_agent.received.{t}": str(n) for t, n in (received or {}).items()}
    with BagWriter(path, custom_data=custom) as w:
        w.add_topic("/fleet/state", "wm_agent_msgs/msg/FleetState")
        w.add_topic("/fleet/cmd", "wm_agent_msgs/msg/FleetCommand")
        for k in steps:
            t = k / 24.0
            w.write("/fleet/state", ser.fleet_state(t, ids, np.ones((2, 3)), np.zeros((2, 3)),
                                                    np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)),
                                                    np.zeros((2, 3)), np.zeros(2), step=k), int(t * 1e9))
            if k in answered:
                w.write("/fleet/cmd", ser.fleet_command(t, ids, np.zeros((2, 3)), step=k + 1),
                        int(t * 1e9) + 1000)
    return path


def metrics(**kw: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"sim_time_s": 20.0, "failures": {}, "node_stops": [], "stopped_by": None,
                         "planner_answered": {"states": 100, "answered": 100, "fraction": 1.0},
                         "recorder_lost": {}, "bag_warnings": [], "failed_nodes": []}
    m.update(kw)
    return m


def test_a_planner_that_answers_every_state_makes_a_valid_run(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "ok", list(range(100)), list(range(100)))
    a = planner_answered(bag)
    assert a == {"states": 99, "answered": 99, "fraction": 1.0}, "the last state does not count"
    v = verdict(metrics(planner_answered=a), 20.0)
    assert v["valid"] and v["exit_code"] == 0 and v["summary"] == "valid run: 20.0 s of sim time"


def test_a_planner_that_answered_too_few_states_makes_the_run_invalid(tmp_path: Path) -> None:
    """What fast mode did: 7 of ~240 plan steps answered, and it still exited 0."""
    bag = write_bag(tmp_path / "fast", list(range(240)), list(range(0, 240, 30)))
    a = planner_answered(bag)
    assert a["answered"] == 8 and a["states"] == 239
    v = verdict(metrics(planner_answered=a), 20.0)
    assert v["exit_code"] == 1 and not v["valid"]
    assert v["summary"] == (f"invalid run: the planner answered 8 of 239 fleet states (3 %, a valid "
                            f"run needs {100 * MIN_ANSWERED:.0f} %)")


def test_states_before_the_first_recorded_command_and_in_a_stall_do_not_count(tmp_path: Path) -> None:
    # the recorder subscribes to /fleet/cmd a few steps late; steps 50..59 are an injected stall
    answered = [k for k in range(5, 100) if not 50 <= k < 60]
    bag = write_bag(tmp_path / "stall", list(range(100)), answered)
    a = planner_answered(bag, exclude=(49.5 / 24.0, 59.5 / 24.0))
    assert a == {"states": 84, "answered": 84, "fraction": 1.0}
    whole = planner_answered(bag)
    assert (whole["answered"], whole["states"]) == (84, 94), "the stall counts without exclude"


def test_a_state_is_answered_only_when_every_planner_shard_answered_it(tmp_path: Path) -> None:
    """Two shards: each FleetCommand holds one of the two drones; shard 1 stops after step 59,
    so from then on half of each state's drones get no command: unanswered."""
    ser, ids = Serializer(), np.arange(2)
    path = tmp_path / "shards"
    with BagWriter(path) as w:
        w.add_topic("/fleet/state", "wm_agent_msgs/msg/FleetState")
        w.add_topic("/fleet/cmd", "wm_agent_msgs/msg/FleetCommand")
        for k in range(100):
            t = k / 24.0
            w.write("/fleet/state", ser.fleet_state(t, ids, np.ones((2, 3)), np.zeros((2, 3)),
                                                    np.tile([0.0, 0.0, 0.0, 1.0], (2, 1)),
                                                    np.zeros((2, 3)), np.zeros(2), step=k), int(t * 1e9))
            for shard in (0, 1) if k < 60 else (0,):
                w.write("/fleet/cmd", ser.fleet_command(t, ids[shard:shard + 1], np.zeros((1, 3)),
                                                        step=k + 1), int(t * 1e9) + 1000 + shard)
    a = planner_answered(path)
    assert (a["answered"], a["states"]) == (60, 99), a


def test_recorder_losses_make_the_run_invalid(tmp_path: Path) -> None:
    """What fast mode did: the recorder lost 29 % of /clock. One superseded sample of a
    latest-wins topic is within the tolerance; one lost task status is not."""
    received = {"/clock": 373, "/drone_0/odom": 417, "/fleet/assignments": 299, "/tasks/status": 40}
    bag = write_bag(tmp_path / "lost", list(range(10)), list(range(10)),
                    lost={"/clock": 587, "/fleet/state": 0, "/drone_0/odom": 65, "/fleet/assignments": 1},
                    received=received)
    lost = recorder_losses(bag)
    assert lost == {"/clock": {"lost": 587, "received": 373}, "/drone_0/odom": {"lost": 65, "received": 417},
                    "/fleet/assignments": {"lost": 1, "received": 299}}
    v = verdict(metrics(recorder_lost=lost), 20.0)
    assert v["exit_code"] == 1
    assert v["summary"] == ("invalid run: the recorder lost 652 message(s) (/clock 587 of 960, "
                            "/drone_0/odom 65 of 482)")
    within = {"/fleet/assignments": {"lost": 1, "received": 299}}
    assert verdict(metrics(recorder_lost=within), 20.0)["valid"]
    # a short run: one superseded assignment table is 1 of 93 (over 1 %), still one sample a
    # newer one replaced (a 4 s CI run was called invalid for it); two are not
    short = {"/fleet/assignments": {"lost": 1, "received": 92}}
    assert verdict(metrics(recorder_lost=short), 20.0)["valid"]
    two = {"/fleet/assignments": {"lost": 2, "received": 91}}
    assert not verdict(metrics(recorder_lost=two), 20.0)["valid"]
    # the fleet's marker frames feed no figure of the run (a viewer misses a frame): listed by
    # the summary, not counted (a 10,000-drone run lost 6 of 576 ~230 kB best-effort frames)
    markers = {"/fleet/markers": {"lost": 30, "received": 546}}
    assert verdict(metrics(recorder_lost=markers), 20.0)["valid"]
    assert not verdict(metrics(recorder_lost={**markers, **two}), 20.0)["valid"]
    status = {"/tasks/status": {"lost": 1, "received": 400}}
    assert verdict(metrics(recorder_lost=status), 20.0)["summary"] == (
        "invalid run: the recorder lost 1 message(s) (/tasks/status 1 of 401)")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_an_interrupted_run_exits_non_zero_and_says_where(sig: str) -> None:
    v = verdict(metrics(stopped_by=sig, sim_time_s=5.71), 120.0)
    assert v["exit_code"] == 128 + int(getattr(signal, sig)) and not v["valid"]
    assert v["summary"] == f"interrupted by {sig} at 5.7 / 120 s of sim time: the run is incomplete"


def test_a_node_that_refused_its_configuration_before_the_start_is_a_usage_error() -> None:
    failure = {"sim_bridge": {"exit": 2, "why": "x.yaml: batteries: unknown key"}}
    v = verdict(metrics(sim_time_s=0.0, failures=failure, planner_answered=None), 60.0)
    assert v["exit_code"] == 2
    assert v["summary"] == ("the run did not start: sim_bridge exited (status 2): x.yaml: batteries: "
                            "unknown key")
    crash = {"fleet_planner": {"exit": -11, "why": "Segmentation fault"}}
    assert verdict(metrics(failures=crash), 60.0)["exit_code"] == 1


def test_node_failure_reads_the_fatal_line_or_the_exception(tmp_path: Path) -> None:
    log = tmp_path / "sim_bridge.log"
    log.write_text("[INFO] [1.0] [sim_bridge]: starting\n[fatal] x.yaml: batteries: unknown key; "
                   "allowed keys are ['name']\n")
    assert node_failure(log) == "x.yaml: batteries: unknown key; allowed keys are ['name']"
    log.write_text('Traceback (most recent call last):\n  File "a.py", line 1, in <module>\n'
                   "    f()\nValueError: expected non-negative integer\n")
    assert node_failure(log) == f"ValueError: expected non-negative integer (traceback in {log})"
    assert node_failure(tmp_path / "none.log") == f"no log at {tmp_path / 'none.log'}"


def test_real_time_factor_counts_only_the_stepping() -> None:
    """20 sim s stepped in 20 wall s of a 23.7 s run is 1.00 (start-up and shut-down excluded;
    the issue saw 1.28 printed for such a run)."""
    from wm_agent.nodes.supervisor import Observed

    seen = Observed(clock_first=(102.5, 1 / 48), clock_last=(122.5, 20.0 + 1 / 48))
    assert seen.real_time_factor == pytest.approx(1.0)
    assert Observed().real_time_factor is None
