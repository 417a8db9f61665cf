"""The rate over time as ramping-arrival-rate stages, its peaks kept.

The requests per second are averaged over :data:`POINTS` equal buckets of the span (a second
at the least; the last one takes the rest, up to two); the polyline through the buckets' means
is simplified by Ramer-Douglas-Peucker to the points that stray more than :data:`TOLERANCE` of
the peak, or more than a Poisson count's noise, from the line between their neighbours, and
the peak bucket is kept when it stands out of the noise. The kept points' rates are then the
least-squares fit of a polyline through them to the buckets (what each stretch averaged, not
one noisy bucket; the requests add up). Each kept point after the first is a stage: ramp
linearly to its rate over the time since the previous one, which is what k6's
ramping-arrival-rate does between stages.

``compress`` plays the span in less time (every stage shorter by the same factor, the rates
kept: the shape, not the count); ``scale`` multiplies every rate.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError
from ..scenario.units import parse_duration_ms

__all__ = ["Shape", "Stage", "parse_compress", "parse_scale", "shape_of"]

#: Buckets the span is averaged over before it is simplified.
POINTS = 96
#: How far (a share of the peak) a bucket may stray from the stages before it is a stage.
TOLERANCE = 0.08
#: The shortest stage written (shorter ones merge into their neighbour).
MIN_STAGE_S = 1.0


@dataclass(frozen=True)
class Stage:
    """Ramp to ``rate`` requests/s over ``seconds``, covering the input's ``[start, end)``
    (seconds since its first request) on the way; ``observed``: the requests it counted there."""

    seconds: float
    rate: float
    start: float
    end: float
    observed: int


@dataclass(frozen=True)
class Shape:
    """Where the rate starts and the stages after it, with what they were read from."""

    start_rate: float
    stages: tuple[Stage, ...]
    span_s: float
    bucket_s: float
    peak_rate: float
    peak_at_s: float

    def scaled(self, compress: float = 1.0, scale: float = 1.0) -> Shape:
        """The same shape in ``compress`` of the time (0.5: half), rates times ``scale``. A
        stage that comes out shorter than :data:`MIN_STAGE_S` is joined to a neighbour (the
        point between them dropped: the one nearest the line through its neighbours, never
        the peak's while there is another)."""
        stages = [
            Stage(s.seconds * compress, s.rate * scale, s.start, s.end, s.observed)
            for s in self.stages
        ]
        start_rate = self.start_rate * scale
        peak = max(stages, key=lambda s: s.rate, default=None)
        while len(stages) > 1:
            short = next((i for i, s in enumerate(stages) if s.seconds < MIN_STAGE_S), None)
            if short is None:
                break
            i = _to_join(stages, short, start_rate, peak)
            first, second = stages[i], stages[i + 1]
            joined = Stage(
                first.seconds + second.seconds,
                second.rate,
                first.start,
                second.end,
                first.observed + second.observed,
            )
            stages[i : i + 2] = [joined]
            if second is peak:
                peak = joined
        return Shape(
            start_rate,
            tuple(stages),
            self.span_s * compress,
            self.bucket_s * compress,
            self.peak_rate * scale,
            self.peak_at_s * compress,
        )

    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)


