"""A population's capacity search in report.html: agents connected against agents offered
(the diagonal is every agent connected) and the probe table of agents, drawn from
capacity.json alone, in place of a rate search's throughput charts and table."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ._numbers import show

__all__ = ["agents_chart", "agents_table", "probes_table"]

HEIGHT = 300
STATUS_COLOR = {"held": "#1a7f37", "failed": "#cf222e", "invalid": "#9a6700", "error": "#777777"}
HEADERS = (
    "#",
    "agents",
    "connected %",
    "connected (mean)",
    "peak connected",
    "connect failures (by reason)",
    "gave up",
    "check-in lateness p99 ms",
    "connect time p99 ms",
    "replicas",
    "CPU per replica",
    "memory per replica",
    "open files (limit)",
    "verdict",
    "why",
)


def agents_chart(probes: Sequence[Mapping[str, Any]]) -> Any:
    """Agents connected (the steady window's mean, and the peak) against agents offered."""
    from bokeh.models import ColumnDataSource, HoverTool  # noqa: PLC0415
    from bokeh.plotting import figure  # noqa: PLC0415

    fig: Any = figure(
        title="agents connected against agents offered (on the diagonal: all connected)",
        height=HEIGHT,
        sizing_mode="stretch_width",
        x_axis_label="agents offered",
        y_axis_label="agents connected",
        tools="pan,wheel_zoom,box_zoom,reset,save",
        toolbar_location="right",
    )
    fig.title.text_font_size = "13px"
    ordered = sorted(probes, key=lambda p: (p["rate"], p.get("trial", 1)))

    def column(key: str, scale: float = 1.0) -> list[float]:
        return [
            float(p[key]) * scale if isinstance(p.get(key), int | float) else float("nan")
            for p in ordered
        ]

    source = ColumnDataSource(
        {
            "offered": [float(p["rate"]) for p in ordered],
            "connected": column("connected_mean"),
            "peak": column("peak_connected"),
            "share": column("connected_share", 100.0),
            "status": [str(p.get("status")) for p in ordered],
            "color": [STATUS_COLOR.get(str(p.get("status")), "#777777") for p in ordered],
            "index": [p.get("index") for p in ordered],
        }
    )
    top = max([float(p["rate"]) for p in probes] or [1.0])
    fig.line([0, top], [0, top], color="#777777", line_dash="dotted")
    dots = fig.scatter(
        "offered", "connected", source=source, size=9, color="color", legend_label="mean"
    )
    fig.scatter(
        "offered",
        "peak",
        source=source,
        size=9,
        marker="triangle",
        line_color="color",
        fill_alpha=0,
        legend_label="peak",
    )
    tips = [
        ("probe", "@index"),
        ("agents", "@offered{0,0}"),
        ("connected", "@connected{0,0} (@share{0.0} %), peak @peak{0,0}"),
        ("verdict", "@status"),
    ]
    fig.add_tools(HoverTool(renderers=[dots], tooltips=tips))
    fig.x_range.start = 0
    fig.y_range.start = 0
    fig.legend.location = "top_left"
    return fig


def agents_table(probes: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for probe in probes:
        pods = probe.get("pods") or {}
        status = str(probe.get("status"))
        share = probe.get("connected_share")
        reasons = probe.get("connect_failures_by_reason") or {}
        failures = _n(probe.get("connect_failures")) + (
            " (" + ", ".join(f"{_e(k)} {_n(v)}" for k, v in sorted(reasons.items())) + ")"
            if reasons
            else ""
        )
        files = [
            f"{_e(name)} {_n(u.get('open_files'))} ({_n(u.get('nofile_limit'))})"
            for name, u in sorted(pods.items())
            if u.get("open_files") is not None
        ]
        balancer = probe.get("balancer") or {}
        if balancer.get("open_files") is not None:
            files.append(
                f"balancer {_n(balancer['open_files'])} ({_n(balancer.get('nofile_limit'))})"
            )
        cells = [
            _n(probe.get("index")),
            _n(probe.get("rate"))
            + (f" (trial {probe['trial']})" if probe.get("trial", 1) > 1 else ""),
            _n(share * 100 if isinstance(share, int | float) else None),
            _n(probe.get("connected_mean")),
            _n(probe.get("peak_connected")),
            failures,
            _n(probe.get("gave_up")),
            _n(probe.get("checkin_lateness_p99_ms")),
            _n(probe.get("connect_time_p99_ms")),
            _n(probe.get("replicas")),
            ", ".join(f"{_e(k)} {_n(v.get('cpu_m'))}m" for k, v in sorted(pods.items())) or "-",
            ", ".join(f"{_e(k)} {_n(v.get('memory_mib'))} MiB" for k, v in sorted(pods.items()))
            or "-",
            ", ".join(files) or "-",
            f'<span class="{"ok" if status == "held" else "bad"}">{_e(status)}</span>'
            + (" (contaminated)" if probe.get("contaminated") else ""),
            _e("; ".join(probe.get("reasons") or [])),
        ]
        rows.append(cells)
    return probes_table(HEADERS, rows)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _n(value: object) -> str:
    return _e(show(float(value))) if isinstance(value, int | float) else "-"


def probes_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The report's table of probes (a rate search's and a population's alike): ``rows``
    of cells already escaped."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>" for cells in rows)
    return (
        f'<h2>Probes</h2><table id="probes"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )
