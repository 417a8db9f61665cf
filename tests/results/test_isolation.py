"""The isolation verdict: the seconds under a neighbour against those before it, on the same
run; held, broken (naming the metric), or no data (never a pass)."""

from __future__ import annotations

import random

from stressbed.results.aggregates import Window
from stressbed.results.isolation import isolation_verdict

START = 1000


def window(rng: random.Random, requests: int, ms: float, failed: int = 0) -> Window:
    w = Window(requests=requests, failed=failed, iterations=requests)
    w.duration.extend([rng.gauss(ms, ms * 0.1) for _ in range(requests)])
    return w


def run(before_ms: float, during_ms: float, *, seconds: int = 20, failed: int = 0):
    rng = random.Random(5)
    windows = {START + s: window(rng, 100, before_ms) for s in range(seconds)}
    windows |= {START + seconds + s: window(rng, 100, during_ms, failed) for s in range(seconds)}
    return windows, START + seconds, START + 2 * seconds


def test_a_neighbour_that_slowed_the_users_broke_isolation_naming_the_metric():
    windows, at, end = run(10.0, 25.0)
    found = isolation_verdict(windows, at, end)
    assert found["verdict"] == "broken"
    assert found["reason"].startswith("the neighbour reached the users: http_req_duration p(95)")
    p95 = next(m for m in found["metrics"] if m["metric"] == "http_req_duration p(95)")
    assert p95["change"] > 1.0  # 10 ms -> 25 ms: +150 %
    assert found["seconds"] == {"before": 20, "during": 20}


def test_no_change_under_the_neighbour_is_isolation_held():
    windows, at, end = run(10.0, 10.0)
    found = isolation_verdict(windows, at, end)
    assert found["verdict"] == "held"
    assert found["reason"] is None
    assert {m["metric"] for m in found["metrics"]} == {
        "http_req_duration p(95)",
        "http_req_duration p(99)",
        "http_req_failed rate (%)",
    }


def test_errors_under_the_neighbour_break_it_too():
    windows, at, end = run(10.0, 10.0, failed=5)
    found = isolation_verdict(windows, at, end)
    assert found["verdict"] == "broken"
    assert "http_req_failed rate (%)" in found["reason"]


def test_too_few_seconds_is_no_data_never_a_pass():
    windows, at, end = run(10.0, 10.0, seconds=2)
    found = isolation_verdict(windows, at, end)
    assert found["verdict"] == "no data"
    assert found["metrics"] == []
    assert "too few seconds of load" in found["reason"]
