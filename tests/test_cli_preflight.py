"""Every mistake a newcomer makes with `wm-agent sim` ends before any node starts, in one line on
stderr and exit status 2 (issue #14, "Fail fast and say why"): the CLI runs as a subprocess, as a
user runs it. Each case checks the exit status, the first line of stderr, that stderr is that one
line (no traceback), and that no node ran (no logs/ in the run folder, no process naming it).

These tests use only the subprocess and the files: they run against any checkout (PYTHONPATH).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WM_AGENT = Path(sys.executable).parent / "wm-agent"
WAREHOUSE = REPO / "sim" / "scenarios" / "warehouse.yaml"


def wm_agent(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(WM_AGENT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def processes_naming(text: str) -> list[str]:
    """Command lines of running processes that contain `text` (a node of this run names its
    folder: the recorder's output, the coordinator's ledger)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(cmd)
    return found


def assert_refused(result: subprocess.CompletedProcess[str], first_line: str, out: Path | None) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert lines and re.fullmatch(first_line, lines[0]), lines
    assert len(lines) == 1, f"one line, no traceback: {result.stderr}"
    assert "Traceback" not in result.stdout + result.stderr
    if out is not None:
        assert not (out / "logs").exists(), "a node was started"
        assert processes_naming(str(out)) == []


def scenario(tmp: Path, name: str, edit: dict[str, object] | None = None, text: str | None = None) -> Path:
    """A scenario file next to a copy of the airframes (as a user's own scenario folder)."""
    folder = tmp / "scenarios"
    folder.mkdir(exist_ok=True)
    if not (tmp / "airframes").exists():
        shutil.copytree(REPO / "sim" / "airframes", tmp / "airframes")
    path = folder / f"{name}.yaml"
    if text is None:
        data = yaml.safe_load(WAREHOUSE.read_text())
        for key, value in (edit or {}).items():
            target = data
            *parents, leaf = key.split(".")
            for p in parents:
                target = target[int(p)] if p.isdigit() else target[p]
            target[leaf] = value
        text = yaml.safe_dump(data)
    path.write_text(text)
    return path


def test_unknown_scenario(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = wm_agent("sim", "--scenario", "nonexistent", "--out", str(out))
    assert_refused(r, r"wm-agent sim: error: \S+/nonexistent\.yaml: scenario file not found "
                      r"\(scenario 'nonexistent'\)", out)
    assert not out.exists(), "a refused run leaves no folder behind"


@pytest.mark.parametrize("case, edit, text, message", [
    ("syntax", None, "name: [warehouse\nversion: 1\n", r".*syntax\.yaml: invalid YAML: .*"),
    ("unknown_key", {"batteries": 3}, None,
     r".*unknown_key\.yaml: batteries: unknown key; allowed keys are \[.*\]"),
    ("negative_size", {"world.size": [-40.0, 30.0, 6.0]}, None,
     r".*negative_size\.yaml: world\.size: expected 3 positive numbers, got \[-40\.0, 30\.0, 6\.0\]"),
    ("shelf_outside", {"shelves.0.origin": [80.0, 6.0, 0.0]}, None,
     r".*shelf_outside\.yaml: shelves\[0\]: row 0 unit 0 spans .* outside the world .*"),
])
def test_bad_scenario_files(tmp_path: Path, case: str, edit: dict[str, object] | None, text: str | None,
                            message: str) -> None:
    path = scenario(tmp_path, case, edit, text)
    out = tmp_path / "run"
    r = wm_agent("sim", "--scenario", str(path), "--out", str(out))
    assert_refused(r, "wm-agent sim: error: " + message, out)


def test_more_drones_than_pads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = wm_agent("sim", "--drones", "200", "--out", str(out))
    assert_refused(r, r"wm-agent sim: error: \S+warehouse\.yaml: home_pads: 76 columns × 2 rows = 152 "
                      r"pads, but 200 drones need 200 pads; set rows >= 3 or columns >= 100", out)


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], r"argument --seed: must be >= 0, got -1"),
    (["--duration", "1e9"], r"argument --duration: must be > 0 and <= 86400, got 1e9"),
    (["--duration", "nan"], r"argument --duration: must be > 0 and <= 86400, got nan"),
    (["--drones", "0"], r"argument --drones: must be >= 1, got 0"),
    (["--domain-id", "300"], r"argument --domain-id: must be >= 0 and <= 232, got 300"),
    (["--task-rate", "inf"], r"argument --task-rate: must be >= 0, got inf"),
    (["--mode", "fast"], r"argument --mode: fast was removed: .*use lockstep.*"),
    (["--faults", "--duration", "10"], r"--faults needs a run of at least 20 s of sim time, got 10\.0"),
    (["--planner-shards", "0"], r"argument --planner-shards: must be >= 1, got 0"),
    (["--planner-shards", "5", "--drones", "4"],
     r"planner_shards 5 is more than the 4 drones: a shard would plan none; use at most 4"),
])
def test_bad_arguments(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "run"
    r = wm_agent("sim", *args, "--out", str(out))
    assert_refused(r, rf"wm-agent sim: error: {message}( \(see wm-agent sim --help\))?", out)


def test_missing_model_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = wm_agent("sim", "--model", str(tmp_path / "nonexistent"), "--out", str(out))
    assert_refused(r, r"wm-agent sim: error: --model \S+/nonexistent: no such model folder .*", out)


def test_tampered_model_file(tmp_path: Path) -> None:
    model = tmp_path / "wm_plan"
    shutil.copytree(REPO / "models" / "wm_plan", model)
    weights = model / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF                                    # same size, one bit pattern changed
    weights.write_bytes(bytes(data))
    out = tmp_path / "run"
    r = wm_agent("sim", "--model", str(model), "--out", str(out))
    assert_refused(r, r"wm-agent sim: error: model file \S+/weights\.safetensors: sha256 [0-9a-f]{64} "
                      r"does not match the card's expected sha256 [0-9a-f]{64}; .*", out)


def test_tensorrt_where_it_cannot_run(tmp_path: Path) -> None:
    from wm_agent.inference import tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is None:
        pytest.skip("TensorRT runs on this machine: --backend tensorrt is not refused here")
    out = tmp_path / "run"
    r = wm_agent("sim", "--backend", "tensorrt", "--out", str(out))
    assert_refused(r, "wm-agent sim: error: planner backend tensorrt unavailable: " + re.escape(reason), out)


def test_output_folder_that_cannot_be_created(tmp_path: Path) -> None:
    r = wm_agent("sim", "--out", "/proc/x")
    assert_refused(r, r"wm-agent sim: error: --out /proc/x: cannot create the run folder .*", None)


def test_non_empty_output_folder_is_not_mixed_into(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    r = wm_agent("sim", "--out", str(out))
    assert_refused(r, r"wm-agent sim: error: --out \S+: the folder is not empty \(notes\.txt\); .*", None)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_domain_with_another_graph_is_refused(tmp_path: Path, ros_context: object, domain_id: int) -> None:
    """A second run on a domain where a graph already publishes /clock would cross-talk (sim time
    jumping backwards): refused, naming the publisher and a free domain."""
    import rclpy
    from rosgraph_msgs.msg import Clock

    node = rclpy.create_node("sim_bridge", context=ros_context)   # what another run's bridge is
    try:
        node.create_publisher(Clock, "/clock", 1).publish(Clock())
        out = tmp_path / "run"
        r = wm_agent("sim", "--domain-id", str(domain_id), "--out", str(out))
        assert_refused(r, rf"wm-agent sim: error: ROS domain {domain_id} already has a running graph "
                          r"\(/sim_bridge publishes /clock\); a second run there would cross-talk with "
                          r"it: stop it or choose another --domain-id( \(e\.g\. \d+, which has no "
                          r"participants\))?", out)
    finally:
        node.destroy_node()


def test_scenario_drone_count_is_the_default(tmp_path: Path) -> None:
    """A scenario with `drones: 8` and 8 pads runs 8 drones without --drones (the CLI's default
    no longer overrides it); `graph` shows what `sim` starts."""
    path = scenario(tmp_path, "eight", {"drones": 8, "home_pads.columns": 4, "home_pads.rows": 2})
    r = wm_agent("graph", "--scenario", str(path))
    assert r.returncode == 0, r.stderr
    assert "-p drones:=8 " in r.stdout and "drones:=50" not in r.stdout
