"""The report's charts, drawn with Bokeh from one :class:`~.timeline.Timeline`.

Every time chart shares one x range (seconds since the fleet started), so zooming or panning
one moves all of them, and each has a hover that shows the values at that second. Failed
thresholds are shaded where each step breached them, each fault's window on every chart (a
line for one at an instant); the stack's and the fleet's events are markers with their reason
on hover. Bokeh is imported only here, when a report is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .timeline import Marker, Series, Timeline

__all__ = ["X_RANGE", "chart_data", "charts", "sources"]

#: The name of the time axis every chart shares.
X_RANGE = "time"

HEIGHT = 230
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
BREACH = "#d62728"
FAULT = "#9467bd"


def _nan(series: Series) -> Any:
    import numpy as np  # noqa: PLC0415 - a Bokeh dependency; NaN breaks a line where no data

    return np.array([math.nan if v is None else float(v) for v in series], dtype=float)


class _Charts:
    def __init__(self, line: Timeline) -> None:
        from bokeh.models import Range1d  # noqa: PLC0415

        self.line = line
        end = max(line.seconds, 1.0)
        # Named, as each data source is: the live page finds them to move them on.
        self.x_range = Range1d(start=0, end=end, bounds=(0, end), name=X_RANGE)
        self.figures: list[Any] = []

    def figure(self, title: str, y_label: str, *, y_start: float | None = 0.0) -> Any:
        from bokeh.plotting import figure  # noqa: PLC0415

        fig: Any = figure(
            title=title,
            height=HEIGHT,
            sizing_mode="stretch_width",
            x_range=self.x_range,
            x_axis_label="seconds since the start",
            y_axis_label=y_label,
            tools="xpan,xwheel_zoom,box_zoom,reset,save",
            active_drag="xpan",
            toolbar_location="right",
        )
        if y_start is not None:
            fig.y_range.start = y_start
        fig.title.text_font_size = "13px"
        self.figures.append(fig)
        return fig

    def lines(
        self, fig: Any, series: dict[str, Series], unit: str, *, dashed: Sequence[str] = ()
    ) -> None:
        """One line per series, and a hover showing every one of them at that second."""
        from bokeh.models import ColumnDataSource, HoverTool  # noqa: PLC0415

        if not series:
            return
        columns = {"t": self.line.t}
        keys = {}
        for i, name in enumerate(series):
            key = f"s{i}"
            keys[name] = key
            columns[key] = _nan(series[name])
        source = ColumnDataSource(columns, name=f"{self.figures.index(fig)}/lines")
        renderers = []
        for i, name in enumerate(series):
            renderers.append(
                fig.line(
                    "t",
                    keys[name],
                    source=source,
                    legend_label=name,
                    color=PALETTE[i % len(PALETTE)],
                    line_width=2,
                    line_dash="dashed" if name in dashed else "solid",
                )
            )
        tooltips = [("t", "@t{0,0.0} s")] + [
            (name, f"@{keys[name]}{{0,0.[00]}} {unit}".rstrip()) for name in series
        ]
        fig.add_tools(HoverTool(renderers=renderers[:1], tooltips=tooltips, mode="vline"))
        fig.legend.location = "top_left"
        fig.legend.click_policy = "hide"

    def shade(self, fig: Any, intervals: Sequence[tuple[float, float]], label: str) -> None:
        from bokeh.models.annotations import BoxAnnotation  # noqa: PLC0415

        for left, right in intervals:
            fig.add_layout(
                BoxAnnotation(left=left, right=right, fill_color=BREACH, fill_alpha=0.12)
            )
        if intervals:
            fig.title.text += f"  (shaded: {label} breached)"

    def markers(self, fig: Any, markers: Sequence[Marker], y: float) -> None:
        from bokeh.models import ColumnDataSource, HoverTool  # noqa: PLC0415

        if not markers:
            return
        source = ColumnDataSource(
            _marker_columns(markers, y), name=f"{self.figures.index(fig)}/markers"
        )
        renderer = fig.scatter(
            "t", "y", source=source, size=11, marker="inverted_triangle", color="color"
        )
        fig.add_tools(
            HoverTool(renderers=[renderer], tooltips=[("t", "@t{0,0.0} s"), ("event", "@text")])
        )


class _Title:
    def __init__(self, text: str) -> None:
        self.text = text


class _Sketch:
    """A figure without Bokeh: its title, and the data its sources would hold."""

    def __init__(self, title: str) -> None:
        self.title = _Title(title)

    def add_layout(self, *_: object) -> None:
        return None


class _Data(_Charts):
    """The charts' titles and data sources, without drawing (no Bokeh model is made): what
    the live page sends each second, the same code deciding what goes where."""

    def __init__(self, line: Timeline) -> None:
        self.line = line
        self.figures = []
        self.data: dict[str, dict[str, list[Any]]] = {}
        self.labels: dict[str, list[str]] = {}  # each lines source's legend, in order

    def figure(self, title: str, y_label: str, *, y_start: float | None = 0.0) -> Any:
        fig = _Sketch(title)
        self.figures.append(fig)
        return fig

    def lines(
        self, fig: Any, series: dict[str, Series], unit: str, *, dashed: Sequence[str] = ()
    ) -> None:
        if not series:
            return
        columns: dict[str, list[Any]] = {"t": list(self.line.t)}
        for i, values in enumerate(series.values()):
            columns[f"s{i}"] = [_finite(v) for v in values]
        self.data[f"{self.figures.index(fig)}/lines"] = columns
        self.labels[f"{self.figures.index(fig)}/lines"] = list(series)

    def shade(self, fig: Any, intervals: Sequence[tuple[float, float]], label: str) -> None:
        if intervals:
            fig.title.text += f"  (shaded: {label} breached)"

    def markers(self, fig: Any, markers: Sequence[Marker], y: float) -> None:
        if markers:
            self.data[f"{self.figures.index(fig)}/markers"] = _marker_columns(markers, y)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _marker_columns(markers: Sequence[Marker], y: float) -> dict[str, list[Any]]:
    return {
        "t": [m.t for m in markers],
        "y": [y] * len(markers),
        "kind": [m.kind for m in markers],
        "text": [m.text for m in markers],
        "color": [_marker_color(m.kind) for m in markers],
    }


def chart_data(
    line: Timeline,
) -> tuple[list[str], dict[str, list[str]], dict[str, dict[str, list[Any]]]]:
    """What :func:`charts` would draw of ``line`` (no breaches, baseline or faults), made
    without Bokeh: each chart's title, each line source's legend, and each named data
    source's columns (no data: None)."""
    c = _Data(line)
    _fill(c, {}, None)
    return [fig.title.text for fig in c.figures], c.labels, c.data


