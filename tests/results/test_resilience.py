"""Detection and recovery computed right on synthetic timelines: a step down and back up, a
series that never recovers, noise around the SLO that must not count as recovered, a stack
that noticed, a latency fault seen in its window's p50 and not outside it."""

from __future__ import annotations

import random

import pytest

from stressbed import error_rate, errors_during_fault, latency, recovery_time, time_to_detect
from stressbed.results.aggregates import Window
from stressbed.results.resilience import judge_resilience, resilience
from stressbed.results.slo_seconds import RECOVERED_S

SLOS = [latency("p(95) < 100ms"), error_rate("< 5%")]
T0 = 1_800_000_000  # the first second of the load


def second(ms: float = 20.0, requests: int = 50, failed: int = 0) -> Window:
    window = Window(requests=requests, failed=failed, iterations=requests)
    window.duration.extend([ms] * requests)
    return window


def timeline(shape) -> dict[int, Window]:
    """One window per second from T0: ``shape(i)`` is that second's window."""
    return {T0 + i: shape(i) for i in range(120)}


def kill_at(at: int, **extra) -> dict:
    return {"name": "kill", "kind": "kill", "at": T0 + at, "end": None, **extra}


def test_a_step_down_and_back_up_recovers_when_the_slos_hold_again():
    # Errors for 8 s from the kill at 30 s, then calm: recovered once the rolling window has
    # no broken second left.
    windows = timeline(lambda i: second(failed=25 if 30 <= i < 38 else 0))
    (found,) = resilience([kill_at(30)], windows, SLOS)
    assert found["recovered"]
    # The rolling 5 s error rate stays above 5% until the broken seconds have left it.
    assert 8 <= found["time_to_recover_s"] <= 8 + 5
    assert found["failed_requests"] == 8 * 25
    assert found["errors_during_fault"] == pytest.approx(
        found["failed_requests"] / found["requests"]
    )
    assert found["baseline"]["error_rate"] == 0
    assert found["degraded"]["http_req_failed:rate<0.05"] > 0


def test_a_series_that_never_recovers_is_a_result_not_a_crash():
    windows = timeline(lambda i: second(ms=20 if i < 30 else 400))
    (found,) = resilience([kill_at(30)], windows, SLOS)
    assert found["recovered"] is False
    assert found["time_to_recover_s"] is None
    verdicts = judge_resilience([found], [recovery_time("< 30s")])
    assert verdicts == [
        {
            "threshold": "recovery_time < 30s",
            "fault": "kill",
            "observed": None,
            "passed": False,
            "note": "did not recover",
        }
    ]


