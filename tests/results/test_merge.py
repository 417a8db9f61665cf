"""Merging runner results: counters exactly, rates over k6's own test duration."""

from __future__ import annotations

from stressbed.results.merge import merge, metric_values

from ..conftest import counting_result


def test_counters_merge_exactly_and_rates_use_the_fleet_duration():
    fleet = merge([counting_result(0, 30, 100.0, 110.0), counting_result(1, 50, 100.5, 109.0)])
    values = metric_values(fleet.aggregates["http_reqs"], fleet.duration_s)
    assert values == {"count": 80, "rate": 8.0}


def test_the_fleet_duration_is_k6s_own_test_duration():
    # The runner's wall clock is coarse; k6's count / rate is its exact test run duration.
    first, second = counting_result(0, 30, 100.0, 111.0), counting_result(1, 50, 100.0, 111.0)
    first.k6_summary = {"metrics": {"iterations": {"count": 30, "rate": 3.0}}}
    second.k6_summary = {"metrics": {"iterations": {"count": 50, "rate": 5.0}}}
    fleet = merge([first, second])
    assert fleet.duration_s == 10.0
    assert metric_values(fleet.aggregates["http_reqs"], fleet.duration_s)["rate"] == 8.0
