"""Is this run worse than the baseline, or is that noise? Run against run, metric by metric.

For each compared metric (p50/p95/p99 of ``http_req_duration`` overall and per request name,
the error rate, the achieved requests/s) the change from BASE to CANDIDATE comes with a 95%
confidence interval from each run's own second-to-second variation: a moving-block bootstrap
over the merged per-second windows of both runs (blocks of consecutive seconds keep the
seconds' correlation). Resampled seconds are merged exactly (their sketches' bucket counts
added), so a resampled p95 is a p95 of merged data, never a percentile of percentiles.

A metric's verdict, against its tolerance (latency and requests/s: a relative change, default
10%; the error rate: percentage points, default 0.5): ``regressed`` when the whole interval is
worse than the tolerance, ``improved`` when it is all better than it, ``unchanged`` when it
lies within it, ``inconclusive`` when it straddles it. The comparison is ``regressed`` if any
metric is. The same data on both sides (a run against itself) is resampled once, for both:
its change is 0 within [0, 0]. A percentile with fewer than 10 samples beyond it in a run (a
p99 of fewer than 1,000 requests) is not judged: it is listed as skipped.

Runs compare only like for like: each carries a fingerprint of what it ran (the rendered
config, the scenario's duration, the runners, the backend, the stack); :func:`differences`
names what differs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .aggregates import Window
from .sketch import bucket_value

__all__ = [
    "MIN_SECONDS",
    "Comparison",
    "MetricChange",
    "Tolerances",
    "compare",
    "differences",
    "fingerprint",
    "fingerprint_digest",
    "loaded_seconds",
]

CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_SECONDS = 3  # seconds of load each run needs for an interval
#: Samples a run needs beyond a percentile for it to be judged (p99: 1,000 samples).
MIN_TAIL = 10
#: Request names compared one by one (the most requested that both runs have); not the
#: timeline's charted names, which are another choice with its own count.
COMPARED_NAMES = 8
#: Fingerprint fields, in the order a difference is named.
FINGERPRINT_FIELDS = ("scenario", "config", "duration_s", "runners", "backend", "stack")


def fingerprint(
    *,
    scenario: str,
    config: Any,
    duration_s: float,
    runners: int,
    backend: str | None,
    stack: Any,
) -> dict[str, Any]:
    """What a run ran, to tell like from unlike: the rendered k6 config and the stack spec
    as digests (``stack``: any JSON-able description, or None for ``--target-url``)."""

    def digest(value: Any) -> str:
        text = json.dumps(_normal(value), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    return {
        "scenario": scenario,
        "config": digest(config),
        "duration_s": round(float(duration_s), 3),
        "runners": runners,
        "backend": backend,
        "stack": digest(stack) if stack is not None else None,
    }


def fingerprint_digest(fingerprint: Mapping[str, Any]) -> str:
    """A run's fingerprint (what ran: scenario, profile, runners, stack) as 12 hex digits: the
    name of its like-for-like series (the live endpoint's, the history's)."""
    text = json.dumps(fingerprint, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _normal(value: Any) -> Any:
    """``value`` with every whole float as an int (2.0 and 2 are the same timeout)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def differences(base: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, one phrase each (empty: like for like)."""
    out = []
    for name in FINGERPRINT_FIELDS:
        if base.get(name) != candidate.get(name):
            what = {"config": "the rendered k6 config", "stack": "the stack spec"}.get(name, name)
            if name in ("config", "stack"):
                out.append(f"{what} differs")
            else:
                out.append(f"{what}: {base.get(name)!r} vs {candidate.get(name)!r}")
    return out


@dataclass(frozen=True)
class Tolerances:
    latency: float = 0.10  # relative
    throughput: float = 0.10  # relative
    error_rate_pp: float = 0.5  # percentage points


@dataclass(frozen=True)
class MetricChange:
    metric: str  # "http_req_duration p(95)", "http_req_duration{name:report} p(99)", ...
    base: float
    candidate: float
    change: float  # relative (latency, throughput) or percentage points (error rate)
    low: float
    high: float
    unit: str  # "relative" or "pp"
    tolerance: float
    verdict: str  # regressed, improved, unchanged, inconclusive

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "base": _finite(self.base),
            "candidate": _finite(self.candidate),
            "change": _finite(self.change),
            "ci95": [_finite(self.low), _finite(self.high)],
            "unit": self.unit,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
        }

    def shown(self) -> str:
        def pct(v: float) -> str:
            return f"{v * 100:+.1f}%" if self.unit == "relative" else f"{v:+.2f} pp"

        return f"{pct(self.change)} [{pct(self.low)}, {pct(self.high)}]"


@dataclass
class Comparison:
    metrics: list[MetricChange] = field(default_factory=list)
    seconds: tuple[int, int] = (0, 0)  # the seconds of each run compared
    #: Percentiles not judged: too few samples beyond them in a run (fewer than MIN_TAIL).
    skipped: list[str] = field(default_factory=list)

    def only(self, patterns: Sequence[str]) -> Comparison:
        """The comparison of just the metrics matching ``patterns`` (shell-style, e.g.
        ``http_req_duration p(9*)``); all of them when there is none."""
        if not patterns:
            return self
        keep = [m for m in self.metrics if any(fnmatch.fnmatchcase(m.metric, p) for p in patterns)]
        return Comparison(keep, self.seconds, list(self.skipped))

    @property
    def verdict(self) -> str:
        if not self.metrics:
            return "inconclusive"  # nothing could be compared
        verdicts = {m.verdict for m in self.metrics}
        for verdict in ("regressed", "inconclusive", "improved"):
            if verdict in verdicts:
                return verdict
        return "unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "confidence": CONFIDENCE,
            "seconds": list(self.seconds),
            "metrics": [m.to_dict() for m in self.metrics],
            "skipped": list(self.skipped),
        }


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 6)


def loaded_seconds(windows: Mapping[int, Window]) -> list[Window]:
    """Every second from the run's first second with load to its last (a second in which
    nothing completed counts, as an empty one), the first and last (partial) left out."""
    loaded = [t for t, w in windows.items() if w.requests]
    if not loaded:
        return []
    seconds = list(range(min(loaded), max(loaded) + 1))
    if len(seconds) > 4:
        seconds = seconds[1:-1]
    return [windows.get(t) or Window() for t in seconds]


class _Run:
    """One run's seconds as arrays: requests, failures, and each latency's bucket counts."""

    def __init__(self, windows: Sequence[Window], keys: dict[int, int], name: str | None):
        import numpy as np  # noqa: PLC0415 - a Bokeh dependency; the bootstrap's arithmetic

        self.n = len(windows)
        self.requests = np.array([w.requests for w in windows], dtype=float)
        self.failed = np.array([w.failed for w in windows], dtype=float)
        counts = np.zeros((self.n, len(keys) + 1))  # column 0: zeros
        for i, w in enumerate(windows):
            sketch = w.duration if name is None else w.names.get(name)
            if sketch is None:
                continue
            counts[i, 0] = sketch.zeros
            for key, c in sketch.buckets.items():
                counts[i, keys[key]] += c
        self.counts = counts


def _bucket_keys(runs: Sequence[Sequence[Window]], name: str | None) -> dict[int, int]:
    found: set[int] = set()
    for windows in runs:
        for w in windows:
            sketch = w.duration if name is None else w.names.get(name)
            if sketch is not None:
                found.update(sketch.buckets)
    return {key: i + 1 for i, key in enumerate(sorted(found))}


def _quantiles(totals: Any, values: Any, q: float) -> Any:
    """k6's interpolated q-quantile of each row of bucket counts (``values``: each column's
    representative value, zeros first), NaN for a row with no sample."""
    import numpy as np  # noqa: PLC0415

    count = totals.sum(axis=1)
    cumulative = np.cumsum(totals, axis=1)
    rank = q * np.maximum(count - 1, 0)
    out = np.full(len(count), np.nan)
    for i in range(len(count)):
        if count[i] <= 0:
            continue
        low = np.searchsorted(cumulative[i], math.floor(rank[i]), side="right")
        high = np.searchsorted(cumulative[i], math.ceil(rank[i]), side="right")
        v_low, v_high = values[min(low, len(values) - 1)], values[min(high, len(values) - 1)]
        out[i] = v_low + (v_high - v_low) * (rank[i] - math.floor(rank[i]))
    return out


def _weights(n: int, resamples: int, rng: Any) -> Any:
    """A circular block bootstrap as multiplicities: row b counts how often each second is
    drawn in resample b, in blocks of about n^(1/3) consecutive seconds that wrap around the
    run's end (so that its first and last seconds are drawn as often as any)."""
    import numpy as np  # noqa: PLC0415

    block = max(1, round(n ** (1 / 3)))
    blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(resamples, blocks))
    weights = np.zeros((resamples, n))
    rows = np.repeat(np.arange(resamples), blocks)
    for offset in range(block):
        np.add.at(weights, (rows, ((starts + offset) % n).ravel()), 1.0)
    return weights * (n / (blocks * block))  # the resample is as long as the run


def _judged(
    metric: str, b: float, c: float, boot: Any, *, unit: str, t: float, higher_worse: bool
) -> MetricChange:
    """The change from ``b`` to ``c``, its interval from the bootstrap's changes ``boot``,
    and the verdict against tolerance ``t``."""
    import numpy as np  # noqa: PLC0415

    change = (c / b - 1) if unit == "relative" else (c - b)
    finite = boot[np.isfinite(boot)]
    low = high = math.nan
    verdict = "inconclusive"
    if math.isfinite(change) and len(finite) >= len(boot) // 2:
        alpha = (1 - CONFIDENCE) / 2
        low, high = (float(x) for x in np.quantile(finite, [alpha, 1 - alpha]))
        worse_low, worse_high = (low, high) if higher_worse else (-high, -low)
        if worse_low > t:
            verdict = "regressed"
        elif worse_high < -t:
            verdict = "improved"
        elif -t <= worse_low and worse_high <= t:
            verdict = "unchanged"
    return MetricChange(metric, b, c, change, low, high, unit, t, verdict)


def compare(
    base: Mapping[int, Window],
    candidate: Mapping[int, Window],
    tolerances: Tolerances | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 20261201,
) -> Comparison:
    """BASE against CANDIDATE, from each run's merged per-second windows."""
    import numpy as np  # noqa: PLC0415

    tol = tolerances or Tolerances()
    rng = np.random.default_rng(seed)
    runs = (loaded_seconds(base), loaded_seconds(candidate))
    comparison = Comparison(seconds=(len(runs[0]), len(runs[1])))
    if min(comparison.seconds) < MIN_SECONDS:
        return comparison  # too little to resample: no metric, and no verdict from nothing
    base_weights = _weights(len(runs[0]), resamples, rng)
    # A run against itself: one sample, not two, so the difference has no sampling variance
    # (resampling it twice independently would invent some).
    same = runs[0] == runs[1]
    weights = (base_weights, base_weights if same else _weights(len(runs[1]), resamples, rng))
    base_all, cand_all = (_Run(r, _bucket_keys(runs, None), None) for r in runs)

    # Latency: overall, then the busiest request names both runs have.
    names = _shared_names(runs)
    for name in [None, *names]:
        keys = _bucket_keys(runs, name)
        values = np.array([0.0] + [bucket_value(k) for k in sorted(keys)])
        b_run, c_run = (_Run(r, keys, name) for r in runs)
        label = "http_req_duration" if name is None else f"http_req_duration{{name:{name}}}"
        counts = (b_run.counts.sum(), c_run.counts.sum())
        for q, shown in ((0.5, "p(50)"), (0.95, "p(95)"), (0.99, "p(99)")):
            if min(counts) * (1 - q) < MIN_TAIL:  # too few samples beyond it to judge
                comparison.skipped.append(f"{label} {shown}")
                continue
            b = float(_quantiles(b_run.counts.sum(axis=0, keepdims=True), values, q)[0])
            c = float(_quantiles(c_run.counts.sum(axis=0, keepdims=True), values, q)[0])
            boot_b = _quantiles(weights[0] @ b_run.counts, values, q)
            boot_c = _quantiles(weights[1] @ c_run.counts, values, q)
            with np.errstate(divide="ignore", invalid="ignore"):
                boot = boot_c / boot_b - 1
            comparison.metrics.append(
                _judged(
                    f"{label} {shown}",
                    b,
                    c,
                    boot,
                    unit="relative",
                    t=tol.latency,
                    higher_worse=True,
                )
            )

    # The error rate, in percent of requests; its change in percentage points.
    def rate(run: _Run, w: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (w @ run.failed) / (w @ run.requests) * 100

    b = float(rate(base_all, np.ones(base_all.n)))
    c = float(rate(cand_all, np.ones(cand_all.n)))
    boot = rate(cand_all, weights[1]) - rate(base_all, weights[0])
    comparison.metrics.append(
        _judged(
            "http_req_failed rate (%)",
            b,
            c,
            boot,
            unit="pp",
            t=tol.error_rate_pp,
            higher_worse=True,
        )
    )
    # Achieved requests/s (lower is worse).
    b, c = float(base_all.requests.mean()), float(cand_all.requests.mean())
    boot_b = weights[0] @ base_all.requests / base_all.n
    boot_c = weights[1] @ cand_all.requests / cand_all.n
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = boot_c / boot_b - 1
    comparison.metrics.append(
        _judged("http_reqs rate", b, c, boot, unit="relative", t=tol.throughput, higher_worse=False)
    )
    return comparison


def _shared_names(runs: Sequence[Sequence[Window]]) -> list[str]:
    totals: list[dict[str, int]] = []
    for windows in runs:
        seen: dict[str, int] = {}
        for w in windows:
            for name, sketch in w.names.items():
                seen[name] = seen.get(name, 0) + sketch.count
        totals.append(seen)
    shared = set(totals[0]) & set(totals[1])
    ranked = sorted(shared, key=lambda n: (-(totals[0][n] + totals[1][n]), n))
    return [n for n in ranked if not n.startswith("(")][:COMPARED_NAMES]
