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

from wm_agent.graph import args_from_launch, fleet_sim_graph, launch_arguments
from wm_agent.launch_support import launch_nodes

# The arguments, their defaults and descriptions are the graph's (FleetSimArgs): the same ones
# `wm-agent sim` offers as options.
ARGUMENTS = [DeclareLaunchArgument(name, default_value=default, description=description)
             for name, default, description in launch_arguments()]

def _nodes(context: LaunchContext) -> list[Action]:
    args = args_from_launch({name: LaunchConfiguration(name).perform(context)
                             for name, _, _ in launch_arguments()})
    return launch_nodes(fleet_sim_graph(args))


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([*ARGUMENTS, OpaqueFunction(function=_nodes)])
