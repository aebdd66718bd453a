"""One real drone: the world-model planner under the drone's namespace.

Usage:
    ros2 launch wm_agent drone.launch.py namespace:=/drone_3 drone_id:=3 backend:=tensorrt \\
        model:=/opt/wm_agent/models/wm_plan engine_cache:=/var/cache/wm_agent

The planner takes `<namespace>/odom` (nav_msgs/Odometry) and `<namespace>/goal`
(geometry_msgs/PoseStamped) and publishes `<namespace>/cmd_vel` (geometry_msgs/TwistStamped)
plus a heartbeat; remap them to your autopilot bridge (e.g. PX4 uXRCE-DDS or MAVROS). The
TensorRT engine is a cache of the shipped ONNX, built on first start and rebuilt only when the
ONNX file, the GPU or the TensorRT version changes. Nodes come from wm_agent.graph.drone_graph.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from wm_agent.graph import DroneArgs, drone_graph
from wm_agent.launch_support import launch_nodes

ARGUMENTS = [
    DeclareLaunchArgument("namespace", default_value="/drone_0", description="the drone's namespace"),
    DeclareLaunchArgument("drone_id", default_value="0", description="the drone's id (heartbeat)"),
    DeclareLaunchArgument(
        "backend", default_value="tensorrt",
        description="planner backend: tensorrt (Jetson/GPU) | onnxruntime (CPU) | torch | classical",
    ),
    DeclareLaunchArgument(
        "model", default_value="", description="planning world-model folder ('' = the installed wm_plan)"
    ),
    DeclareLaunchArgument(
        "engine_cache", default_value="",
        description="folder of cached plan graphs / TensorRT engines ('' = ~/.cache/wm_agent/plan)",
    ),
    DeclareLaunchArgument(
        "scenario", default_value="warehouse", description="site map: obstacles and geofence"
    ),
]


def _nodes(context: LaunchContext) -> list[Action]:
    args = DroneArgs(
        namespace=LaunchConfiguration("namespace").perform(context),
        drone_id=int(LaunchConfiguration("drone_id").perform(context)),
        backend=LaunchConfiguration("backend").perform(context),
        model=LaunchConfiguration("model").perform(context),
        engine_cache=LaunchConfiguration("engine_cache").perform(context),
        scenario=LaunchConfiguration("scenario").perform(context),
    )
    return launch_nodes(drone_graph(args))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, OpaqueFunction(function=_nodes)])
