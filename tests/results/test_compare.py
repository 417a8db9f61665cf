"""Run against run: changes with confidence intervals from within-run variation, verdicts
against tolerances, and like-for-like fingerprints."""

from __future__ import annotations

import random

import pytest

from stressbed.results.aggregates import Window
from stressbed.results.compare import Tolerances, compare, differences, fingerprint


def run(
    seed: int,
    *,
    seconds: int = 60,
    ms: float = 20.0,
    requests: int = 100,
    failing: float = 0.0,
    names: tuple[str, ...] = ("report", "heartbeat"),
) -> dict[int, Window]:
    """Seconds of a run whose latencies are lognormal around ``ms``, with some wobble from
    second to second, as a real run's are."""
    rng = random.Random(seed)
    windows = {}
    for s in range(seconds):
        level = ms * rng.uniform(0.9, 1.1)  # a second's own weather
        w = Window(requests=requests, iterations=requests)
        for i in range(requests):
            value = rng.lognormvariate(0, 0.4) * level
            w.duration.add(value)
            w.name_sketch(names[i % len(names)]).add(value)
            if rng.random() < failing:
                w.failed += 1
        windows[1000 + s] = w
    return windows


def verdicts(comparison) -> dict[str, str]:
    return {m.metric: m.verdict for m in comparison.metrics}


def test_a_run_compared_with_itself_is_unchanged_on_every_metric():
    base = run(1)
    found = compare(base, base)
    assert found.verdict == "unchanged"
    assert set(verdicts(found).values()) == {"unchanged"}
    p95 = next(m for m in found.metrics if m.metric == "http_req_duration p(95)")
    assert (p95.change, p95.low, p95.high) == (0, 0, 0)  # one sample: no difference at all
    metrics = list(verdicts(found))
    assert metrics[:3] == [
        "http_req_duration p(50)",
        "http_req_duration p(95)",
        "http_req_duration p(99)",
    ]
    assert "http_req_duration{name:report} p(95)" in metrics
    assert metrics[-2:] == ["http_req_failed rate (%)", "http_reqs rate"]


def test_two_runs_of_the_same_thing_are_never_called_regressed():
    for seed in range(5):
        found = compare(run(100 + seed), run(200 + seed))
        assert found.verdict in ("unchanged", "inconclusive"), verdicts(found)


def test_slower_latency_is_regressed_and_faster_improved():
    base = run(1)
    slower = compare(base, run(2, ms=30.0))
    assert verdicts(slower)["http_req_duration p(50)"] == "regressed"
    assert verdicts(slower)["http_req_duration p(95)"] == "regressed"
    assert slower.verdict == "regressed"
    p50 = next(m for m in slower.metrics if m.metric == "http_req_duration p(50)")
    assert 0.4 < p50.change < 0.6  # 20 ms -> 30 ms
    assert p50.low < p50.change < p50.high
    faster = compare(base, run(3, ms=10.0))
    assert verdicts(faster)["http_req_duration p(95)"] == "improved"


def test_errors_are_judged_in_percentage_points_and_throughput_lower_is_worse():
    found = compare(run(1), run(2, failing=0.05, requests=60))
    assert verdicts(found)["http_req_failed rate (%)"] == "regressed"
    assert verdicts(found)["http_reqs rate"] == "regressed"
    errors = next(m for m in found.metrics if m.metric == "http_req_failed rate (%)")
    assert errors.unit == "pp"
    assert 4 < errors.change < 6
    # A looser tolerance takes the same change as within it.
    loose = compare(run(1), run(2, failing=0.05), Tolerances(error_rate_pp=10))
    assert verdicts(loose)["http_req_failed rate (%)"] == "unchanged"


def test_an_interval_that_straddles_the_tolerance_is_inconclusive():
    found = compare(run(1, seconds=8), run(2, seconds=8, ms=22.0))
    assert verdicts(found)["http_req_duration p(50)"] == "inconclusive"


def test_runs_that_measured_almost_nothing_give_no_metric():
    assert compare(run(1, seconds=2), run(2)).metrics == []


def test_the_fingerprint_names_what_differs():
    a = fingerprint(
        scenario="s",
        config={"x": 1},
        duration_s=60,
        runners=2,
        backend="local",
        stack={"replicas": 2},
    )
    assert differences(a, dict(a)) == []
    b = fingerprint(
        scenario="t",
        config={"x": 2},
        duration_s=30,
        runners=2,
        backend="local",
        stack={"replicas": 3},
    )
    assert differences(a, b) == [
        "scenario: 's' vs 't'",
        "the rendered k6 config differs",
        "duration_s: 60.0 vs 30.0",
        "the stack spec differs",
    ]


@pytest.mark.parametrize("seconds", [30, 600])
def test_the_bootstrap_is_quick_enough_for_a_long_run(seconds):
    found = compare(run(1, seconds=seconds, requests=20), run(2, seconds=seconds, requests=20))
    assert found.seconds == (seconds - 2, seconds - 2)


def test_a_candidate_that_stalled_for_half_the_run_is_regressed_on_throughput():
    stalled = {t: w for t, w in run(2, seconds=40).items() if not 1010 <= t < 1030}
    found = compare(run(1, seconds=40), stalled)
    assert verdicts(found)["http_reqs rate"] == "regressed"


def test_every_second_is_drawn_as_often_by_the_bootstrap():
    import numpy as np  # noqa: PLC0415

    from stressbed.results.compare import _weights  # noqa: PLC0415 - the resampling itself

    weights = _weights(30, 20000, np.random.default_rng(1))
    means = weights.mean(axis=0)
    assert np.allclose(weights.sum(axis=1), 30)
    assert means.min() > 0.95  # the first and last seconds too
    assert means.max() < 1.05


def test_a_percentile_with_too_few_samples_beyond_it_is_skipped_not_judged():
    found = compare(run(1, seconds=10, requests=20), run(2, seconds=10, requests=20))
    assert "http_req_duration p(99)" in found.skipped  # 160 samples: 1.6 beyond p99
    assert "http_req_duration p(99)" not in verdicts(found)
    assert "http_req_duration p(50)" in verdicts(found)


def test_a_comparison_narrowed_to_some_metrics_judges_only_those():
    found = compare(run(1), run(2, ms=30.0, failing=0.0)).only(["http_req_failed*", "http_reqs*"])
    assert list(verdicts(found)) == ["http_req_failed rate (%)", "http_reqs rate"]
    assert found.verdict == "unchanged"  # the slower latency is not among them
