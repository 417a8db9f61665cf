"""One probe judged from windows built to show each verdict: held, failed and why, invalid."""

from __future__ import annotations

import math

import pytest

from stressbed import error_rate, latency
from stressbed.results.aggregates import Window
from stressbed.results.probe import ProbeSetup, judge_probe
from stressbed.results.runner_result import RunnerResult, RunnerStatus

START = 1000.0
SLOS = [latency("p(95) < 100ms"), error_rate("< 1%")]


def second(iterations: int, ms: float, *, failed: int = 0, vus: float = 2, dropped: int = 0):
    w = Window(requests=iterations, failed=failed, iterations=iterations, vus=vus, dropped=dropped)
    w.duration.extend([ms] * iterations)
    if failed:
        w.statuses["503"] = failed
    return w


def windows(per_second, seconds: int = 12) -> dict[int, Window]:
    """``per_second(i) -> Window`` for each second of a 12 s probe."""
    return {int(START) + i: per_second(i) for i in range(seconds)}


def setup(rate: int = 100, max_vus: int = 50) -> ProbeSetup:
    return ProbeSetup(1, rate, 1, step_s=12.0, warmup_s=4.0, max_vus=max_vus)


def runner(cpu_share: float, capacity: float = 1.0) -> RunnerResult:
    return RunnerResult(
        index=0,
        count=1,
        segment="0:1",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=START,
        ended_at=START + 12,
        cpu={int(START) + i: cpu_share * capacity for i in range(1, 13)},
        cpu_capacity=capacity,
    )


def judge(per_second, **kw):
    return judge_probe(setup(**kw), windows(per_second), START, slos=SLOS, runners=[runner(0.3)])


def test_a_steady_probe_within_its_slos_holds_and_the_warm_up_is_not_judged():
    # The warm-up is slow (a cold cache); the steady window after it is fine.
    probe = judge(lambda i: second(100, 400.0 if i < 4 else 20.0))
    assert probe.status == "held", probe.reasons
    assert probe.steady == (int(START) + 4, int(START) + 11)
    assert probe.figures["p95_ms"] < 25
    assert probe.figures["achieved_per_s"] == 100
    assert all(probe.conditions.values())


def test_an_slo_breached_on_the_steady_window_fails_it_with_the_observed_value():
    probe = judge(lambda i: second(100, 150.0))
    assert probe.status == "failed"
    assert probe.conditions["slo:p(95)<100ms"] is False
    assert probe.reasons[0] == "p(95)<100ms: 150.0 ms"
    errors = judge(lambda i: second(100, 20.0, failed=5))
    assert errors.status == "failed"
    assert errors.conditions["slo:error_rate<1%"] is False


def test_an_achieved_rate_short_of_the_offered_one_fails_it():
    probe = judge(lambda i: second(90, 20.0))
    assert probe.status == "failed"
    assert probe.conditions["achieved"] is False
    assert "90%" in probe.reasons[0]


def test_a_growing_queue_fails_it_though_every_slo_still_holds():
    probe = judge(lambda i: second(100, 20.0 + 6 * i, vus=2 + 0.6 * i))
    assert all(s["ok"] for s in probe.slos)  # p95 still under 100 ms at the end
    assert probe.status == "failed"
    assert probe.conditions["latency_trend"] is False
    assert any("queue" in r for r in probe.reasons)


def test_a_runner_at_its_cpu_limit_makes_the_probe_invalid_not_failed():
    probe = judge_probe(
        setup(),
        windows(lambda i: second(100, 150.0)),
        START,
        slos=SLOS,
        runners=[runner(0.97, capacity=0.5)],
    )
    assert probe.status == "invalid"
    assert probe.conditions["runner_cpu"] is False
    assert "load generator" in probe.reasons[0]


def test_vus_running_out_while_latency_holds_is_the_generator_s_limit():
    probe = judge(lambda i: second(95, 20.0, vus=50, dropped=5), max_vus=50)
    assert probe.status == "invalid"
    assert probe.conditions["vu_pool"] is False
    assert "VU pool" in probe.reasons[0]


