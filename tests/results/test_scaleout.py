"""Scale-out timings from a step built second by second: the autoscaler's decision, the new
replicas ready, the SLOs back for 10 s, the seconds in violation."""

from __future__ import annotations

from stressbed import error_rate, latency
from stressbed.results.aggregates import Window
from stressbed.results.scaleout import scale_out
from stressbed.results.slo_seconds import RECOVERED_S

STEP = 1000.0
SLOS = [latency("p(95) < 100ms"), error_rate("< 1%")]


def second(ms: float, failed: int = 0) -> Window:
    w = Window(requests=100, failed=failed, iterations=100)
    w.duration.extend([ms] * 100)
    return w


def rows(replicas: list[int], ready: list[int], desired: list[int], start: float = STEP - 5):
    return [
        {"t": start + i, "replicas": r, "ready": q, "desired": d}
        for i, (r, q, d) in enumerate(zip(replicas, ready, desired, strict=True))
    ]


def test_each_time_is_measured_from_the_step():
    # 5 s before the step fine; after it, p95 over the SLO for seconds 0..11, fine from 12 on.
    windows = {int(STEP) + i: second(300.0 if 0 <= i < 12 else 20.0) for i in range(-5, 40)}
    samples = rows(
        replicas=[2] * 9 + [4] * 36,
        ready=[2] * 15 + [4] * 30,
        desired=[2] * 9 + [4] * 36,
    )
    events = [{"t": STEP + 3.5, "event": "scaled", "from": 2, "to": 4}]
    found = scale_out(windows, STEP, STEP + 40, SLOS, rows=samples, events=events)
    assert found["t_desired_s"] == 3.5
    assert found["t_ready_s"] == 10.0  # the first sample with 4 of 4 ready
    assert found["t_recovered_s"] == 12.0
    assert found["violation_s"] == 12
    assert found["recovered"] is True
    assert found["replicas"] == {"start": 2, "peak": 4}
    assert found["decisions"] == [{"t_s": 3.5, "from": 2, "to": 4}]
    assert found["series"]["t"][0] == -5.0


def test_a_step_that_never_breaks_the_slos_recovers_at_once():
    windows = {int(STEP) + i: second(20.0) for i in range(30)}
    found = scale_out(windows, STEP, STEP + 30, SLOS)
    assert found["t_recovered_s"] == 0.0
    assert found["violation_s"] == 0
    assert found["t_desired_s"] is None  # no decision to scale


def test_slos_that_never_hold_long_enough_again_are_not_a_recovery():
    # Errors after the step; back for 9 s only, then errors again.
    pattern = [5] * 10 + [0] * (RECOVERED_S - 1) + [5] * 10
    windows = {int(STEP) + i: second(20.0, failed=f) for i, f in enumerate(pattern)}
    found = scale_out(windows, STEP, STEP + len(pattern), SLOS)
    assert found["recovered"] is False
    assert found["t_recovered_s"] is None
    assert found["violation_s"] == 20


def test_scaling_before_the_step_is_counted_apart_and_a_scale_down_is_no_decision():
    events = [
        {"t": STEP - 2, "event": "scaled", "from": 2, "to": 3},
        {"t": STEP + 1, "event": "scaled", "from": 3, "to": 2},
        {"t": STEP + 6, "event": "scaled", "from": 2, "to": 4},
    ]
    windows = {int(STEP) + i: second(20.0) for i in range(20)}
    found = scale_out(windows, STEP, STEP + 20, SLOS, events=events)
    assert found["scaled_before_the_step"] == 1
    assert found["t_desired_s"] == 6.0
    assert found["t_ready_s"] is None  # no sample says they got ready


def test_a_stall_after_the_step_is_in_violation_not_held_throughout():
    # Nothing completes for 15 s after the step while the VUs wait, then every second is fine.
    windows = {int(STEP) + i: second(20.0) for i in range(-5, 40)}
    for i in range(15):
        windows[int(STEP) + i] = Window(vus=200)
    found = scale_out(windows, STEP, STEP + 40, SLOS)
    assert found["violation_s"] == 15
    assert found["stalled_s"] == 15
    assert found["t_recovered_s"] == 15.0
    assert found["series"]["ok"][5:20] == [False] * 15  # the report draws them failed


def test_a_step_with_nothing_judged_after_it_is_not_measured():
    windows = {int(STEP) + i: second(20.0) for i in range(-5, 0)}
    windows.update({int(STEP) + i: Window() for i in range(30)})  # no load, nothing recorded
    found = scale_out(windows, STEP, STEP + 30, SLOS)
    assert found["t_recovered_s"] is None  # not 0: nothing said the SLOs held
    assert found["recovered"] is False
    assert found["judged_s"] == 0
