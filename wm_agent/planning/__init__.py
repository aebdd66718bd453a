"""Latent planner: MPPI in the world model's latent space, a safety filter, a PID baseline
(see docs/PLANNER.md). No rclpy here; the ``planner`` / ``fleet_planner`` nodes wrap this API.

Modules (import what you need; this package imports nothing heavy):

* ``mppi``           — ``PlannerConfig``, ``PlanGraph`` (one batched planning step), ``Planner``,
  ``PlanResult``.
* ``export``         — ``open_planner(backend, model_folder, config)``, the one-graph ONNX export.
* ``latent_actions`` — action-chunk autoencoder (train / save / load).
* ``safety``         — ``SafetyFilter``, ``SafetyConfig``, ``Envelope``, ``Substitution``.
* ``pid``            — ``PidController`` baseline and the stateless ``p_command`` fallback.
* ``brake``          — braking against measured obstacles/neighbours.
* ``evaluate``       — closed-loop goal reaching vs PID (``evaluate_main``).
"""

from __future__ import annotations
