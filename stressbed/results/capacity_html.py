"""A capacity search's report.html: the answer, its cause, and the probes drawn.

Top to bottom: the one-line answer and how the search ended, the binding cause with its
evidence, throughput against latency (p50/p95/p99 of each probe's steady window, the latency
SLOs as lines and the knee as a band), achieved against offered (the diagonal is keeping up),
the error rate per probe, and the probe table. Built from capacity.json alone; Bokeh's
JavaScript is inlined, so the page makes no request when opened.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._numbers import show
from .capacity_agents_html import agents_chart, agents_table, probes_table
from .html import STYLE

__all__ = ["render_capacity_html", "write_capacity_html"]

HEIGHT = 300
STATUS_COLOR = {"held": "#1a7f37", "failed": "#cf222e", "invalid": "#9a6700", "error": "#777777"}
_TEMPLATE = """
{% block postamble %}{{ style }}{% endblock %}
{% block contents %}
{{ header }}
<h2>Probes drawn</h2>
<div class="charts">
{{ super() }}
</div>
{{ tables }}
{% endblock %}
"""


def render_capacity_html(document: Mapping[str, Any]) -> str:
    from bokeh.embed import file_html  # noqa: PLC0415 - Bokeh only when a report is drawn
    from bokeh.layouts import column  # noqa: PLC0415
    from bokeh.resources import INLINE  # noqa: PLC0415

    agents = document.get("unit") == "agents"
    probes = [p for p in document.get("probes") or [] if p.get("p95_ms") is not None]
    figures = []
    if agents:  # a population's search: agents, not a rate
        measured = [p for p in document.get("probes") or [] if p.get("connected_share") is not None]
        figures += [agents_chart(measured)] if measured else []
    elif probes:
        figures += [
            _latency_chart(document, probes),
            _achieved_chart(document, probes),
            _errors_chart(document, probes),
        ]
    if document.get("scale_out"):
        figures += _scale_out_charts(document, document["scale_out"])
    if not figures:
        figures.append(_figure("nothing was measured", "", ""))
    layout = column(*figures, sizing_mode="stretch_width")
    title = f"stressbed capacity {document.get('scenario', '')} {document.get('run_id', '')}"
    return file_html(
        layout,
        INLINE,
        title.strip(),
        template=_TEMPLATE,
        template_variables={
            "style": STYLE,
            "header": _header(document),
            "tables": (
                agents_table(document.get("probes") or []) if agents else _probe_table(document)
            ),
        },
    )


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: object) -> str:
    return _e(show(float(value))) if isinstance(value, int | float) else "-"


def _header(document: Mapping[str, Any]) -> str:
    code = int(document.get("exit_code") or 0)
    verdict = {0: ("answered", "pass"), 1: ("not sustained", "fail")}.get(code, ("error", "error"))
    parts = [
        f"<h1>capacity: {_e(document.get('scenario', ''))} "
        f'<span class="muted">({_e(document.get("workload", ""))})</span></h1>',
        f'<span class="verdict {verdict[1]}">{_e(verdict[0])}</span>',
        f'<p class="message" id="answer">{_e(document.get("answer", ""))}</p>',
    ]
    if document.get("scale_out_answer"):
        parts.append(
            f'<p class="message" id="scale-out-answer">{_e(document["scale_out_answer"])}</p>'
        )
    elif document.get("scale_out_skipped"):
        parts.append(f'<p class="muted">no scale-out: {_e(document["scale_out_skipped"])}</p>')
    if code:
        parts.append(f'<p class="bad">exit {code}: {_e(document.get("message", ""))}</p>')
    settings = document.get("settings") or {}
    facts = [
        ("run", document.get("run_id")),
        ("ended by", document.get("ended_by")),
        ("limited by", document.get("limited_by")),
        ("probes", len(document.get("probes") or [])),
        ("elapsed", f"{float(document.get('elapsed_s') or 0):.0f} s"),
        ("budget", f"{settings.get('budget_s', 0):g} s"),
        ("runners", settings.get("runners")),
        ("SLOs", ", ".join(document.get("slos") or [])),
    ]
    parts.append(
        '<p class="facts">'
        + "".join(f"<span>{_e(k)}: <b>{_e(v)}</b></span>" for k, v in facts if v is not None)
        + "</p>"
    )
    cause = document.get("cause")
    if cause:
        parts.append("<h2>Cause</h2>")
        parts.append(
            f'<p id="cause"><b>{_e(cause.get("kind"))}</b>: {_e(cause.get("message"))}</p>'
        )
        also = cause.get("also") or []
        if also:
            items = "".join(f"<li>{_e(a['kind'])}: {_e(a['message'])}</li>" for a in also)
            parts.append(f'<p class="muted">also seen:</p><ul class="findings">{items}</ul>')
    per = document.get("per_replica")
    if per:
        rows = "".join(
            f"<tr><td>{_n(part.get('replicas'))}</td><td>{_e(part.get('answer', ''))}</td></tr>"
            for part in (per.get("one"), per.get("max"))
            if part
        )
        parts.append("<h2>Per replica</h2>")
        parts.append(f'<table id="per-replica"><tbody>{rows}</tbody></table>')
        if per.get("efficiency") is not None:
            parts.append(
                f"<p>{per['replicas']} replicas sustain {per['efficiency']:.0%} of "
                f"{per['replicas']} times one replica (the probes drawn below are "
                "theirs).</p>"
            )
        if per.get("finding"):
            parts.append(f'<p class="bad">{_e(per["finding"])}</p>')
    found = document.get("scale_out")
    if found:
        timings = [
            ("the autoscaler decided", found.get("t_desired_s"), "never"),
            ("new replicas ready", found.get("t_ready_s"), "never"),
            (
                "SLOs held again",
                found.get("t_recovered_s"),
                "not measured" if not found.get("judged_s", 1) else "never",
            ),
        ]
        rows = "".join(
            f'<tr><td>{_e(name)}</td><td class="num">'
            + (f"{float(value):.1f} s" if isinstance(value, int | float) else missing)
            + "</td></tr>"
            for name, value, missing in timings
        )
        violation = _n(found.get("violation_s"))
        rows += f'<tr><td>seconds in violation</td><td class="num">{violation}</td></tr>'
        if found.get("stalled_s"):
            stalled = _n(found.get("stalled_s"))
            rows += f'<tr><td>of them stalled</td><td class="num">{stalled}</td></tr>'
        parts.append("<h2>Scale-out</h2>")
        parts.append(f'<table id="scale-out"><tbody>{rows}</tbody></table>')
    knee = document.get("knee") or {}
    if knee.get("reason") and document.get("probes"):
        parts.append(
            f'<p id="knee">knee: {_e(knee["reason"])}'
            + (f" ({_e(knee['confidence'])} confidence)" if knee.get("range") else "")
            + "</p>"
        )
    return "\n".join(parts)


def _probe_table(document: Mapping[str, Any]) -> str:
    headers = [
        "#",
        "offered",
        "achieved",
        "error %",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "concurrency (Little's law)",
        "VUs busy",
        "VUs peak",
        "dropped",
        "replicas",
        "CPU per replica",
        "memory per replica",
        "verdict",
        "why",
    ]
    rows = []
    for probe in document.get("probes") or []:
        pods = probe.get("pods") or {}
        cpu = ", ".join(f"{_e(k)} {_n(v.get('cpu_m'))}m" for k, v in sorted(pods.items()))
        memory = ", ".join(
            f"{_e(k)} {_n(v.get('memory_mib'))} MiB" for k, v in sorted(pods.items())
        )
        status = str(probe.get("status"))
        error = probe.get("error_rate")
        cells = [
            _n(probe.get("index")),
            _n(probe.get("rate"))
            + (f" (trial {probe['trial']})" if probe.get("trial", 1) > 1 else ""),
            _n(probe.get("achieved_per_s")),
            _n(error * 100 if isinstance(error, int | float) else None),
            _n(probe.get("p50_ms")),
            _n(probe.get("p95_ms")),
            _n(probe.get("p99_ms")),
            _n(probe.get("concurrency_littles_law")),
            # capacity.json before 'vus_active' called k6's vus gauge 'in_flight'
            _n(probe.get("vus_active", probe.get("in_flight"))),
            _n(probe.get("vus_peak")),
            _n(probe.get("dropped")),
            _n(probe.get("replicas")),
            cpu or "-",
            memory or "-",
            f'<span class="{"ok" if status == "held" else "bad"}">{_e(status)}</span>'
            + (" (contaminated)" if probe.get("contaminated") else ""),
            _e("; ".join(probe.get("reasons") or [])),
        ]
        rows.append(cells)
    return probes_table(headers, rows)


def _figure(title: str, x_label: str, y_label: str) -> Any:
    from bokeh.plotting import figure  # noqa: PLC0415

    fig: Any = figure(
        title=title,
        height=HEIGHT,
        sizing_mode="stretch_width",
        x_axis_label=x_label,
        y_axis_label=y_label,
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
    )
    fig.title.text_font_size = "13px"
    return fig


def _source(probes: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import ColumnDataSource  # noqa: PLC0415

    ordered = sorted(probes, key=lambda p: (p["rate"], p.get("trial", 1)))

    def column(key: str, scale: float = 1.0) -> list[float]:
        return [
            float(p[key]) * scale if isinstance(p.get(key), int | float) else float("nan")
            for p in ordered
        ]

    return ColumnDataSource(
        {
            "offered": [float(p["rate"]) for p in ordered],
            "achieved": column("achieved_per_s"),
            "p50": column("p50_ms"),
            "p95": column("p95_ms"),
            "p99": column("p99_ms"),
            "errors": column("error_rate", 100.0),
            "status": [str(p.get("status")) for p in ordered],
            "color": [STATUS_COLOR.get(str(p.get("status")), "#777777") for p in ordered],
            "index": [p.get("index") for p in ordered],
        }
    )


def _tooltips() -> list[tuple[str, str]]:
    return [
        ("probe", "@index"),
        ("offered", "@offered{0,0}"),
        ("achieved", "@achieved{0,0.0}"),
        ("p50 / p95 / p99", "@p50{0,0.0} / @p95{0,0.0} / @p99{0,0.0} ms"),
        ("errors", "@errors{0.00} %"),
        ("verdict", "@status"),
    ]


def _latency_chart(document: Mapping[str, Any], probes: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import HoverTool  # noqa: PLC0415
    from bokeh.models.annotations import BoxAnnotation  # noqa: PLC0415

    unit = str(document.get("unit", "req/s"))
    fig = _figure("latency against throughput (steady windows)", f"achieved {unit}", "ms")
    source = _source(probes)
    # The percentile by its line and marker; the probe's verdict by the marker's colour.
    lines = (
        ("p50", "#1f77b4", "circle"),
        ("p95", "#ff7f0e", "square"),
        ("p99", "#9467bd", "triangle"),
    )
    for key, color, marker in lines:
        fig.line("achieved", key, source=source, color=color, line_width=1, alpha=0.5)
        renderer = fig.scatter(
            "achieved",
            key,
            source=source,
            size=9,
            color="color",
            line_color=color,
            marker=marker,
            legend_label=f"{key} (colour: held, failed, invalid)" if key == "p50" else key,
        )
        if key == "p95":
            fig.add_tools(HoverTool(renderers=[renderer], tooltips=_tooltips()))
    for slo in document.get("slos") or []:
        if _slo_line(fig, slo):
            fig.title.text += f"  (dashed: {slo})"
    knee = (document.get("knee") or {}).get("range")
    if knee:
        fig.add_layout(
            BoxAnnotation(left=knee[0], right=knee[1], fill_color="#9a6700", fill_alpha=0.15)
        )
        fig.title.text += "  (band: the knee)"
    fig.y_range.start = 0
    fig.legend.location = "top_left"
    return fig


def _achieved_chart(document: Mapping[str, Any], probes: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import HoverTool  # noqa: PLC0415

    unit = str(document.get("unit", "req/s"))
    fig = _figure(
        "achieved against offered (on the diagonal: keeping up)",
        f"offered {unit}",
        f"achieved {unit}",
    )
    source = _source(probes)
    top = max([float(p["rate"]) for p in probes] or [1.0])
    fig.line([0, top], [0, top], color="#777777", line_dash="dotted")
    renderer = fig.scatter("offered", "achieved", source=source, size=9, color="color")
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=_tooltips()))
    fig.x_range.start = 0
    fig.y_range.start = 0
    return fig


def _errors_chart(document: Mapping[str, Any], probes: Sequence[Mapping[str, Any]]) -> Any:
    from bokeh.models import HoverTool  # noqa: PLC0415

    unit = str(document.get("unit", "req/s"))
    fig = _figure("errors per probe", f"offered {unit}", "% of requests failed")
    source = _source(probes)
    renderer = fig.scatter("offered", "errors", source=source, size=9, color="color")
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=_tooltips()))
    fig.y_range.start = 0
    return fig


def _slo_line(fig: Any, slo: str) -> bool:
    """A latency SLO's bound as a dashed horizontal line on ``fig``; False for other SLOs."""
    from bokeh.models.annotations import Span  # noqa: PLC0415

    bound = _latency_bound(slo)
    if bound is None:
        return False
    fig.add_layout(
        Span(
            location=bound,
            dimension="width",
            line_color="#cf222e",
            line_dash="dashed",
            line_width=2,
        )
    )
    return True


