"""The venv setup path: idempotent, refuses clearly on a machine that lacks a build tool, and a
missing interface package is reported with the setup command instead of an ImportError trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)


def stamps() -> dict[str, str]:
    return {p.name: p.read_text() for p in VENV.glob(".wm_*.sha256")}


@pytest.mark.skipif(
    not (VENV / ".wm_deps.sha256").is_file(),
    reason="tests run outside the venv made by scripts/setup.sh (e.g. a colcon workspace)",
)
def test_second_setup_run_changes_nothing() -> None:
    before = stamps()
    mtimes = {p: p.stat().st_mtime_ns for p in VENV.glob(".wm_*.sha256")}
    result = subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "WM_AGENT_VENV": str(VENV)},
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("up to date") == 3, out
    assert "installing" not in out and "building" not in out, out
    assert stamps() == before
    assert {p: p.stat().st_mtime_ns for p in VENV.glob(".wm_*.sha256")} == mtimes


def test_setup_names_a_missing_build_tool(tmp_path: Path) -> None:
    """A PATH with every tool of this machine except cmake: setup stops and names cmake."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for folder in ("/usr/local/bin", "/usr/bin", "/bin", str(Path(sys.executable).parent)):
        for exe in Path(folder).iterdir() if Path(folder).is_dir() else []:
            if exe.name != "cmake" and not (shim / exe.name).exists() and os.access(exe, os.X_OK):
                (shim / exe.name).symlink_to(exe)
    python311 = Path(sys.executable).resolve()
    if not (shim / "python3.11").exists():
        (shim / "python3.11").symlink_to(python311)
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup.sh")], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={"PATH": str(shim), "HOME": str(tmp_path),
                         "WM_AGENT_VENV": str(tmp_path / "venv")},
    )
    assert result.returncode == 1
    assert "cmake" in result.stderr and "apt-get install cmake" in result.stderr, result.stderr
    assert not (tmp_path / "venv").exists(), "setup must stop before creating anything"


def test_missing_interface_package_names_the_setup_command() -> None:
    code = (
        "import sys; sys.modules['wm_agent_msgs'] = None\n"
        "from wm_agent.interfaces import require_interfaces\n"
        "require_interfaces()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SetupError" in result.stderr and "make setup" in result.stderr, result.stderr


def test_node_without_interfaces_exits_with_a_message_not_a_trace() -> None:
    code = (
        "import sys; sys.modules['wm_agent_msgs'] = None\n"
        "from wm_agent.nodes.fleet_monitor import main\n"
        "main([])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "[fatal]" in result.stderr and "make setup" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_cli_help_lists_the_commands() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "wm-agent"), "--help"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    for command in ("sim", "graph", "check", "replay", "collect", "train", "export", "eval-model"):
        assert command in result.stdout
