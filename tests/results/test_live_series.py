"""The live series: the fleet's sealed seconds as Prometheus counters and histograms, each second
counted once, latency as exact buckets of the merged sketch, never a percentile."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stressbed.fleet.live import LiveMerge
from stressbed.results.agents import AgentWindow
from stressbed.results.aggregates import Window
from stressbed.results.live_series import RESOLUTION, LiveSeries, bucket_bounds_ms
from stressbed.results.sketch import ACCURACY, Sketch, bucket_key

IDENTITY = {"run_id": "20261207-101500-abcdef", "scenario": "ingest_mix"}


def second(durations: dict[str, list[float]], **fields: object) -> Window:
    """A second of the fleet: each request name's latencies (ms), and other counts."""
    window = Window(**fields)  # type: ignore[arg-type]
    for name, values in durations.items():
        sketch = Sketch()
        sketch.extend(values)
        window.names[name] = sketch
        window.duration.merge(sketch)
        window.requests += len(values)
    return window


def samples(series: LiveSeries) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed back by prometheus_client's own parser, by
    (sample name, its labels but the identity's)."""
    out = {}
    for family in text_string_to_metric_families(series.exposition().decode()):
        for sample in family.samples:
            assert {k: sample.labels[k] for k in IDENTITY} == IDENTITY  # on every series
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k not in IDENTITY))
            out[(sample.name, labels)] = sample.value
    return out


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over cumulative (upper bound, count) rows, +Inf last:
    the rank's bucket, linearly interpolated from its lower bound (0 for the first)."""
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    raise AssertionError("unreachable")


def test_counters_are_the_sum_of_the_sealed_seconds_each_counted_once():
    series = LiveSeries(IDENTITY)
    assert series.seal(100, second({"ingest": [5.0] * 3, "query": [9.0]}, iterations=2))
    assert series.seal(
        101,
        second({"ingest": [6.0] * 2}, statuses={"503": 1, "0": 2}, checks_failed={"ok": 1}),
    )
    # A second already sealed (or before it) is not counted again.
    assert not series.seal(101, second({"ingest": [1.0] * 50}))
    assert not series.seal(99, second({"ingest": [1.0] * 50}))
    got = samples(series)
    assert got[("stressbed_http_requests_total", (("request", "ingest"),))] == 5
    assert got[("stressbed_http_requests_total", (("request", "query"),))] == 1
    assert got[("stressbed_http_request_failures_total", (("status", "503"),))] == 1
    assert got[("stressbed_http_request_failures_total", (("status", "0"),))] == 2
    assert got[("stressbed_check_failures_total", (("check", "ok"),))] == 1
    assert got[("stressbed_iterations_total", ())] == 2
    assert got[("stressbed_sealed_second_timestamp_seconds", ())] == 101
    count = got[("stressbed_http_request_duration_seconds_count", (("request", "ingest"),))]
    total = got[("stressbed_http_request_duration_seconds_sum", (("request", "ingest"),))]
    assert (count, total) == (5, pytest.approx(0.027))  # seconds, as Prometheus names say
    # Nothing is a percentile: no series says quantile.
    assert not any("quantile" in dict(labels) for _, labels in got)


def test_each_bucket_counts_exactly_the_latencies_at_or_below_its_bound():
    rng = random.Random(7)
    values = [rng.lognormvariate(3, 1.5) for _ in range(20_000)] + [0.0] * 5 + [1e7] * 3
    series = LiveSeries(IDENTITY)
    half = len(values) // 2
    series.seal(1, second({"r": values[:half]}))
    series.seal(2, second({"r": values[half:]}))
    got = samples(series)
    keys = [bucket_key(v) for v in values]
    bucket = "stressbed_http_request_duration_seconds_bucket"
    for key, bound_ms in bucket_bounds_ms():
        le = f"{bound_ms / 1000:.6g}"
        exact = sum(1 for k in keys if k is None or k <= key)  # the sketch's own rule
        assert got[(bucket, (("le", le), ("request", "r")))] == exact
        # ... which is the count at or below the bound (the float at a bound aside).
        assert abs(exact - sum(1 for v in values if v <= bound_ms)) <= 1
    assert got[(bucket, (("le", "+Inf"), ("request", "r")))] == len(values)


