"""Access to the generated interface package `wm_agent_msgs`, with a clear error when missing.

Import messages through this module (``from wm_agent.interfaces import msgs, srvs``) so that a
machine where the interface package was never built gets a message naming the setup command
instead of an ImportError trace.
"""

from __future__ import annotations

from types import ModuleType

from wm_agent.errors import SetupError

SETUP_HINT = (
    "the interface package wm_agent_msgs is not built or not on this Python's path. "
    "In a plain venv run `make setup` (or `bash scripts/setup.sh`) in the wm_agent checkout and "
    "use .venv/bin/python; in a ROS 2 workspace run `colcon build --base-paths src/wm_agent "
    "src/wm_agent/msg` and `source install/setup.bash` (see README)."
)


def _load() -> tuple[ModuleType, ModuleType]:
    try:
        import wm_agent_msgs.msg as msg_module
        import wm_agent_msgs.srv as srv_module
    except ImportError as exc:
        raise SetupError(f"{SETUP_HINT} (import failed: {exc})") from None
    return msg_module, srv_module


def require_interfaces() -> tuple[ModuleType, ModuleType]:
    """Return the (msg, srv) modules of wm_agent_msgs or raise SetupError naming the fix."""
    return _load()


TF2_HINT = (
    "tf2_msgs (the /tf message type) is not installed. In a plain venv run `make setup`: it "
    "builds the vendored vendor/tf2_msgs into the venv (PyPI has no tf2_msgs wheel); on a robot "
    "install ros-$ROS_DISTRO-tf2-msgs"
)


def require_tf2_msgs() -> ModuleType:
    """The ``tf2_msgs.msg`` module (TFMessage) or SetupError naming the fix."""
    try:
        import tf2_msgs.msg as tf2_module
    except ImportError as exc:
        raise SetupError(f"{TF2_HINT} (import failed: {exc})") from None
    return tf2_module