def _marker_color(kind: str) -> str:
    if kind.startswith("fault-"):
        return FAULT
    if kind in ("oom-killed", "crashed", "killed", "runner-failed", "stack-failed", "aborted"):
        return "#d62728"
    if kind in ("liveness-failed", "startup-failed", "unready", "back-off", "quota-denied"):
        return "#ff7f0e"
    return "#2ca02c"


def charts(
    line: Timeline,
    breached: dict[str, list[tuple[float, float]]],
    baseline: Timeline | None = None,
    faults: Sequence[tuple[float, float, str]] = (),
) -> list[Any]:
    """The report's figures, top to bottom. ``breached`` maps a failed threshold's label to
    its intervals, keyed by what it measures: ``latency``, ``latency:<name>``, ``errors``,
    ``throughput``; ``baseline`` is drawn dashed on the load and latency charts; ``faults``
    (start and end in seconds since the start, a label) are shaded on every chart."""
    c = _Charts(line)
    _fill(c, breached, baseline)
    _shade_faults(c, faults)
    return c.figures


def _fill(
    c: _Charts, breached: dict[str, list[tuple[float, float]]], baseline: Timeline | None
) -> None:
    _load_charts(c, breached, baseline)
    _population_charts(c)
    _stack_charts(c)
    _runner_charts(c)


def sources(figures: Sequence[Any]) -> dict[str, dict[str, list[Any]]]:
    """Each named data source of ``figures``, its columns as JSON-ready lists (a point with
    no data: None): what the live page sends to move its charts on."""
    out: dict[str, dict[str, list[Any]]] = {}
    for fig in figures:
        for renderer in fig.renderers:
            source = getattr(renderer, "data_source", None)
            if source is None or not source.name or source.name in out:
                continue
            out[source.name] = {
                key: [None if isinstance(v, float) and math.isnan(v) else v for v in column]
                for key, column in ((k, list(map(_plain, c))) for k, c in source.data.items())
            }
    return out


def _plain(value: Any) -> Any:
    """A numpy scalar as a Python one (JSON has no numpy)."""
    return value.item() if hasattr(value, "item") else value