def test_a_fleet_percentile_read_from_the_buckets_is_within_the_stated_resolution():
    rng = random.Random(11)
    runners = [[rng.lognormvariate(2 + i, 0.7) for _ in range(5_000)] for i in range(3)]
    series = LiveSeries(IDENTITY)
    for t in range(3):  # three runners' seconds, the fleet merged per second
        series.seal(t, second({f"r{i}": values[t::3] for i, values in enumerate(runners)}))
    got = samples(series)
    # Summed over request names by bucket first, as the shipped dashboard does.
    rows: dict[float, float] = {}
    for (name, labels), value in got.items():
        if name == "stressbed_http_request_duration_seconds_bucket":
            le = dict(labels)["le"]
            bound = math.inf if le == "+Inf" else float(le) * 1000
            rows[bound] = rows.get(bound, 0.0) + value
    everything = sorted(v for values in runners for v in values)
    fleet = Sketch()
    fleet.extend(everything)
    for q in (0.5, 0.95, 0.99):
        read = histogram_quantile(q, sorted(rows.items()))
        assert abs(read / fleet.quantile(q) - 1) <= RESOLUTION, q
        exact = everything[math.ceil(q * len(everything)) - 1]
        assert abs(read / exact - 1) <= RESOLUTION + ACCURACY, q
    assert 0.10 < RESOLUTION < 0.11  # what the README states: about 10.5 %


def test_a_population_s_connected_agents_are_connects_less_disconnects():
    series = LiveSeries(IDENTITY)
    series.seal(1, Window(agents=AgentWindow(joined=5, connect_attempts=6, connects=5,
                                             connect_failures={"refused": 1})))  # fmt: skip
    series.seal(2, Window(agents=AgentWindow(disconnects={"closed": 2}, connects=1)))
    got = samples(series)
    assert got[("stressbed_agents_connected", ())] == 4
    assert got[("stressbed_agent_connects_total", ())] == 6
    assert got[("stressbed_agent_connect_failures_total", (("reason", "refused"),))] == 1
    assert got[("stressbed_agent_disconnects_total", (("reason", "closed"),))] == 2
    # A run without a population has no agent series at all, not zeros.
    plain = LiveSeries(IDENTITY)
    plain.seal(1, second({"r": [1.0]}))
    assert not any(name.startswith("stressbed_agent") for name, _ in samples(plain))


def test_the_live_merge_seals_each_second_once_the_whole_fleet_has_closed_it():
    series = LiveSeries(IDENTITY)
    live = LiveMerge(2, series)
    live.feed(0, _snapshot({100: second({"r": [1.0] * 4}), 101: second({"r": [1.0] * 2})}))
    live.feed(1, _snapshot({100: second({"r": [2.0] * 3})}))
    assert series.sealed is None  # 100 is the latest common second: not sealed before 101
    live.feed(1, _snapshot({101: second({"r": [2.0] * 5}), 102: second({"r": [2.0]})}))
    live.feed(0, _snapshot({102: second({"r": [1.0] * 7})}))
    assert series.sealed == 101
    assert series.requests == {"r": 4 + 3 + 2 + 5}  # 100 and 101, both runners, once each
    live.seal_rest()  # the run is over: 102 too
    assert series.requests == {"r": 4 + 3 + 2 + 5 + 1 + 7}
    assert series.sealed == 102


def _snapshot(windows: dict[int, Window]) -> dict[str, object]:
    return {"windows": {str(t): w.to_dict() for t, w in windows.items()}, "aggregates": {}}


