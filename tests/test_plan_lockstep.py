"""LockstepPairing (pure): states answered with their own assignments, in time order; missing
ones superseded by a later table, never waited for forever; bounded when no table comes."""

from __future__ import annotations

from wm_agent.planning.lockstep import LockstepPairing


def test_states_wait_for_their_own_table_in_time_order() -> None:
    p: LockstepPairing[str, str] = LockstepPairing("none")
    assert p.add_state(20, "s20") == []
    assert p.add_state(10, "s10") == []
    assert p.add_table(10, "t10") == [("s10", "t10")]  # s20 still waits for t20
    assert p.waiting == 1
    assert p.add_state(30, "s30") == []
    assert p.add_table(20, "t20") == [("s20", "t20")]
    assert p.add_table(30, "t30") == [("s30", "t30")]
    assert p.superseded == 0 and p.waiting == 0


def test_a_state_without_a_table_is_superseded_by_a_later_table() -> None:
    p: LockstepPairing[str, str] = LockstepPairing("none")
    assert p.add_state(10, "s10") == []
    assert p.add_table(10, "t10") == [("s10", "t10")]
    assert p.add_state(20, "s20") == []  # the coordinator never answers 20
    assert p.add_state(30, "s30") == []
    assert p.add_table(30, "t30") == [("s20", "t10"), ("s30", "t30")]
    assert p.superseded == 1
    # the first state ever, superseded, gets the empty table
    q: LockstepPairing[str, str] = LockstepPairing("none")
    q.add_state(5, "s5")
    assert q.add_table(6, "t6") == [("s5", "none")]
    assert q.add_state(6, "s6") == [("s6", "t6")]


def test_waiting_states_are_bounded_when_no_table_comes() -> None:
    p: LockstepPairing[int, str] = LockstepPairing("none", max_pending=3)
    answered = []
    for k in range(10):
        answered += p.add_state(k, k)
    assert p.waiting == 3
    assert [s for s, _ in answered] == list(range(7))  # oldest first
    assert p.superseded == 7
