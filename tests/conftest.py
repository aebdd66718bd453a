"""Test fixtures. DDS tests isolate themselves: localhost discovery and a ROS_DOMAIN_ID of their
own per test process, so parallel or repeated runs never cross-talk."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# Before rclpy is imported anywhere: keep discovery on this machine, pick a domain of our own.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
if "WM_AGENT_TEST_DOMAIN" not in os.environ:
    # 1..100: valid for Fast DDS's port formula; spread by pid so concurrent runs differ.
    os.environ["WM_AGENT_TEST_DOMAIN"] = str(1 + os.getpid() % 100)
os.environ["ROS_DOMAIN_ID"] = os.environ["WM_AGENT_TEST_DOMAIN"]


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def domain_id() -> int:
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture
def ros_context(domain_id: int) -> Iterator[object]:
    """A fresh rclpy context on the test's own domain; shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        yield context
    finally:
        context.try_shutdown()


def spin_until(
    executor: object, predicate: Callable[[], bool], timeout_s: float = 10.0
) -> bool:
    """Spin `executor` until `predicate()` is true or `timeout_s` passes; return predicate()."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)  # type: ignore[attr-defined]
    return predicate()


@pytest.fixture
def spin() -> Callable[..., bool]:
    return spin_until


@pytest.fixture
def python() -> str:
    return sys.executable
