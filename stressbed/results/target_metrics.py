"""The target's own metrics: Prometheus scrapes of its replicas turned into per-second series.

A scrape is parsed at once (prometheus-client's text parser) and only the selected families
are kept (:func:`parse`): a few numbers per replica per second, not the page. The series are
made after the run (:func:`series`): a counter becomes a per-second rate (a counter that went
down was reset by a restart and counts again from zero), a gauge stays a gauge, a histogram
gives its p95 per second from the bucket counts' increase (interpolated inside the bucket, as
PromQL's ``histogram_quantile`` does). Every replica's series add up to the stack's: rates and
gauges summed over the replicas, a histogram's buckets summed before its p95 is read.

A selector names a family and, optionally, the labels a sample must carry:
``agent_points_dropped``, ``agent_requests{status="429"}``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = ["MAX_SERIES", "Scrape", "Selector", "increases", "parse", "parse_selector", "series"]

#: Series kept at most (a family with many label sets is cut here; the report says how many
#: were dropped).
MAX_SERIES = 32

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"\s*')


@dataclass(frozen=True)
class Selector:
    family: str
    labels: tuple[tuple[str, str], ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels)


def parse_selector(text: str, field_name: str = "stack.metrics.series") -> Selector:
    """``name`` or ``name{label="value",...}``; ConfigError naming the field otherwise."""
    match = _SELECTOR.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ConfigError(field_name, text, 'a metric family, e.g. agent_requests{status="429"}')
    labels = []
    if match.group(2):
        for part in match.group(2).split(","):
            pair = _LABEL.fullmatch(part)
            if not pair:
                raise ConfigError(field_name, text, 'labels as name="value", comma-separated')
            labels.append((pair.group(1), pair.group(2)))
    return Selector(match.group(1), tuple(sorted(labels)))


@dataclass
class Scrape:
    """One replica's selected samples at one moment: ``(kind, key) -> value``, where kind is
    counter, gauge or histogram and a histogram's key ends in its bucket (``le``)."""

    t: float
    source: str
    samples: dict[tuple[str, str], float] = field(default_factory=dict)


def _key(family: str, labels: Mapping[str, str]) -> str:
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{family}{{{shown}}}" if shown else family


def parse(text: str, selectors: Sequence[Selector], t: float, source: str) -> Scrape:
    """The samples of ``text`` (Prometheus text format) that ``selectors`` select. A page
    that does not parse is an empty scrape (its replica said nothing usable this second)."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    scrape = Scrape(t, source)
    wanted = {s.family: [x for x in selectors if x.family == s.family] for s in selectors}
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError):
        return scrape
    for family in families:
        chosen = wanted.get(family.name)
        if not chosen:
            continue
        kind = family.type if family.type in ("counter", "histogram") else "gauge"
        for sample in family.samples:
            labels = dict(sample.labels)
            le = ""
            if kind == "histogram":
                if not sample.name.endswith("_bucket"):
                    continue  # _count and _sum: the +Inf bucket says as much
                le = labels.pop("le", "+Inf")
            elif kind == "counter" and not sample.name.endswith("_total"):
                continue  # _created: when the counter was made, not what it counts
            if not any(s.matches(labels) for s in chosen):
                continue
            key = _key(family.name, labels)
            scrape.samples[(kind, f"{key}|{le}" if le else key)] = float(sample.value)
    return scrape


def series(scrapes: Iterable[Scrape]) -> dict[str, list[tuple[int, float]]]:
    """Per-second series of the whole stack, by name: ``<key> /s`` for a counter's rate, the
    key for a gauge, ``<key> p95 ms`` for a histogram (its values in seconds, shown in ms).

    Each replica is settled second by second first (its last gauge value in a second; its
    counters' increase over the seconds it was watched, keyed by the second the interval
    began), and only then are the replicas added up: two scrapes of one replica that land
    in the same second count once."""
    by_source: dict[str, list[Scrape]] = {}
    for scrape in scrapes:
        by_source.setdefault(scrape.source, []).append(scrape)
    gauges: dict[str, dict[int, float]] = {}
    rates: dict[str, dict[int, float]] = {}
    buckets: dict[str, dict[int, dict[float, float]]] = {}
    for taken in by_source.values():
        taken.sort(key=lambda s: s.t)
        last: dict[str, dict[int, float]] = {}  # this replica's gauges, last value a second
        grown_in: dict[str, dict[int, list[float]]] = {}  # counter: second -> [grown, elapsed]
        for previous, scrape in zip([None, *taken], taken, strict=False):
            for (kind, key), value in scrape.samples.items():
                if kind == "gauge":
                    last.setdefault(key, {})[int(scrape.t)] = value
                    continue
                if previous is None or (kind, key) not in previous.samples:
                    continue
                elapsed = scrape.t - previous.t
                if elapsed <= 0:
                    continue
                before = previous.samples[(kind, key)]
                grown = value - before if value >= before else value  # reset: counts from 0
                second = int(previous.t)  # the interval it grew in began then
                if kind == "counter":
                    pair = grown_in.setdefault(key, {}).setdefault(second, [0.0, 0.0])
                    pair[0] += grown
                    pair[1] += elapsed
                else:
                    name, _, le = key.rpartition("|")
                    bound = math.inf if le in ("+Inf", "Inf") else float(le)
                    per_second = buckets.setdefault(name, {}).setdefault(second, {})
                    per_second[bound] = per_second.get(bound, 0.0) + grown
        for key, values in last.items():
            total = gauges.setdefault(key, {})
            for second, value in values.items():
                total[second] = total.get(second, 0.0) + value
        for key, per in grown_in.items():
            total = rates.setdefault(key, {})
            for second, (grown, elapsed) in per.items():
                total[second] = total.get(second, 0.0) + grown / elapsed
    out: dict[str, list[tuple[int, float]]] = {}
    for key, values in sorted(gauges.items()):
        out[key] = sorted(values.items())
    for key, values in sorted(rates.items()):
        out[f"{key} /s"] = sorted(values.items())
    for key, histogram in sorted(buckets.items()):
        points = []
        for at, counts in sorted(histogram.items()):
            p95 = _quantile(0.95, counts)
            if p95 is not None:
                points.append((at, p95 * 1000.0))
        out[f"{key} p95 ms"] = points
    return out


def increases(scrapes: Iterable[Scrape]) -> dict[str, float]:
    """Each counter's increase over the time it was watched, replicas added up: exact where
    :func:`series` gives rates (a counter that went down was reset, and counts from 0)."""
    by_source: dict[str, list[Scrape]] = {}
    for scrape in scrapes:
        by_source.setdefault(scrape.source, []).append(scrape)
    total: dict[str, float] = {}
    for taken in by_source.values():
        taken.sort(key=lambda s: s.t)
        for previous, scrape in itertools.pairwise(taken):
            for (kind, key), value in scrape.samples.items():
                if kind != "counter" or (kind, key) not in previous.samples:
                    continue
                before = previous.samples[(kind, key)]
                total[key] = total.get(key, 0.0) + (value - before if value >= before else value)
    return dict(sorted(total.items()))


def _quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """``histogram_quantile``: the q-quantile from cumulative bucket counts (upper bound ->
    count), linear inside the bucket; None with no observation."""
    bounds = sorted(cumulative)
    if not bounds:
        return None
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is what is known
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower
