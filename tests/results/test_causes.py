"""The binding cause, from probes and stack timelines built to show each one."""

from __future__ import annotations

from stressbed.results.causes import binding_cause
from stressbed.results.probe import Probe, ProbeSetup

LIMITS = {"cpu_m": 1000.0, "memory_mib": 256.0}


def probe(status: str = "failed", **figures) -> Probe:
    found = Probe(ProbeSetup(3, 400, 1, 10.0, 3.0, 100), status)
    found.figures = {
        "offered_per_s": 400.0,
        "achieved_per_s": 399.0,
        "p50_ms": 30.0,
        "error_rate": 0.0,
        "statuses": {},
        "pods": {"agent-0": {"cpu_m": 400.0, "memory_mib": 100.0}},
        **figures,
    }
    found.conditions = {"latency_trend": True, "vus_active_trend": True}
    return found


HELD = probe("held", p50_ms=20.0)


def cause(failed: Probe, **kw):
    return binding_cause(failed, HELD, limits=LIMITS, **kw)


def test_replicas_at_their_cpu_limit():
    found = cause(
        probe(pods={"agent-0": {"cpu_m": 980.0}, "agent-1": {"cpu_m": 990.0}}),
        rows=[{"t": 1, "pods": {"agent-0": {"cpu_m": 980.0}, "agent-1": {"cpu_m": 990.0}}}],
    )
    assert found["kind"] == "cpu-limit"
    assert found["message"] == "agent replicas at their CPU limit (985m of 1,000m)"
    assert found["evidence"]["series"]["agent-0"] == [[1, 980.0]]


def test_throttled_replicas_count_as_at_their_cpu_limit():
    found = cause(probe(pods={"agent-0": {"cpu_m": 600.0, "throttled_share": 0.4}}))
    assert found["kind"] == "cpu-limit"


def test_an_oom_kill_comes_first():
    found = cause(
        probe(pods={"agent-0": {"cpu_m": 990.0}}),
        events=[{"t": 1, "event": "oom-killed", "replica": "agent-1"}],
    )
    assert found["kind"] == "oom-killed"
    assert "256 MiB" in found["message"]
    assert [a["kind"] for a in found["also"]] == ["cpu-limit"]


def test_memory_near_its_limit():
    found = cause(probe(pods={"agent-0": {"cpu_m": 300.0, "memory_mib": 240.0}}))
    assert found["kind"] == "memory-limit"


def test_probes_that_restart_or_unready_replicas_under_load():
    found = cause(probe(), events=[{"t": 1, "event": "liveness-failed", "replica": "agent-0"}])
    assert found["kind"] == "probe-restarts"
    assert "liveness-failed" in found["message"]


def test_the_autoscaler_at_its_maximum_with_replicas_cpu_bound():
    found = cause(
        probe(desired_max=4, pods={"agent-0": {"cpu_m": 995.0}}),
        max_replicas=4,
    )
    assert found["kind"] == "autoscaler-at-max"
    assert "max_replicas (4)" in found["message"]
    assert "CPU limit" in found["message"]


def test_the_quota_refusing_a_scale_up():
    found = cause(
        probe(desired_max=3),
        max_replicas=4,
        events=[{"t": 1, "event": "quota-denied", "reason": "pods 8/8"}],
    )
    assert found["kind"] == "quota-denied"
    assert "pods 8/8" in found["message"]


def test_backpressure_is_shedding_with_flat_latency_not_overload():
    shed = cause(probe(statuses={"429": 90, "500": 10}, error_rate=0.2, p50_ms=22.0))
    assert shed["kind"] == "backpressure"
    assert "90%" in shed["message"]
    # The same refusals with latency ten times up are overload, not a deliberate shedding.
    slow = cause(probe(statuses={"429": 90}, error_rate=0.2, p50_ms=200.0))
    assert slow["kind"] != "backpressure"


def test_a_saturated_target_the_stack_does_not_explain():
    found = cause(probe(achieved_per_s=310.0, p50_ms=80.0))
    assert found["kind"] == "saturation"
    assert "310.0/s of 400/s" in found["message"]


def test_none_found_says_so_and_no_failure_has_no_cause():
    assert cause(probe())["kind"] == "none"
    assert "no stack" in binding_cause(probe(), HELD, has_stack=False)["message"]
    assert binding_cause(None, HELD) is None


def test_a_median_far_slower_than_at_the_rate_that_held_is_saturation():
    found = cause(probe(achieved_per_s=398.0, p50_ms=105.0))
    assert found["kind"] == "saturation"
    assert "p50 rose from 20.0 to 105.0 ms" in found["message"]