def _shade_faults(c: _Charts, faults: Sequence[tuple[float, float, str]]) -> None:
    from bokeh.models.annotations import BoxAnnotation, Span  # noqa: PLC0415

    for fig in c.figures:
        for left, right, _ in faults:
            if right > left:
                fig.add_layout(
                    BoxAnnotation(left=left, right=right, fill_color=FAULT, fill_alpha=0.1)
                )
            else:
                fig.add_layout(
                    Span(location=left, dimension="height", line_color=FAULT, line_width=2)
                )
        if faults:
            fig.title.text += "  (violet: " + ", ".join(label for *_, label in faults) + ")"


def _load_charts(
    c: _Charts, breached: dict[str, list[tuple[float, float]]], baseline: Timeline | None
) -> None:
    line, fleet = c.line, c.line.fleet
    fig = c.figure("Load: requests/s offered and achieved, VUs", "per second")
    load = {"requests/s": fleet["requests_per_s"], "iterations/s": fleet["iterations_per_s"]}
    if any(v for v in fleet["dropped_per_s"]):
        load["iterations/s offered"] = fleet["offered_per_s"]
    load["VUs active"] = fleet["vus"]
    load["VUs initialised"] = fleet["vus_max"]
    if baseline is not None:
        load["baseline requests/s"] = _aligned(baseline.fleet["requests_per_s"], len(line.t))
    dashed = ("iterations/s offered", "VUs initialised", "baseline requests/s")
    c.lines(fig, load, "", dashed=dashed)
    _shade_all(c, fig, breached, "throughput")
    c.markers(fig, [m for m in line.markers if m.lane == "fleet"], 0.0)

    fig = c.figure("Latency, whole fleet (merged sketches per second)", "ms")
    latency = {"p50": fleet["p50_ms"], "p95": fleet["p95_ms"], "p99": fleet["p99_ms"]}
    if baseline is not None:
        latency["baseline p50"] = _aligned(baseline.fleet["p50_ms"], len(line.t))
        latency["baseline p95"] = _aligned(baseline.fleet["p95_ms"], len(line.t))
    c.lines(fig, latency, "ms", dashed=("baseline p50", "baseline p95"))
    _shade_all(c, fig, breached, "latency")

    if line.names:
        fig = c.figure("Latency p95 by request name", "ms")
        c.lines(fig, {name: s["p95_ms"] for name, s in line.names.items()}, "ms")
        for name in line.names:
            _shade_all(c, fig, breached, f"latency:{name}")

    fig = c.figure("Errors: failed requests/s by status, failed checks/s", "per second")
    errors = {f"status {k}": v for k, v in line.statuses.items()}
    errors.update({f"check {k!r}": v for k, v in line.checks.items()})
    c.lines(fig, errors or {"failed requests": fleet["failed_per_s"]}, "/s")
    _shade_all(c, fig, breached, "errors")


def _population_charts(c: _Charts) -> None:
    """A population's agents: connected against wanted; connects and failures per second."""
    agents = c.line.agents
    if not agents:
        return
    fig = c.figure("Agents: connected and wanted (whole fleet)", "agents")
    c.lines(
        fig, {"connected": agents["connected"], "wanted": agents["wanted"]}, "", dashed=("wanted",)
    )
    fig = c.figure("Agents: connect attempts, connects and failures per second", "per second")
    rates = {
        "connect attempts/s": agents["connect_attempts_per_s"],
        "connects/s": agents["connects_per_s"],
        "disconnects/s": agents["disconnects_per_s"],
    }
    failures = c.line.agent_failures
    if len(failures) > MAX_REASONS:  # the busiest apart, the rest as one line
        ranked = sorted(failures, key=lambda r: -sum(v or 0.0 for v in failures[r]))
        rest = [failures[r] for r in ranked[MAX_REASONS - 1 :]]
        failures = {r: failures[r] for r in ranked[: MAX_REASONS - 1]}
        failures["other"] = [sum(v or 0.0 for v in values) for values in zip(*rest, strict=True)]
    rates |= {f"failed: {reason}/s": values for reason, values in failures.items()}
    if not failures:
        rates["connect failures/s"] = agents["connect_failures_per_s"]
    c.lines(fig, rates, "/s", dashed=("connect attempts/s",))


#: Connect failure reasons charted one by one.
MAX_REASONS = 8


