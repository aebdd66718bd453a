"""Project exception types, one per area.

Every error is raised with a message that says what was wrong and what to do about it.
"""

from __future__ import annotations


class WmAgentError(Exception):
    """Base class of every error wm_agent raises on purpose."""


class SetupError(WmAgentError):
    """The installation is incomplete (e.g. the interface package was never built)."""


class ConfigError(WmAgentError):
    """A parameter, YAML file or scenario is invalid; the message names the field."""


class SimError(WmAgentError):
    """The simulator was asked to do something it cannot."""


class FleetError(WmAgentError):
    """The fleet coordinator rejected an operation (task lifecycle, assignment, ledger)."""


class ModelError(WmAgentError):
    """A model file, card or runtime backend is missing, corrupt or unusable."""


class BagError(WmAgentError):
    """A bag could not be written or read."""


class MessageError(WmAgentError):
    """A ROS message is malformed (array lengths disagree, a field out of range)."""
