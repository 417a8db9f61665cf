"""report.html: one offline, self-contained page per run, written beside summary.json.

Top to bottom: the verdict (and, for a run that failed or was interrupted, why), the
findings, the thresholds (observed against the limit), the charts of :mod:`.charts` on one
time axis, a population's agents (when the run had one), the runners, the events and the
settings with where each came from. Bokeh's
JavaScript is inlined and the data embedded, so the page makes no request to any host when
opened. It is built from summary.json's document and the run's :class:`~.timeline.Timeline`
only, so ``stressbed report RUN_DIR`` rebuilds the same page from the run directory.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..scenario.thresholds import Threshold
from ._numbers import show
from .history_html import history_strip
from .timeline import Timeline, breaches

__all__ = ["MAX_EVENTS", "STYLE", "render_html", "write_html"]

MAX_EVENTS = 2000  # rows of the events table; events.jsonl keeps them all

STYLE = """
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f;
         margin: 0 auto; padding: 16px 24px 48px; max-width: 1400px; height: auto; }
  h1 { font-size: 20px; margin: 4px 0 8px; }
  h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
  .verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff;
             font-weight: 600; text-transform: uppercase; letter-spacing: .04em; }
  .pass { background: #1a7f37; } .fail { background: #cf222e; } .error { background: #9a6700; }
  .message { font-size: 15px; margin: 8px 0; }
  .facts span { margin-right: 18px; color: #555; }
  table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee;
           vertical-align: top; }
  th { background: #f6f8fa; font-weight: 600; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .bad { color: #cf222e; font-weight: 600; } .ok { color: #1a7f37; }
  .nodata { color: #9a6700; font-weight: 600; }
  .findings li { margin: 4px 0; }
  .muted { color: #777; }
  .charts { width: 100%; }
</style>
"""

_TEMPLATE = """
{% block postamble %}{{ style }}{% endblock %}
{% block contents %}
{{ header }}
<h2>Charts</h2>
<div class="charts">
{{ super() }}
</div>
{{ tables }}
{% endblock %}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, int | float):
        return _e(show(float(value)))
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _header(summary: Mapping[str, Any], line: Timeline) -> str:
    verdict = str(summary.get("verdict", "error"))
    settings = summary.get("settings") or {}
    facts = [
        f"run {summary.get('run_id', '?')}",
        f"{len(summary.get('runners') or [])} runner(s)",
        f"backend {settings.get('backend') or 'existing service'}",
        f"{show(float(summary.get('duration_s') or 0.0))} s of load",
        f"exit code {summary.get('exit_code')}",
    ]
    if summary.get("start_skew_ms") is not None:
        facts.append(f"start skew {show(float(summary['start_skew_ms']))} ms")
    parts = [
        f"<h1>stressbed: {_e(summary.get('scenario', ''))}</h1>",
        f'<div><span class="verdict {_e(verdict)}">{_e(verdict)}</span></div>',
        f'<p class="message">{_e(summary.get("message", ""))}</p>',
        '<p class="facts">' + "".join(f"<span>{_e(f)}</span>" for f in facts) + "</p>",
    ]
    if not line.t:
        parts.append('<p class="muted">No load was measured: nothing to draw.</p>')
    findings = summary.get("findings") or []
    parts.append("<h2>Findings</h2>")
    if findings:
        items = "".join(
            f"<li><b>{_e(f.get('kind', ''))}</b> at {_num(f.get('t'))} s: "
            f"{_e(f.get('message', ''))}</li>"
            for f in findings
        )
        parts.append(f'<ul class="findings">{items}</ul>')
    else:
        parts.append('<p class="muted">None: nothing in the data points at a known cause.</p>')
    parts.append("<h2>Thresholds</h2>")
    parts.append(_thresholds(summary.get("thresholds") or []))
    if summary.get("comparison"):
        parts.append("<h2>Against the baseline</h2>")
        parts.append(_comparison(summary["comparison"]))
    parts.append(history_strip(summary))
    return "\n".join(parts)


def _comparison(comparison: Mapping[str, Any]) -> str:
    def shown(value: object, unit: str) -> str:
        if not isinstance(value, int | float):
            return "-"
        return f"{value * 100:+.1f}%" if unit == "relative" else f"{value:+.2f} pp"

    rows = []
    for m in comparison.get("metrics") or []:
        unit = str(m.get("unit", "relative"))
        low, high = (m.get("ci95") or [None, None])[:2]
        verdict = str(m.get("verdict", ""))
        css = {"regressed": "bad", "improved": "ok", "inconclusive": "nodata"}.get(verdict, "")
        rows.append(
            [
                _e(m.get("metric", "")),
                _num(m.get("base")),
                _num(m.get("candidate")),
                _e(shown(m.get("change"), unit)),
                _e(f"[{shown(low, unit)}, {shown(high, unit)}]"),
                _e(shown(m.get("tolerance"), unit).lstrip("+")),
                f'<span class="{css}">{_e(verdict)}</span>',
            ]
        )
    head = (
        f"<p>Baseline <code>{_e(comparison.get('baseline', ''))}</code>: "
        f"<b>{_e(comparison.get('verdict', ''))}</b> (95% intervals from each run's own "
        "second-to-second variation).</p>"
    )
    table = _table(
        ["metric", "baseline", "this run", "change", "95% interval", "tolerance", "verdict"],
        rows,
        {1, 2},
    )
    return head + table


def _thresholds(results: Sequence[Mapping[str, Any]]) -> str:
    if not results:
        return '<p class="muted">The scenario has no thresholds.</p>'
    rows = []
    for r in results:
        outcome = str(r.get("outcome", "ok" if r.get("ok") else "failed"))
        css = {"ok": "ok", "failed": "bad", "no data": "nodata"}.get(outcome, "")
        rows.append(
            [
                _e(r.get("metric", "")),
                _e(r.get("label") or r.get("expression", "")),
                _e(r.get("expression", "")),
                _num(r.get("observed")),
                f'<span class="{css}">{_e(outcome)}</span>',
                "yes" if r.get("abort_on_fail") else "",
            ]
        )
    return _table(
        ["metric", "as written", "limit", "observed", "outcome", "abort on fail"], rows, {3}
    )


def _tables(summary: Mapping[str, Any], start: float) -> str:
    parts = [
        _population(summary.get("population")),
        _resilience(summary.get("resilience")),
        _writes(summary.get("writes")),
        "<h2>Runners</h2>",
    ]
    rows = [
        [
            _e(r.get("index")),
            _e(r.get("segment", "")),
            _e(r.get("status", "")),
            _e(r.get("exit_code", "")),
            _num(r.get("requests")),
            _e(r.get("reason", "")),
        ]
        for r in summary.get("runners") or []
    ]
    parts.append(
        _table(["runner", "segment", "status", "exit code", "requests", "reason"], rows, {4})
    )
    events = list(summary.get("events") or [])
    parts.append(f"<h2>Events ({len(events)})</h2>")
    start = start or _start(events)  # the charts' zero, so both say the same second
    rows = []
    for event in events[:MAX_EVENTS]:
        extra = {k: v for k, v in event.items() if k not in ("t", "source", "event")}
        t = event.get("t")
        rows.append(
            [
                _num(float(t) - start) if isinstance(t, int | float) and start else "-",
                _e(event.get("source", "")),
                _e(event.get("event", "")),
                _e(json.dumps(extra, default=str)) if extra else "",
            ]
        )
    parts.append(_table(["t (s)", "source", "event", "details"], rows, {0}))
    if len(events) > MAX_EVENTS:
        parts.append(f'<p class="muted">{len(events) - MAX_EVENTS} more in events.jsonl.</p>')
    parts.append("<h2>Settings</h2>")
    settings = dict(summary.get("settings") or {})
    sources = settings.pop("sources", {}) or {}
    rows = [
        [_e(k), _e(json.dumps(v, default=str)), _e(sources.get(k, ""))]
        for k, v in sorted(settings.items())
    ]
    parts.append(_table(["setting", "value", "from"], rows, set()))
    return "\n".join(parts)


def _start(events: Sequence[Mapping[str, Any]]) -> float:
    started = [
        float(e["t"])
        for e in events
        if e.get("event") == "started" and isinstance(e.get("t"), int | float)
    ]
    times = [float(e["t"]) for e in events if isinstance(e.get("t"), int | float)]
    return started[0] if started else (min(times) if times else 0.0)


def _what(threshold: Threshold) -> str | None:
    """Which chart shades this threshold's breaches."""
    tags = dict(threshold.tags)
    if threshold.metric == "http_req_duration" and set(tags) <= {"name"}:
        return f"latency:{tags['name']}" if "name" in tags else "latency"
    if threshold.metric == "http_req_failed" and not tags:
        return "errors"
    if threshold.metric == "http_reqs" and not tags:
        return "throughput"
    return None


def _breached(summary: Mapping[str, Any], line: Timeline) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for result in summary.get("thresholds") or []:
        if result.get("ok") or not isinstance(result.get("definition"), dict):
            continue
        try:
            threshold = Threshold.from_dict(result["definition"])
        except ConfigError:
            continue  # a summary of another version: no shading, the table still says it
        what = _what(threshold)
        intervals = breaches(line, threshold) if what else []
        if intervals:
            out[f"{what}|{threshold.key} {threshold.expression}"] = intervals
    return out


def _fault_windows(summary: Mapping[str, Any], line: Timeline) -> list[tuple[float, float, str]]:
    """Each applied fault's window in the charts' seconds (an instant fault: start = end)."""
    out = []
    for fault in (summary.get("resilience") or {}).get("faults") or []:
        at, end = fault.get("at"), fault.get("end")
        if not fault.get("applied") or not isinstance(at, int | float):
            continue
        stop = float(end) if isinstance(end, int | float) else float(at)
        out.append((float(at) - line.start, stop - line.start, str(fault.get("name"))))
    return out


def _resilience(found: Mapping[str, Any] | None) -> str:
    """A row per fault (what users saw, how fast the stack noticed and recovered) and one per
    verdict."""
    if not found or not found.get("faults"):
        return ""
    rows = []
    for fault in found["faults"]:
        errors = fault.get("errors_during_fault")
        rows.append(
            [
                _e(fault.get("name")),
                _e(fault.get("label") or ""),
                _e(", ".join(fault.get("replicas") or []) or "-"),
                _e("yes" if fault.get("applied") else f"no: {fault.get('reason', '')}"),
                _num(fault.get("time_to_detect_s")),
                _recovered(fault),
                _num(errors * 100) if isinstance(errors, int | float) else "-",
                _num(fault.get("lost_writes")) if fault.get("lost_writes") is not None else "-",
            ]
        )
    parts = [
        "<h2>Faults</h2>",
        _table(
            [
                *("fault", "what", "replicas", "applied", "detected (s)", "recovered (s)"),
                *("errors %", "lost writes"),
            ],
            rows,
            {4, 5, 6, 7},
        ),
    ]
    storms = [f for f in found["faults"] if f.get("population") is not None]
    if storms:
        parts.append("<h3>Reconnect storms</h3>")
        parts.append(
            _table(
                [
                    *("fault", "disconnected", "of connected", "peak connects/s"),
                    *("connect failures", "99% back (s)", "all back (s)", "stack survived"),
                ],
                [_storm_row(f["name"], f["population"]) for f in storms],
                {1, 2, 3, 4, 5, 6},
            )
        )
    for fault in found["faults"]:
        if isinstance(fault.get("isolation"), Mapping):
            parts.append(_isolation(fault["name"], fault["isolation"]))
    verdicts = found.get("verdicts") or []
    if verdicts:
        rows = [
            [
                '<span class="ok">ok</span>' if v["passed"] else '<span class="bad">failed</span>',
                _e(v["threshold"]),
                _e(v["fault"]),
                _num(v.get("observed"))
                if v.get("observed") is not None
                else _e(v.get("note") or "not measured"),
            ]
            for v in verdicts
        ]
        parts.append(_table(["", "resilience", "fault", "observed"], rows, {3}))
    return "\n".join(parts)


def _isolation(name: str, found: Mapping[str, Any]) -> str:
    """A neighbour's isolation verdict: the seconds under it against those before it."""
    verdict = str(found.get("verdict"))
    mark = {"held": "ok", "broken": "bad"}.get(verdict, "nodata")
    rows = [
        [
            _e(m["metric"]),
            _num(m.get("base")),
            _num(m.get("candidate")),
            _e(f"{m['change']:+.3g} [{m['ci95'][0]:+.3g}, {m['ci95'][1]:+.3g}] {m['unit']}")
            if m.get("change") is not None and None not in m.get("ci95", [None])
            else "-",
            _e(m.get("verdict")),
        ]
        for m in found.get("metrics") or []
    ]
    seconds = found.get("seconds") or {}
    head = (
        f'<h3>Isolation under {_e(name)}: <span class="{mark}">{_e(verdict)}</span></h3>'
        f'<p class="muted">{seconds.get("during", 0)} s under the neighbour against the '
        f"{seconds.get('before', 0)} s before it. {_e(found.get('reason') or '')}</p>"
    )
    if not rows:
        return head
    return head + _table(["metric", "before", "under it", "change [95% CI]", ""], rows, {1, 2})


def _storm_row(name: str, storm: Mapping[str, Any]) -> list[str]:
    def back(key: str) -> str:
        if not storm.get("dipped"):
            return "0 (never under 99 %)"
        seconds = storm.get(key)
        return _num(seconds) if seconds is not None else "not within the run"

    refused = storm.get("connect_failures_by_reason") or {}
    stack = storm.get("stack") or {}
    return [
        _e(name),
        _num(storm.get("disconnected")),
        _num(storm.get("connected_before")),
        _num(storm.get("peak_connect_rate")),
        _e(", ".join(f"{n} {reason}" for reason, n in refused.items()) or "0"),
        back("time_to_99_connected_s"),
        back("time_to_all_connected_s"),
        _e(
            ("yes" if stack.get("survived") else "no")
            + f" ({stack.get('crashed', 0)} crashed, {stack.get('oom_killed', 0)} OOM-killed, "
            f"{stack.get('probe_failures', 0)} probe failures)"
        ),
    ]


def _population(found: Mapping[str, Any] | None) -> str:
    """The population's figures (one row), then its connect failures by reason."""
    if not found:
        return ""
    counts, trends = found.get("counts") or {}, found.get("trends") or {}
    share = found.get("connected_share")

    def p99(name: str) -> str:
        return _num((trends.get(name) or {}).get("p(99)"))

    row = [
        _num(found.get("peak_connected")),
        _num(found.get("peak_wanted")),
        _num(share * 100) if isinstance(share, int | float) else "no data",
        _num(counts.get("connect_failures")),
        _num(counts.get("reconnects")),
        _num(counts.get("gave_up")),
        p99("checkin_lateness"),
        p99("reconnect_time"),
        p99("connect_time"),
    ]
    headers = [
        *("agents connected (peak)", "wanted (peak)", "connected share %", "connect failures"),
        *("reconnects", "gave up", "check-in lateness p99 (ms)", "reconnect p99 (ms)"),
        "connect p99 (ms)",
    ]
    parts = ["<h2>Population</h2>", _table(headers, [row], set(range(len(row))))]
    reasons = [
        [_e(reason), _num(n), _num((found.get("disconnects_by_reason") or {}).get(reason))]
        for reason, n in sorted((found.get("connect_failures_by_reason") or {}).items())
    ]
    disconnects = found.get("disconnects_by_reason") or {}
    reasons += [
        [_e(reason), "-", _num(n)]
        for reason, n in sorted(disconnects.items())
        if reason not in (found.get("connect_failures_by_reason") or {})
    ]
    if reasons:
        parts.append(_table(["reason", "connect failures", "disconnects"], reasons, {1, 2}))
    return "\n".join(parts)


def _recovered(fault: Mapping[str, Any]) -> str:
    """When the SLOs held again, or why there is no such time (a stall said beside it)."""
    seconds = fault.get("time_to_recover_s")
    if not fault.get("applied"):
        return "-"
    if seconds is not None:
        shown = _num(seconds)
    elif not fault.get("judged_s", 1):
        shown = "not measured"
    else:
        shown = "did not recover"
    stalled = fault.get("stalled_s")
    return shown + (f" ({_num(stalled)} s stalled)" if stalled else "")


def _writes(writes: Mapping[str, Any] | None) -> str:
    """One line: what the load saw acknowledged and what the target read back."""
    if not writes:
        return ""
    if writes.get("problem"):
        said = f"{writes.get('acknowledged', 0):,} acknowledged; {writes['problem']}"
        return f'<p class="writes">Writes: {_e(said)}</p>'
    lost = writes["lost"]
    mark = "bad" if lost else "ok"
    return (
        f'<p class="writes">Writes: {writes["acknowledged"]:,} acknowledged, '
        f'{writes["stored"]:,} stored, <span class="{mark}">{lost:,} lost</span>'
        f" ({writes['stored_unacknowledged']:,} stored without an acknowledgement)</p>"
    )


def render_html(
    summary: Mapping[str, Any], line: Timeline, baseline: Timeline | None = None
) -> str:
    """The page for a run, from its summary document and its timeline (and its baseline's,
    drawn dashed on the load and latency charts)."""
    from bokeh.embed import file_html  # noqa: PLC0415 - Bokeh only when a report is drawn
    from bokeh.layouts import column  # noqa: PLC0415
    from bokeh.resources import INLINE  # noqa: PLC0415

    from .charts import charts  # noqa: PLC0415 - imports Bokeh

    figures = charts(line, _breached(summary, line), baseline, _fault_windows(summary, line))
    layout = column(*figures, sizing_mode="stretch_width")
    title = f"stressbed {summary.get('scenario', '')} {summary.get('run_id', '')}".strip()
    return file_html(
        layout,
        INLINE,
        title,
        template=_TEMPLATE,
        template_variables={
            "style": STYLE,
            "header": _header(summary, line),
            "tables": _tables(summary, float(line.start)),
        },
    )


def write_html(
    path: Path, summary: Mapping[str, Any], line: Timeline, baseline: Timeline | None = None
) -> None:
    """report.html, written whole or not at all (a temporary file renamed over the old one)."""
    text = render_html(summary, line, baseline)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
