"""Shared plumbing of the thin ROS 2 nodes: typed parameters and the one main() pattern."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

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
    """Init rclpy, build the node, spin until Ctrl-C / shutdown; exit 2 on a config error."""
    with rclpy.init(args=args):
        try:
            node = factory()
        except WmAgentError as exc:
            print(f"[fatal] {exc}", file=sys.stderr, flush=True)
            raise SystemExit(2) from None
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            close = getattr(node, "close", None)
            if callable(close):
                close()
            node.destroy_node()