def test_vus_used_up_by_latency_that_broke_the_slo_is_the_target_s_failure():
    probe = judge(lambda i: second(80, 600.0, vus=50, dropped=20), max_vus=50)
    assert probe.status == "failed"
    assert probe.conditions["vu_pool"] is False
    assert any("VUs ran out" in r for r in probe.reasons)


def test_a_probe_that_measured_nothing_or_never_started_is_an_error():
    assert judge_probe(setup(), {}, None, slos=SLOS).status == "error"
    assert judge_probe(setup(), {}, START, slos=SLOS).status == "error"


def test_the_stack_s_samples_in_the_window_are_the_probe_s_replica_figures():
    rows = [
        {
            "t": START + i + 0.5,
            "replicas": 2,
            "ready": 2,
            "desired": 3 if i > 6 else 2,
            "pods": {"agent-0": {"cpu_m": 900.0 + i, "memory_mib": 100.0 + i}},
        }
        for i in range(12)
    ]
    probe = judge_probe(
        setup(), windows(lambda i: second(100, 20.0)), START, slos=SLOS, stack_rows=rows
    )
    assert probe.figures["replicas"] == 2
    assert probe.figures["desired_max"] == 3
    assert probe.figures["pods"]["agent-0"]["memory_mib"] == 111.0  # the window's peak
    assert 904 <= probe.figures["pods"]["agent-0"]["cpu_m"] <= 911  # its median
    document = probe.to_dict()
    assert document["status"] == "held"
    assert document["rate"] == 100


def test_latency_wandering_by_milliseconds_far_under_the_slo_is_no_queue():
    # A throttled fast target: mean latency drifts from 2 to 9 ms over the window, with a
    # 250 ms SLO. Significant, but it would take many windows to matter: held.
    slos = [latency("p(95) < 250ms")]
    drift = windows(lambda i: second(100, 2.0 + 0.7 * i))
    probe = judge_probe(setup(), drift, START, slos=slos, runners=[runner(0.3)])
    assert probe.conditions["latency_trend"] is True
    assert probe.status == "held"
    # The same drift under a 10 ms SLO is a queue about to break it.
    tight = judge_probe(setup(), drift, START, slos=[latency("p(99) < 10ms")])
    assert tight.conditions["latency_trend"] is False


def test_k6_s_vus_gauge_is_vus_active_and_concurrency_is_little_s_law():
    # 100 requests/s at 20 ms: 2 in flight at the target; 30 VUs busy, their think time
    # included. capacity.json names each for what it is.
    probe = judge(lambda i: second(100, 20.0, vus=30))
    assert probe.figures["vus_active"] == 30
    assert probe.figures["concurrency_littles_law"] == pytest.approx(2.0)
    assert probe.figures["iteration_s"] == pytest.approx(0.3)  # 30 busy / 100 completed a second
    document = probe.to_dict()
    assert "in_flight" not in document
    assert document["vus_active"] == 30
    assert document["vus_active_trend"] is not None
    # Nothing completed: no latency, so no concurrency (not 0).
    quiet = Window(iterations=100, vus=30)
    nothing = judge_probe(setup(), windows(lambda i: quiet), START, slos=SLOS)
    assert nothing.figures["concurrency_littles_law"] is None


def test_a_pool_that_ran_out_says_how_many_vus_the_rate_needed():
    # Every one of 50 VUs busy on 3 s iterations completes about 17 a second of the 100
    # offered: the rate needs about 300 VUs (Little's law), and the judgement says so.
    probe = judge(lambda i: second(17, 20.0, vus=50, dropped=83), max_vus=50)
    assert probe.status == "invalid"
    assert probe.figures["vus_needed"] == math.ceil(100 * 50 / 17)
    assert "needs about 295 VUs by Little's law, the pool had 50" in probe.reasons[0]
    assert probe.reasons[0].endswith("the load generator, not the target, was the limit")
    assert probe.to_dict()["vus_needed"] == 295