def shape_of(per_second: Mapping[int, int], first: float, last: float) -> Shape:
    """The rate's shape from the requests counted in each unix second (``first`` and ``last``:
    the first and the last request's time; a second counted outside them widens the span)."""
    if per_second:
        first, last = min(first, *per_second), max(last, *per_second)
    origin = math.floor(first)
    span = max(1.0, math.floor(last) - origin + 1.0)
    bucket = max(1.0, math.ceil(span / POINTS))
    # The last bucket takes the span's rest (one bucket to two): a sliver of a bucket would be
    # a rate read from a few seconds, as noisy as they are few.
    buckets = max(1, math.floor(span / bucket))
    counts = [0] * buckets
    for second, n in per_second.items():
        i = min(buckets - 1, max(0, int((second - origin) // bucket)))
        counts[i] += n
    widths = [bucket] * (buckets - 1) + [span - (buckets - 1) * bucket]
    rates = [c / w for c, w in zip(counts, widths, strict=True)]
    mids = [i * bucket + widths[i] / 2 for i in range(buckets)]
    peak = max(range(buckets), key=lambda i: rates[i])
    if buckets == 1:
        stage = Stage(span, rates[0], 0.0, span, counts[0])
        return Shape(rates[0], (stage,), span, bucket, rates[0], mids[0])
    # The points: the span's start, each bucket's middle, the span's end.
    xs = [0.0, *mids, span]
    ys = [rates[0], *rates, rates[-1]]
    # A bucket strays when it is off by more than TOLERANCE of the peak, or by more than
    # three standard deviations of a Poisson count at the peak from a line drawn through two
    # other buckets as noisy (sqrt(2) of one's): noise is not a stage, nor a peak.
    noise = 3 * math.sqrt(2 * max(counts)) / bucket
    keep = _simplify(xs, ys, max(TOLERANCE * rates[peak], noise, 1e-9))
    if _off_line(sorted(keep), xs, ys, peak + 1) > noise:
        keep.add(peak + 1)
    kept = sorted(keep)
    # The span's ends weigh as the half buckets they close (the rate taken as flat out to
    # them, not a line drawn on past the last bucket), and no stage rises above the peak.
    weights = [widths[0] / 2, *widths, widths[-1] / 2]
    fitted = _fitted([xs[k] for k in kept], xs, ys, weights, [ys[k] for k in kept])
    levels = [min(rates[peak], level) for level in fitted]
    stages = []
    for j, (a, b) in enumerate(itertools.pairwise(kept)):
        start, end = xs[a], xs[b]
        observed = (
            sum(n for second, n in per_second.items() if start <= second - origin < end)
            if b < len(xs) - 1
            else sum(n for second, n in per_second.items() if start <= second - origin)
        )
        stages.append(Stage(end - start, levels[j + 1], start, end, observed))
    return Shape(levels[0], tuple(stages), span, bucket, rates[peak], mids[peak])


def _to_join(stages: list[Stage], short: int, start_rate: float, peak: Stage | None) -> int:
    """Which stage the short one at ``short`` is joined with: the index of the first of the
    two (the point dropped is that stage's end)."""
    options = [i for i in (short - 1, short) if 0 <= i < len(stages) - 1]
    if len(options) > 1:
        options = [i for i in options if stages[i] is not peak] or options

    def off(i: int) -> float:
        before = stages[i - 1].rate if i else start_rate
        t0 = sum(s.seconds for s in stages[:i])
        t1, t2 = t0 + stages[i].seconds, t0 + stages[i].seconds + stages[i + 1].seconds
        line = before + (stages[i + 1].rate - before) * (t1 - t0) / max(t2 - t0, 1e-12)
        return abs(stages[i].rate - line)

    return min(options, key=off)


def _off_line(kept: list[int], xs: list[float], ys: list[float], i: int) -> float:
    """How far point ``i`` is from the line between the kept points either side of it."""
    if i in kept:
        return 0.0
    a = max(k for k in kept if k < i)
    b = min(k for k in kept if k > i)
    return abs(ys[i] - (ys[a] + (ys[b] - ys[a]) * (xs[i] - xs[a]) / (xs[b] - xs[a])))


def _fitted(
    knots: list[float],
    xs: list[float],
    ys: list[float],
    weights: list[float],
    raw: list[float],
) -> list[float]:
    """The rate at each knot such that the polyline through them is the least-squares fit of
    the points (xs, ys) weighted by ``weights``: a stage's rate is what its stretch averaged,
    not one bucket's count, and the requests add up. A knot no point falls near keeps its
    ``raw`` rate. The normal equations of a polyline are tridiagonal (Thomas' algorithm)."""
    n = len(knots)
    ridge = 1e-9 * sum(weights)
    diag = [ridge] * n
    upper = [0.0] * n  # upper[k]: the (k, k+1) entry, the same as (k+1, k)
    rhs = [ridge * r for r in raw]
    k = 0
    for x, y, w in zip(xs, ys, weights, strict=True):
        while k < n - 2 and x > knots[k + 1]:
            k += 1
        t = (x - knots[k]) / (knots[k + 1] - knots[k])
        left, right = 1.0 - t, t
        diag[k] += w * left * left
        diag[k + 1] += w * right * right
        upper[k] += w * left * right
        rhs[k] += w * left * y
        rhs[k + 1] += w * right * y
    # Forward elimination, then back substitution.
    for k in range(1, n):
        factor = upper[k - 1] / diag[k - 1]
        diag[k] -= factor * upper[k - 1]
        rhs[k] -= factor * rhs[k - 1]
    levels = [0.0] * n
    levels[-1] = rhs[-1] / diag[-1]
    for k in range(n - 2, -1, -1):
        levels[k] = (rhs[k] - upper[k] * levels[k + 1]) / diag[k]
    return [max(0.0, level) for level in levels]


def _simplify(xs: list[float], ys: list[float], tolerance: float) -> set[int]:
    """Ramer-Douglas-Peucker on the polyline (xs, ys), by vertical distance: the indices
    kept (the ends always), iteratively."""
    keep = {0, len(xs) - 1}
    pending = [(0, len(xs) - 1)]
    while pending:
        a, b = pending.pop()
        worst, at = 0.0, -1
        for i in range(a + 1, b):
            line = ys[a] + (ys[b] - ys[a]) * (xs[i] - xs[a]) / (xs[b] - xs[a])
            off = abs(ys[i] - line)
            if off > worst:
                worst, at = off, i
        if at >= 0 and worst > tolerance:
            keep.add(at)
            pending += [(a, at), (at, b)]
    return keep


_SCALE = re.compile(r"(\d+(?:\.\d+)?)\s*(x|%)")


def parse_scale(text: str) -> float:
    """``3x``, ``0.5x`` or ``300%``: the factor every rate is multiplied by."""
    found = _SCALE.fullmatch(text.strip()) if isinstance(text, str) else None
    factor = float(found.group(1)) / (100 if found.group(2) == "%" else 1) if found else 0.0
    if not found or factor <= 0:
        raise ConfigError("--scale", text, "a factor > 0 such as 3x, 0.5x or 300%")
    return factor


def parse_compress(text: str, span_s: float) -> float:
    """``24h:10m`` (24 hours of the input in 10 minutes) or ``10m`` (the input's whole span in
    10 minutes): the factor every stage's duration is multiplied by."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("--compress", text, "FROM:TO such as 24h:10m, or a duration such as 10m")
    parts = text.split(":")
    try:
        if len(parts) == 2:
            before = parse_duration_ms(parts[0].strip(), "--compress") / 1000
            after = parse_duration_ms(parts[1].strip(), "--compress") / 1000
        elif len(parts) == 1:
            before, after = span_s, parse_duration_ms(parts[0].strip(), "--compress") / 1000
        else:
            raise ValueError(text)
    except (ConfigError, ValueError):
        raise ConfigError(
            "--compress", text, "FROM:TO such as 24h:10m, or a duration such as 10m"
        ) from None
    return after / before
