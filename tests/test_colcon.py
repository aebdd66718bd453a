"""The colcon path (robots with ROS 2): `colcon build` builds wm_agent_msgs and wm_agent.

colcon does not discover a package nested in another package's folder, so the README's command
names both base paths; this test runs exactly that command on top of the PyPI ROS 2 wheels
(the robot's /opt/ros install plays that role there) and checks what was installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)

pytestmark = pytest.mark.slow


def test_colcon_list_finds_both_packages_only_with_both_base_paths() -> None:
    colcon = shutil.which("colcon", path=str(VENV / "bin"))
    assert colcon, "colcon is installed by requirements.txt"
    plain = subprocess.run([colcon, "list", "--names-only", "--base-paths", str(REPO)],
                           capture_output=True, text=True, timeout=120)
    both = subprocess.run(
        [colcon, "list", "--names-only", "--base-paths", str(REPO), str(REPO / "msg")],
        capture_output=True, text=True, timeout=120,
    )
    assert plain.stdout.split() == ["wm_agent"]
    assert sorted(both.stdout.split()) == ["wm_agent", "wm_agent_msgs"]


def test_colcon_build_installs_interfaces_executables_and_data(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AMENT_PREFIX_PATH": str(VENV),
        "CMAKE_PREFIX_PATH": str(VENV),
        "PATH": f"{VENV / 'bin'}:{os.environ['PATH']}",
    }
    cmd = [
        str(VENV / "bin" / "colcon"), "build",
        "--base-paths", str(REPO), str(REPO / "msg"),
        "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
        "--event-handlers", "console_cohesion-",
        "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    install = tmp_path / "install"
    for exe in ("sim_bridge", "fleet_coordinator", "fleet_monitor", "wm-agent"):
        assert (install / "wm_agent" / "lib" / "wm_agent" / exe).is_file(), exe
    share = install / "wm_agent" / "share" / "wm_agent"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "fleet_sim.launch.py").is_file()
    assert (share / "config" / "fleet_monitor.yaml").is_file()
    assert (share / "sim" / "scenarios" / "warehouse.yaml").is_file()
    assert (install / "wm_agent_msgs" / "share" / "wm_agent_msgs" / "msg" / "FleetState.msg").is_file()
    # The built workspace is what Python imports once its setup script is sourced.
    probe = (
        f"source {install / 'setup.bash'} && cd {tmp_path} && {sys.executable} -c "
        "'import wm_agent, wm_agent_msgs.msg, wm_agent_msgs.srv; "
        "print(wm_agent.__file__); print(wm_agent_msgs.msg.__file__)'"
    )
    out = subprocess.run(["bash", "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    paths = out.stdout.split()
    assert all(p.startswith(str(install)) for p in paths), paths
