"""Where the simulator's data files (airframes, URDFs, scenarios) live."""

from __future__ import annotations

from pathlib import Path

from wm_agent.errors import SetupError
from wm_agent.paths import share_dir


def sim_data_dir() -> Path:
    """Return the ``sim/`` data directory of the source checkout or the installed share.

    Raises:
        SetupError: no ``sim/scenarios`` folder where wm_agent's data lives.
    """
    path = share_dir() / "sim"
    if not (path / "scenarios").is_dir():
        raise SetupError(
            f"wm_agent sim data not found in {path}; run from the source checkout or reinstall "
            "the package (make setup / colcon build) so that share/wm_agent/sim is populated"
        )
    return path
