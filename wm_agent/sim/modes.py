"""The simulator's choices, spelled once: physics fidelity and the bridge's clock mode.

Every other place (the sim bridge's parameters, the fleet graph, the CLI's choices) takes its
values from these enums.
"""

from __future__ import annotations

from enum import StrEnum


class Fidelity(StrEnum):
    """Physics of a run (:func:`wm_agent.sim.simulator.make_simulator`)."""

    AUTO = "auto"    # motor up to AUTO_MOTOR_MAX_DRONES drones, else fleet
    MOTOR = "motor"  # PyBullet, one URDF body per drone, per-rotor forces
    FLEET = "fleet"  # vectorised numpy rigid bodies, all drones at once


AUTO_MOTOR_MAX_DRONES = 100
"""``fidelity auto``: motor (PyBullet) up to this many drones, else fleet (PyBullet's per-drone
Python calls grow with the fleet; the sim bridge's ``auto_motor_max_drones`` default)."""


def resolve_fidelity(fidelity: str, drones: int, motor_max: int = AUTO_MOTOR_MAX_DRONES) -> Fidelity:
    """The physics a run uses: ``auto`` becomes motor or fleet by drone count.

    Raises:
        ValueError: not a :class:`Fidelity` value (the callers validate first).
    """
    chosen = Fidelity(fidelity)
    if chosen is not Fidelity.AUTO:
        return chosen
    return Fidelity.MOTOR if drones <= motor_max else Fidelity.FLEET


class SimMode(StrEnum):
    """How the sim bridge advances time."""

    REALTIME = "realtime"  # sim time follows the wall clock
    FAST = "fast"          # as fast as the CPU allows, waiting for nobody (open-loop tests)
    LOCKSTEP = "lockstep"  # period k advances once every commander sent its command for k


CLOSED_LOOP_MODES = (SimMode.REALTIME, SimMode.LOCKSTEP)
"""Clock modes of the fleet graph. ``fast`` is not one: in a closed loop the sim outran the
planner (7 of ~240 plan steps answered, drones colliding). ``lockstep`` is the fast closed loop:
every period waits for the planner's command, so a run goes as fast as the planner answers."""
