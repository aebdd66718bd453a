"""Where the simulator's data files (airframes, URDFs, scenarios) live."""

from __future__ import annotations

import sys
from pathlib import Path

from wm_agent.errors import SetupError

_SHARE_SUBDIR = Path("share") / "wm_agent" / "sim"


def sim_data_dir() -> Path:
    """Return the ``sim/`` data directory.

    Looks first in the source checkout (``<repo>/sim``, next to the ``wm_agent`` package), then
    in the installed package share (``<sys.prefix>/share/wm_agent/sim``, where setup.py's
    ``data_files`` put it for colcon/ament installs).

    Raises:
        SetupError: neither location holds a ``scenarios/`` folder.
    """
    candidates = [
        Path(__file__).resolve().parents[2] / "sim",
        Path(sys.prefix) / _SHARE_SUBDIR,
    ]
    for candidate in candidates:
        if (candidate / "scenarios").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise SetupError(
        f"wm_agent sim data not found (tried {tried}); run from the source checkout or install "
        "the package so that share/wm_agent/sim is populated"
    )
