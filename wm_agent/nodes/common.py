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

from wm_agent.errors import WmAgentError

T = TypeVar("T")


def declare_config(node: Node, cls: type[T]) -> T:
    """Declare one read-only parameter per field of the frozen dataclass `cls` and build it.

    Field defaults are the parameter defaults; ``field(metadata={"description": ...})`` becomes
    the parameter description. The dataclass validates itself in ``__post_init__`` and raises
    ConfigError naming the field; parameters are read once and are read-only afterwards.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to be a parameter")
        if isinstance(default, tuple):
            default = list(default)
        descriptor = ParameterDescriptor(
            description=str(f.metadata.get("description", "")), read_only=True
        )
        node.declare_parameter(f.name, default, descriptor)
        value = node.get_parameter(f.name).value
        values[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    return cls(**values)


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