def _latency_bound(slo: str) -> float | None:
    """The bound of a latency SLO label (``p(95)<300ms`` -> 300.0), or None."""
    from ..errors import ConfigError  # noqa: PLC0415
    from ..scenario.capacity import parse_slo  # noqa: PLC0415

    try:
        threshold = parse_slo(slo)
    except ConfigError:
        return None
    return threshold.value if threshold.metric == "http_req_duration" else None


def write_capacity_html(path: Path, document: Mapping[str, Any]) -> None:
    """A capacity search's report.html, written whole or not at all."""
    text = render_capacity_html(document)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _scale_out_charts(document: Mapping[str, Any], found: Mapping[str, Any]) -> list[Any]:
    """p95 and the replicas on one time axis (seconds since the step), with the autoscaler's
    decision, the replicas ready and the recovery as vertical lines."""
    from bokeh.models import ColumnDataSource, HoverTool, Range1d  # noqa: PLC0415
    from bokeh.models.annotations import Span  # noqa: PLC0415

    series = found.get("series") or {}
    stack = series.get("stack") or {}
    times = [float(t) for t in series.get("t") or []] + [float(t) for t in stack.get("t") or []]
    x_range = Range1d(start=min(times, default=0.0), end=max(times, default=1.0))

    def values(column: list[Any]) -> list[float]:
        return [float(v) if isinstance(v, int | float) else float("nan") for v in column]

    latency = _figure("p95 latency per second around the step", "seconds since the step", "ms")
    latency.x_range = x_range
    source = ColumnDataSource(
        {"t": values(series.get("t") or []), "p95": values(series.get("p95_ms") or [])}
    )
    line = latency.line("t", "p95", source=source, color="#ff7f0e", line_width=2)
    latency.add_tools(
        HoverTool(
            renderers=[line], tooltips=[("t", "@t{0.0} s"), ("p95", "@p95{0,0.0} ms")], mode="vline"
        )
    )
    for slo in found.get("slos") or []:
        _slo_line(latency, slo)
    replicas = _figure("replicas around the step", "seconds since the step", "replicas")
    replicas.x_range = x_range
    stack_source = ColumnDataSource(
        {key: values(stack.get(key) or []) for key in ("t", "replicas", "ready", "desired")}
    )
    for key, color in (("desired", "#9467bd"), ("replicas", "#1f77b4"), ("ready", "#2ca02c")):
        replicas.step(
            "t", key, source=stack_source, color=color, line_width=2, legend_label=key, mode="after"
        )
    replicas.legend.location = "top_left"
    marks = (
        ("t_desired_s", "#9467bd", "autoscaler decided"),
        ("t_ready_s", "#2ca02c", "replicas ready"),
        ("t_recovered_s", "#1a7f37", "SLOs held again"),
    )
    for fig in (latency, replicas):
        fig.add_layout(Span(location=0, dimension="height", line_color="#777777", line_width=1))
        for key, color, _ in marks:
            if isinstance(found.get(key), int | float):
                fig.add_layout(
                    Span(
                        location=float(found[key]),
                        dimension="height",
                        line_color=color,
                        line_dash="dotted",
                        line_width=2,
                    )
                )
        fig.title.text += "  (lines: the step, " + ", ".join(m[2] for m in marks) + ")"
    replicas.y_range.start = 0
    latency.y_range.start = 0
    return [latency, replicas]
