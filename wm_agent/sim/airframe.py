"""Airframe constants (loaded from ``sim/airframes/<name>.yaml``; no constants in code)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from wm_agent.errors import ConfigError
from wm_agent.sim import _validate as v
from wm_agent.sim.paths import sim_data_dir

GRAVITY = 9.81  # [m/s²]

_POSITIVE_FIELDS = (
    "mass",
    "arm_length",
    "kf",
    "km",
    "thrust_to_weight",
    "ixx",
    "iyy",
    "izz",
    "kd_xy",
    "kd_z",
    "ground_effect_coeff",
    "prop_radius",
    "collision_radius",
    "body_half_height",
    "max_speed",
    "max_tilt_deg",
    "max_yaw_rate_deg",
    "max_body_rate_deg",
    "land_speed",
    "max_touchdown_speed",
    "max_payload",
)


@dataclass(frozen=True)
class Airframe:
    """Quadrotor constants, X configuration, rotor speeds in RPM (see the YAML for sources).

    Rotor i sits at (sx_i, sy_i)·arm_length/√2 with (sx, sy) = (+,-), (-,-), (-,+), (+,+)
    (front-right, back-right, back-left, front-left); rotors 0 and 2 spin so that their drag
    torque on the body is -km·ω², rotors 1 and 3 +km·ω² (as gym-pybullet-drones' cf2x).

    Attributes:
        name: airframe name.
        urdf: absolute path of the URDF used by the "motor" fidelity.
        mass: [kg]. arm_length: centre to rotor axis [m].
        kf: thrust coefficient [N/RPM²]. km: drag-torque coefficient [N·m/RPM²].
        thrust_to_weight: max total thrust / weight [-].
        ixx, iyy, izz: principal inertia [kg·m²].
        kd_xy, kd_z: rotor drag coefficients [N/((m/s)·(rad/s))].
        ground_effect_coeff: [-]. prop_radius: [m].
        collision_radius: collision sphere [m]. body_half_height: rest height of the origin [m].
        max_speed: [m/s]. max_tilt_deg: [deg]. max_yaw_rate_deg: [deg/s].
        max_body_rate_deg: roll/pitch rate-setpoint limit [deg/s].
        land_speed: LAND descent speed [m/s]. max_touchdown_speed: crash threshold [m/s].
        max_payload: [kg].
    """

    name: str
    urdf: Path
    mass: float
    arm_length: float
    kf: float
    km: float
    thrust_to_weight: float
    ixx: float
    iyy: float
    izz: float
    kd_xy: float
    kd_z: float
    ground_effect_coeff: float
    prop_radius: float
    collision_radius: float
    body_half_height: float
    max_speed: float
    max_tilt_deg: float
    max_yaw_rate_deg: float
    max_body_rate_deg: float
    land_speed: float
    max_touchdown_speed: float
    max_payload: float

    @property
    def weight(self) -> float:
        """m·g [N]."""
        return self.mass * GRAVITY

    @property
    def max_thrust(self) -> float:
        """Total thrust at full rotor speed [N]."""
        return self.thrust_to_weight * self.weight

    @property
    def max_rpm(self) -> float:
        """Rotor speed giving max_thrust/4 per rotor [RPM]."""
        return math.sqrt(self.max_thrust / (4.0 * self.kf))

    @property
    def hover_rpm(self) -> float:
        """Rotor speed at which four rotors carry the weight [RPM]."""
        return math.sqrt(self.weight / (4.0 * self.kf))

    @property
    def max_tilt(self) -> float:
        """[rad]."""
        return math.radians(self.max_tilt_deg)

    @property
    def max_yaw_rate(self) -> float:
        """[rad/s]."""
        return math.radians(self.max_yaw_rate_deg)

    @property
    def max_body_rate(self) -> float:
        """[rad/s]."""
        return math.radians(self.max_body_rate_deg)

    @property
    def ground_effect_clip_height(self) -> float:
        """Height below which ground effect stops growing [m] (gym-pybullet-drones' formula)."""
        return 0.25 * self.prop_radius * math.sqrt(15.0 * self.ground_effect_coeff / 4.0)


def resolve_airframe_path(name_or_path: str | Path) -> Path:
    """``"crazyflie2x"`` → ``<sim_data_dir>/airframes/crazyflie2x.yaml``; a path is returned as is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    return sim_data_dir() / "airframes" / f"{text}.yaml"


def load_airframe(name_or_path: str | Path) -> Airframe:
    """Load and validate an airframe YAML.

    Args:
        name_or_path: airframe name (file under ``sim/airframes/``) or a YAML path.

    Raises:
        ConfigError: missing file, unknown/missing key, or a field that is not a finite positive
            number; the message names the file and the field.
    """
    path = resolve_airframe_path(name_or_path)
    label = str(path)
    if not path.is_file():
        raise ConfigError(f"{label}: airframe file not found (airframe {str(name_or_path)!r})")
    data = v.read_yaml_mapping(path, label)
    v.check_keys(label, "", data, ("name", "urdf", *_POSITIVE_FIELDS))
    values = {f: v.number(label, f, data[f], positive=True) for f in _POSITIVE_FIELDS}
    name = v.string(label, "name", data["name"])
    urdf_name = v.string(label, "urdf", data["urdf"])
    candidates = [path.parent.parent / "urdf" / urdf_name, sim_data_dir() / "urdf" / urdf_name]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise ConfigError(
            f"{label}: urdf: {urdf_name!r} not found (tried {', '.join(map(str, candidates))}); "
            "put it under sim/urdf/"
        )
    urdf = found[0].resolve()
    if values["max_tilt_deg"] >= 90.0:
        raise ConfigError(f"{label}: max_tilt_deg: expected < 90, got {data['max_tilt_deg']!r}")
    if values["thrust_to_weight"] <= 1.0:
        raise ConfigError(
            f"{label}: thrust_to_weight: expected > 1 (else it cannot hover), "
            f"got {data['thrust_to_weight']!r}"
        )
    if values["land_speed"] >= values["max_touchdown_speed"]:
        raise ConfigError(
            f"{label}: land_speed: expected < max_touchdown_speed "
            f"({values['max_touchdown_speed']}), got {data['land_speed']!r}"
        )
    return Airframe(name=name, urdf=urdf, **values)
