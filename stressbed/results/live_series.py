"""The run so far as it leaves stressbed while it runs: each second the whole fleet has closed,
folded in once, as cumulative counters, gauges and histograms in Prometheus's text format.

What leaves is mergeable, never a percentile (DESIGN.md, "Live means merged"): latency leaves
as histogram buckets counted from the fleet's merged sketches, so Prometheus's
``histogram_quantile`` over them is a percentile of the whole fleet, and so is a sum over
request names or over time. The bucket bounds are sketch bucket bounds (``gamma^k`` ms for
every :data:`BUCKET_STEP`-th ``k``), so each bucket's count is exact; a quantile read from
them is within :data:`RESOLUTION` of the sketch's own (``histogram_quantile`` interpolates
inside one bucket), and the sketch is within its 0.5 % of k6's.

A second is folded in once (:meth:`LiveSeries.seal`), in order; a later one never re-opens an
earlier one, so the counters only grow and, once every second is sealed, equal the run's.
Each sealed second is also kept whole (:attr:`LiveSeries.windows`: what the live page draws,
about as much memory as the run's own merged windows), and so is their running total, on
which each threshold a second can judge is judged now (:func:`threshold_states`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from ..scenario.thresholds import Threshold
from .agents import AgentWindow
from .aggregates import Window
from .sketch import ACCURACY, Sketch
from .timeline import observe_window

__all__ = [
    "BUCKET_STEP",
    "RESOLUTION",
    "STATES",
    "LiveSeries",
    "bucket_bounds_ms",
    "threshold_states",
]

#: A threshold's state while the run goes on: holding, failing, nothing to judge yet, or one
#: the merged seconds cannot judge (a check or an agent metric: judged when the run ends).
STATES = ("pass", "fail", "no_data", "at_end")

_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
#: Sketch buckets per histogram bucket: bounds about 10.5 % apart.
BUCKET_STEP = 10
#: The sketch keys of the lowest and highest bound: about 0.5 ms and 60 s (above: +Inf).
_LOWEST, _HIGHEST = -70, 1100
#: How far a quantile read from the exported buckets may be from the sketch's (relative):
#: one bucket's width, ``gamma^BUCKET_STEP - 1``.
RESOLUTION = _GAMMA**BUCKET_STEP - 1
_AGENT_COUNTERS = (
    ("joined", "agents_joined", "Agents that joined (churned agents again on each return)."),
    ("left", "agents_left", "Agents that left (churn and the end)."),
    ("connect_attempts", "agent_connect_attempts", "Channel connection attempts."),
    ("connects", "agent_connects", "Channels established."),
    ("reconnects", "agent_reconnects", "Channels established again after a loss."),
    ("gave_up", "agents_gave_up", "Agents that spent their retry budget."),
    ("checkins_missed", "agent_checkins_missed", "Check-ins not sent: no channel at the time."),
)


def bucket_bounds_ms() -> list[tuple[int, float]]:
    """(sketch key, upper bound in ms) of each finite histogram bucket, ascending."""
    return [(k, _GAMMA**k) for k in range(_LOWEST, _HIGHEST + 1, BUCKET_STEP)]


_BOUNDS = bucket_bounds_ms()


def _le(bound_ms: float) -> str:
    """A bound as Prometheus's ``le`` label: seconds, enough digits to tell bounds apart."""
    return f"{bound_ms / 1000:.6g}"


_LE = [_le(bound) for _, bound in _BOUNDS]


