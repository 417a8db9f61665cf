"""Merging runner results: counters exactly, rates over k6's own test duration."""

from __future__ import annotations

import json

from stressbed.results.aggregates import MAX_NAMES, OTHER_NAME
from stressbed.results.merge import merge, metric_values
from stressbed.results.runner_result import RunnerResult
from stressbed.results.samples import Collector

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


HEADER = "metric_name,timestamp,metric_value,check,error_code,expected_response,group,method,name,scenario,status,extra_tags,metadata\n"  # noqa: E501
#: More request names than the windows keep apart: which are kept must not depend on a runner.
DECLARED = [f"/n{i:02d}" for i in range(MAX_NAMES + 8)]


def requests(names: list[str], per_name: int = 3) -> list[str]:
    """k6's CSV of ``per_name`` requests of each name, in the order given, in one second."""
    return [
        f"http_req_duration,100,{1 + i},,,true,,GET,{name},w,200,,\n"
        for name in names
        for i in range(per_name)
    ]


def collected(index: int, lines: list[str], names: list[str]) -> RunnerResult:
    collector = Collector(names=names)
    collector.feed_lines([HEADER, *lines])
    result = counting_result(index, 0, 100.0, 101.0)
    result.windows = collector.windows
    result.names_folded = sorted(collector.folded)
    result.names_folded_more = collector.folded_more
    return result


def per_name(windows) -> dict[str, int]:
    return {name: sketch.count for w in windows.values() for name, sketch in w.names.items()}


def test_runners_meeting_names_in_other_orders_merge_to_one_runner_s_per_name_counts():
    everything = requests(DECLARED)
    one = merge([collected(0, everything, DECLARED)])
    half = len(everything) // 2
    # Runner 1 meets the names last-first: left to choose, it would keep another 32.
    two = merge(
        [
            collected(0, everything[:half], DECLARED),
            collected(1, everything[half:][::-1], DECLARED),
        ]
    )
    assert per_name(two.windows) == per_name(one.windows)
    kept = {name: 3 for name in DECLARED[:MAX_NAMES]}
    assert per_name(one.windows) == {**kept, OTHER_NAME: 3 * 8}
    assert two.names_folded == DECLARED[MAX_NAMES:]
    assert two.folded() == {"names": DECLARED[MAX_NAMES:], "more": False}


def test_a_name_the_scenario_does_not_declare_is_folded_and_said():
    fleet = merge([collected(0, requests(["/a", "/b", "/elsewhere"]), ["/a", "/b"])])
    assert per_name(fleet.windows) == {"/a": 3, "/b": 3, OTHER_NAME: 3}
    assert fleet.folded() == {"names": ["/elsewhere"], "more": False}
    assert merge([collected(0, requests(["/a"]), ["/a", "/b"])]).folded() == {
        "names": [],
        "more": False,
    }


def test_the_folded_names_survive_the_result_document():
    result = collected(0, requests(["/a", "/x"]), ["/a"])
    again = RunnerResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert (again.names_folded, again.names_folded_more) == (["/x"], False)
