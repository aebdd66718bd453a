"""Where the package's data lives: the source checkout, or share/wm_agent of an install."""

from __future__ import annotations

import sys
from pathlib import Path

from wm_agent.errors import SetupError

PACKAGE = "wm_agent"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """Root holding launch/, config/, sim/ and models/.

    A source checkout (editable install, tests) uses the checkout itself; a colcon or pip install
    uses ``<prefix>/share/wm_agent`` (found through the ament index when ROS is sourced).
    """
    if (_SOURCE_ROOT / "package.xml").is_file() and (_SOURCE_ROOT / "config").is_dir():
        return _SOURCE_ROOT
    candidates = [Path(sys.prefix) / "share" / PACKAGE]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory(PACKAGE)))
    except Exception:
        pass
    for path in candidates:
        if (path / "config").is_dir():
            return path
    raise SetupError(
        f"cannot find wm_agent's data (config/, sim/, models/); looked in {_SOURCE_ROOT} and "
        f"{', '.join(map(str, candidates))}. Reinstall with `make setup` or `colcon build`."
    )


def config_file(name: str) -> Path:
    """A node parameter file under config/, e.g. ``config_file("sim_bridge.yaml")``."""
    path = share_dir() / "config" / name
    if not path.is_file():
        raise SetupError(f"parameter file {path} is missing; reinstall wm_agent")
    return path


RETRAINED_MODEL_DIR = Path("runs/wm/model")
"""Where ``wm-agent train`` writes a model and ``export`` / ``eval-model`` read it by default: a
run folder (ignored by git), never a shipped (tracked) model; ``models/...`` only when named."""
