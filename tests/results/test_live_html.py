"""The live page's drawing: the same charts as report.html, their data sent each second made
without Bokeh and equal to what Bokeh draws, the layout's signature, the header and each
threshold's state now."""

from __future__ import annotations

import math
import threading

from stressbed.results.agents import AgentWindow
from stressbed.results.charts import chart_data, charts, sources
from stressbed.results.live_html import live_header, live_update, render_live
from stressbed.results.live_series import LiveSeries, threshold_states
from stressbed.results.timeline import timeline
from stressbed.thresholds import connected, error_rate, latency, request_rate

from .test_live_series import second

T0 = 1_800_000_000
STACK = {
    "limits": {"cpu_m": 500.0, "memory_mib": 256.0},
    "timeseries": [
        {"t": T0 + i, "replicas": 2, "ready": 2, "desired": 2,
         "pods": {"r1": {"cpu_m": 100.0 + i, "memory_mib": 40.0, "connections": None}}}
        for i in range(10)
    ],
}  # fmt: skip
EVENTS = [{"t": T0 + 4.5, "event": "scaled", "from": 2, "to": 3, "source": "stack"}]


def windows(seconds: int, *, failing_from: int | None = None, agents: bool = False) -> dict:
    out = {}
    for i in range(seconds):
        fails = failing_from is not None and i >= failing_from
        window = second(
            {"get": [1.0 + i, 2.0, 3.0], "post": [10.0]},
            vus=4.0,
            failed=1 if fails else 0,
            statuses={"503": 1} if fails else {},
        )
        if agents:
            window.agents = AgentWindow(joined=1, connect_attempts=1, connects=1)
        out[T0 + i] = window
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def test_the_data_sent_each_second_is_what_bokeh_draws_for_every_chart():
    line = timeline(windows(10, failing_from=6, agents=True), (), STACK, EVENTS)
    titles, labels, data = chart_data(line)
    figures = charts(line, {})
    assert titles == [fig.title.text for fig in figures]
    for name, legend in labels.items():
        fig = figures[int(name.split("/")[0])]
        assert legend == [item.label.value for item in fig.legend[0].items]
    drawn = sources(figures)
    assert set(data) == set(drawn)
    assert any(name.endswith("/markers") for name in data)  # the scale-out, on the stack lane
    for name, columns in data.items():
        assert set(columns) == set(drawn[name]), name
        for key, column in columns.items():
            assert len(column) == len(drawn[name][key])
            assert all(_same(a, b) for a, b in zip(column, drawn[name][key], strict=True))
    titled = " | ".join(titles)
    for chart in ("Latency, whole fleet", "Agents: connected", "Stack: replicas", "CPU"):
        assert chart in titled


def test_the_layout_changes_only_when_a_chart_would_appear():
    quiet = live_update(timeline(windows(5)))
    later = live_update(timeline(windows(8)))
    failing = live_update(timeline(windows(8, failing_from=6)))
    assert quiet["layout"] == later["layout"]  # more seconds: the same page, moved on
    assert later["end"] == 8.0 > quiet["end"]
    assert failing["layout"] != later["layout"]  # a failed status's line: reloaded


def test_the_page_is_offline_and_carries_its_layout():
    line = timeline(windows(5))
    page = render_live("stressbed live", line, live_header({"run_id": "r"}, "running", [], []))
    assert "<script src=" not in page  # Bokeh inlined (the browser test: no other host)
    assert '<link rel="stylesheet" href="http' not in page
    assert f'const layout = "{live_update(line)["layout"]}"' in page
    assert "fetch('live.json'" in page


def test_the_header_escapes_what_it_shows_and_says_no_data():
    header = live_header(
        {"run_id": "<r>", "scenario": "s&s"},
        "running",
        [("p95", "no data")],
        [("http_req_duration p(95)<500", "no_data", "no data")],
    )
    assert "&lt;r&gt;" in header
    assert "s&amp;s" in header
    assert "no data yet" in header
    assert "<r>" not in header


def test_each_threshold_is_judged_on_the_seconds_so_far():
    seen = windows(10, failing_from=5)  # 5 failed of 40 requests
    total = LiveSeries(lock=threading.Lock())
    for t in sorted(seen):
        total.seal(t, seen[t])
    thresholds = [
        latency("p(95) < 500ms"),
        error_rate("< 1%"),
        request_rate("> 100"),  # 4 requests a second
        connected(">= 99%"),  # judged at the end (the plateau)
        latency("p(95) < 500ms", abort_on_fail=True, delay="1m"),  # not before a minute
    ]
    states = threshold_states(thresholds, total.total, total.seconds())
    assert [(state, None if value is None else round(value, 4)) for _, state, value in states] == [
        ("pass", 10.0),
        ("fail", 0.125),
        ("fail", 4.0),
        ("at_end", None),
        ("no_data", None),
    ]
    nothing = threshold_states(thresholds[:1], LiveSeries().total, 0)
    assert [s for _, s, _ in nothing] == ["no_data"]  # nothing yet: never a pass
