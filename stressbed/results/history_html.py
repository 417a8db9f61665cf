"""report.html's history strip: where a run sits among the earlier runs of its series (the
same fingerprint) in the history store, from summary.json's ``history``.

One row a headline figure (p95 latency, error rate, request rate): a small inline SVG of the
earlier runs' values with this run's last and marked, and its rank among them ("higher than
18 of the last 20 runs; their median 50.3 ms"). Then the history gate's answer, if it ran.
No script and no request: plain HTML and SVG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ._numbers import show

__all__ = ["history_strip"]

#: summary.json's figure of each row: (label, key in history rows, metric, stat, unit).
ROWS = (
    ("p95 latency", "http_req_duration p(95)", "http_req_duration", "p(95)", "ms"),
    ("error rate", "http_req_failed rate", "http_req_failed", "rate", ""),
    ("request rate", "http_reqs rate", "http_reqs", "rate", "req/s"),
)
WIDTH, HEIGHT, PAD = 240, 28, 3


def history_strip(summary: Mapping[str, Any]) -> str:
    """The strip's HTML, or "" when the run has no history (nothing earlier, no gate)."""
    found = summary.get("history")
    if not isinstance(found, Mapping):
        return ""
    earlier = [r for r in found.get("earlier") or () if isinstance(r, Mapping)]
    parts = ["<h2>History</h2>"]
    if earlier:
        total = found.get("earlier_runs", len(earlier))
        parts.append(
            f'<p class="muted">Series {_e(found.get("series"))}: {total} earlier run(s) in '
            f"{_e(found.get('store'))}; the newest {len(earlier)} drawn, this run last.</p>"
        )
        metrics = summary.get("metrics") or {}
        rows = []
        for label, key, metric, stat, unit in ROWS:
            value = (metrics.get(metric) or {}).get(stat)
            before = [r.get(key) for r in earlier]
            rows.append(
                _row(label, unit, before, value if isinstance(value, int | float) else None)
            )
        parts.append('<table class="history">' + "".join(rows) + "</table>")
        links = [
            f'<a href="{_e(r["report"])}">{_e(r.get("build") or r.get("run_id"))}</a>'
            for r in earlier[-5:]
            if r.get("report")
        ]
        if links:
            parts.append(f'<p class="muted">The last earlier runs: {", ".join(links)}</p>')
    else:
        parts.append('<p class="muted">No earlier run of this series in the history.</p>')
    gate = found.get("gate")
    if isinstance(gate, Mapping):
        parts.append(_gate(gate))
    return "\n".join(parts)


def _row(label: str, unit: str, before: Sequence[Any], value: float | None) -> str:
    measured = [float(v) for v in before if isinstance(v, int | float)]
    if value is None:
        where = '<span class="nodata">not measured in this run</span>'
    elif not measured:
        where = '<span class="nodata">no earlier value to compare</span>'
    else:
        above = sum(v < value for v in measured)
        ordered = sorted(measured)
        median = ordered[len(ordered) // 2]
        where = (
            f"{_shown(value, unit)}: higher than {above} of the {len(measured)} earlier; "
            f"their median {_shown(median, unit)}"
        )
    drawn = _svg([*measured, value] if value is not None else measured, value is not None)
    return f"<tr><th>{_e(label)}</th><td>{drawn}</td><td>{where}</td></tr>"


def _svg(values: Sequence[float], last_is_this: bool) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(values) - 1, 1)

    def y(v: float) -> float:
        return HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD)

    points = " ".join(f"{PAD + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))
    mark = ""
    if last_is_this:
        mark = (
            f'<circle cx="{PAD + (len(values) - 1) * step:.1f}" cy="{y(values[-1]):.1f}" r="3" '
            'fill="#cf222e"><title>this run</title></circle>'
        )
    return (
        f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="earlier runs">'
        f'<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>'
        f"{mark}</svg>"
    )


def _gate(gate: Mapping[str, Any]) -> str:
    failures = [f for f in gate.get("failures") or () if isinstance(f, Mapping)]
    if failures:
        items = "".join(f"<li>{_e(f.get('message'))}</li>" for f in failures)
        return f'<p class="bad">History gate failed:</p><ul class="findings">{items}</ul>'
    judged = ", ".join(gate.get("judged") or ()) or "nothing measured"
    return (
        f'<p class="ok">History gate passed: against the {gate.get("window")} earlier runs, '
        f"on {_e(judged)}.</p>"
    )


def _shown(value: float, unit: str) -> str:
    if unit == "":
        return f"{value:.2%}"
    return f"{show(value)} {unit}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
