"""wm_agent: world-model drone planning, fleet coordination and a PyBullet sim bridge for ROS 2."""

__version__ = "0.1.0"
