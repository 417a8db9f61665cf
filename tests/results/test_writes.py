"""Lost writes from what the load saw acknowledged and what the target read back: exact in
total, writer by writer; placed in the fault they happened in by when they were accepted."""

from __future__ import annotations

from stressbed.results.writes import lost_writes

KILL = {"name": "kill", "at": 105.4, "end": None}
PAUSE = {"name": "pause", "at": 120.2, "end": 130.2}


def test_nothing_lost_is_zero_everywhere():
    figures, per_fault = lost_writes({"a": 10, "b": 5}, {"a": 10, "b": 5}, [KILL, PAUSE])
    assert figures == {
        "writers": 2,
        "acknowledged": 15,
        "stored": 15,
        "lost": 0,
        "stored_unacknowledged": 0,
        "lost_outside_faults": 0,
    }
    assert per_fault == [0, 0]


def test_stored_but_unacknowledged_is_not_a_loss_and_does_not_hide_one():
    # Writer a: 2 lost. Writer b: 3 stored that the load never saw acknowledged (cut off).
    figures, _ = lost_writes({"a": 10, "b": 5}, {"a": 8, "b": 8}, [KILL])
    assert (figures["lost"], figures["stored_unacknowledged"]) == (2, 3)


def test_a_loss_is_placed_in_the_fault_that_struck_after_it_was_accepted():
    acked = {"a": 100, "b": 100}
    stored = {"a": 90, "b": 95}  # 15 lost
    # Accepted in second 104 and 105 before the kill at 105.4, never stored; one second off
    # by a response crossing a second boundary (acknowledged at 111, accepted at 110).
    acked_s = {104: 20, 105: 20, 110: 10, 111: 10, 125: 10}
    stored_s = {104: 12, 105: 13, 110: 11, 111: 9, 125: 10}
    figures, per_fault = lost_writes(
        acked, stored, [KILL, PAUSE], acked_by_second=acked_s, stored_by_second=stored_s
    )
    assert figures["lost"] == 15
    assert per_fault == [15, 0]
    assert figures["lost_outside_faults"] == 0


def test_during_a_lasting_fault_and_after_the_last_one():
    acked_s = {100: 10, 121: 10, 129: 10, 140: 10}
    stored_s = {100: 10, 121: 4, 129: 10, 140: 8}  # 6 lost in the pause, 2 after it
    figures, per_fault = lost_writes(
        {"a": 40}, {"a": 32}, [KILL, PAUSE], acked_by_second=acked_s, stored_by_second=stored_s
    )
    assert per_fault == [0, 6]
    assert figures["lost_outside_faults"] == 2


def test_without_seconds_a_loss_is_placed_only_when_one_fault_could_have_caused_it():
    assert lost_writes({"a": 10}, {"a": 7}, [KILL])[1] == [3]
    figures, per_fault = lost_writes({"a": 10}, {"a": 7}, [KILL, PAUSE])
    assert per_fault == [None, None]
    assert figures["lost"] == 3
    assert figures["lost_outside_faults"] is None


def test_placed_counts_always_add_up_to_the_exact_total():
    acked_s = {s: 7 for s in range(100, 140)}
    stored_s = {s: 7 - (s % 3 == 0) for s in range(100, 140)}  # 13 short seconds
    figures, per_fault = lost_writes(
        {"a": 280}, {"a": 270}, [KILL, PAUSE], acked_by_second=acked_s, stored_by_second=stored_s
    )
    assert sum(per_fault) + figures["lost_outside_faults"] == figures["lost"] == 10
