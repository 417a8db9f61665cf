"""The live page's state: the run's sealed seconds (its :class:`LiveSeries`), the stack's
samples and events so far, and how the run ended, drawn by :mod:`stressbed.results.live_html`.

The page and its updates are drawn from one timeline, made at most once a second (and with
each second sealed) however many browsers ask (each asks once a second), on the server's
threads: the fleet never waits for a page.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results.live_html import live_header, live_update, observed_text, render_live
from ..results.timeline import Marker, Timeline, runner_lane, timeline

if TYPE_CHECKING:  # a type only: execute imports this, and the runner image has no
    from ..results.live_series import LiveSeries  # prometheus-client

__all__ = ["Ended", "LivePage"]


@dataclass(frozen=True)
class Ended:
    """How the run ended, for the page's last state."""

    verdict: str  # pass, fail, error, interrupted
    message: str
    report: Path | None  # report.html (None: none was written)


class LivePage:
    """What ``/`` and ``/live.json`` serve (see the module's docstring)."""

    def __init__(self, series: LiveSeries) -> None:
        self.series = series
        #: The run's planned length (seconds; None: not known), for "12 s of 60 s".
        self.total_s: float | None = None
        #: The run's events so far (execute sets it once the stack is up; the stack's report
        #: is the series' own, ``series.stack``); asked once per drawing, a failure no data.
        self.events: Callable[[], Sequence[Mapping[str, Any]]] | None = None
        self.ended: Ended | None = None
        #: Lines said above the charts, in order (a capacity search's probes so far).
        self.notes: list[str] = []
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._drawn: tuple[object, Timeline] | None = None
        self._update: tuple[Timeline, str] | None = None  # the sources of that timeline

    def finish(self, ended: Ended) -> None:
        with self._lock:
            self.ended = ended
            self._drawn = None

    # -- what the server serves -----------------------------------------------------------

    def html(self) -> bytes:
        line, header = self._now()
        title = "stressbed live " + " ".join(self.series.identity.values())
        return render_live(title.strip(), line, header).encode()

    def update(self) -> bytes:
        line, header = self._now()
        with self._lock:
            if self._update is None or self._update[0] is not line:
                self._update = (line, json.dumps(live_update(line), separators=(",", ":")))
            data = self._update[1]
        ended = "true" if self.ended is not None else "false"
        tail = f',"header":{json.dumps(header)},"ended":{ended}}}'
        return (data[:-1] + tail).encode()

    def report(self) -> Path | None:
        """report.html once the run has written it."""
        ended = self.ended
        if ended is None or ended.report is None or not ended.report.is_file():
            return None
        return ended.report

    # -- drawing --------------------------------------------------------------------------

    def _now(self) -> tuple[Timeline, str]:
        with self._lock:
            # Once a second at most, and again with each second sealed: the stack's samples
            # go on between a capacity search's probes, when no second is.
            key = (self.series.sealed, self.ended, int(time.monotonic()))
            if self._drawn is None or self._drawn[0] != key:
                self._drawn = (key, self._timeline())
            line = self._drawn[1]
        return line, self._header(line)

    def _timeline(self) -> Timeline:
        windows = self.series.snapshot()
        stack = _asked(self.series.stack) or {}
        events = _asked(self.events) or []
        line = timeline(windows, (), stack, events)
        line.runners = [
            runner_lane(
                lanes["requests"].items(),
                lanes["dropped"].items(),
                lanes["cpu"],
                line.start,
                line.covers,
            )
            for lanes in self.series.runner_lanes()
        ]
        # Faults as markers on the stack's lane (report.html shades their windows, known once
        # the run has ended; here each is marked as it is applied and as it ends).
        for event in events:
            kind = str(event.get("event", ""))
            if kind in ("fault-applied", "fault-ended") and isinstance(event.get("t"), int | float):
                name = event.get("fault") or event.get("fault_kind") or ""
                at = max(0.0, float(event["t"]) - line.start)
                line.markers.append(Marker(at, kind, "stack", f"{kind}: {name}"))
        return line

    def _header(self, line: Timeline) -> str:
        ended = self.ended
        if ended is not None:
            state = f'<span class="verdict {_css(ended.verdict)}">{ended.verdict}</span> '
            state += html.escape(ended.message)
            if ended.report is not None:
                state += (
                    f' · <a href="report.html">report.html</a> '
                    f'<span class="muted">({html.escape(str(ended.report))})</span>'
                )
        else:
            elapsed = time.monotonic() - self._started
            planned = f" of {self.total_s:.0f} s" if self.total_s else ""
            state = f"running: {elapsed:.0f} s{planned}, {line.seconds:.0f} s merged"
        facts = []
        last = self.series.last()
        if last is not None:
            p95 = last.duration.quantile(0.95) if last.duration.count else None
            facts = [
                ("last second", f"{last.requests:,} requests, {last.failed:,} failed"),
                ("p95", observed_text(p95, " ms")),
                ("VUs", f"{last.vus:,.0f}"),
            ]
            connected = [v for v in line.agents.get("connected", []) if v is not None]
            if connected:
                facts.append(("agents connected", f"{connected[-1]:,.0f}"))
        rows = [
            (f"{t.key} {t.expression}", now, observed_text(value, _unit(t.metric)))
            for t, now, value in self.series.states()
        ]
        return live_header(self.series.identity, state, facts, rows, list(self.notes))


def _asked(getter: Callable[[], Any] | None) -> Any:
    if getter is None:
        return None
    try:
        return getter()
    except Exception:  # a stack mid-change has no data this second: not a crash
        return None


def _unit(metric: str) -> str:
    return " ms" if metric.endswith("_duration") or metric.endswith("_time") else ""


def _css(verdict: str) -> str:
    return {"pass": "pass", "fail": "fail"}.get(verdict, "error")
