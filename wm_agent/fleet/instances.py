"""Assignment instances of the demand a warehouse sees, for benchmarks and tests.

Every family returns drone positions (N, 3) [m], task pickups (M, 3) [m] and task cost
offsets (M,) [s] (zero unless the family is about priorities). The building is a
``200 × 100 × 6`` m box (the 10,000-drone warehouse's floor) scaled by ``sqrt(N / 10,000)``
in x and y so the density of drones stays that of the big warehouse at every size.

Families (the ones the independent check of the assignment used, issue 16):

* ``uniform`` — drones and tasks uniform in the box, M = N.
* ``backlog`` — M = 2 N tasks uniform in the box (a queue twice the fleet).
* ``half`` — M = N / 2; drones half on pad fields, half on the open floor; tasks 20 % at
  stations, 80 % at shelf faces; priorities and deadlines set the offsets.
* ``shelves`` — M = N tasks at shelf faces on three levels, drones over the floor.
* ``stations`` — M = N tasks at a few dozen pick stations (many coincident pickups),
  drones on pad fields.
* ``line`` — drones standing in one line (zero width in y and z), tasks uniform.
* ``degenerate`` — every drone and task at one point, or tasks exactly at the drones
  (duplicates, zero travel).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from wm_agent.fleet.assignment import task_offsets

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

SPEED_MPS = 5.0
BOX_M = np.array([200.0, 100.0, 6.0])


class Instance(NamedTuple):
    """One assignment problem (costs: travel time at ``SPEED_MPS`` plus ``offsets``)."""

    drones: FloatArray
    tasks: FloatArray
    offsets: FloatArray


def _box(n: int) -> FloatArray:
    scale = np.sqrt(max(n, 1) / 10_000)
    return np.array([BOX_M[0] * scale, BOX_M[1] * scale, BOX_M[2]])


def _uniform(rng: np.random.Generator, count: int, box: FloatArray) -> FloatArray:
    return rng.uniform(0.0, 1.0, (count, 3)) * box


def _pads(rng: np.random.Generator, count: int, box: FloatArray) -> FloatArray:
    """Pads in four fields (1.2 m pitch) near the corners, occupied at random."""
    per = int(np.ceil(count / 4))
    side = int(np.ceil(np.sqrt(per * 1.3)))
    g = np.stack(np.meshgrid(np.arange(side), np.arange(side), indexing="ij"), -1).reshape(-1, 2)
    fields = []
    for cx, cy in ((0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9)):
        origin = np.array([cx * box[0], cy * box[1]]) - side * 0.6
        xy = origin + 1.2 * g[rng.permutation(len(g))[:per]]
        fields.append(np.column_stack([xy, np.zeros(per)]))
    return np.concatenate(fields)[:count]


def _shelf_faces(rng: np.random.Generator, count: int, box: FloatArray) -> FloatArray:
    """Slots on shelf rows (every 4 m in y, aisle side either way) on three levels."""
    rows = np.arange(8.0, box[1] - 6.0, 4.0) if box[1] > 16.0 else np.array([box[1] / 2])
    r = rng.integers(0, rows.size, count)
    y = rows[r] + np.where(rng.random(count) < 0.5, -0.6, 0.6)
    x = rng.uniform(0.15 * box[0], 0.85 * box[0], count)
    z = rng.choice([0.5, 1.5, 2.5], count)
    return np.column_stack([x, y, z])


def _stations(rng: np.random.Generator, count: int, box: FloatArray) -> FloatArray:
    """Pick stations along both long walls and the aisle ends (a few dozen points)."""
    n_side = max(2, int(box[0] // 16))
    xs = np.linspace(0.05, 0.95, n_side) * box[0]
    walls = [np.column_stack([xs, np.full(n_side, y), np.full(n_side, 1.0)])
             for y in (1.0, box[1] - 1.0)]
    ends = [np.column_stack([np.full(3, x), np.linspace(0.3, 0.7, 3) * box[1], np.ones(3)])
            for x in (1.0, box[0] - 1.0)]
    st = np.concatenate(walls + ends)
    return st[rng.integers(0, len(st), count)]


def uniform(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    return Instance(_uniform(rng, n, box), _uniform(rng, n, box), np.zeros(n))


def backlog(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    return Instance(_uniform(rng, n, box), _uniform(rng, 2 * n, box), np.zeros(2 * n))


def half(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    m = max(1, n // 2)
    drones = np.concatenate([_pads(rng, n // 2, box), _uniform(rng, n - n // 2, box)])
    n_st = m // 5
    tasks = np.concatenate([_stations(rng, n_st, box), _shelf_faces(rng, m - n_st, box)])
    tasks = tasks[rng.permutation(m)]
    deadline = np.where(rng.random(m) < 1 / 3, rng.uniform(10.0, 300.0, m), np.inf)
    return Instance(drones, tasks, task_offsets(rng.integers(0, 256, m), deadline, 0.0))


def shelves(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    drones = _uniform(rng, n, box) * [1.0, 1.0, 0.0] + [0.0, 0.0, 1.0]
    return Instance(drones, _shelf_faces(rng, n, box), np.zeros(n))


def stations(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    return Instance(_pads(rng, n, box), _stations(rng, n, box), np.zeros(n))


def line(n: int, rng: np.random.Generator) -> Instance:
    box = _box(n)
    drones = np.column_stack([rng.uniform(0.0, box[0], n), np.full(n, box[1] / 2),
                              np.full(n, 1.0)])
    return Instance(drones, _uniform(rng, n, box), np.zeros(n))


def degenerate(n: int, rng: np.random.Generator) -> Instance:
    """Half the time everything at one point, else tasks exactly at (duplicated) drones."""
    if rng.random() < 0.5:
        p = rng.uniform(0.0, 10.0, 3)
        return Instance(np.tile(p, (n, 1)), np.tile(p, (n, 1)), np.zeros(n))
    drones = _uniform(rng, max(1, n // 3), _box(n))[rng.integers(0, max(1, n // 3), n)]
    return Instance(drones, drones[rng.permutation(n)].copy(), np.zeros(n))


FAMILIES: dict[str, Callable[[int, np.random.Generator], Instance]] = {
    "uniform": uniform, "backlog": backlog, "half": half, "shelves": shelves,
    "stations": stations, "line": line, "degenerate": degenerate,
}


def moved(inst: Instance, assigned_task: IntArray, rng: np.random.Generator,
          move_m: float = 1.5, replace: float = 0.02) -> tuple[Instance, IntArray]:
    """The same fleet a solve period later: drones moved up to ``move_m`` [m], a fraction
    ``replace`` of the tasks done and replaced by new ones elsewhere.

    Args:
        inst: the instance solved before.
        assigned_task: (N,) task index each drone got (-1: none).

    Returns:
        the new instance (tasks keep their index; replaced ones are new tasks at the same
        index) and the (N,) incumbent task of each drone (-1 where its task was replaced).
    """
    n, m = len(inst.drones), len(inst.tasks)
    step = rng.normal(size=(n, 3))
    step *= (rng.uniform(0.0, move_m, n) / np.maximum(np.linalg.norm(step, axis=1), 1e-9))[:, None]
    drones = inst.drones + step
    tasks = inst.tasks.copy()
    gone = rng.random(m) < replace
    box = np.maximum(inst.tasks.max(axis=0) - inst.tasks.min(axis=0), 1e-3)
    tasks[gone] = inst.tasks.min(axis=0) + rng.uniform(0.0, 1.0, (int(gone.sum()), 3)) * box
    inc = np.where((assigned_task >= 0) & ~gone[np.maximum(assigned_task, 0)], assigned_task, -1)
    return Instance(drones, tasks, inst.offsets.copy()), inc.astype(np.int64)
