"""Topic and service names of the wm_agent graph (one place; nodes, launch files and tests use it).

Batched fleet topics carry N drones per message. Per-drone topics for real robots use standard
messages under ``/drone_<id>/`` (REP-103/105: ENU, SI units, frames map/odom/base_link).
"""

from __future__ import annotations

from wm_agent.errors import ConfigError

FLEET_STATE = "/fleet/state"              # wm_agent_msgs/FleetState
FLEET_COMMAND = "/fleet/cmd"              # wm_agent_msgs/FleetCommand
FLEET_EVENTS = "/fleet/events"            # wm_agent_msgs/FleetEvents
FLEET_ASSIGNMENTS = "/fleet/assignments"  # wm_agent_msgs/FleetAssignments
FLEET_METRICS = "/fleet/metrics"          # wm_agent_msgs/FleetMetrics
PLANNER_STATUS = "/fleet/planner_status"  # wm_agent_msgs/PlannerStatus
STAGE_TIMES = "/fleet/stage_times"        # wm_agent_msgs/StageTimes: wall ms per stage, per node
DRONE_STATUS = "/fleet/drone_status"      # wm_agent_msgs/DroneStatus (heartbeats)
TASK_STATUS = "/tasks/status"             # wm_agent_msgs/TaskStatus
TASK_BULK = "/tasks/bulk"                 # wm_agent_msgs/TaskArray
TASK_BULK_ACK = "/tasks/bulk_ack"         # wm_agent_msgs/TaskArrayAck (one per TaskArray)

#: Queue depth of the task topics (/tasks/bulk, /tasks/bulk_ack, /tasks/status) for every
#: publisher and subscriber (qos.TASKS, the recorder): a fleet-wide burst of transitions fits.
TASK_QUEUE_DEPTH = 20_000
SUBMIT_TASK = "/tasks/submit"             # wm_agent_msgs/srv/SubmitTask
CANCEL_TASK = "/tasks/cancel"             # wm_agent_msgs/srv/CancelTask
REGISTER_DRONE = "/fleet/register"        # wm_agent_msgs/srv/RegisterDrone
CLOCK = "/clock"                          # rosgraph_msgs/Clock
WORLD_MARKERS = "/world/markers"          # visualization_msgs/MarkerArray: the scenario's map (latched)
FLEET_MARKERS = "/fleet/markers"          # visualization_msgs/MarkerArray: the fleet, one SPHERE_LIST
TF = "/tf"                                # tf2_msgs/TFMessage: map -> drone_<id>/base_link

MAP_FRAME = "map"


def drone_namespace(drone_id: int) -> str:
    """Namespace of one drone's standard topics, e.g. ``/drone_7``."""
    if drone_id < 0:
        raise ConfigError(f"drone id must be >= 0, got {drone_id}")
    return f"/drone_{drone_id}"


def drone_odom(drone_id: int) -> str:
    """nav_msgs/Odometry of one drone (pose in `map`, twist in `base_link`)."""
    return f"{drone_namespace(drone_id)}/odom"


def drone_cmd_vel(drone_id: int) -> str:
    """geometry_msgs/TwistStamped velocity setpoint of one drone (frame in its header)."""
    return f"{drone_namespace(drone_id)}/cmd_vel"


def drone_goal(drone_id: int) -> str:
    """geometry_msgs/PoseStamped goal of one drone's planner."""
    return f"{drone_namespace(drone_id)}/goal"
