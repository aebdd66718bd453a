"""The whole simulated fleet graph on a machine with ROS 2 installed.

Usage:
    ros2 launch wm_agent fleet_sim.launch.py drones:=50 scenario:=warehouse seed:=0 odom_drones:=16

The nodes, their executables, parameter files and remappings come from wm_agent.graph, the
same definition the `wm-agent sim` command uses in a plain venv.
"""

from __future__ import annotations

from launch import LaunchContext, LaunchDescription
from launch.action import Action
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration

from wm_agent.graph import DEFAULT_ODOM_DRONES, FleetSimArgs, fleet_sim_graph
from wm_agent.launch_support import launch_nodes

ARGUMENTS = [
    DeclareLaunchArgument(
        "drones", default_value="0", description="number of simulated drones (0 = the scenario's)"
    ),
    DeclareLaunchArgument(
        "scenario", default_value="warehouse",
        description="scenario name under share/wm_agent/sim/scenarios, or a YAML path",
    ),
    DeclareLaunchArgument("seed", default_value="0", description="random seed of the run"),
    DeclareLaunchArgument(
        "mode", default_value="realtime",
        description="sim clock: realtime | lockstep (waits for the planner every period: "
        "deterministic, as fast as the planner answers)",
    ),
    DeclareLaunchArgument(
        "fidelity", default_value="auto",
        description="physics: motor (PyBullet) | fleet (vectorised) | auto (by drone count)",
    ),
    DeclareLaunchArgument(
        "backend", default_value="onnxruntime",
        description="fleet planner backend: onnxruntime | torch | tensorrt | classical (PID)",
    ),
    DeclareLaunchArgument("model", default_value="", description="world-model folder ('' = shipped)"),
    DeclareLaunchArgument(
        "record", default_value="", description="bag folder to record the run into ('' = none)"
    ),
    DeclareLaunchArgument(
        "odom_drones", default_value=str(DEFAULT_ODOM_DRONES),
        description="drones with ids below this get /drone_<id>/odom, TF on /tf and "
        "/drone_<id>/cmd_vel (0 = none)",
    ),
]


def _nodes(context: LaunchContext) -> list[Action]:
    args = FleetSimArgs(
        drones=int(LaunchConfiguration("drones").perform(context)),
        scenario=LaunchConfiguration("scenario").perform(context),
        seed=int(LaunchConfiguration("seed").perform(context)),
        mode=LaunchConfiguration("mode").perform(context),
        fidelity=LaunchConfiguration("fidelity").perform(context),
        backend=LaunchConfiguration("backend").perform(context),
        model=LaunchConfiguration("model").perform(context),
        record=LaunchConfiguration("record").perform(context),
        odom_drones=int(LaunchConfiguration("odom_drones").perform(context)),
    )
    return launch_nodes(fleet_sim_graph(args))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, OpaqueFunction(function=_nodes)])
