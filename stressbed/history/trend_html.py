"""trend.html: one series' metrics over its runs, a chart per metric, the change points
marked, each run linked to its report.

Each chart has one point per run (x: the run's number in the series), coloured by its verdict,
with its run, build and value on hover; a click opens that run's report.html. Each change
point is a vertical line before the first run of the new level (red: a regression, green: an
improvement, grey: a change of a metric with no worse direction), and each level between
change points a dashed line at its mean. Bokeh's JavaScript is inlined: the page makes no
request when opened.
"""

from __future__ import annotations

import html
import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..results.html import STYLE
from .entry import Entry, shown_change, shown_time
from .trend import MetricTrend, worse_direction

__all__ = ["render_trend_html", "write_trend_html"]

HEIGHT = 220
KIND_COLOR = {"regression": "#cf222e", "improvement": "#1a7f37", "change": "#777777"}
VERDICT_COLOR = {"pass": "#1f77b4", "fail": "#cf222e"}
_TEMPLATE = """
{% block postamble %}{{ style }}{% endblock %}
{% block contents %}
{{ header }}
<div class="charts">
{{ super() }}
</div>
{{ tables }}
{% endblock %}
"""


def render_trend_html(
    entries: Sequence[Entry], found: Sequence[MetricTrend], where: Path | None = None
) -> str:
    """The page; ``where``: the folder it is written to (the runs' links are relative to
    it)."""
    from bokeh.embed import file_html  # noqa: PLC0415 - Bokeh only when a page is drawn
    from bokeh.layouts import column  # noqa: PLC0415
    from bokeh.resources import INLINE  # noqa: PLC0415

    links = [_link(e, where) for e in entries]
    figures = [_chart(m, entries, links) for m in found]
    if not figures:
        figures = [_empty()]
    first = entries[0] if entries else None
    title = (
        f"stressbed trend {first.scenario if first else ''} {first.fingerprint if first else ''}"
    )
    return file_html(
        column(*figures, sizing_mode="stretch_width"),
        INLINE,
        title.strip(),
        template=_TEMPLATE,
        template_variables={
            "style": STYLE,
            "header": _header(entries, found),
            "tables": _runs_table(entries, links),
        },
    )


def write_trend_html(path: Path, entries: Sequence[Entry], found: Sequence[MetricTrend]) -> None:
    """trend.html, written whole or not at all."""
    text = render_trend_html(entries, found, path.resolve().parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _chart(metric: MetricTrend, entries: Sequence[Entry], links: Sequence[str | None]) -> Any:
    from bokeh.models import ColumnDataSource, HoverTool, OpenURL, TapTool  # noqa: PLC0415
    from bokeh.models.annotations import Span  # noqa: PLC0415
    from bokeh.plotting import figure  # noqa: PLC0415

    worse = {1: " (up is worse)", -1: " (down is worse)"}.get(worse_direction(metric.metric), "")
    fig: Any = figure(
        title=metric.metric + worse,
        height=HEIGHT,
        sizing_mode="stretch_width",
        tools="pan,xwheel_zoom,box_zoom,reset,save",
        x_axis_label="run",
    )
    runs = list(range(1, len(entries) + 1))
    values = [math.nan if v is None else v for v in metric.values]
    source = ColumnDataSource(
        {
            "run": runs,
            "value": values,
            "run_id": [e.run_id for e in entries],
            "build": [e.build or "unknown" for e in entries],
            "verdict": [e.verdict or "" for e in entries],
            "color": [VERDICT_COLOR.get(e.verdict or "", "#9a6700") for e in entries],
            "report": [link or "" for link in links],
        }
    )
    fig.line("run", "value", source=source, color="#1f77b4", alpha=0.5)
    dots = fig.scatter("run", "value", source=source, color="color", size=7)
    fig.add_tools(
        HoverTool(
            renderers=[dots],
            tooltips=[
                ("run", "@run: @run_id"),
                ("build", "@build"),
                ("value", "@value{0.[000]}"),
                ("verdict", "@verdict"),
            ],
        ),
        TapTool(renderers=[dots], callback=OpenURL(url="@report")),
    )
    bounds = [0, *(c.point.index for c in metric.changes), len(entries)]
    for change in metric.changes:
        fig.add_layout(
            Span(
                location=change.point.index + 0.5,
                dimension="height",
                line_color=KIND_COLOR[change.kind],
                line_width=2,
            )
        )
    for left, right in itertools.pairwise(bounds):
        level = [v for v in metric.values[left:right] if v is not None]
        if level and metric.changes:
            mean = sum(level) / len(level)
            fig.line([left + 0.5, right + 0.5], [mean, mean], color="#555555", line_dash="dashed")
    return fig


def _empty() -> Any:
    from bokeh.plotting import figure  # noqa: PLC0415

    return figure(title="nothing measured", height=HEIGHT, sizing_mode="stretch_width")


def _link(entry: Entry, where: Path | None) -> str | None:
    if entry.run_dir is None:
        return None
    report = Path(entry.run_dir) / "report.html"
    if where is None:
        return report.as_uri() if report.is_absolute() else str(report)
    try:
        return os.path.relpath(report, where)
    except ValueError:  # another drive
        return str(report)


def _header(entries: Sequence[Entry], found: Sequence[MetricTrend]) -> str:
    if not entries:
        return "<h1>stressbed trend</h1><p>No runs in this series.</p>"
    first, last = entries[0], entries[-1]
    changes = [c for m in found for c in m.changes]
    items = "".join(
        f"<li><b>{_e(c.metric)}</b>: {_e(c.kind)} {shown_change(c.point.relative)} "
        f"({c.point.before:.4g} &rarr; {c.point.after:.4g}) from run "
        f"{c.point.index + 1} ({_e(c.run_id)}, build {_e(c.build or 'unknown')})</li>"
        for c in changes
    )
    return (
        f"<h1>stressbed trend: {_e(first.scenario or '')}</h1>"
        f'<p class="facts"><span>series {_e(first.fingerprint or "")}</span>'
        f"<span>{len(entries)} runs</span><span>{shown_time(first.started_at)} to "
        f"{shown_time(last.started_at)}</span></p>"
        "<h2>Change points</h2>"
        + (f'<ul class="findings">{items}</ul>' if items else "<p>None found.</p>")
    )


def _runs_table(entries: Sequence[Entry], links: Sequence[str | None]) -> str:
    rows = []
    for number, (entry, link) in enumerate(zip(entries, links, strict=True), start=1):
        name = _e(entry.run_id)
        shown = f'<a href="{_e(link)}">{name}</a>' if link else name
        rows.append(
            f"<tr><td class=num>{number}</td><td>{shown}</td><td>{_e(entry.build or '-')}</td>"
            f"<td>{shown_time(entry.started_at)}</td><td>{_e(entry.verdict or '-')}</td></tr>"
        )
    return (
        "<h2>Runs</h2><table><tr><th>#</th><th>run</th><th>build</th><th>started (UTC)</th>"
        "<th>verdict</th></tr>" + "".join(rows) + "</table>"
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
