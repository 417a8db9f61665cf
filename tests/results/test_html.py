"""report.html as a document: offline, bounded in size for long runs, escaped, and drawn for
runs that measured little or nothing. (tests/app/test_report.py opens a real run's page in a
real browser.)"""

from __future__ import annotations

import json
from typing import Any

from stressbed.results.aggregates import Window
from stressbed.results.html import MAX_EVENTS, render_html
from stressbed.results.timeline import timeline

START = 1_800_000_000


def summary(**changes: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "run_id": "r1",
        "scenario": "s",
        "verdict": "pass",
        "exit_code": 0,
        "message": "all thresholds passed",
        "duration_s": 600.0,
        "thresholds": [],
        "runners": [],
        "events": [],
        "settings": {"runners": 2, "sources": {"runners": "command line"}},
        "findings": [],
    }
    return {**base, **changes}


def busy_second(s: int, names: tuple[str, ...] = ("report", "heartbeat", "task")) -> Window:
    w = Window(requests=50, failed=s % 3, vus=10, vus_max=12, iterations=50, dropped=s % 2)
    w.duration.extend([1.0 + (s * 7 + i) % 90 for i in range(50)])
    for i, name in enumerate(names):
        w.name_sketch(name).extend([2.0 + (s + i * 13) % 50 for _ in range(10)])
    w.statuses = {"503": s % 3}
    w.checks_failed = {"status is 2xx": s % 3}
    return w


def test_a_ten_minute_run_stays_under_three_megabytes():
    windows = {START + s: busy_second(s) for s in range(600)}
    stack = {
        "limits": {"cpu_m": 500.0, "memory_mib": 256.0},
        "timeseries": [
            {
                "t": START + s + 0.5,
                "replicas": 4,
                "ready": 4,
                "desired": 4,
                "pods": {
                    f"agent-{i}": {"cpu_m": 100.0 + s % 40, "memory_mib": 60.0} for i in range(4)
                },
            }
            for s in range(600)
        ],
    }
    events = [
        {"t": START + s, "source": "stack", "event": "unready", "replica": "agent-1"}
        for s in range(0, 600, 10)
    ]
    page = render_html(summary(events=events), timeline(windows, stack=stack, events=events))
    assert len(page.encode()) < 3 * 2**20


def test_what_a_user_named_is_shown_as_text_never_as_markup():
    evil = "</script><script>alert(1)</script>"
    windows = {START: busy_second(0, names=(evil,))}
    page = render_html(
        summary(scenario=evil, message=evil, events=[{"t": START, "event": "x", "note": evil}]),
        timeline(windows),
    )
    assert evil not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_run_that_measured_nothing_still_says_why():
    page = render_html(
        summary(verdict="error", exit_code=3, message="provisioning failed: no agent"),
        timeline({}),
    )
    assert "provisioning failed: no agent" in page
    assert "No load was measured" in page


def time_columns(node: Any) -> list[Any]:
    """Every ``t`` column of the Bokeh document's data sources."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "entries" and isinstance(value, list):
                found += [pair[1] for pair in value if isinstance(pair, list) and pair[0] == "t"]
            found += time_columns(value)
    elif isinstance(node, list):
        for item in node:
            found += time_columns(item)
    return found


def test_a_five_second_run_draws_its_five_seconds():
    page = render_html(summary(), timeline({START + s: busy_second(s) for s in range(5)}))
    document = page.split('<script type="application/json"', 1)[1].split(">", 1)[1]
    columns = time_columns(json.loads(document.split("</script>", 1)[0]))
    assert columns
    assert all(column == [0.0, 1.0, 2.0, 3.0, 4.0] for column in columns)


def test_the_events_table_is_bounded_and_says_where_the_rest_are():
    events = [
        {"t": START + i / 100, "source": "stack", "event": "tick"} for i in range(MAX_EVENTS + 5)
    ]
    page = render_html(summary(events=events), timeline({}))
    assert page.count("<td>tick</td>") == MAX_EVENTS
    assert "5 more in events.jsonl" in page


def test_each_fault_is_shaded_on_every_chart_and_tabled_with_its_verdicts():
    from stressbed.results.charts import FAULT, charts  # noqa: PLC0415 - imports Bokeh

    line = timeline({START + s: busy_second(s) for s in range(60)})
    faults = [(5.0, 5.0, "kill"), (15.0, 25.0, "pause")]
    figures = charts(line, {}, None, faults)
    assert len(figures) >= 3
    for fig in figures:
        boxes = [a for a in fig.center if type(a).__name__ == "BoxAnnotation"]
        spans = [a for a in fig.center if type(a).__name__ == "Span"]
        assert [(b.left, b.right) for b in boxes if b.fill_color == FAULT] == [(15.0, 25.0)]
        assert [s.location for s in spans if s.line_color == FAULT] == [5.0]
        assert "(violet: kill, pause)" in fig.title.text
    found = {
        "faults": [
            {
                "name": "pause",
                "label": "pause on 1 replica at 15s for 10s",
                "applied": True,
                "at": START + 15.0,
                "end": START + 25.0,
                "replicas": ["agent-0"],
                "time_to_detect_s": 5.1,
                "time_to_recover_s": None,
                "errors_during_fault": 0.0,
            },
            {"name": "kill", "label": "<b>kill</b>", "applied": False, "reason": "too few"},
        ],
        "verdicts": [
            {
                "threshold": "recovery_time < 30s",
                "fault": "pause",
                "observed": None,
                "passed": False,
            }
        ],
    }
    page = render_html(summary(resilience=found), line)
    assert "<h2>Faults</h2>" in page
    assert "did not recover" in page
    assert "no: too few" in page
    assert "&lt;b&gt;kill&lt;/b&gt;" in page  # a label is text, never markup
    assert '<span class="bad">failed</span>' in page


def test_a_faults_recovery_says_stalls_and_not_measured():
    line = timeline({START + s: busy_second(s) for s in range(20)})
    kill = {"name": "kill", "label": "kill", "applied": True, "at": START + 5.0}
    found = {
        "faults": [
            {**kill, "time_to_recover_s": 12.0, "judged_s": 15, "stalled_s": 8},
            {**kill, "name": "kill-2", "time_to_recover_s": None, "judged_s": 0},
        ]
    }
    page = render_html(summary(resilience=found), line)
    assert "12 (8 s stalled)" in page
    assert "not measured" in page
    assert "did not recover" not in page


def test_each_replica_s_open_connections_are_charted_where_the_stack_counted_them():
    from stressbed.results.charts import charts  # noqa: PLC0415 - imports Bokeh

    def pods(s: int, counted: bool) -> dict[str, Any]:
        extra = {"connections": 10 + s} if counted else {}
        return {"agent-0": {"cpu_m": 100.0, "memory_mib": 50.0, **extra}}

    def drawn(counted: bool) -> list[str]:
        rows = [{"t": START + s + 0.5, "replicas": 1, "pods": pods(s, counted)} for s in range(5)]
        line = timeline({START + s: busy_second(s) for s in range(5)}, stack={"timeseries": rows})
        return [fig.title.text for fig in charts(line, {})]

    titles = drawn(counted=True)
    assert "Open connections per replica (through the balancer)" in titles
    assert titles.index("Open connections per replica (through the balancer)") > titles.index(
        "Replica memory (working set) against its limit"
    )  # in the stack's section, after its CPU and memory
    # A stack that counted none (a cluster's): no empty chart.
    assert not any("connections" in title for title in drawn(counted=False))
