"""Vectorised quaternion helpers. Quaternions are (x, y, z, w), body→map, as PyBullet."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def quat_to_matrix(
    quat: NDArray[np.float64], out: NDArray[np.float64] | None = None
) -> NDArray[np.float64]:
    """Rotation matrices of unit quaternions.

    Args:
        quat: (N, 4) unit quaternions (x, y, z, w).
        out: optional (N, 3, 3) buffer to write into.

    Returns:
        (N, 3, 3) matrices R with v_map = R @ v_body.
    """
    x, y, z, w = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    r = np.empty((quat.shape[0], 3, 3)) if out is None else out
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    r[:, 0, 0] = 1.0 - 2.0 * (yy + zz)
    r[:, 0, 1] = 2.0 * (xy - wz)
    r[:, 0, 2] = 2.0 * (xz + wy)
    r[:, 1, 0] = 2.0 * (xy + wz)
    r[:, 1, 1] = 1.0 - 2.0 * (xx + zz)
    r[:, 1, 2] = 2.0 * (yz - wx)
    r[:, 2, 0] = 2.0 * (xz - wy)
    r[:, 2, 1] = 2.0 * (yz + wx)
    r[:, 2, 2] = 1.0 - 2.0 * (xx + yy)
    return r


def yaw_of(quat: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N,) yaw angle [rad] (ZYX Euler) of (N, 4) quaternions."""
    x, y, z, w = quat[:, 0], quat[:, 1], quat[:, 2], quat[:, 3]
    return np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def quat_from_yaw(yaw: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 4) level quaternions with the given (N,) yaw [rad]."""
    q = np.zeros((yaw.shape[0], 4))
    q[:, 2] = np.sin(0.5 * yaw)
    q[:, 3] = np.cos(0.5 * yaw)
    return q


def wrap_angle(a: NDArray[np.float64]) -> NDArray[np.float64]:
    """Wrap angles [rad] to [-π, π)."""
    return (a + np.pi) % (2.0 * np.pi) - np.pi
