"""A replica's lifecycle: table-driven, on a fake clock, without a process."""

from __future__ import annotations

import math

import pytest

from stressbed.stack.lifecycle import BackOff, Deletion, Lifecycle, Phase

BACKOFF = BackOff(base_s=1.0, max_s=8.0, reset_s=60.0)


def running(now: float = 0.0) -> Lifecycle:
    life = Lifecycle("agent-0", 0, BACKOFF)
    life.start(now, first=True)
    return life


def test_a_new_replica_starts_running_and_is_routed_once_ready():
    life = Lifecycle("agent-0", 0, BACKOFF)
    assert (life.phase, life.start_due(0.0), life.has_process) == (Phase.BACK_OFF, True, False)
    life.start(0.0, first=True)
    assert (life.phase, life.restarts, life.ready, life.probed) == (Phase.RUNNING, 0, False, True)
    assert life.became_ready(2.0)
    assert (life.phase, life.ready_since) == (Phase.READY, 2.0)
    assert not life.became_ready(3.0)  # already routed: nothing changes
    assert life.became_unready()
    assert life.phase is Phase.RUNNING
    assert not life.became_unready()


@pytest.mark.parametrize(
    ("runs_s", "delays"),
    [
        # Crashing at once: 1, 2, 4, 8 s, then capped at 8 s.
        ([0.1, 0.1, 0.1, 0.1, 0.1], [1.0, 2.0, 4.0, 8.0, 8.0]),
        # A run of 60 s or more resets the streak.
        ([0.1, 0.1, 61.0, 0.1], [1.0, 2.0, 1.0, 2.0]),
    ],
)
def test_crash_loop_back_off_doubles_up_to_its_cap_and_resets_after_a_good_run(runs_s, delays):
    life = Lifecycle("agent-0", 0, BACKOFF)
    now, seen = 0.0, []
    for i, ran in enumerate(runs_s):
        life.start(now, first=i == 0)
        now += ran
        delay = life.ended(now)
        assert delay is not None
        seen.append(delay)
        assert life.phase is Phase.BACK_OFF
        assert not life.start_due(now)
        assert life.start_due(now + delay)
        now += delay
    assert seen == delays
    assert life.restarts == len(runs_s) - 1


def test_a_failed_probe_terminates_then_restarts_and_sigkill_comes_after_the_grace():
    life = running()
    life.became_ready(1.0)
    assert life.terminate("liveness-failed", 10.0, grace_s=5.0)
    assert (life.phase, life.stopping, life.probed) == (Phase.TERMINATING, True, False)
    assert not life.kill_due(14.9)
    assert life.kill_due(15.0)
    assert not life.terminate("liveness-failed", 11.0, grace_s=5.0)  # once is enough
    assert life.ended(12.0) == 1.0  # stopped: restarted after the back-off
    assert (life.phase, life.kill_at) == (Phase.BACK_OFF, math.inf)


@pytest.mark.parametrize(
    ("before", "outcome", "after"),
    [
        ("back-off", Deletion.GONE, Phase.DELETED),
        ("running", Deletion.SIGNAL, Phase.DELETING),
        ("ready", Deletion.SIGNAL, Phase.DELETING),
        ("terminating", Deletion.WAIT, Phase.DELETING),
        ("deleting", Deletion.WAIT, Phase.DELETING),
    ],
)
def test_deleting_from_each_phase(before, outcome, after):
    life = Lifecycle("agent-0", 0, BACKOFF)
    if before != "back-off":
        life.start(0.0, first=True)
    if before == "ready":
        life.became_ready(0.5)
    if before == "terminating":
        life.terminate("liveness-failed", 1.0, grace_s=30.0)
    if before == "deleting":
        life.delete("scale-down", 1.0, grace_s=30.0)
    assert life.delete("teardown", 2.0, grace_s=3.0) is outcome
    assert life.phase is after
    assert not life.counted
    assert not life.ready
    if after is Phase.DELETING:
        # The shorter grace holds: teardown does not wait for an earlier, longer one.
        assert life.kill_at == 5.0
        assert life.ended(4.0) is None
        assert life.phase is Phase.DELETED


def test_scale_in_takes_unready_then_most_restarted_then_newest_first():
    def replica(ordinal: int, *, ready: bool, restarts: int = 0, state: str = "up") -> Lifecycle:
        life = Lifecycle(f"agent-{ordinal}", ordinal, BACKOFF, restarts=restarts)
        if state == "up":
            life.start(0.0, first=True)
            if ready:
                life.became_ready(0.0)
        return life

    lives = [
        replica(0, ready=True),
        replica(1, ready=True, restarts=2),
        replica(2, ready=False),
        replica(3, ready=True),
        replica(4, ready=False, state="back-off"),
    ]
    order = [life.ordinal for life in sorted(lives, key=Lifecycle.scale_in_key)]
    assert order == [4, 2, 1, 3, 0]


def test_a_replica_that_is_running_cannot_be_started_again():
    life = running()
    with pytest.raises(ValueError, match="cannot start while running"):
        life.start(1.0, first=False)


def test_a_restart_on_purpose_is_no_crash_its_replacement_starts_at_once():
    life = running()
    # Two crashes first: a streak that would hold the next start back 4 s.
    for now in (0.1, 1.2):
        assert life.ended(now) is not None
        life.start(life.start_at, first=False)
    life.became_ready(5.0)
    assert life.terminate("restart", 10.0, 30.0, deliberate=True)
    assert (life.phase, life.stopping, life.kill_at) == (Phase.TERMINATING, True, 40.0)
    assert life.ended(11.0) == 0.0  # a rollout, not a crash
    assert life.start_due(11.0)
    assert life.crashes == 0  # a new pod's clean slate
    life.start(11.0, first=False)
    assert (life.restarts, life.restarted_on_purpose, life.deliberate) == (3, 1, False)
    # The next failure is a crash again, the first of a new streak.
    assert life.ended(11.5) == BACKOFF.base_s


def test_a_failed_probe_still_backs_off_and_a_deleted_restart_is_gone():
    life = running()
    assert life.terminate("liveness-failed", 1.0, 5.0)
    assert life.ended(2.0) == BACKOFF.base_s
    life.start(3.0, first=False)
    assert life.restarted_on_purpose == 0
    assert life.terminate("restart", 4.0, 5.0, deliberate=True)
    assert life.delete("teardown", 4.5, 1.0) is Deletion.WAIT
    assert life.ended(5.0) is None  # teardown wins: deleted, not started again
    assert life.phase is Phase.DELETED