@dataclass
class _Histogram:
    """A latency distribution folded from sketches into the exported buckets."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(_BOUNDS) + 1))
    count: int = 0
    total_ms: float = 0.0

    def add(self, sketch: Sketch) -> None:
        if not sketch.count:
            return
        self.count += sketch.count
        self.total_ms += sketch.total
        self.counts[0] += sketch.zeros  # at or below any bound
        for key, n in sketch.buckets.items():
            # Bucket k holds (gamma^(k-1), gamma^k]: under the first bound whose key is >= k.
            index = max(0, math.ceil((key - _LOWEST) / BUCKET_STEP))
            self.counts[min(index, len(_BOUNDS))] += n

    def rows(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for le, n in zip(_LE, self.counts, strict=False):
            cumulative += n
            out.append((le, float(cumulative)))
        out.append(("+Inf", float(self.count)))
        return out


@dataclass
class _Agents:
    counts: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    disconnects: dict[str, int] = field(default_factory=dict)
    connected: int = 0

    def add(self, agents: AgentWindow) -> None:
        self.connected += agents.connected_change
        for name, _, _ in _AGENT_COUNTERS:
            self.counts[name] = self.counts.get(name, 0) + getattr(agents, name)
        for into, tally in ((self.failures, agents.connect_failures),
                            (self.disconnects, agents.disconnects)):  # fmt: skip
            for reason, n in tally.items():
                into[reason] = into.get(reason, 0) + n


class LiveSeries(Collector):
    """The fleet's sealed seconds, folded: a prometheus_client collector, and its text."""

    def __init__(
        self,
        identity: Mapping[str, str] | None = None,
        lock: contextlib.AbstractContextManager[object] | None = None,
    ) -> None:
        #: Labels on every series: the run's identity (``run_id``, ``scenario``).
        self.identity = dict(identity or {})
        #: Where it is served (its server says), for the run's summary; None: not served.
        self.url: str | None = None
        self.sealed: int | None = None  # the last second folded in
        self.requests: dict[str, int] = {}
        self.latency: dict[str, _Histogram] = {}
        self.failures: dict[str, int] = {}
        self.checks_failed: dict[str, int] = {}
        self.iterations = 0
        self.dropped = 0
        self.vus = 0.0
        self.vus_max = 0.0
        self.agents: _Agents | None = None
        #: Every sealed second, merged over the fleet, and their running total.
        self.windows: dict[int, Window] = {}
        self.total = Window()
        #: The scenario's thresholds, judged on the running total (execute sets them).
        self.thresholds: list[Threshold] = []
        #: Each runner's own seconds (index -> second -> requests, dropped, k6's cores): the
        #: live page's runner lanes; what a snapshot brings, kept as long as the windows.
        self.runners: dict[int, dict[str, dict[int, float]]] = {}
        #: The stack's report so far (execute sets it once the stack is up; None: no stack):
        #: its last sample is exported as gauges, replicas and each replica's usage.
        self.stack: Callable[[], Mapping[str, Any]] | None = None
        # Sealed by the fleet's thread, read by a server's: its owner gives a lock.
        self._lock = lock if lock is not None else contextlib.nullcontext()

    def seal(self, second: int, window: Window) -> bool:
        """Fold in ``second``, merged over the whole fleet; False (nothing done) for a second
        at or before the last one sealed: a second is counted once."""
        with self._lock:
            return self._seal(second, window)

    def fill(self, windows: Mapping[int, Window]) -> int:
        """Seal, in order, each of the run's merged ``windows`` after the last one sealed (at
        its end: the seconds no live snapshot brought); how many."""
        with self._lock:
            return sum(self._seal(t, windows[t]) for t in sorted(windows))

    def _seal(self, second: int, window: Window) -> bool:
        if self.sealed is not None and second <= self.sealed:
            return False
        self.sealed = second
        self.windows[second] = window
        self.total.merge(window)
        for name, sketch in window.names.items():
            self.requests[name] = self.requests.get(name, 0) + sketch.count
            self.latency.setdefault(name, _Histogram()).add(sketch)
        for status, n in window.statuses.items():
            self.failures[status] = self.failures.get(status, 0) + n
        for check, n in window.checks_failed.items():
            self.checks_failed[check] = self.checks_failed.get(check, 0) + n
        self.iterations += window.iterations
        self.dropped += window.dropped
        self.vus, self.vus_max = window.vus, window.vus_max
        if window.agents is not None:
            if self.agents is None:
                self.agents = _Agents()
            self.agents.add(window.agents)
        return True

    def runner_seconds(
        self, index: int, windows: Mapping[int, Window], cpu: Mapping[int, float]
    ) -> None:
        """Runner ``index``'s seconds (its requests and dropped iterations) and its k6's CPU
        (a sample at second s covers the second before it)."""
        with self._lock:
            lanes = self.runners.setdefault(index, {"requests": {}, "dropped": {}, "cpu": {}})
            for t, window in windows.items():
                lanes["requests"][t] = float(window.requests)
                lanes["dropped"][t] = float(window.dropped)
            lanes["cpu"].update(cpu)

    def runner_lanes(self) -> list[dict[str, dict[int, float]]]:
        """Each runner's seconds so far, by index (copies)."""
        with self._lock:
            count = max(self.runners, default=-1) + 1
            empty: dict[str, dict[int, float]] = {"requests": {}, "dropped": {}, "cpu": {}}
            return [
                {k: dict(v) for k, v in self.runners.get(i, empty).items()} for i in range(count)
            ]

    def snapshot(self) -> dict[int, Window]:
        """The sealed seconds so far (the dict is a copy; a sealed window never changes)."""
        with self._lock:
            return dict(self.windows)

    def last(self) -> Window | None:
        """The last sealed second (None: none yet)."""
        with self._lock:
            return self.windows.get(self.sealed) if self.sealed is not None else None

    def seconds(self) -> int:
        """How many seconds are sealed, from the first to the last (gaps included)."""
        return self.sealed - min(self.windows) + 1 if self.windows and self.sealed else 0

    def states(self) -> list[tuple[Threshold, str, float | None]]:
        """Each threshold's state now, and what was observed (None: nothing)."""
        with self._lock:
            return threshold_states(self.thresholds, self.total, self.seconds())

    # -- exposition -----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Everything, in Prometheus's text format (version 0.0.4)."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        with self._lock:
            return generate_latest(registry)

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        """Everything as (sample name, labels, value), the exposition's samples without its
        text (what a remote-write push sends)."""
        with self._lock:
            return [
                (s.name, dict(s.labels), float(s.value)) for m in self.collect() for s in m.samples
            ]

    def _stack(self) -> Iterator[Metric]:
        """The stack's last sample: replicas desired, running and ready; each replica's CPU
        and memory, and their limits. Nothing when there is no stack or no sample yet."""
        try:
            report = self.stack() if self.stack is not None else {}
        except Exception:  # a stack mid-change: no sample this scrape, not a failed scrape
            return
        rows = report.get("timeseries") or []
        if not rows or not isinstance(rows[-1], Mapping):
            return
        last, values = rows[-1], list(self.identity.values())
        replicas = GaugeMetricFamily(
            "stressbed_stack_replicas",
            "The stack's replicas at its last sample, by state: desired, running, ready.",
            labels=[*self.identity, "state"],
        )
        for state, key in (("desired", "desired"), ("running", "replicas"), ("ready", "ready")):
            if isinstance(last.get(key), int | float):
                replicas.add_metric([*values, state], float(last[key]))
        yield replicas
        limits = report.get("limits") or {}
        for key, name, doc, scale in (
            ("cpu_m", "stressbed_replica_cpu_millicores", "Each replica's CPU use.", 1.0),
            ("memory_mib", "stressbed_replica_memory_bytes", "Each replica's working set.",
             float(2**20)),
        ):  # fmt: skip
            family = GaugeMetricFamily(name, doc, labels=[*self.identity, "replica"])
            for replica, usage in sorted((last.get("pods") or {}).items()):
                if isinstance(usage, Mapping) and isinstance(usage.get(key), int | float):
                    family.add_metric([*values, str(replica)], float(usage[key]) * scale)
            yield family
            if isinstance(limits.get(key), int | float):
                yield self._gauge(
                    name.removeprefix("stressbed_").replace("replica_", "replica_limit_"),
                    f"A replica's limit ({key}).",
                    float(limits[key]) * scale,
                )

    def _counter(self, name: str, doc: str, extra: str | None = None) -> CounterMetricFamily:
        keys = list(self.identity)
        return CounterMetricFamily(
            f"stressbed_{name}", doc, labels=[*keys, extra] if extra else keys
        )

    def _gauge(self, name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"stressbed_{name}", doc, labels=list(self.identity))
        family.add_metric(list(self.identity.values()), value)
        return family

    def _tally(
        self, name: str, doc: str, label: str, tally: Mapping[str, int]
    ) -> CounterMetricFamily:
        family = self._counter(name, doc, label)
        values = list(self.identity.values())
        for key, n in sorted(tally.items()):
            family.add_metric([*values, key], n)
        return family

    def collect(self) -> Iterator[Metric]:
        values = list(self.identity.values())
        yield self._tally(
            "http_requests", "HTTP requests the fleet made.", "request", self.requests
        )
        yield self._tally(
            "http_request_failures",
            "Failed requests by status (0: no response).",
            "status",
            self.failures,
        )
        latency = HistogramMetricFamily(
            "stressbed_http_request_duration_seconds",
            "Request latency, fleet-merged: sum by (le) before histogram_quantile.",
            labels=[*self.identity, "request"],
        )
        for name, histogram in sorted(self.latency.items()):
            latency.add_metric([*values, name], histogram.rows(), histogram.total_ms / 1000)
        yield latency
        yield self._tally(
            "check_failures", "Failed checks by check name.", "check", self.checks_failed
        )
        for name, doc, n in (
            ("iterations", "Iterations completed.", self.iterations),
            ("dropped_iterations", "Iterations the executors could not start.", self.dropped),
        ):
            family = self._counter(name, doc)
            family.add_metric(values, n)
            yield family
        yield self._gauge("vus", "Active VUs in the last sealed second, summed.", self.vus)
        yield self._gauge("vus_max", "VUs initialised in the last sealed second.", self.vus_max)
        if self.sealed is not None:
            yield self._gauge(
                "sealed_second_timestamp_seconds",
                "The last second every runner had closed (unix time).",
                float(self.sealed),
            )
        yield from self._stack()
        if self.thresholds:
            state = GaugeMetricFamily(
                "stressbed_threshold_state",
                "Each threshold's state now (1: this state): pass, fail, no_data, at_end.",
                labels=[*self.identity, "threshold", "state"],
            )
            for threshold, now, _ in threshold_states(self.thresholds, self.total, self.seconds()):
                label = f"{threshold.key}: {threshold.expression}"
                for name in STATES:
                    state.add_metric([*values, label, name], float(name == now))
            yield state
        agents = self.agents
        if agents is None:
            return
        yield self._gauge("agents_connected", "Agents with a channel open now.", agents.connected)
        for field_name, name, doc in _AGENT_COUNTERS:
            family = self._counter(name, doc)
            family.add_metric(values, agents.counts.get(field_name, 0))
            yield family
        yield self._tally(
            "agent_connect_failures",
            "Failed connection attempts by reason.",
            "reason",
            agents.failures,
        )
        yield self._tally(
            "agent_disconnects", "Channels lost by reason.", "reason", agents.disconnects
        )


def threshold_states(
    thresholds: list[Threshold], total: Window, seconds: int
) -> list[tuple[Threshold, str, float | None]]:
    """Each of ``thresholds`` judged on ``total`` (the merged seconds so far, ``seconds`` of
    them): its state (:data:`STATES`) and the value observed (None: none)."""
    out: list[tuple[Threshold, str, float | None]] = []
    for threshold in thresholds:
        waiting = threshold.delay_ms and seconds * 1000 < threshold.delay_ms
        observed = None if waiting else observe_window(total, threshold, seconds)
        if observed is not None:
            out.append((threshold, "pass" if threshold.passes(observed) else "fail", observed))
        elif _judged_live(threshold):
            out.append((threshold, "no_data", None))
        else:
            out.append((threshold, "at_end", None))
    return out


def _judged_live(threshold: Threshold) -> bool:
    """Whether a second's window can judge ``threshold`` (what observe_window reads)."""
    tags = set(dict(threshold.tags))
    if threshold.metric == "http_req_duration":
        return tags <= {"name"}
    return not tags and (threshold.metric, threshold.aggregation) in (
        ("http_req_failed", "rate"),
        ("http_reqs", "rate"),
    )
