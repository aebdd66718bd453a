"""Small typed readers for YAML values; every failure names the file and the field path."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray

from wm_agent.errors import ConfigError


def read_yaml_mapping(path: Path, label: str) -> dict[str, Any]:
    """Parse ``path`` as YAML and return its top-level mapping.

    Raises:
        ConfigError: unreadable file, YAML syntax error, or the top level is not a mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read file: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def check_keys(
    label: str,
    field: str,
    value: Any,
    required: Sequence[str],
    optional: Sequence[str] = (),
) -> Mapping[str, Any]:
    """Check that ``value`` is a mapping with exactly the ``required`` keys plus any ``optional``.

    Raises:
        ConfigError: not a mapping, a key missing or an unknown key (listing the allowed ones).
    """
    where = f"{label}: {field}" if field else label
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    allowed = set(required) | set(optional)
    for key in value:
        if key not in allowed:
            name = f"{field}.{key}" if field else str(key)
            raise ConfigError(
                f"{label}: {name}: unknown key; allowed keys are {sorted(allowed)}"
            )
    for key in required:
        if key not in value:
            name = f"{field}.{key}" if field else key
            raise ConfigError(f"{label}: {name}: missing required key")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def number(
    label: str,
    field: str,
    value: Any,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> float:
    """Return ``value`` as a finite float, optionally > 0 or >= 0.

    Raises:
        ConfigError: not a number, not finite, or out of the required range.
    """
    if not _is_number(value) or not math.isfinite(float(value)):
        raise ConfigError(f"{label}: {field}: expected a finite number, got {value!r}")
    out = float(value)
    if positive and not out > 0.0:
        raise ConfigError(f"{label}: {field}: expected a positive number, got {value!r}")
    if non_negative and out < 0.0:
        raise ConfigError(f"{label}: {field}: expected a number >= 0, got {value!r}")
    return out


def integer(label: str, field: str, value: Any, *, minimum: int | None = None) -> int:
    """Return ``value`` as an int (no bools, no floats), optionally >= ``minimum``.

    Raises:
        ConfigError: not an integer or below ``minimum``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{label}: {field}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{label}: {field}: expected an integer >= {minimum}, got {value!r}")
    return value


def string(label: str, field: str, value: Any) -> str:
    """Return ``value`` as a non-empty string.

    Raises:
        ConfigError: not a non-empty string.
    """
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{label}: {field}: expected a non-empty string, got {value!r}")
    return value


def vec3(
    label: str,
    field: str,
    value: Any,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> NDArray[np.float64]:
    """Return ``value`` as a (3,) float64 array of finite numbers.

    Raises:
        ConfigError: not a list of 3 finite numbers (positive / >= 0 if asked).
    """
    kind = "positive " if positive else "non-negative " if non_negative else "finite "
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(_is_number(v) and math.isfinite(float(v)) for v in value)
    )
    if ok and positive:
        ok = all(float(v) > 0.0 for v in value)
    if ok and non_negative:
        ok = all(float(v) >= 0.0 for v in value)
    if not ok:
        raise ConfigError(f"{label}: {field}: expected 3 {kind}numbers, got {value!r}")
    return np.asarray([float(v) for v in value], dtype=np.float64)