def _stack_charts(c: _Charts) -> None:
    line = c.line
    if line.stack:
        fig = c.figure("Stack: replicas (desired, running, ready) and its events", "replicas")
        c.lines(
            fig,
            {
                "desired": line.stack["desired"],
                "running": line.stack["replicas"],
                "ready": line.stack["ready"],
            },
            "",
            dashed=("desired",),
        )
        c.markers(fig, [m for m in line.markers if m.lane == "stack"], 0.0)
    for key, title, unit in (
        ("cpu_m", "Replica CPU against its limit", "millicores"),
        ("memory_mib", "Replica memory (working set) against its limit", "MiB"),
    ):
        if not line.pods:
            break
        fig = c.figure(title, unit)
        lanes = {name: pod[key] for name, pod in line.pods.items()}
        if key in line.limits:  # a line, not an annotation: the y range then shows it
            lanes["limit"] = [line.limits[key]] * len(line.t)
        c.lines(fig, lanes, "m" if key == "cpu_m" else "MiB", dashed=("limit",))
    connections = {name: pod["connections"] for name, pod in line.pods.items()}
    if any(v is not None for lane in connections.values() for v in lane):
        fig = c.figure("Open connections per replica (through the balancer)", "connections")
        c.lines(fig, connections, "")
    _isolation_charts(c)
    for family, lanes in _families(line.target).items():
        shown = "ms" if family.endswith(" p95 ms") else ""
        shown = shown or ("per second" if family.endswith(" /s") else "value")
        fig = c.figure(f"Target's own metric: {family}", shown)
        c.lines(fig, lanes, "")


def _isolation_charts(c: _Charts) -> None:
    """Each replica's IO against its throttle, its wait for a CPU, the data folder's room:
    where they were measured."""
    line = c.line
    io = {
        f"{name} {way}s": pod[f"io_{way}_mib_s"]
        for name, pod in line.pods.items()
        for way in ("read", "write")
    }
    if any(v is not None for lane in io.values() for v in lane):
        for name, pod in line.pods.items():
            for way in ("read", "write"):
                if any(v is not None for v in pod[f"io_{way}_limit_mib_s"]):
                    io[f"{name} {way} throttle"] = pod[f"io_{way}_limit_mib_s"]
        fig = c.figure("Replica IO (reads and writes) against its throttle", "MiB/s")
        c.lines(fig, io, "MiB/s", dashed=tuple(k for k in io if k.endswith(" throttle")))
    wait = {name: pod["cpu_wait"] for name, pod in line.pods.items()}
    if any(v is not None for lane in wait.values() for v in lane):
        fig = c.figure("Replica wait for a CPU (run-queue delay, seconds a second)", "s/s")
        c.lines(fig, wait, "s/s")
    if "data_free_mib" in line.stack:
        fig = c.figure("The replicas' data folder: free and its size", "MiB")
        room = {"free": line.stack["data_free_mib"], "size": line.stack["data_size_mib"]}
        c.lines(fig, room, "MiB", dashed=("size",))


def _runner_charts(c: _Charts) -> None:
    runners = c.line.runners
    if not runners:
        return
    fig = c.figure("Runners: requests/s each", "per second")
    c.lines(fig, {f"runner {i}": r["requests_per_s"] for i, r in enumerate(runners)}, "")
    if any(v for r in runners for v in r["dropped_per_s"]):
        fig = c.figure("Runners: dropped iterations/s each", "per second")
        c.lines(fig, {f"runner {i}": r["dropped_per_s"] for i, r in enumerate(runners)}, "")
    fig = c.figure("Runners: k6 CPU each", "cores")
    c.lines(fig, {f"runner {i}": r["cpu_cores"] for i, r in enumerate(runners)}, "")


MAX_TARGET_CHARTS = 8


def _aligned(series: Series, points: int) -> Series:
    """The baseline's series on this run's axis: second for second from each one's start."""
    return [series[i] if i < len(series) else None for i in range(points)]


def _families(target: dict[str, Series]) -> dict[str, dict[str, Series]]:
    """The target's series grouped by family (and by what they show: /s, p95), one chart each;
    a series is labelled by its labels alone."""
    out: dict[str, dict[str, Series]] = {}
    for name, values in target.items():
        head, _, rest = name.partition("{")
        labels, _, suffix = rest.rpartition("}") if rest else ("", "", "")
        if not rest:
            head, _, suffix = name.partition(" ")
        family = f"{head} {suffix.strip()}".strip()
        if family not in out and len(out) >= MAX_TARGET_CHARTS:
            continue
        out.setdefault(family, {})[labels or head] = values
    return out


def _shade_all(
    c: _Charts, fig: Any, breached: dict[str, list[tuple[float, float]]], what: str
) -> None:
    for label, intervals in breached.items():
        if label.split("|", 1)[0] == what:
            c.shade(fig, intervals, label.split("|", 1)[1])
