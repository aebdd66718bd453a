"""Shared plumbing of the thin ROS 2 nodes: typed parameters and the one main() pattern."""

from __future__ import annotations

import dataclasses
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from wm_agent import qos, topics
from wm_agent.conversions import time_msg
from wm_agent.errors import MessageError, WmAgentError
from wm_agent.interfaces import require_interfaces
from wm_agent.stages import PeriodicReports

T = TypeVar("T")


def parameter_fields(cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, description) of every ROS parameter the dataclass ``cls`` declares.

    A field whose default is itself a dataclass (a core's config nested in a node's config) is
    flattened: its own fields become parameters under their own names, so a core's setting is
    defined once, in the core, and the node restates nothing. Fields with
    ``metadata={"parameter": False}`` are not parameters (the node sets them itself).
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    out: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("parameter", True):
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a parameter")
        if dataclasses.is_dataclass(default):
            out += parameter_fields(type(default))
            continue
        out.append((f.name, default, str(f.metadata.get("description", ""))))
    names = [n for n, _, _ in out]
    if len(set(names)) != len(names):
        raise TypeError(f"{cls.__name__}: parameter names repeat: {sorted(names)}")
    return out


def build_config(cls: type[T], values: dict[str, Any]) -> T:
    """Build the (possibly nested, see :func:`parameter_fields`) dataclass from flat values;
    absent names keep their defaults. The dataclasses validate themselves in __post_init__."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(
                sample := f.default_factory()):
            kwargs[f.name] = build_config(type(sample), values)
        elif f.name in values and f.metadata.get("parameter", True):
            value = values[f.name]
            kwargs[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return cls(**kwargs)


def declare_config(node: Node, cls: type[T]) -> T:
    """Declare one read-only parameter per field of the frozen dataclass `cls` and build it.

    Field defaults are the parameter defaults; ``field(metadata={"description": ...})`` becomes
    the parameter description; a nested core config is flattened (:func:`parameter_fields`).
    The dataclasses validate themselves in ``__post_init__`` and raise ConfigError naming the
    field; parameters are read once and are read-only afterwards.
    """
    values: dict[str, Any] = {}
    for name, default, description in parameter_fields(cls):
        if isinstance(default, tuple):
            default = list(default)
        descriptor = ParameterDescriptor(description=description, read_only=True)
        node.declare_parameter(name, default, descriptor)
        values[name] = node.get_parameter(name).value
    return build_config(cls, values)


class StageReporter:
    """A node's stage times (``self.timer``, :class:`~wm_agent.stages.PeriodicReports`),
    published on /fleet/stage_times about once per ``period_s`` of sim time."""

    def __init__(self, node: Node, period_s: float = 1.0) -> None:
        self.node = node
        self.reports = PeriodicReports(node.get_name(), period_s)
        self.timer = self.reports.timer
        self.msgs, _ = require_interfaces()
        self.pub = node.create_publisher(self.msgs.StageTimes, topics.STAGE_TIMES, qos.EVENTS)

    def decode(self, stage: str, convert: Callable[[Any], T], msg: Any, what: str) -> T | None:
        """``convert(msg)`` timed as ``stage``; a malformed message is logged and dropped (None)."""
        with self.timer.stage(stage):
            try:
                return convert(msg)
            except MessageError as exc:
                self.node.get_logger().warning(f"dropped malformed {what}: {exc}")
                return None

    def tick(self, sim_s: float) -> None:
        """Publish the stage times if a report is due (:meth:`PeriodicReports.tick`)."""
        r = self.reports.tick(sim_s)
        if r is None:
            return
        m = self.msgs.StageTimes()
        m.header.stamp = time_msg(sim_s)
        m.node, m.stages, m.sim_s = r.node, list(r.stages), r.sim_s
        m.wall_ms, m.calls = list(r.wall_ms), list(r.calls)
        self.pub.publish(m)


def run_node(factory: Callable[[], Node], args: list[str] | None = None) -> None:
    """Init rclpy, build the node, spin until SIGINT/SIGTERM or shutdown; exit 2 on a config error.

    The signals only set a flag that the spin loop checks every 0.1 s: no KeyboardInterrupt is
    raised inside a message take (rclpy then reports a conversion error instead), so every
    node exits through the same clean path and `close()` always runs.
    """
    stop = threading.Event()
    with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
        previous = {sig: signal.signal(sig, lambda *_: stop.set())
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            node = factory()
        except WmAgentError as exc:
            print(f"[fatal] {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            pass
        finally:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            executor.shutdown()
            node.destroy_node()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
