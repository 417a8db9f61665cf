"""One time axis for the report: fleet, runners, stack and events on the same seconds."""

from __future__ import annotations

import pytest

from stressbed import error_rate, latency, request_rate
from stressbed.results.aggregates import Window
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.sketch import Sketch
from stressbed.results.timeline import REST, TOP_NAMES, breaches, timeline

START_S = 1_000_000


def window(requests: int, ms: float, failed: int = 0, vus: float = 0, **names: float) -> Window:
    w = Window(requests=requests, failed=failed, vus=vus, iterations=requests)
    w.duration.extend([ms] * requests)
    for name, value in names.items():
        w.name_sketch(name).extend([value] * requests)
    return w


def runner(index: int, windows: dict[int, Window], cpu: dict[int, float] | None = None):
    return RunnerResult(
        index=index,
        count=2,
        segment="",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=float(min(windows)),
        ended_at=float(max(windows)),
        windows=windows,
        cpu=cpu or {},
    )


def test_every_series_is_on_the_seconds_since_the_fleet_started():
    windows = {100: window(10, 5.0, vus=2), 101: window(20, 50.0, 2, vus=4), 103: window(5, 1.0)}
    line = timeline(windows, [runner(0, windows, cpu={101: 0.5, 102: 0.75})])
    assert (line.start, line.step, line.t) == (100, 1, [0.0, 1.0, 2.0, 3.0])
    assert line.fleet["requests_per_s"] == [10, 20, 0, 5]
    assert line.fleet["error_rate"] == [0.0, 0.1, None, 0.0]  # no requests: no rate
    assert line.fleet["p95_ms"][2] is None
    assert line.fleet["p95_ms"][1] == pytest.approx(50.0, rel=0.005)
    assert line.fleet["vus"][:2] == [2, 4]
    # A CPU sample at second s covers the second before it.
    assert line.runners[0]["cpu_cores"] == [0.5, 0.75, None, None]
    assert line.runners[0]["requests_per_s"] == [10, 20, 0, 5]


def test_a_long_run_is_drawn_in_steps_whose_percentiles_are_read_from_merged_sketches():
    windows = {1000 + s: window(1, float(s % 7 + 1)) for s in range(2000)}
    line = timeline(windows, max_points=900)
    assert line.step == 3
    assert len(line.t) == 667  # 2000 s in steps of 3
    assert line.fleet["requests_per_s"][0] == 1.0  # 3 requests over 3 seconds
    union = Sketch()
    for s in range(3):
        union.merge(windows[1000 + s].duration)
    assert line.fleet["p99_ms"][0] == union.quantile(0.99)


def test_the_top_request_names_are_drawn_and_the_rest_grouped():
    names = {f"r{i}": float(i + 1) for i in range(TOP_NAMES + 2)}
    w = Window(requests=0)
    for i, (name, ms) in enumerate(names.items()):
        w.name_sketch(name).extend([ms] * (100 - i))  # r0 the most frequent
    line = timeline({5: w})
    assert list(line.names) == [f"r{i}" for i in range(TOP_NAMES)] + [REST]
    assert line.names[REST]["requests_per_s"] == [(100 - TOP_NAMES) + (100 - TOP_NAMES - 1)]


def test_a_failed_threshold_is_shaded_where_each_step_breaches_it():
    windows = {
        10: window(10, 50.0, report=50.0),
        11: window(10, 300.0, 5, report=300.0),
        12: window(10, 400.0, report=20.0),
        13: window(10, 50.0, report=50.0),
    }
    line = timeline(windows)
    assert breaches(line, latency("p(95) < 200ms")) == [(1.0, 3.0)]
    assert breaches(line, latency("p(95) < 200ms", request="report")) == [(1.0, 2.0)]
    assert breaches(line, error_rate("< 10%")) == [(1.0, 2.0)]
    assert breaches(line, request_rate("> 10/s")) == [(0.0, 4.0)]
    # Not judged per step: no shading rather than a made-up interval.
    assert breaches(line, latency("p(95) < 1ms", tags={"status": "500"})) == []


def test_the_stack_lanes_and_events_land_on_the_same_axis():
    windows = {100: window(1, 1.0), 101: window(1, 1.0), 102: window(1, 1.0)}
    stack = {
        "limits": {"cpu_m": 500.0, "memory_mib": 256.0},
        "timeseries": [
            {"t": 99.5, "replicas": 1, "ready": 1, "desired": 1, "pods": {}},  # before: not drawn
            {"t": 100.2, "replicas": 1, "ready": 1, "desired": 1, "pods": {"a-0": {"cpu_m": 100}}},
            {"t": 101.4, "replicas": 2, "ready": 1, "desired": 3, "pods": {"a-0": {"cpu_m": 480}}},
        ],
    }
    events = [
        {"t": 101.5, "source": "stack", "event": "scaled", "from": 1, "to": 3, "reason": "cpu"},
        {"t": 102.1, "source": "stack", "event": "oom-killed", "replica": "a-1"},
        {"t": 100.0, "source": "stack", "event": "created", "replica": "a-0"},  # not a marker
    ]
    line = timeline(windows, stack=stack, events=events)
    assert line.stack["desired"] == [1, 3, None]
    assert line.pods["a-0"]["cpu_m"] == [100, 480, None]
    assert line.limits == {"cpu_m": 500.0, "memory_mib": 256.0}
    assert [(m.t, m.kind, m.text) for m in line.markers] == [
        (pytest.approx(1.5), "scaled", "scaled 1 -> 3: cpu"),
        (pytest.approx(2.1), "oom-killed", "oom-killed a-1"),
    ]


def test_a_run_that_measured_nothing_has_an_empty_axis():
    line = timeline({})
    assert (line.t, line.fleet["requests_per_s"], line.names) == ([], [], {})


def test_the_last_step_of_a_long_run_is_a_rate_over_the_seconds_it_covers():
    windows = {START_S + s: window(100, 5.0) for s in range(901)}
    line = timeline(windows, max_points=900)
    assert line.step == 2
    assert line.covers[-1] == 1
    assert set(line.fleet["requests_per_s"]) == {100.0}  # the last point too, not 50
    assert breaches(line, request_rate("> 90/s")) == []


def test_a_baseline_can_be_drawn_on_another_run_s_steps():
    windows = {START_S + s: window(10, 5.0) for s in range(100)}
    assert timeline(windows, step=4).step == 4
    assert len(timeline(windows, step=4).t) == 25
