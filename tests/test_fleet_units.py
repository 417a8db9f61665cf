"""Segments, sketches and the sample collector: the fleet's arithmetic, without k6."""

from __future__ import annotations

import math
import random

import pytest

from stressbed import ConfigError
from stressbed.collect import Aggregate, Collector, parse_selector
from stressbed.merge import merge, metric_values
from stressbed.result import RunnerResult, RunnerStatus, status_for
from stressbed.segments import segment, sequence
from stressbed.sketch import Sketch


def test_segments_cover_the_test_exactly_once():
    assert sequence(1) == "0,1"
    assert segment(0, 1) == "0:1"
    assert sequence(4) == "0,1/4,1/2,3/4,1"
    assert [segment(i, 3) for i in range(3)] == ["0:1/3", "1/3:2/3", "2/3:1"]
    with pytest.raises(ConfigError, match=r"an integer 1\.\.64"):
        sequence(0)
    with pytest.raises(ConfigError):
        segment(3, 3)


def exact_percentile(values: list[float], q: float) -> float:
    """k6's percentile: linear interpolation between the ranks around q * (n - 1)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_merged_sketches_give_percentiles_within_one_percent():
    rng = random.Random(7)
    parts = [[rng.lognormvariate(1, 1.5) for _ in range(20_000)] for _ in range(4)]
    parts[2] += [0.0] * 50  # k6 reports zeros (reused connections)
    merged = Sketch()
    for part in reversed(parts):
        sketch = Sketch()
        sketch.extend(part)
        merged.merge(Sketch.from_dict(sketch.to_dict()))
    everything = [v for part in parts for v in part]
    assert merged.count == len(everything)
    assert merged.minimum == min(everything)
    assert merged.maximum == max(everything)
    assert math.isclose(merged.mean, sum(everything) / len(everything), rel_tol=1e-9)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = exact_percentile(everything, q)
        assert abs(merged.quantile(q) - exact) / exact < 0.01, q


def test_merge_order_does_not_matter():
    rng = random.Random(3)
    a, b = Sketch(), Sketch()
    a.extend(rng.random() * 100 for _ in range(1000))
    b.extend(rng.random() * 5 for _ in range(1000))
    ab, ba = Sketch(), Sketch()
    ab.merge(a)
    ab.merge(b)
    ba.merge(b)
    ba.merge(a)
    assert ab.to_dict() == ba.to_dict()


HEADER = "metric_name,timestamp,metric_value,check,error_code,expected_response,group,method,name,scenario,status,extra_tags,metadata\n"  # noqa: E501


def test_the_collector_reads_k6_csv_with_its_header_and_submetrics():
    collector = Collector(
        [
            parse_selector("http_req_duration{name:report}"),
            parse_selector("http_req_failed{name:report}"),
        ]
    )
    lines = [
        HEADER,
        "http_reqs,100,1.000000,,,true,,POST,report,w,202,,\n",
        "http_req_duration,100,12.5,,,true,,POST,report,w,202,,\n",
        "http_req_failed,100,0.000000,,,true,,POST,report,w,202,,\n",
        'http_reqs,101,1.000000,,,false,,GET,"odd, name",w,500,,\n',
        'http_req_duration,101,40,,,false,,GET,"odd, name",w,500,,\n',
        'http_req_failed,101,1.000000,,,false,,GET,"odd, name",w,500,,\n',
        "http_req_waiting,101,39,,,false,,GET,x,w,500,,\n",  # not a metric anyone asked for
        "vus,101,4.000000,,,,,,,,,,\n",
        "http_reqs,102,1.0,,,true,,GET",  # cut short: k6 killed mid-write
    ]
    collector.feed_lines(lines)
    aggs = collector.aggregates
    assert aggs["http_reqs"].total == 2
    assert aggs["http_req_duration"].sketch.count == 2
    assert aggs["http_req_duration{name:report}"].sketch.count == 1
    assert aggs["http_req_duration{expected_response:true}"].sketch.maximum == 12.5
    assert (aggs["http_req_failed"].total, aggs["http_req_failed"].count) == (1, 2)
    assert aggs["http_req_failed{name:report}"].total == 0
    assert "http_req_waiting" not in aggs
    assert collector.windows[101].failed == 1
    assert collector.windows[101].vus == 4
    assert 102 not in collector.windows


def test_status_follows_k6_exit_codes():
    assert status_for(0) is RunnerStatus.OK
    assert status_for(99) is RunnerStatus.OK  # thresholds are the fleet's to judge
    assert status_for(107) is RunnerStatus.SCRIPT_ERROR
    assert status_for(108) is RunnerStatus.ABORTED
    assert status_for(104) is RunnerStatus.CONFIG_ERROR
    assert status_for(-9) is RunnerStatus.KILLED
    assert status_for(103).failed


def _result(index: int, requests: int, started: float, ended: float) -> RunnerResult:
    agg = Aggregate("counter")
    for _ in range(requests):
        agg.add(1.0)
    return RunnerResult(
        index=index,
        count=2,
        segment=segment(index, 2),
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=started,
        ended_at=ended,
        aggregates={"http_reqs": agg},
    )


def test_counters_merge_exactly_and_rates_use_the_fleet_duration():
    fleet = merge([_result(0, 30, 100.0, 110.0), _result(1, 50, 100.5, 109.0)])
    values = metric_values(fleet.aggregates["http_reqs"], fleet.duration_s)
    assert values == {"count": 80, "rate": 8.0}


def test_the_fleet_duration_is_k6s_own_test_duration():
    # The runner's wall clock is coarse; k6's count / rate is its exact test run duration.
    first, second = _result(0, 30, 100.0, 111.0), _result(1, 50, 100.0, 111.0)
    first.k6_summary = {"metrics": {"iterations": {"count": 30, "rate": 3.0}}}
    second.k6_summary = {"metrics": {"iterations": {"count": 50, "rate": 5.0}}}
    fleet = merge([first, second])
    assert fleet.duration_s == 10.0
    assert metric_values(fleet.aggregates["http_reqs"], fleet.duration_s)["rate"] == 8.0


def test_results_round_trip_through_their_document(tmp_path):
    result = _result(1, 3, 1.0, 2.0)
    result.write(tmp_path / "r.json")
    again = RunnerResult.read(tmp_path / "r.json")
    assert again.to_dict() == result.to_dict()
    (tmp_path / "bad.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(ValueError, match=r"not a stressbed\.runner-result v1 document"):
        RunnerResult.read(tmp_path / "bad.json")
