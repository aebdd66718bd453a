"""Replay a recorded bag into the fleet planner (re-planning every recorded state).

Usage:
    ros2 launch wm_agent replay_eval.launch.py bag:=runs/sim-0/bag rate:=1.0 record:=runs/replay

The re-planned commands go to /replay/fleet/cmd (never mixed with the recorded /fleet/cmd);
`wm-agent eval BAG` then compares them offline. Nodes come from wm_agent.graph.replay_eval_graph.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from wm_agent.graph import ReplayArgs, replay_eval_graph
from wm_agent.launch_support import launch_nodes

ARGUMENTS = [
    DeclareLaunchArgument("bag", description="recorded bag folder (rosbag2 MCAP or sqlite3)"),
    DeclareLaunchArgument("rate", default_value="1.0", description="bag speed (0 = as fast as possible)"),
    DeclareLaunchArgument(
        "backend", default_value="onnxruntime",
        description="planner backend: onnxruntime | torch | tensorrt | classical",
    ),
    DeclareLaunchArgument("model", default_value="", description="world-model folder ('' = shipped)"),
    DeclareLaunchArgument("scenario", default_value="warehouse", description="the recorded site's scenario"),
    DeclareLaunchArgument(
        "record", default_value="", description="bag folder for the re-planned commands ('' = none)"
    ),
    DeclareLaunchArgument(
        "drones", default_value="0",
        description="fleet size the planner (TensorRT batch profile) is sized for (0 = from the bag)",
    ),
]


def _nodes(context: LaunchContext) -> list[Action]:
    args = ReplayArgs(
        bag=LaunchConfiguration("bag").perform(context),
        rate=float(LaunchConfiguration("rate").perform(context)),
        backend=LaunchConfiguration("backend").perform(context),
        model=LaunchConfiguration("model").perform(context),
        scenario=LaunchConfiguration("scenario").perform(context),
        record=LaunchConfiguration("record").perform(context),
        drones=int(LaunchConfiguration("drones").perform(context)),
    )
    return launch_nodes(replay_eval_graph(args))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, OpaqueFunction(function=_nodes)])
