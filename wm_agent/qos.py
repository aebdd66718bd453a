"""Named QoS profiles of the wm_agent graph, defined once (STYLE: nav2 / ros2 demos)."""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from wm_agent.topics import TASK_QUEUE_DEPTH

#: Sensor-like streams (fleet state, odometry): best effort, newest wins.
STATE = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

#: The fleet state in lockstep runs (bridge, fleet planner, coordinator): reliable. The bridge
#: waits for each state's answer, so a lost state stalls the step; a 10,000-drone state is
#: ~600 kB of UDP fragments and best effort lost most of them on a loaded 2-core machine (the
#: recorder lost 316 of 521) while the reliable assignments (330 kB) lost none. Best-effort
#: subscribers (monitor, supervisor) still match a reliable publisher.
STATE_LOCKSTEP = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Commands (fleet command, cmd_vel) as published: reliable, and the publisher offers a deadline
#: equal to the failsafe hold time (0.5 s). Subscribers use COMMAND_SUB (no requested deadline),
#: so that any reliable publisher (e.g. a hand-written teleop) stays compatible.
COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
    deadline=Duration(seconds=0.5),
)
COMMAND_SUB = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Latched configuration / current assignment: late joiners get the last one.
LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

#: Events and task status: reliable, deep enough for bursts.
EVENTS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1000,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: Task intake and lifecycle (/tasks/bulk, /tasks/bulk_ack, /tasks/status): reliable and deep
#: enough that a burst (10,000 tasks accepted, or assigned, in one go) reaches every subscriber.
TASKS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=TASK_QUEUE_DEPTH,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: /clock: reliable (works with best-effort and reliable subscribers), depth 10: a reliable
#: subscriber that acknowledges late (the recorder, busy with 600 kB fleet states in a
#: 10,000-drone lockstep run) still gets every tick; with depth 1 that run's recorder lost 664 of
#: 5,760 ticks (each replaced in the publisher's history before delivery) and the run was invalid.
CLOCK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

#: /tf (tf2_msgs/TFMessage): as tf2_ros' TransformBroadcaster offers it (DynamicBroadcasterQoS:
#: reliable, volatile, depth 100), so RViz, Foxglove and tf2 listeners match it.
TF = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=100,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
