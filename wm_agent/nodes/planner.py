"""planner: one drone — odometry + goal in, cmd_vel out at a fixed rate (what runs on a Jetson).

Subscribes `<ns>/odom` (nav_msgs/Odometry: pose in the world frame, twist in base_link) and
`<ns>/goal` (geometry_msgs/PoseStamped), publishes `<ns>/cmd_vel` (geometry_msgs/TwistStamped,
world frame) and a `DroneStatus` heartbeat on /fleet/drone_status. Command and heartbeat come
from the same timer callback, so a hung planner is silence to the autopilot's failsafe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.errors import ConfigError
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import declare_config, run_node
from wm_agent.nodes.planning_common import PlannerNodeConfig, build_controller
from wm_agent.planning.fleet_control import PHASE_TO_PICKUP
from wm_agent.sim.command_buffer import CommandMode
from wm_agent.sim.rotations import quat_to_matrix


@dataclass(frozen=True)
class DroneConfig:
    drone_id: int = field(default=0, metadata={"description": "this drone's id (heartbeat)"})
    rate_hz: float = field(default=12.0, metadata={"description": "command rate [Hz]"})
    odom_timeout_s: float = field(
        default=0.5, metadata={"description": "no odometry for this long: stop commanding [s]"}
    )
    frame_id: str = field(default="map", metadata={"description": "frame of the published cmd_vel"})

    def __post_init__(self) -> None:
        if not (0.5 <= self.rate_hz <= 1000.0):
            raise ConfigError(f"planner: rate_hz must be in [0.5, 1000], got {self.rate_hz}")
        if self.drone_id < 0 or not self.odom_timeout_s > 0:
            raise ConfigError("planner: drone_id must be >= 0 and odom_timeout_s > 0")


class PlannerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("planner", **kwargs)
        self.msgs, _ = require_interfaces()
        self.cfg = declare_config(self, PlannerNodeConfig)
        self.drone = declare_config(self, DroneConfig)
        self.scenario, self.control = build_controller(self.cfg, 1.0 / self.drone.rate_hz)
        self.odom: Odometry | None = None
        self.odom_wall = 0.0
        self.goal: np.ndarray | None = None
        self.cmd_pub = self.create_publisher(TwistStamped, "cmd_vel", qos.COMMAND)
        self.heartbeat_pub = self.create_publisher(self.msgs.DroneStatus, topics.DRONE_STATUS, qos.EVENTS)
        self.create_subscription(Odometry, "odom", self.on_odom, qos.STATE)
        self.create_subscription(PoseStamped, "goal", self.on_goal, qos.LATCHED)
        self.create_timer(1.0 / self.drone.rate_hz, self.tick)
        self.substitutions = 0
        self.get_logger().info(f"drone {self.drone.drone_id}: backend {self.control.backend}")

    def on_odom(self, msg: Odometry) -> None:
        self.odom = msg
        self.odom_wall = self.get_clock().now().nanoseconds * 1e-9

    def on_goal(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        goal = np.array([p.x, p.y, p.z], np.float64)
        if not np.all(np.isfinite(goal)):
            self.get_logger().warning(f"ignored non-finite goal {goal.tolist()}")
            return
        self.goal = goal

    def tick(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.odom is None or now - self.odom_wall > self.drone.odom_timeout_s:
            return  # no fresh state: silence, and the autopilot's failsafe holds
        o = self.odom
        pos = np.array([[o.pose.pose.position.x, o.pose.pose.position.y, o.pose.pose.position.z]])
        q = o.pose.pose.orientation
        quat = np.array([[q.x, q.y, q.z, q.w]])
        tw = o.twist.twist
        vel = np.einsum("kij,kj->ki", quat_to_matrix(quat), np.array([[tw.linear.x, tw.linear.y,
                                                                         tw.linear.z]]))
        rates = np.array([[tw.angular.x, tw.angular.y, tw.angular.z]])
        has_goal = np.array([self.goal is not None])
        goal = self.goal[None] if self.goal is not None else np.zeros((1, 3))
        out = self.control.command(np.array([self.drone.drone_id]), pos, vel, quat, rates,
                                   np.array([pos[0, 2] < 0.05]), goal,
                                   np.array([PHASE_TO_PICKUP]), has_goal)
        self.substitutions += int(out.substitutions.sum())
        cmd = TwistStamped()
        cmd.header.stamp = self.get_clock().now().to_msg()
        cmd.header.frame_id = self.drone.frame_id
        v = out.velocity[0] if out.mode[0] == CommandMode.VELOCITY else np.zeros(3)
        cmd.twist.linear.x, cmd.twist.linear.y, cmd.twist.linear.z = map(float, v)
        cmd.twist.angular.z = float(out.yaw_rate[0])
        self.cmd_pub.publish(cmd)
        hb = self.msgs.DroneStatus()
        hb.header.stamp = cmd.header.stamp
        hb.drone_id = self.drone.drone_id
        hb.planner_backend = self.control.backend
        hb.plan_latency_ms = float(out.latency_ms)
        hb.safety_substitutions = self.substitutions
        self.heartbeat_pub.publish(hb)


def main(args: list[str] | None = None) -> None:
    run_node(PlannerNode, args)


if __name__ == "__main__":
    main()
