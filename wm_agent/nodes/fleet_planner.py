"""fleet_planner: fleet state + assignments in, fleet command out — all drones in one call.

Every FleetState gets an answer (a FleetCommand for step + 1, so the sim bridge's lockstep mode
can wait for it); a new plan is computed whenever the state's step enters a new planning period
(`replan_every` control periods), in between the last plan's commands are repeated. Planner
latency and safety-filter substitutions go out on /fleet/planner_status.

Sharded (`shards` K > 1): this process plans only the drones with ``id % K == shard``
(:mod:`wm_agent.planning.shards`), seeing every drone as a neighbour, and its FleetCommand
holds only those drones; the bridge merges the K partial commands by drone id.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rclpy.node import Node

from wm_agent import qos, topics
from wm_agent.conversions import (
    FleetCommandArrays,
    fleet_assignments_from_msg,
    fleet_command_to_msg,
    fleet_state_from_msg,
)
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.common import StageReporter, declare_config, run_node
from wm_agent.nodes.planning_common import PlannerNodeConfig, build_controller
from wm_agent.planning.fleet_control import GoalTable
from wm_agent.planning.lockstep import LockstepPairing


class FleetPlannerNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("fleet_planner", **kwargs)
        self.msgs, _ = require_interfaces()
        self.cfg = declare_config(self, PlannerNodeConfig)
        self.scenario, self.control = build_controller(self.cfg)
        self.shard = self.cfg.shard_spec
        self.goal_of = GoalTable.empty()
        self.last_period = -1
        self.last: Any = None  # FleetCommandOut of the current period
        self.last_ids: np.ndarray = np.zeros(0, np.uint32)
        self.last_mine: np.ndarray = np.zeros(0, bool)
        self.sub_total = np.zeros(4, np.uint64)
        self.stages = StageReporter(self)  # wall time per stage on /fleet/stage_times
        # lockstep: states wait for the assignments the coordinator computed from them
        self.lockstep: LockstepPairing[Any, GoalTable] = LockstepPairing(GoalTable.empty())
        self.cmd_pub = self.create_publisher(self.msgs.FleetCommand, topics.FLEET_COMMAND, qos.COMMAND)
        self.status_pub = self.create_publisher(self.msgs.PlannerStatus, topics.PLANNER_STATUS, qos.EVENTS)
        self.create_subscription(self.msgs.FleetState, topics.FLEET_STATE, self.on_state,
                                 qos.STATE_LOCKSTEP if self.cfg.lockstep else qos.STATE)
        self.create_subscription(self.msgs.FleetAssignments, topics.FLEET_ASSIGNMENTS,
                                 self.on_assignments, qos.LATCHED)
        shard = (f", shard {self.shard.index} of {self.shard.count} (ids % {self.shard.count} == "
                 f"{self.shard.index})" if self.shard.count > 1 else "")
        self.get_logger().info(
            f"backend {self.control.backend}, preset {self.cfg.preset}, replan every "
            f"{self.cfg.replan_every} control periods{shard}"
        )

    def on_assignments(self, msg: Any) -> None:
        a = self.stages.decode("assignments_in", fleet_assignments_from_msg, msg, "FleetAssignments")
        if a is None:
            return
        table = GoalTable.of(a.ids, a.goal, a.phases)
        if not self.cfg.lockstep:
            self.goal_of = table
            return
        self.answer_ready(self.lockstep.add_table(_ns(msg.header.stamp), table))

    def on_state(self, msg: Any) -> None:
        if not self.cfg.lockstep:
            self.answer(msg)
            return
        self.answer_ready(self.lockstep.add_state(_ns(msg.header.stamp), msg))

    def answer_ready(self, ready: list[tuple[Any, GoalTable]]) -> None:
        """Answer states whose assignments arrived (or can no longer arrive), in time order."""
        skipped = self.lockstep.superseded
        for msg, table in ready:
            self.goal_of = table
            self.answer(msg)
        if self.lockstep.superseded > skipped:
            self.get_logger().warning(
                f"lockstep: {self.lockstep.superseded} fleet state(s) so far got no assignments "
                "(the coordinator missed them); answered with the previous ones",
                throttle_duration_sec=5.0)

    def answer(self, msg: Any) -> None:
        timer = self.stages.timer
        s = self.stages.decode("state_in", fleet_state_from_msg, msg, "FleetState")
        if s is None:
            return
        period = s.step // self.cfg.replan_every
        if self.last is None or period != self.last_period or not np.array_equal(s.ids, self.last_ids):
            self.replan(msg, s)
            self.last_period = period
        with timer.stage("command_out"):
            out, k = self.last, self.last_mine
            cmd = FleetCommandArrays(ids=self.last_ids[k], velocity=out.velocity[k],
                                     yaw_rate=out.yaw_rate[k], mode=out.mode[k], step=s.step + 1)
            m = fleet_command_to_msg(cmd)
            m.header.stamp = msg.header.stamp
            self.cmd_pub.publish(m)
        self.stages.tick(_ns(msg.header.stamp) * 1e-9)

    def replan(self, msg: Any, s: Any) -> None:
        goals, phases, has_goal = self.goal_of.lookup(s.ids)
        grounded = (s.status & self.msgs.FleetState.GROUNDED) != 0
        collided = (s.status & self.msgs.FleetState.COLLIDED) != 0
        has_goal &= ~collided
        mine = self.shard.mine(s.ids)
        out = self.control.command(s.ids, s.position, s.velocity, s.orientation, s.body_rates,
                                   grounded, goals, phases, has_goal, mine=mine,
                                   step=s.step // self.cfg.replan_every)
        self.last, self.last_ids, self.last_mine = out, s.ids.copy(), mine
        self.stages.timer.add_all(out.stages)
        self.sub_total += out.substitutions.astype(np.uint64)
        st = self.msgs.PlannerStatus()
        st.header.stamp = msg.header.stamp
        st.backend = self.control.backend
        st.batch_size = int(out.planned)
        st.plan_latency_ms = float(out.latency_ms)
        st.substitutions = out.substitutions.astype(np.uint32).tolist()
        st.substitutions_total = self.sub_total.tolist()
        self.status_pub.publish(st)


def _ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def main(args: list[str] | None = None) -> None:
    run_node(FleetPlannerNode, args)


if __name__ == "__main__":
    main()