def test_noise_around_the_slo_is_not_a_recovery():
    # After the fault, p95 alternates above and below the bound every 3 s: never 10 s within.
    windows = timeline(lambda i: second(ms=20 if i < 30 or (i // 3) % 2 else 150))
    (found,) = resilience([kill_at(30)], windows, SLOS)
    assert found["time_to_recover_s"] is None


def test_a_fault_users_never_noticed_recovered_at_once():
    windows = timeline(lambda i: second())
    (found,) = resilience([kill_at(30)], windows, SLOS)
    assert found["time_to_recover_s"] == 0
    assert found["errors_during_fault"] == 0


def test_seconds_with_nothing_answered_break_the_recovery():
    # A pause: nothing completes for 20 s (no windows), then calm again.
    windows = {s: w for s, w in timeline(lambda i: second()).items() if not 30 <= s - T0 < 50}
    windows.update({T0 + 30: second(ms=300)})  # what was in flight, answered late
    pause = {"name": "pause", "kind": "pause", "at": T0 + 30, "end": T0 + 50}
    (found,) = resilience([pause], windows, SLOS)
    assert found["recovered"]
    assert found["time_to_recover_s"] >= 20  # not while nothing was answered
    assert found["time_to_recover_after_end_s"] is not None
    assert found["time_to_recover_after_end_s"] <= found["time_to_recover_s"] - 20 + 1


def test_detection_is_the_first_stack_event_on_the_faulted_replica():
    windows = timeline(lambda i: second())
    events = [
        {"t": T0 + 20, "event": "unready", "replica": "agent-0"},  # before: not this fault
        {"t": T0 + 31.5, "event": "scaled", "replica": None},  # not a detection
        {"t": T0 + 32.25, "event": "unready", "replica": "agent-0"},  # another replica
        {"t": T0 + 33.0, "event": "crashed", "replica": "agent-1"},
    ]
    at_the_end = [{"t": T0 + 31, "event": "killed", "replica": "agent-1", "reason": "teardown: x"}]
    (ignored,) = resilience([kill_at(30, replicas=["agent-1"])], windows, SLOS, events=at_the_end)
    assert ignored["time_to_detect_s"] is None  # the run's teardown is not a detection
    (found,) = resilience([kill_at(30, replicas=["agent-1"])], windows, SLOS, events=events)
    assert found["time_to_detect_s"] == 3.0
    (anywhere,) = resilience([kill_at(30)], windows, SLOS, events=events)
    assert anywhere["time_to_detect_s"] == 2.25
    verdicts = judge_resilience([found], [time_to_detect("< 5s")])
    assert verdicts[0]["passed"]


def test_a_latency_fault_shows_in_its_window_and_not_in_the_baseline():
    rng = random.Random(7)

    def shape(i: int) -> Window:
        extra = 200 if 40 <= i < 70 else 0
        return second(ms=20 + extra + rng.uniform(-2, 2))

    fault = {"name": "latency", "kind": "latency", "at": T0 + 40, "end": T0 + 70}
    (found,) = resilience([fault], timeline(shape), [latency("p(95) < 500ms")])
    assert found["during"]["p50_ms"] - found["baseline"]["p50_ms"] >= 150
    assert found["baseline"]["p50_ms"] < 30
    assert found["time_to_recover_s"] == 0  # within a 500 ms SLO throughout


def test_each_fault_is_observed_until_the_next_and_baselines_skip_earlier_faults():
    windows = timeline(lambda i: second(failed=40 if 30 <= i < 35 or 60 <= i < 62 else 0))
    first, later = resilience([kill_at(30), kill_at(60, name="kill-2")], windows, SLOS)
    assert first["observed_s"] == 30
    assert later["observed_s"] == 60
    # The second fault's baseline leaves out the seconds the first one was being observed.
    assert later["baseline"]["error_rate"] == 0
    assert first["time_to_recover_s"] is not None
    assert later["time_to_recover_s"] is not None
    assert RECOVERED_S == 10


def test_errors_during_fault_judges_every_fault():
    windows = timeline(lambda i: second(failed=10 if 30 <= i < 33 else 0))
    found = resilience([kill_at(30)], windows, SLOS)
    (verdict,) = judge_resilience(found, [errors_during_fault("< 5%")])
    assert verdict["fault"] == "kill"
    assert verdict["passed"] == (verdict["observed"] < 0.05)


def test_a_stall_is_a_violation_not_seconds_skipped():
    # After the kill nothing completes for 20 s while the VUs wait: no "recovered after 0 s".
    def shape(i: int) -> Window:
        window = Window(vus=50) if 30 <= i < 50 else second()
        window.vus = 50
        return window

    (found,) = resilience([kill_at(30)], timeline(shape), SLOS)
    assert found["time_to_recover_s"] == 20
    assert found["stalled_s"] == 20
    assert found["degraded"]["http_req_failed:rate<0.05"] == pytest.approx(20 * 0.95)
    verdicts = judge_resilience([found], [recovery_time("< 10s")])
    assert verdicts[0]["passed"] is False


def test_with_no_slo_to_judge_a_recovery_is_not_measured_not_immediate():
    # 100% errors for 20 s, and nothing to judge them against: not "recovered after 0 s".
    windows = timeline(lambda i: second(failed=50 if 30 <= i < 50 else 0))
    (found,) = resilience([kill_at(30)], windows, [])
    assert found["time_to_recover_s"] is None
    assert found["judged_s"] == 0
    assert found["note"].startswith("recovery not measured")
    verdicts = judge_resilience([found], [recovery_time("< 30s")])
    assert verdicts[0] == {
        "threshold": "recovery_time < 30s",
        "fault": "kill",
        "observed": None,
        "passed": False,
        "note": "not measured",
    }


def test_with_no_slo_a_stall_alone_is_no_recovery_missed():
    # A population's run: no request SLO, a stall while every replica restarts. Its recovery
    # is not measured (the storm's is the agents'), never "did not recover".
    def shape(i: int) -> Window:
        window = Window(vus=50) if i == 30 else second()
        window.vus = 50
        return window

    (found,) = resilience([kill_at(30)], timeline(shape), [])
    assert found["stalled_s"] == 1
    assert found["judged_s"] == 0
    assert found["time_to_recover_s"] is None
    assert found["note"].startswith("recovery not measured")
