"""wm_agent: an ament_python package (colcon on a robot, pip in a venv; see README)."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "wm_agent"
HERE = Path(__file__).resolve().parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing `folder` under share/wm_agent/, keeping its layout."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return sorted(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    description="World-model drone planning, fleet coordination and a PyBullet sim bridge for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("sim"),
        *tree("models"),
    ],
    install_requires=[
        "numpy", "scipy", "numba", "pyyaml", "tqdm", "matplotlib", "rosbags", "mcap",
    ],
    extras_require={"test": ["pytest", "hypothesis", "ruff", "mypy"]},
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "wm-agent = wm_agent.cli:entry",
            "sim_bridge = wm_agent.nodes.sim_bridge:main",
            "fleet_coordinator = wm_agent.nodes.fleet_coordinator:main",
            "fleet_monitor = wm_agent.nodes.fleet_monitor:main",
            "fleet_planner = wm_agent.nodes.fleet_planner:main",
            "planner = wm_agent.nodes.planner:main",
            "task_feeder = wm_agent.nodes.task_feeder:main",
            "recorder = wm_agent.nodes.recorder:main",
            "replayer = wm_agent.nodes.replayer:main",
        ],
    },
)
