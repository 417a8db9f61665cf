"""The one per-second SLO judgement: a second with load and nothing completed is a stall when
completions were expected (never for a closed model's think time), a second nothing could be
judged on is not measured (never held), and a recovery needs judged seconds."""

from __future__ import annotations

import pytest

from stressbed import error_rate, latency
from stressbed.results.aggregates import Window
from stressbed.results.slo_seconds import (
    RECOVERED_S,
    ROLLING_S,
    Second,
    judge_seconds,
    recovery,
    stalled_seconds,
)

SLOS = [latency("p(95) < 100ms"), error_rate("< 5%")]
HELD, BROKEN, STALLED = Second.HELD, Second.BROKEN, Second.STALLED


def second(requests: int = 50, *, ms: float = 20.0, failed: int = 0, vus: float = 10) -> Window:
    window = Window(requests=requests, failed=failed, iterations=requests, vus=vus)
    window.duration.extend([ms] * requests)
    return window


def quiet(*, vus: float = 10, dropped: int = 0) -> Window:
    """A second of load in which nothing completed."""
    return Window(vus=vus, dropped=dropped)


def test_a_second_with_load_and_nothing_completed_is_a_stall_at_a_steady_rate():
    windows = {s: second() for s in range(40)}
    windows.update({s: quiet() for s in range(20, 25)})
    judged = judge_seconds(windows, range(15, 40), SLOS, since=15)
    assert judged[5:10] == [STALLED] * 5
    assert judged[:5] == [HELD] * 5
    assert judged[10:] == [HELD] * 15
    assert recovery(judged) == 10  # the first held second after the stall


def test_a_closed_model_thinking_two_seconds_is_no_outage():
    # 1 VU: a request completes every other second, the VU sleeping between them.
    windows = {s: second(1, vus=1) if s % 2 == 0 else quiet(vus=1) for s in range(120)}
    assert stalled_seconds(windows) == set()
    judged = judge_seconds(windows, range(30, 120), SLOS, since=30)
    assert STALLED not in judged
    assert recovery(judged) == 0


def test_a_burst_then_a_long_think_time_is_no_outage():
    # Ten VUs in step: 100 requests in one second, then 20 s asleep, again and again.
    windows = {s: second(100, vus=10) if s % 21 == 0 else quiet(vus=10) for s in range(200)}
    assert stalled_seconds(windows, pause_s=20) == set()
    # Not told the flow's pauses: the first spell looks like a stall, the next ones are
    # spells the lookback has seen.
    assert stalled_seconds(windows) == set(range(1, 21))


def test_a_slow_flow_stalls_only_once_enough_completions_were_missed():
    # One completion a second, then none: a stall only after STALL_EXPECTED missed ones.
    windows = {s: second(1, vus=1) for s in range(40)}
    windows.update({s: quiet(vus=1) for s in range(40, 50)})
    assert stalled_seconds(windows) == set(range(44, 50))


def test_dropped_iterations_with_nothing_completed_are_a_stall_at_once():
    windows = {s: second(2, vus=2) for s in range(10)}
    windows[10] = quiet(vus=2, dropped=3)
    assert stalled_seconds(windows) == {10}


def test_nothing_completed_since_the_load_started_is_a_stall_after_the_rolling_window():
    windows = {s: quiet() for s in range(10)}
    assert stalled_seconds(windows) == set(range(ROLLING_S - 1, 10))


def test_seconds_without_load_or_without_a_window_are_not_measured():
    windows = {s: second() for s in range(10)}
    windows.update({s: quiet(vus=0) for s in range(10, 20)})  # the load paused: no VUs
    windows.update({s: second() for s in range(30, 40)})  # 20..29: nothing recorded
    judged = judge_seconds(windows, range(10, 30), SLOS, since=10)
    assert judged == [None] * 20
    assert recovery(judged) is None  # nothing judged: not "never broke"


def test_a_second_no_slo_can_be_observed_on_is_not_measured():
    windows = {s: second() for s in range(20)}
    on_a_name = [latency("p(95) < 100ms", request="absent")]
    assert judge_seconds(windows, range(20), on_a_name, since=0) == [None] * 20
    assert judge_seconds(windows, range(20), [], since=0) == [None] * 20
    assert recovery(judge_seconds(windows, range(20), [], since=0)) is None


@pytest.mark.parametrize(
    ("judged", "expected"),
    [
        ([HELD] * 3, 0),
        ([None, HELD, None], 0),
        ([None] * 5, None),
        ([], None),
        ([BROKEN] + [HELD] * RECOVERED_S, 1),
        ([BROKEN] + [HELD] * (RECOVERED_S - 1), None),
        # Not measured seconds neither count nor break the run of held ones.
        ([STALLED] + [HELD, None] * RECOVERED_S, 1),
        ([BROKEN] + [HELD] * 5 + [STALLED] + [HELD] * RECOVERED_S, 7),
    ],
)
def test_recovery_is_the_first_of_recovered_s_judged_seconds_held_running(judged, expected):
    assert recovery(judged) == expected
