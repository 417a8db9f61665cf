"""The verdict on merged data: k6's semantics, and "no data" where k6 would read 0 and pass."""

from __future__ import annotations

import math

from stressbed import latency, request_rate, threshold
from stressbed.results.aggregates import Aggregate
from stressbed.results.merge import merge
from stressbed.results.verdict import evaluate

from ..conftest import counting_result


def fleet_with(**aggregates: Aggregate):
    result = counting_result(0, 10, 100.0, 110.0)
    result.aggregates.update(aggregates)
    return merge([result])


def trend(*values: float) -> Aggregate:
    agg = Aggregate("trend")
    for value in values:
        agg.add(value)
    return agg


def test_a_threshold_on_a_request_that_never_ran_is_no_data_and_fails():
    fleet = fleet_with(http_req_duration=trend(5, 7, 9))
    measured, missing = evaluate(
        [latency("p(95) < 1s"), latency("p(95) < 1s", request="never")], fleet
    )
    assert (measured.outcome, measured.ok) == ("ok", True)
    assert (missing.outcome, missing.ok, missing.no_data) == ("no data", False, True)
    assert math.isnan(missing.observed)
    assert missing.to_dict()["observed"] is None


def test_an_optional_threshold_without_data_passes_and_says_so():
    fleet = fleet_with(http_req_duration=trend(5))
    (result,) = evaluate([latency("p(95) < 1s", request="rare", optional=True)], fleet)
    assert (result.outcome, result.ok) == ("no data", True)
    assert result.to_dict()["optional"] is True


def test_a_counter_never_counted_is_a_true_zero_when_the_run_measured_something():
    fleet = fleet_with()
    (dropped,) = evaluate([threshold("dropped_iterations", "count<10")], fleet)
    assert (dropped.outcome, dropped.observed) == ("ok", 0.0)


def test_a_run_that_measured_nothing_has_no_threshold_ok():
    empty = merge([])
    results = evaluate([request_rate("> 0/s"), threshold("dropped_iterations", "count<10")], empty)
    assert [r.outcome for r in results] == ["no data", "no data"]
    assert not any(r.ok for r in results)
