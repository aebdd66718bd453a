"""Ledger: roundtrip, delivered-once constraint, and restore after SIGKILL."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wm_agent.errors import FleetError
from wm_agent.fleet.ledger import SCHEMA_VERSION, Ledger
from wm_agent.fleet.tasks import FINAL_STATES, TaskSpec, TaskState, advance, new_task

REPO = Path(__file__).resolve().parents[1]


def test_roundtrip_tasks_transitions_and_epochs(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    led = Ledger.open(path)
    t0, tr0 = new_task(TaskSpec("a", (10.0, 5.7, 1.5), "drop_a", 7, 99.0, 0.01), 1.0)
    led.commit([t0], [tr0], new=True)
    t1, tr1 = advance(t0, TaskState.ASSIGNED, 2.0, drone_id=4, epoch=3)
    led.commit([t1], [tr1], [(4, 3, 1)])
    led.close()
    again = Ledger.open(path)
    state = again.restore()
    assert state.tasks == {"a": t1}
    assert state.drone_epochs == {4: (3, 1)}
    assert [t.to_state for t in again.transitions("a")] == [TaskState.QUEUED, TaskState.ASSIGNED]
    mode = again._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert again._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_delivered_is_written_once_and_final() -> None:
    led = Ledger.open(":memory:")
    t, tr = new_task(TaskSpec("a", "pick_a", "drop_a"), 0.0)
    led.commit([t], [tr], new=True)
    t, tr1 = advance(t, TaskState.ASSIGNED, 1.0, drone_id=1, epoch=1)
    t, tr2 = advance(t, TaskState.PICKED, 2.0)
    t, tr3 = advance(t, TaskState.DELIVERED, 3.0)
    led.commit([t], [tr1, tr2, tr3])
    with pytest.raises(FleetError, match="refused"):
        led.commit([t], [tr3])  # a second DELIVERED row
    assert [x.to_state for x in led.transitions("a")].count(TaskState.DELIVERED) == 1
    with pytest.raises(FleetError, match="refused"):  # duplicate id
        led.commit([new_task(TaskSpec("a", "pick_a", "drop_a"), 0.0)[0]], [], new=True)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    led = Ledger.open(tmp_path / "l.db")
    led._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    led.close()
    with pytest.raises(FleetError, match="schema version"):
        Ledger.open(tmp_path / "l.db")


WRITER = textwrap.dedent(
    """
    import sys, itertools
    sys.path.insert(0, {repo!r})
    from wm_agent.fleet.ledger import Ledger
    from wm_agent.fleet.tasks import TaskSpec, TaskState, advance, new_task
    led = Ledger.open({path!r})
    for i in itertools.count():
        t, tr = new_task(TaskSpec(f"t{{i}}", "pick_a", "drop_a"), float(i))
        led.commit([t], [tr], new=True)
        print(f"accepted t{{i}}", flush=True)   # only after the commit returned
        trs = []
        for to, kw in ((TaskState.ASSIGNED, dict(drone_id=i % 7, epoch=i + 1)),
                       (TaskState.PICKED, {{}}), (TaskState.DELIVERED, {{}})):
            t, tr = advance(t, to, i + 0.5, **kw)
            led.commit([t], [tr], [(i % 7, i + 1, 1)] if to is TaskState.ASSIGNED else [])
    """
)


def test_restore_after_sigkill_loses_nothing_delivers_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(repo=str(REPO), path=str(path))],
        stdout=subprocess.PIPE, text=True,
    )
    accepted: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 20.0
    while len(accepted) < 150 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("accepted "):
            accepted.append(line.split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len(accepted) >= 150
    led = Ledger.open(path)
    state = led.restore()
    assert set(accepted) <= set(state.tasks)
    trans = led.transitions()
    delivered = [t.task_id for t in trans if t.to_state is TaskState.DELIVERED]
    assert len(delivered) == len(set(delivered))
    for tid, task in state.tasks.items():  # row state == last transition, chain is valid
        chain = [t for t in trans if t.task_id == tid]
        assert chain[0].from_state is None and chain[-1].to_state is task.state
        for a, b in itertools.pairwise(chain):
            assert b.from_state is a.to_state
        if task.state is TaskState.DELIVERED:
            assert task.state in FINAL_STATES and task.drone_id is not None
