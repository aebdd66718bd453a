"""NodeSpec -> launch_ros Node actions, shared by the launch files in launch/.

Imports launch_ros only when called: it exists on robots with ROS 2 installed, not in the venv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wm_agent.graph import NodeSpec
from wm_agent.paths import share_dir


def launch_nodes(specs: Sequence[NodeSpec]) -> list[Any]:
    """One launch_ros.actions.Node per spec: parameter files from share/wm_agent/config, then
    the spec's parameters, its remappings, output to the screen."""
    from launch_ros.actions import Node

    config_dir = share_dir() / "config"
    return [
        Node(
            package=spec.package,
            executable=spec.executable,
            name=spec.name,
            namespace=spec.namespace or None,
            parameters=[*(str(config_dir / f) for f in spec.param_files), dict(spec.parameters)],
            remappings=list(spec.remappings),
            output="screen",
        )
        for spec in specs
    ]
