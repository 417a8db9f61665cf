"""The additive data of a run: per-metric aggregates and per-second windows.

Everything here merges exactly across runners (counts and sums add, minima and maxima take the
extreme, sketches merge bucket by bucket); statistics such as percentiles are read after the
merge (:mod:`stressbed.results.merge`), never combined across runners.

A gauge (``vus``, ``vus_max``, ...) is not additive as one number: the fleet's VUs at second t
are the sum of every runner's VUs at t. So a gauge keeps each runner's value per second (the
last sample of each second), and merging keeps the runners' series apart; the fleet's value,
minimum and maximum are read from their time-aligned sum (:func:`gauge_stats`).

A window of a run with a population also carries its agents' second
(:class:`~stressbed.results.agents.AgentWindow`), additive the same way; a run without one
carries none.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import DocumentError
from .agents import AgentWindow
from .sketch import Sketch

__all__ = ["MAX_FOLDED_LISTED", "MAX_NAMES", "OTHER_NAME", "Aggregate", "Window", "gauge_stats"]


@dataclass
class Aggregate:
    """Everything the merge needs of one metric (or submetric), whatever its type."""

    kind: str  # trend, counter, rate or gauge
    sketch: Sketch = field(default_factory=Sketch)
    total: float = 0.0  # counter sum; rate passes
    count: int = 0  # samples seen (rate total)
    last: float = math.nan  # gauge
    minimum: float = math.inf
    maximum: float = -math.inf
    #: A gauge's per-second values, one series per runner merged in (second -> last value).
    parts: list[dict[int, float]] = field(default_factory=list)

    def add(self, value: float, key: int | None = None, second: int = 0) -> None:
        """Add a sample; for a trend, ``key`` is its sketch bucket (computed by the caller);
        for a gauge, ``second`` is the whole unix second it was taken in."""
        kind = self.kind
        if kind == "trend":
            self.sketch.add_keyed(value, key)
            return
        self.count += 1
        if kind == "counter":
            self.total += value
        elif kind == "rate":
            if value != 0:
                self.total += 1
        else:
            self.last = value
            self.minimum = min(self.minimum, value)
            self.maximum = max(self.maximum, value)
            if not self.parts:
                self.parts.append({})
            self.parts[0][second] = value

    def copy(self) -> Aggregate:
        return Aggregate(
            self.kind,
            self.sketch.copy(),
            self.total,
            self.count,
            self.last,
            self.minimum,
            self.maximum,
            [dict(part) for part in self.parts],
        )

    def merge(self, other: Aggregate) -> None:
        self.sketch.merge(other.sketch)
        self.total += other.total
        self.count += other.count
        if not math.isnan(other.last):
            self.last = other.last if math.isnan(self.last) else self.last + other.last
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        # A gauge's runners stay apart: their sum is taken second by second when read.
        self.parts.extend(dict(part) for part in other.parts)

    def gauge(self) -> tuple[float, float, float]:
        """A gauge's (value, minimum, maximum) for everything merged into it; 0s when empty."""
        if any(self.parts):
            return gauge_stats(self.parts)
        if not self.count:
            return 0.0, 0.0, 0.0
        # A document without per-second values (written before they were kept).
        return (0.0 if math.isnan(self.last) else self.last), self.minimum, self.maximum

    def to_dict(self) -> dict[str, object]:
        if self.kind == "trend":
            return {"kind": "trend", "sketch": self.sketch.to_dict()}
        data: dict[str, object] = {"kind": self.kind, "total": self.total, "count": self.count}
        if self.kind == "gauge":
            data.update(
                last=None if math.isnan(self.last) else self.last,
                min=None if self.count == 0 else self.minimum,
                max=None if self.count == 0 else self.maximum,
                series=[{str(t): v for t, v in sorted(part.items())} for part in self.parts],
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Aggregate:
        """An aggregate from its document; DocumentError naming the field that is wrong."""
        kind = data.get("kind")
        if kind not in ("trend", "counter", "rate", "gauge"):
            raise DocumentError("aggregate.kind", kind, "trend, counter, rate or gauge")
        if kind == "trend":
            sketch = data.get("sketch")
            if not isinstance(sketch, dict):
                raise DocumentError("aggregate.sketch", sketch, "a sketch document")
            return cls("trend", sketch=Sketch.from_dict(sketch))
        total, count = data.get("total"), data.get("count")
        if isinstance(total, bool) or not isinstance(total, int | float):
            raise DocumentError("aggregate.total", total, "a number")
        if isinstance(count, bool) or not isinstance(count, int):
            raise DocumentError("aggregate.count", count, "an integer")
        agg = cls(kind, total=float(total), count=count)
        if kind == "gauge":
            last, low, high = data.get("last"), data.get("min"), data.get("max")
            agg.last = float(last) if isinstance(last, int | float) else math.nan
            agg.minimum = float(low) if isinstance(low, int | float) else math.inf
            agg.maximum = float(high) if isinstance(high, int | float) else -math.inf
            series = data.get("series", [])
            if not isinstance(series, list) or not all(isinstance(p, dict) for p in series):
                raise DocumentError("aggregate.series", series, "a list of {second: value}")
            try:
                agg.parts = [{int(t): float(v) for t, v in part.items()} for part in series]
            except (TypeError, ValueError):
                raise DocumentError("aggregate.series", series, "seconds and numbers") from None
        return agg


def gauge_stats(parts: Sequence[Mapping[int, float]]) -> tuple[float, float, float]:
    """The fleet's (value, minimum, maximum) of a gauge from each runner's per-second values.

    At second t a runner counts with its latest value at or before t while it reports (from its
    first to its last second), and 0 outside that span. The maximum is over every second; the
    value (the last second) and the minimum are over the seconds in which every runner reported,
    so the runners' slightly different first and last seconds do not read as a dip (k6's own
    figures for one process are from its whole run).
    """
    series = [sorted(p.items()) for p in parts if p]
    if not series:
        return 0.0, 0.0, 0.0
    spans = [(s[0][0], s[-1][0]) for s in series]
    seconds = sorted({t for s in series for t, _ in s})

    def total(t: int) -> float:
        out = 0.0
        for s, (first, last) in zip(series, spans, strict=True):
            if first <= t <= last:
                out += s[bisect.bisect_right(s, (t, math.inf)) - 1][1]
        return out

    sums = {t: total(t) for t in seconds}
    start, end = max(f for f, _ in spans), min(e for _, e in spans)
    whole = [t for t in seconds if start <= t <= end] or seconds
    return sums[whole[-1]], min(sums[t] for t in whole), max(sums.values())


#: Request names the windows keep apart; the rest are counted under OTHER_NAME. Which ones is
#: chosen once for the whole fleet (the scenario's declared names, the same on every runner:
#: :class:`~stressbed.results.samples.Collector`), so that a name's merged sketch has every
#: runner's samples of it or none. k6 names an unnamed request by its URL, which may hold ids:
#: the bound keeps windows small.
MAX_NAMES = 32
OTHER_NAME = "(other)"
#: Folded names a runner lists (the summary says which were folded, and whether there were more).
MAX_FOLDED_LISTED = 100


@dataclass
class Window:
    """One second of the run: what the fleet time series and the report show."""

    requests: int = 0
    failed: int = 0
    iterations: int = 0
    vus: float = 0.0  # active VUs (k6's vus gauge), summed over runners
    duration: Sketch = field(default_factory=Sketch)
    vus_max: float = 0.0  # VUs initialised (k6's vus_max), summed over runners
    #: Latency per request name (the ``name`` tag): the kept names (at most MAX_NAMES) and
    #: OTHER_NAME for the rest.
    names: dict[str, Sketch] = field(default_factory=dict)
    #: Failed requests per response status ("0": no response: refused, timed out, reset).
    statuses: dict[str, int] = field(default_factory=dict)
    #: Failed checks per check name.
    checks_failed: dict[str, int] = field(default_factory=dict)
    #: Iterations the executor could not start (k6's dropped_iterations): load not offered.
    dropped: int = 0
    #: Write items acknowledged to the load (the scenario's Writes), all writers together.
    acked: int = 0
    #: The population's agents in this second; None when no agent metric fell in it (a run
    #: without a population never has any).
    agents: AgentWindow | None = None

    def copy(self) -> Window:
        return Window(
            self.requests,
            self.failed,
            self.iterations,
            self.vus,
            self.duration.copy(),
            self.vus_max,
            {k: v.copy() for k, v in self.names.items()},
            dict(self.statuses),
            dict(self.checks_failed),
            self.dropped,
            self.acked,
            self.agents.copy() if self.agents is not None else None,
        )

    def merge(self, other: Window) -> None:
        self.merge_counts(other)
        self.duration.merge(other.duration)
        if other.agents is not None:
            assert self.agents is not None  # merge_counts made it
            for name, sketch in other.agents.sketches():
                getattr(self.agents, name).merge(sketch)
        for name, sketch in other.names.items():
            if name in self.names:
                self.names[name].merge(sketch)
            else:
                self.names[name] = sketch.copy()

    def merge_counts(self, other: Window) -> None:
        """Add ``other``'s counts, VUs and tallies (everything but its sketches)."""
        self.requests += other.requests
        self.failed += other.failed
        self.iterations += other.iterations
        self.vus += other.vus  # VUs of different runners add up
        self.vus_max += other.vus_max
        for mine, theirs in (
            (self.statuses, other.statuses),
            (self.checks_failed, other.checks_failed),
        ):
            for key, count in theirs.items():
                mine[key] = mine.get(key, 0) + count
        self.dropped += other.dropped
        self.acked += other.acked
        if other.agents is not None:
            if self.agents is None:
                self.agents = AgentWindow()
            self.agents.merge_counts(other.agents)

    def name_sketch(self, name: str) -> Sketch:
        """The sketch of requests named ``name`` (a kept name, or OTHER_NAME: the collector
        chooses, for every window alike)."""
        sketch = self.names.get(name)
        if sketch is None:
            sketch = self.names[name] = Sketch()
        return sketch

    def to_dict(self) -> dict[str, object]:
        agents = {"agents": self.agents.to_dict()} if self.agents is not None else {}
        return {
            "requests": self.requests,
            "failed": self.failed,
            "iterations": self.iterations,
            "vus": self.vus,
            "vus_max": self.vus_max,
            "duration": self.duration.to_dict(),
            "names": {k: v.to_dict() for k, v in sorted(self.names.items())},
            "statuses": dict(sorted(self.statuses.items())),
            "checks_failed": dict(sorted(self.checks_failed.items())),
            "dropped": self.dropped,
            "acked": self.acked,
            **agents,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Window:
        """A window from its document; DocumentError naming the field that is wrong."""
        duration = data.get("duration")
        if not isinstance(duration, dict):
            raise DocumentError("window.duration", duration, "a sketch document")
        counts: dict[str, int] = {}
        for name in ("requests", "failed", "iterations"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DocumentError(f"window.{name}", value, "an integer")
            counts[name] = value
        gauges: dict[str, float] = {}
        for name in ("vus", "vus_max"):
            value = data.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DocumentError(f"window.{name}", value, "a number")
            gauges[name] = float(value)
        names = data.get("names", {})
        if not isinstance(names, dict) or not all(isinstance(v, dict) for v in names.values()):
            raise DocumentError("window.names", names, "an object of sketch documents")
        tallies: dict[str, dict[str, int]] = {}
        for name in ("statuses", "checks_failed"):
            tally = data.get(name, {})
            if not isinstance(tally, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in tally.values()
            ):
                raise DocumentError(f"window.{name}", tally, "an object of integer counts")
            tallies[name] = {str(k): v for k, v in tally.items()}
        for name in ("dropped", "acked"):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DocumentError(f"window.{name}", value, "an integer")
            counts[name] = value
        agents = data.get("agents")
        if agents is not None and not isinstance(agents, dict):
            raise DocumentError("window.agents", agents, "an agent window document")
        return cls(
            requests=counts["requests"],
            failed=counts["failed"],
            iterations=counts["iterations"],
            vus=gauges["vus"],
            duration=Sketch.from_dict(duration),
            vus_max=gauges["vus_max"],
            names={str(k): Sketch.from_dict(v) for k, v in names.items()},
            statuses=tallies["statuses"],
            checks_failed=tallies["checks_failed"],
            dropped=counts["dropped"],
            acked=counts["acked"],
            agents=AgentWindow.from_dict(agents) if agents is not None else None,
        )
