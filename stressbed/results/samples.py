"""Collecting a runner's results from k6's CSV sample stream, in bounded memory.

k6 writes one CSV line per sample (``--out csv=FIFO``). The collector keeps only additive
aggregates: per metric (and per tag selector that a threshold uses) a count/sum/min/max and a
:class:`~stressbed.results.sketch.Sketch` for trends, counts for counters, passes/total for
rates, and last/min/max for gauges; per 1 s window what the fleet time series and the report
need (requests, failures by status, failed checks, dropped iterations, a latency sketch overall
and per request name, VUs; and a population's agents once one of its metrics is met: joins,
leaves, connects, failures and disconnects by reason, and its four trends' sketches). The
population's counters are also kept by ``reason`` whole-run (``agent_disconnects{reason:churn}``).
Raw samples are never kept, so memory does not grow with the request count. Everything the
collector builds merges exactly across runners (:mod:`stressbed.results.aggregates`).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..scenario.thresholds import AGENT_METRICS, METRICS, SYSTEM_TAGS
from ..scenario.writes import ACKED_METRIC, WRITER_TAG
from .agents import FIELDS, AgentWindow
from .aggregates import MAX_FOLDED_LISTED, MAX_NAMES, OTHER_NAME, Aggregate, Window
from .sketch import bucket_key

__all__ = ["CSV_COLUMNS", "REASON_TAG", "SYSTEM_TAGS", "Collector", "Selector", "parse_selector"]

#: k6's CSV columns with every system tag on; a header line in the stream overrides them.
CSV_COLUMNS = [
    *("metric_name", "timestamp", "metric_value", "check", "error", "error_code"),
    *("expected_response", "group", "method", "name", "proto", "scenario", "service"),
    *("status", "subproto", "tls_version", "url", "extra_tags", "metadata"),
]
_SELECTOR = re.compile(r"([A-Za-z0-9_]+)(?:\{(.*)\})?")

#: The tag a population's failures and disconnects carry (in k6's extra_tags: a custom tag).
REASON_TAG = "reason"

#: Metrics every run aggregates (k6's names); a population's (AGENT_METRICS) whenever they
#: appear; thresholds may add more.
SUMMARY_METRICS = frozenset(
    {
        "checks",
        "data_received",
        "data_sent",
        "dropped_iterations",
        "group_duration",
        "http_req_duration",
        "http_req_failed",
        "http_reqs",
        "iteration_duration",
        "iterations",
        "vus",
        "vus_max",
    }
)


#: Writers counted apart at most; the acknowledged writes of any more are counted together
#: under OTHER_WRITERS (and then cannot be read back one by one).
MAX_WRITERS = 100_000
OTHER_WRITERS = ""

#: What k6 emits with every http_req_duration sample (see Collector._set_header).
DERIVED = frozenset({"http_reqs", "http_req_failed"})
#: Counters only the end-of-test figures show, one line each per iteration: taken from k6's
#: own summary export when the runner ends (:meth:`Collector.take_summary`; a count, exact,
#: and counts add across runners), their lines skipped, unless a threshold reads them.
FROM_SUMMARY = frozenset({"data_sent", "data_received"})

#: The metrics the per-second windows are built from.
_WINDOW_METRICS = frozenset(
    {
        *("http_req_duration", "http_reqs", "http_req_failed", "iterations", "vus", "vus_max"),
        *("checks", "dropped_iterations"),
    }
)


@dataclass(frozen=True)
class Selector:
    """A metric restricted to samples carrying all of ``tags`` (``http_req_duration{name:a}``)."""

    metric: str
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}:{v}" for k, v in self.tags) + "}"


def parse_selector(key: str) -> Selector:
    """The selector of a k6 threshold key such as ``http_req_failed{name:report,status:500}``."""
    match = _SELECTOR.fullmatch(key.strip())
    if not match:
        raise ValueError(f"not a k6 metric key: {key!r}")
    tags: list[tuple[str, str]] = []
    if match.group(2):
        for part in match.group(2).split(","):
            name, _, value = part.partition(":")
            tags.append((name.strip(), value.strip()))
    return Selector(match.group(1), tuple(sorted(tags)))


class Collector:
    """Feeds k6 CSV lines into aggregates; ``selectors`` are the submetrics to keep apart.

    ``names``: the request names the scenario declares (its bundle's config.json, the same on
    every runner), of which the first MAX_NAMES get their own per-second latency; any other
    name is counted under OTHER_NAME and listed in ``folded``. Without them, the first
    MAX_NAMES names this collector meets are kept, which another runner may choose otherwise:
    ``folded`` then says which of its names a merged per-name sketch misses.
    """

    def __init__(self, selectors: Iterable[Selector] = (), names: Sequence[str] = ()) -> None:
        self.aggregates: dict[str, Aggregate] = {}
        self.windows: dict[int, Window] = {}
        self.samples = 0
        #: Write items acknowledged per writer (the scenario's Writes).
        self.writes: dict[str, int] = {}
        #: Lines that could not be used: cut short (k6 killed mid-write) or malformed.
        self.bad_lines = 0
        self._declared = bool(names)
        #: The request names the windows keep apart; the rest go under OTHER_NAME.
        self.kept = set(list(dict.fromkeys(names))[:MAX_NAMES])
        #: Names counted under OTHER_NAME (at most MAX_FOLDED_LISTED; ``folded_more``: more).
        self.folded: set[str] = set()
        self.folded_more = False
        expected = Selector("http_req_duration", (("expected_response", "true"),))
        self._selectors = {*selectors, expected}
        wanted = set(SUMMARY_METRICS) | set(AGENT_METRICS) | {s.metric for s in self._selectors}
        self._wanted = frozenset(m for m in wanted if m in METRICS)
        self._from_summary = FROM_SUMMARY - {s.metric for s in self._selectors}
        self._submetrics: dict[str, list[tuple[str, list[tuple[int, str]]]]] = {}
        # The last sample of each VU gauge: (its second, its value).
        self._vus: tuple[int, float] = (-1, 0.0)
        self._vus_max: tuple[int, float] = (-1, 0.0)
        self._set_header(CSV_COLUMNS)

    def _set_header(self, columns: list[str]) -> None:
        """Column positions from k6's header line (``--system-tags`` changes the columns)."""
        index = {name: i for i, name in enumerate(columns)}
        self._width = len(columns)
        self._extra = index.get("extra_tags", -1)
        self._name = index.get("name", -1)
        self._status = index.get("status", -1)
        self._check = index.get("check", -1)
        # Every request's samples share its tags and its time, and k6 tags a request with
        # expected_response exactly when it also emits its http_req_failed (a response
        # callback is set; by default it is). So http_reqs (always 1) and http_req_failed
        # (0 or 1) are read off the request's http_req_duration line, and their own lines,
        # two of every three a request costs, are skipped unread.
        self._expected = index.get("expected_response", -1)
        derived = DERIVED if self._expected >= 0 else frozenset()
        self._lines = frozenset(self._wanted - derived - self._from_summary)
        self._submetrics = {}
        for selector in self._selectors:
            if not selector.tags:
                continue
            matchers = [(index[k], v) if k in index else (-1, f"{k}={v}") for k, v in selector.tags]
            self._submetrics.setdefault(selector.metric, []).append((selector.key, matchers))

    def take_summary(self, summary: Mapping[str, Any]) -> None:
        """The counters read from k6's summary export (``--summary-export``) rather than from
        their lines: data sent and received."""
        metrics = summary.get("metrics", {}) if isinstance(summary, Mapping) else {}
        for metric in sorted(self._from_summary):
            count = (metrics.get(metric) or {}).get("count")
            if isinstance(count, int | float) and not isinstance(count, bool):
                self.aggregates[metric] = Aggregate("counter", total=float(count))

    def feed_lines(self, lines: Iterable[str]) -> None:
        """Lines of k6's CSV, with or without their line ends; a last line cut short (k6 was
        killed mid-write) is counted in ``bad_lines``."""
        wanted = self._lines
        for line in lines:
            metric = line[: line.find(",")]
            if metric not in wanted:
                if metric == ACKED_METRIC:
                    self._feed_write(line)
                elif metric == "metric_name":
                    self._set_header(line.rstrip("\r\n").split(","))
                    wanted = self._lines
                continue
            row = next(csv.reader((line,))) if '"' in line else line.rstrip("\r\n").split(",")
            if len(row) < self._width:
                self.bad_lines += 1  # a partial line: k6 was killed mid-write
                continue
            try:
                if metric == "http_req_duration" and self._expected >= 0:
                    self._feed_request(row)
                else:
                    self.feed(row)
            except (ValueError, KeyError):
                self.bad_lines += 1  # never let one odd line stop the stream being drained

    def _feed_write(self, line: str) -> None:
        row = next(csv.reader((line,))) if '"' in line else line.rstrip("\r\n").split(",")
        if len(row) < self._width or self._extra < 0:
            self.bad_lines += 1
            return
        prefix = WRITER_TAG + "="
        tags = row[self._extra].split("&")
        writer = next((t[len(prefix) :] for t in tags if t.startswith(prefix)), None)
        try:
            second, value = int(row[1]), int(float(row[2]))
        except ValueError:
            self.bad_lines += 1
            return
        if writer is None:
            self.bad_lines += 1
            return
        self.samples += 1
        if writer in self.writes or len(self.writes) < MAX_WRITERS:
            self.writes[writer] = self.writes.get(writer, 0) + value
        else:
            self.writes[OTHER_WRITERS] = self.writes.get(OTHER_WRITERS, 0) + value
        window = self.windows.get(second)
        if window is None:
            window = self.windows[second] = Window(vus=self._vus[1], vus_max=self._vus_max[1])
        window.acked += value

    def _has_extra(self, row: list[str], want: str) -> bool:
        # A custom tag: k6 writes them as name=value pairs joined by '&' in extra_tags.
        return self._extra >= 0 and want in row[self._extra].split("&")

    def _feed_request(self, row: list[str]) -> None:
        """A request's http_req_duration line, with the http_reqs and http_req_failed samples
        k6 emitted beside it (the same tags, the same time): the hot path, one per request."""
        value = float(row[2])
        second = int(row[1])
        expected = row[self._expected]
        key = bucket_key(value)
        metric = self._metric
        metric("http_req_duration").sketch.add_keyed(value, key)
        requests = metric("http_reqs")
        requests.count += 1
        requests.total += 1.0
        subs = self._submetrics
        if subs:
            self._add_submetrics("http_req_duration", row, value, key, 0)
            self._add_submetrics("http_reqs", row, 1.0, None, 0)
        window = self.windows.get(second) or self._new_window(second)
        window.duration.add_keyed(value, key)
        if self._name >= 0:
            name = row[self._name]
            window.name_sketch(name if name in self.kept else self._fold(name)).add_keyed(
                value, key
            )
        window.requests += 1
        if not expected:  # no response callback: k6 emitted no http_req_failed either
            self.samples += 2
            return
        self.samples += 3
        failed = expected != "true"
        rate = metric("http_req_failed")
        rate.count += 1
        if subs:
            self._add_submetrics("http_req_failed", row, float(failed), None, 0)
        if failed:
            rate.total += 1
            window.failed += 1
            status = (row[self._status] if self._status >= 0 else "") or "0"
            window.statuses[status] = window.statuses.get(status, 0) + 1

    def _fold(self, name: str) -> str:
        """The window name of a request name not (yet) kept: itself while a collector without
        declared names has room, else OTHER_NAME, the name noted as folded."""
        if not self._declared and len(self.kept) < MAX_NAMES:
            self.kept.add(name)
            return name
        if name not in self.folded:
            if len(self.folded) < MAX_FOLDED_LISTED:
                self.folded.add(name)
            else:
                self.folded_more = True
        return OTHER_NAME

    def _metric(self, name: str) -> Aggregate:
        agg = self.aggregates.get(name)
        if agg is None:
            agg = self.aggregates[name] = Aggregate(METRICS[name])
        return agg

    def _add_submetrics(
        self, metric: str, row: list[str], value: float, key: int | None, second: int
    ) -> None:
        kind = METRICS[metric]
        for sub_key, matchers in self._submetrics.get(metric, ()):
            for column, want in matchers:
                if not (row[column] == want if column >= 0 else self._has_extra(row, want)):
                    break
            else:
                sub = self.aggregates.get(sub_key)
                if sub is None:
                    sub = self.aggregates[sub_key] = Aggregate(kind)
                sub.add(value, key, second)

    def _new_window(self, second: int) -> Window:
        # k6 samples its VU gauges about once a second, not once in every second: a second
        # without a sample of its own holds the last value (as a gauge does).
        window = self.windows[second] = Window(vus=self._vus[1], vus_max=self._vus_max[1])
        return window

    def feed(self, row: list[str]) -> None:
        """One sample's row (a line read whole; the request's http_req_duration line is read
        by :meth:`_feed_request` where the stream carries expected_response)."""
        metric = row[0]
        value = float(row[2])
        self.samples += 1
        agg = self._metric(metric)
        key = bucket_key(value) if agg.kind == "trend" else None  # one log per sample
        gauge_second = int(row[1]) if agg.kind == "gauge" else 0
        agg.add(value, key, gauge_second)
        if metric in self._submetrics:
            self._add_submetrics(metric, row, value, key, gauge_second)
        if metric in FIELDS:
            self._feed_agent(row, metric, value, key)
            return
        if metric not in _WINDOW_METRICS:
            return
        second = int(row[1])
        window = self.windows.get(second) or self._new_window(second)
        if metric == "http_req_duration":
            window.duration.add_keyed(value, key)
            if self._name >= 0:
                name = row[self._name]
                window.name_sketch(name if name in self.kept else self._fold(name)).add_keyed(
                    value, key
                )
        elif metric == "http_reqs":
            window.requests += int(value)
        elif metric == "http_req_failed":
            if value != 0:
                window.failed += 1
                status = row[self._status] if self._status >= 0 else ""
                window.statuses[status or "0"] = window.statuses.get(status or "0", 0) + 1
        elif metric == "checks":
            if value == 0 and self._check >= 0:
                check = row[self._check]
                window.checks_failed[check] = window.checks_failed.get(check, 0) + 1
        elif metric == "dropped_iterations":
            window.dropped += int(value)
        elif metric == "iterations":
            window.iterations += int(value)
        elif metric == "vus":
            # The second's first sample replaces the value carried in; later ones, the max.
            window.vus = value if self._vus[0] != second else max(window.vus, value)
            self._vus = (second, value)
        else:
            window.vus_max = value if self._vus_max[0] != second else max(window.vus_max, value)
            self._vus_max = (second, value)

    def _feed_agent(self, row: list[str], metric: str, value: float, key: int | None) -> None:
        """A population's sample into its second's agent window (made at the first one)."""
        second = int(row[1])
        window = self.windows.get(second) or self._new_window(second)
        agents = window.agents
        if agents is None:
            agents = window.agents = AgentWindow()
        how, name = FIELDS[metric]
        if how == "sketch":
            getattr(agents, name).add_keyed(value, key)
            return
        count = int(value)
        if how == "count":
            setattr(agents, name, getattr(agents, name) + count)
            return
        reason = self._reason(row)
        tally = agents.tally(name)
        tally[reason] = tally.get(reason, 0) + count
        # Whole-run by reason too, as a submetric of the counter (merged by key as any).
        sub_key = f"{metric}{{{REASON_TAG}:{reason}}}"
        sub = self.aggregates.get(sub_key)
        if sub is None:
            sub = self.aggregates[sub_key] = Aggregate("counter")
        sub.add(value)

    def _reason(self, row: list[str]) -> str:
        """The sample's ``reason`` tag (a custom tag: in extra_tags); "unknown" without one."""
        prefix = REASON_TAG + "="
        if self._extra >= 0:
            for tag in row[self._extra].split("&"):
                if tag.startswith(prefix):
                    return tag[len(prefix) :] or "unknown"
        return "unknown"
