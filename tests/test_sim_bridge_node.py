"""sim_bridge over real DDS: commands move drones, the fleet state and odometry show it, lockstep
is deterministic, malformed commands are dropped without harm."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_agent import qos, topics
from wm_agent.conversions import FleetCommandArrays, fleet_command_to_msg, fleet_state_from_msg
from wm_agent.interfaces import require_interfaces
from wm_agent.nodes.sim_bridge import SimBridge

pytestmark = pytest.mark.dds
msgs, _ = require_interfaces()


def make_bridge(context: Any, **params: Any) -> SimBridge:
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return SimBridge(context=context, parameter_overrides=overrides)


class LockstepCommander(Node):
    """Answers every fleet state of step s with a command for step s + 1 (climb for drone 0);
    ``drop_first``: ignores the first copy of every step's state after step 0 (a lost sample)."""

    def __init__(self, context: Any, n: int, climb: float = 0.6, drop_first: bool = False) -> None:
        super().__init__("commander", context=context)
        self.n = n
        self.climb = climb
        self.drop_first = drop_first
        self.states: list[Any] = []
        self.pub = self.create_publisher(msgs.FleetCommand, topics.FLEET_COMMAND, qos.COMMAND)
        self.create_subscription(msgs.FleetState, topics.FLEET_STATE, self.on_state, qos.STATE)

    def on_state(self, msg: Any) -> None:
        s = fleet_state_from_msg(msg)
        self.states.append(s)
        if self.drop_first and s.step > 0 and sum(x.step == s.step for x in self.states) == 1:
            return  # as if this copy were lost on the way
        vel = np.zeros((self.n, 3), np.float32)
        vel[0, 2] = self.climb
        cmd = FleetCommandArrays(
            ids=np.arange(self.n, dtype=np.uint32), velocity=vel,
            yaw_rate=np.zeros(self.n, np.float32),
            mode=np.zeros(self.n, np.uint8), step=s.step + 1,
        )
        self.pub.publish(fleet_command_to_msg(cmd))


def run_lockstep(context: Any, spin: Any, steps: int, seed: int = 3,
                 drop_first: bool = False) -> tuple[list[Any], SimBridge]:
    bridge = make_bridge(context, drones=3, fidelity="fleet", mode="lockstep", seed=seed,
                         lockstep_min_commanders=3, lockstep_timeout_s=5.0, odom_max_drones=1)
    commander = LockstepCommander(context, 3, drop_first=drop_first)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(bridge)
    executor.add_node(commander)
    # the bridge publishes step 0 at start; re-publish until the commander is discovered
    assert spin(executor, lambda: commander.pub.get_subscription_count() > 0, 10.0)

    def first_state_arrived() -> bool:
        if not commander.states:
            bridge.publish_state()  # step 0 again, until the commander has heard it
        return bool(commander.states)

    assert spin(executor, first_state_arrived, 10.0)
    assert spin(executor, lambda: bridge.step_count >= steps, 60.0), bridge.step_count
    spin(executor, lambda: any(s.step == steps for s in commander.states), 5.0)
    states = [s for s in commander.states if 0 < s.step <= steps]
    executor.shutdown()
    bridge.close()
    bridge.destroy_node()
    commander.destroy_node()
    return states, bridge


def test_a_lockstep_state_lost_on_the_way_is_published_again(ros_context: Any, spin: Any) -> None:
    """The commander never hears the first copy of a step's state (best effort lost it): the
    bridge publishes the same step again after a quarter of lockstep_timeout_s (5 s) instead of
    advancing without commands after the whole timeout; every step is commanded (20 steps in
    well under the 60 s the spin allows; waiting out the timeout would take 100 s)."""
    states, bridge = run_lockstep(ros_context, spin, steps=20, drop_first=True)
    steps = [s.step for s in states]
    assert sorted(set(steps)) == list(range(1, 21))
    assert all(steps.count(k) >= 2 for k in range(1, 20)), "each step's state was sent again"
    assert bridge.lockstep_resends >= 19
    for a, b in itertools.pairwise(states):
        if a.step == b.step:  # the same state again: nothing advanced in between
            np.testing.assert_array_equal(a.position, b.position)


