"""Crash-safe SQLite ledger of tasks, transitions and drone epochs.

One row per task (its current state) and one row per transition, written in the same
transaction, so after a crash (even ``kill -9``) the file holds every accepted task in a
state consistent with its last transition. ``journal_mode=WAL`` + ``synchronous=NORMAL``:
a commit survives a process crash; a power cut may lose the last commits but never
corrupts the file. A partial unique index allows one DELIVERED transition per task and a
trigger refuses any change to a task row once DELIVERED, so a task is delivered at most
once even if the coordinator were wrong. Bay reservations are rows of ``bays`` keyed by
(station, bay), so one bay is never held by two tasks, written in the same transaction as
the task changes that take and free them. The schema version is stored in
``PRAGMA user_version``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from wm_agent.errors import FleetError
from wm_agent.fleet.tasks import Task, TaskSpec, TaskState, Transition

SCHEMA_VERSION = 2  # 2: the bays table (a schema-1 file gains it when opened)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    spec_json TEXT NOT NULL,
    state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),
    created_s REAL NOT NULL,
    updated_s REAL NOT NULL,
    drone_id INTEGER,
    epoch INTEGER,
    first_assigned_s REAL,
    picked_s REAL,
    finished_s REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS transitions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(task_id),
    from_state INTEGER,
    to_state INTEGER NOT NULL,
    t_s REAL NOT NULL,
    drone_id INTEGER,
    epoch INTEGER,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS one_delivery_per_task
    ON transitions(task_id) WHERE to_state = 3;
CREATE TRIGGER IF NOT EXISTS delivered_is_final BEFORE UPDATE ON tasks
    WHEN OLD.state = 3
    BEGIN SELECT RAISE(ABORT, 'task is DELIVERED; a delivered task is final'); END;
CREATE TABLE IF NOT EXISTS bays (
    station TEXT NOT NULL,
    bay INTEGER NOT NULL CHECK (bay >= 0),
    task_id TEXT NOT NULL REFERENCES tasks(task_id),
    role INTEGER NOT NULL CHECK (role IN (0, 1)),
    PRIMARY KEY (station, bay),
    UNIQUE (task_id, role)
);
CREATE TABLE IF NOT EXISTS drones (
    drone_id INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL,
    min_epoch INTEGER NOT NULL
);
"""

_TASK_COLS = (
    "task_id, spec_json, state, created_s, updated_s, drone_id, epoch, first_assigned_s, "
    "picked_s, finished_s, attempts, reason"
)


def _spec_to_json(spec: TaskSpec) -> str:
    pickup = spec.pickup if isinstance(spec.pickup, str) else [float(v) for v in spec.pickup]
    return json.dumps(
        {
            "task_id": spec.task_id,
            "pickup": pickup,
            "dropoff": spec.dropoff,
            "priority": int(spec.priority),
            "deadline_s": None if spec.deadline_s is None else float(spec.deadline_s),
            "payload_kg": float(spec.payload_kg),
        }
    )


def _spec_from_json(text: str) -> TaskSpec:
    d = json.loads(text)
    pickup = d["pickup"] if isinstance(d["pickup"], str) else tuple(d["pickup"])
    return TaskSpec(
        d["task_id"], pickup, d["dropoff"], d["priority"], d["deadline_s"], d["payload_kg"]
    )


def _task_row(task: Task) -> tuple[object, ...]:
    return (
        task.task_id, _spec_to_json(task.spec), int(task.state), task.created_s,
        task.updated_s, task.drone_id, task.epoch, task.first_assigned_s, task.picked_s,
        task.finished_s, task.attempts, task.reason,
    )


def _trans_row(tr: Transition) -> tuple[object, ...]:
    return (
        tr.task_id, None if tr.from_state is None else int(tr.from_state), int(tr.to_state),
        tr.t_s, tr.drone_id, tr.epoch, tr.reason,
    )


@dataclass(frozen=True)
class RestoredState:
    """What :meth:`Ledger.restore` returns.

    Attributes:
        tasks: task_id -> current task, in submission order.
        drone_epochs: drone_id -> (epoch, min_epoch).
        bays: (task_id, role) -> (station, bay) of every held bay (role 0: pickup,
            1: drop-off).
    """

    tasks: dict[str, Task]
    drone_epochs: dict[int, tuple[int, int]]
    bays: dict[tuple[str, int], tuple[str, int]]


class Ledger:
    """SQLite store of tasks and their transitions; use :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        """Wrap an open connection (prefer :meth:`open`)."""
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path = ":memory:") -> Ledger:
        """Open (creating if needed) the ledger at ``path``; ``":memory:"`` for tests.

        Raises:
            FleetError: the file has a newer schema version or is not a ledger.
        """
        p = str(path)
        try:
            conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise FleetError(
                    f"ledger {p} has schema version {version}, this code knows "
                    f"{SCHEMA_VERSION}; upgrade wm_agent or use another ledger_path"
                )
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _split(_SCHEMA):
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise FleetError(f"cannot open ledger {p}: {exc}; is it a wm_agent ledger?") from exc
        return cls(conn, p)

    def close(self) -> None:
        """Close the database (further calls raise)."""
        self._conn.close()

    def commit(
        self,
        tasks: Sequence[Task],
        transitions: Iterable[Transition],
        drones: Iterable[tuple[int, int, int]] = (),
        *,
        new: bool = False,
        bays_freed: Iterable[tuple[str, int]] = (),
        bays_reserved: Iterable[tuple[str, int, str, int]] = (),
    ) -> None:
        """Write task rows, their transitions and drone epochs in ONE transaction.

        Args:
            tasks: current tasks after the change (inserted when ``new`` else updated).
            transitions: the transitions that led there.
            drones: (drone_id, epoch, min_epoch) rows to upsert.
            new: the tasks are newly accepted.
            bays_freed: (task_id, role) reservations to drop (before the new ones).
            bays_reserved: (station, bay, task_id, role) reservations to add.

        Raises:
            FleetError: a constraint refused the write (e.g. a second DELIVERED, an update of
                a delivered task, a duplicate task id, a bay already held); nothing was
                written.
        """
        c = self._conn
        try:
            c.execute("BEGIN IMMEDIATE")
            if new:
                c.executemany(
                    f"INSERT INTO tasks ({_TASK_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [_task_row(t) for t in tasks],
                )
            else:
                c.executemany(
                    "UPDATE tasks SET state=?, updated_s=?, drone_id=?, epoch=?, "
                    "first_assigned_s=?, picked_s=?, finished_s=?, attempts=?, reason=? "
                    "WHERE task_id=?",
                    [(r[2], *r[4:], r[0]) for r in map(_task_row, tasks)],
                )
            c.executemany(
                "INSERT INTO transitions (task_id, from_state, to_state, t_s, drone_id, epoch, "
                "reason) VALUES (?,?,?,?,?,?,?)",
                [_trans_row(tr) for tr in transitions],
            )
            c.executemany("DELETE FROM bays WHERE task_id=? AND role=?", list(bays_freed))
            c.executemany("INSERT INTO bays (station, bay, task_id, role) VALUES (?,?,?,?)",
                          list(bays_reserved))
            c.executemany(
                "INSERT INTO drones (drone_id, epoch, min_epoch) VALUES (?,?,?) "
                "ON CONFLICT(drone_id) DO UPDATE SET epoch=max(epoch, excluded.epoch), "
                "min_epoch=max(min_epoch, excluded.min_epoch)",
                list(drones),
            )
            c.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if c.in_transaction:
                c.execute("ROLLBACK")
            raise FleetError(f"ledger {self.path} refused the write: {exc}") from exc

    def restore(self) -> RestoredState:
        """Rebuild every task (submission order) and every drone's epochs."""
        tasks: dict[str, Task] = {}
        for row in self._conn.execute(
            f"SELECT {_TASK_COLS} FROM tasks ORDER BY rowid"
        ).fetchall():
            tasks[row[0]] = Task(
                spec=_spec_from_json(row[1]), state=TaskState(row[2]), created_s=row[3],
                updated_s=row[4], drone_id=row[5], epoch=row[6], first_assigned_s=row[7],
                picked_s=row[8], finished_s=row[9], attempts=row[10], reason=row[11],
            )
        drones = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in self._conn.execute("SELECT drone_id, epoch, min_epoch FROM drones")
        }
        bays = {
            (str(r[2]), int(r[3])): (str(r[0]), int(r[1]))
            for r in self._conn.execute("SELECT station, bay, task_id, role FROM bays")
        }
        return RestoredState(tasks, drones, bays)

    def transitions(self, task_id: str | None = None) -> list[Transition]:
        """All transitions (of one task if ``task_id``) in the order written."""
        sql = "SELECT task_id, from_state, to_state, t_s, drone_id, epoch, reason FROM transitions"
        args: tuple[str, ...] = ()
        if task_id is not None:
            sql += " WHERE task_id=?"
            args = (task_id,)
        return [
            Transition(
                r[0], None if r[1] is None else TaskState(r[1]), TaskState(r[2]), r[3], r[4],
                r[5], r[6],
            )
            for r in self._conn.execute(sql + " ORDER BY seq", args)
        ]


def _split(script: str) -> list[str]:
    """Split the schema into statements (triggers contain ';' inside BEGIN..END)."""
    out, buf = [], ""
    for part in script.split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" ;\n"):
                out.append(buf.strip())
            buf = ""
    return out