def test_a_runner_that_ends_first_has_its_last_seconds_sealed_with_the_fleet_s():
    # A snapshot brings a second 3 s after it closed: a runner's last seconds are in its
    # result only, taken in before the others' seconds seal them without it.
    series = LiveSeries(IDENTITY)
    live = LiveMerge(2, series)
    live.feed(0, _snapshot({100: second({"r": [1.0]}), 101: second({"r": [1.0]})}))
    live.feed(1, _snapshot({100: second({"r": [2.0] * 2})}))
    # Runner 1 ends: its result has 101 and 102 too.
    live.feed_windows(1, {t: second({"r": [2.0] * 2}) for t in (100, 101, 102)})
    live.finish(1)
    live.feed(0, _snapshot({102: second({"r": [1.0]}), 103: second({"r": [1.0]})}))
    assert series.sealed == 102
    assert series.requests == {"r": 1 + 2 + 1 + 2 + 1 + 2}  # 100-102, each runner once
    live.feed(0, _snapshot({t: second({"r": [1.0]}) for t in range(104, 110)}))
    assert live.kept_seconds() <= 3  # bounded however long runner 0 goes on


def test_the_stack_s_last_sample_is_exported_as_gauges():
    """Replicas by state and each replica's CPU and memory (bytes), with their limits, from
    the stack's last sample; no stack or no sample yet: none of them."""
    series = LiveSeries(IDENTITY)
    assert not any(name.startswith("stressbed_stack") for name, _ in samples(series))
    report = {
        "limits": {"cpu_m": 500.0, "memory_mib": 256.0},
        "timeseries": [
            {"t": 1, "replicas": 1, "ready": 1, "desired": 1, "pods": {}},
            {"t": 2, "replicas": 3, "ready": 2, "desired": 3,
             "pods": {"agent-1": {"cpu_m": 120.0, "memory_mib": 40.0},
                      "agent-2": {"cpu_m": None, "memory_mib": 41.5}}},
        ],
    }  # fmt: skip
    series.stack = lambda: report
    found = samples(series)
    assert found[("stressbed_stack_replicas", (("state", "desired"),))] == 3
    assert found[("stressbed_stack_replicas", (("state", "running"),))] == 3
    assert found[("stressbed_stack_replicas", (("state", "ready"),))] == 2
    assert found[("stressbed_replica_cpu_millicores", (("replica", "agent-1"),))] == 120
    assert ("stressbed_replica_cpu_millicores", (("replica", "agent-2"),)) not in found  # no data
    assert found[("stressbed_replica_memory_bytes", (("replica", "agent-2"),))] == 41.5 * 2**20
    assert found[("stressbed_replica_limit_cpu_millicores", ())] == 500
    assert found[("stressbed_replica_limit_memory_bytes", ())] == 256 * 2**20

    def broken() -> dict:
        raise RuntimeError("mid-change")

    series.stack = broken  # a scrape still answers, without the stack's gauges
    assert not any(name.startswith("stressbed_stack") for name, _ in samples(series))


def test_each_runner_s_own_seconds_and_k6_cpu_are_kept_for_the_page():
    """A runner's snapshot brings its seconds and its k6's CPU in them: kept per runner (the
    live page's runner lanes), beside the fleet's merged seconds."""
    series = LiveSeries(IDENTITY)
    merge = LiveMerge(2, series)
    for index, requests in ((0, 10), (1, 30)):
        window = second({"get": [1.0] * requests})
        snapshot = {"windows": {"100": window.to_dict()}, "aggregates": {},
                    "cpu": {"101": 0.25 * (index + 1), "x": 9}}  # fmt: skip
        merge.feed(index, snapshot)
    lanes = series.runner_lanes()
    assert [lane["requests"] for lane in lanes] == [{100: 10.0}, {100: 30.0}]
    assert [lane["cpu"] for lane in lanes] == [{101: 0.25}, {101: 0.5}]  # "x": not a second