def test_fleet_command_moves_the_drone_in_lockstep(ros_context: Any, spin: Any) -> None:
    states, bridge = run_lockstep(ros_context, spin, steps=96)   # 2 s of sim time at 48 Hz
    assert bridge.lockstep_resends == 0, "an answered step is published once"
    steps = [s.step for s in states]
    assert steps == sorted(set(steps)), "lockstep must publish every step exactly once, in order"
    last = states[-1]
    assert last.step == 96
    assert last.position[0, 2] > 0.5, "drone 0 was commanded to climb at 0.6 m/s for 2 s"
    # drones 1, 2 got zero velocity: armed, they hover near their pads (take-off clearance)
    assert np.all(last.position[1:, 2] < 0.25), "drones 1, 2 were commanded to stay"
    assert last.status[0] & msgs.FleetState.FLYING
    assert last.status[0] & msgs.FleetState.ARMED


def test_lockstep_is_deterministic(ros_context: Any, spin: Any) -> None:
    a, _ = run_lockstep(ros_context, spin, steps=40, seed=7)
    b, _ = run_lockstep(ros_context, spin, steps=40, seed=7)
    assert [s.step for s in a] == [s.step for s in b]
    for sa, sb in zip(a, b, strict=True):
        np.testing.assert_array_equal(sa.position, sb.position)
        np.testing.assert_array_equal(sa.velocity, sb.velocity)
        np.testing.assert_array_equal(sa.orientation, sb.orientation)


def test_cmd_vel_and_odometry_for_one_drone(ros_context: Any, spin: Any) -> None:
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="fast", odom_max_drones=2,
                         duration_s=3.0)
    node = Node("teleop", context=ros_context)
    odom: list[Odometry] = []
    node.create_subscription(Odometry, topics.drone_odom(1), odom.append, qos.STATE)
    pub = node.create_publisher(TwistStamped, topics.drone_cmd_vel(1), qos.COMMAND)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(node)

    def command() -> bool:
        m = TwistStamped()
        m.header.frame_id = "map"
        m.twist.linear.z = 0.5
        pub.publish(m)
        return bridge.sim.sim_time >= 3.0 - 1e-9

    assert spin(executor, command, 60.0)
    spin(executor, lambda: False, 0.3)
    assert odom, "no odometry on /drone_1/odom"
    z = odom[-1].pose.pose.position.z
    assert z > 0.5, f"drone 1 should have climbed, odom z = {z}"
    assert odom[-1].header.frame_id == "map"
    assert odom[-1].child_frame_id == "drone_1/base_link"
    assert bridge.sim.state().pos[0, 2] < 0.1, "drone 0 got no command"
    executor.shutdown()
    bridge.close()


def test_malformed_fleet_command_is_dropped(ros_context: Any, spin: Any) -> None:
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="lockstep")
    bad = msgs.FleetCommand()
    bad.ids = [0, 1]
    bad.velocity = [0.0, 0.0, 1.0]  # 3 values for 2 drones
    bridge.on_fleet_command(bad)
    assert not bridge.commands.fresh.any()
    nan = fleet_command_to_msg(FleetCommandArrays(
        ids=np.array([0], np.uint32), velocity=np.array([[np.nan, 0, 1]], np.float32),
        yaw_rate=np.zeros(1, np.float32), mode=np.zeros(1, np.uint8), step=1))
    bridge.on_fleet_command(nan)
    bridge.advance(lockstep_step=1)
    s = bridge.sim.state()
    assert np.all(np.isfinite(s.pos)) and s.invalid_commands[0] == 1
    bridge.close()


def test_bad_parameter_is_refused_with_its_name(ros_context: Any) -> None:
    from wm_agent.errors import ConfigError

    with pytest.raises(ConfigError, match="mode"):
        make_bridge(ros_context, mode="warp")


def test_start_waits_for_the_fleet_state_subscribers(ros_context: Any, spin: Any) -> None:
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="fast", odom_max_drones=0,
                         start_subscribers=1, duration_s=1.0)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    spin(executor, lambda: False, 0.5)
    assert bridge.sim.sim_time == 0.0 and bridge.step_count == 0  # nobody listens yet: held at 0
    listener = Node("late_listener", context=ros_context)
    states: list[Any] = []
    listener.create_subscription(msgs.FleetState, topics.FLEET_STATE, states.append, qos.STATE)
    executor.add_node(listener)
    assert spin(executor, lambda: bridge.sim.sim_time >= 1.0 - 1e-9, 30.0), bridge.sim.sim_time
    spin(executor, lambda: False, 0.2)
    steps = [fleet_state_from_msg(m).step for m in states]
    assert steps and steps[0] == 0  # the listener saw the start
    executor.shutdown()
    bridge.close()
    listener.destroy_node()


def test_start_waits_for_a_second_fleet_command_subscriber(ros_context: Any, spin: Any) -> None:
    """A recording run holds t = 0 until the recorder listens to the commands too (it subscribes
    once it has seen the planner's publisher): the first commands of a 1,000-drone lockstep run
    (steps 1-4) were missing from its bag."""
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="fast", odom_max_drones=0,
                         start_subscribers=1, start_command_subscribers=2, duration_s=1.0)
    listener = Node("state_listener", context=ros_context)
    listener.create_subscription(msgs.FleetState, topics.FLEET_STATE, lambda m: None, qos.STATE)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(listener)
    spin(executor, lambda: False, 1.0)
    assert bridge.sim.sim_time == 0.0  # the state has its subscriber; the commands only the bridge
    recorder = Node("command_recorder", context=ros_context)
    recorder.create_subscription(msgs.FleetCommand, topics.FLEET_COMMAND, lambda m: None,
                                 qos.COMMAND)
    executor.add_node(recorder)
    assert spin(executor, lambda: bridge.sim.sim_time >= 1.0 - 1e-9, 30.0), bridge.sim.sim_time
    executor.shutdown()
    bridge.close()
    listener.destroy_node()
    recorder.destroy_node()


def test_start_gate_times_out(ros_context: Any, spin: Any) -> None:
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="fast", odom_max_drones=0,
                         start_subscribers=5, start_timeout_s=0.3, duration_s=0.5)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    assert spin(executor, lambda: bridge.sim.sim_time >= 0.5 - 1e-9, 30.0)
    executor.shutdown()
    bridge.close()


def test_a_dropped_out_drone_is_silent_and_deaf_on_every_link(ros_context: Any, spin: Any) -> None:
    """During its radio dropout a drone's odometry is not published and its cmd_vel is not
    taken (as its fleet-state row and fleet commands already were)."""
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="realtime",
                         odom_max_drones=2, dropout_drone=0, dropout_start_s=0.0,
                         dropout_end_s=1e6)
    user = Node("user", context=ros_context)
    odom: dict[int, list[Any]] = {0: [], 1: []}
    for i in (0, 1):
        user.create_subscription(Odometry, topics.drone_odom(i), odom[i].append, qos.STATE)
    cmd_pubs = {i: user.create_publisher(TwistStamped, topics.drone_cmd_vel(i), qos.COMMAND)
                for i in (0, 1)}
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(user)

    def climb() -> bool:
        for pub in cmd_pubs.values():
            m = TwistStamped()
            m.header.frame_id = "map"
            m.twist.linear.z = 0.5
            pub.publish(m)
        return bool(bridge.sim.state().pos[1, 2] > 0.4)

    assert spin(executor, climb, 20.0), "drone 1 never climbed"
    assert odom[1], "no odometry for drone 1"
    assert odom[0] == [], "odometry of the dropped-out drone 0 was published"
    assert bridge.sim.state().pos[0, 2] < 0.05, "the dropped-out drone 0 took a cmd_vel"
    executor.shutdown()
    bridge.close()
    for node in (bridge, user):
        node.destroy_node()


def test_a_drone_re_registers_when_its_radio_comes_back(ros_context: Any, spin: Any) -> None:
    """The coordinator ignores a LOST drone until it registers again: the bridge (the drone's
    link) registers it with /fleet/register when its dropout ends."""
    bridge = make_bridge(ros_context, drones=2, fidelity="fleet", mode="fast", odom_max_drones=0,
                         dropout_drone=1, dropout_start_s=0.2, dropout_end_s=0.6, duration_s=3.0)
    _, srvs = require_interfaces()
    asked: list[int] = []

    def register(request: Any, response: Any) -> Any:
        asked.append(int(request.drone_id))
        response.accepted, response.epoch = True, 7
        return response

    coordinator = Node("fake_coordinator", context=ros_context)
    coordinator.create_service(srvs.RegisterDrone, topics.REGISTER_DRONE, register)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(bridge)
    executor.add_node(coordinator)
    assert spin(executor, lambda: bridge.sim.sim_time >= 3.0 - 1e-9 and asked == [1], 20.0), asked
    executor.shutdown()
    bridge.close()
    for node in (bridge, coordinator):
        node.destroy_node()
