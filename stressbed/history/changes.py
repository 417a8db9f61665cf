"""Where a metric's level shifts over a run history: change points, by E-Divisive means.

``stressbed trend`` shows each headline figure of a series (like-for-like runs) over its runs,
and where its level shifts: the run where the new level starts, the level before and after,
the direction. The method is E-Divisive means (Matteson and James, 2014) as Apache Otava
(formerly Hunter: Fleming et al., 2023) uses it, changed where measurements said so:

- **Split.** A segment is split at the τ, and the end κ of the segment after it, where the
  energy divergence q̂ (alpha = 1) between ``x[start:τ]`` and ``x[τ:κ]`` is largest; both parts
  are split again until a split is not significant. q̂ for every (τ, κ) at once comes from
  2-D prefix sums of the pairwise ``|xi - xj|`` matrix: O(n²) in numpy, so no windows (which
  Otava uses for long series) are needed: 20 series of 500 runs take 0.3-0.6 s.
- **Significance** is Student's t (pooled variance) between the segments either side, as in
  Otava, not the original permutation test: deterministic and fast. But the split tested is
  the best of many, so t's own p-value understates chance: with it (Otava's p ≤ 0.001), pure
  normal noise showed a change point in 1.3 % of 30-run series and 5 % of 500-run ones. Here
  it is multiplied by the places the split could have been (Bonferroni), which holds false
  alarms near MAX_PVALUE at any length. A split is significant too when the segment before
  τ and the one from τ to κ differ (times the (τ, κ) pairs): that finds a level which came
  and went (a regression fixed five runs later), which the whole segment after τ dilutes:
  97 % of such bumps (five runs, 20 % up, in 4 % noise) are found, under 1 % without.
- **Merge**, Hunter's weak change points: splitting explores with a threshold EXPLORE times
  looser (up-then-down pairs found 76 % of the time, against 71 %); then the weakest point,
  the largest p-value above MAX_PVALUE or else the smallest change under MIN_MAGNITUDE, is
  dropped and its neighbours tested again, until every point holds against the segments
  bounded by its neighbours (its p-value: times the places between them).
- **Logs.** A series whose values are all positive (latency, throughput) is analysed in
  logs: a shift is a ratio, and log-normal noise, latency's, becomes the normal noise the
  t-test assumes. In raw values, log-normal noise (sigma 0.5) gave false alarms in 2 % of
  30-run series and 7.7 % of 500-run ones; in logs, 0.6 % and 0.3 %. A series with a zero
  or a negative value (an error rate) is analysed as it is. ``before`` and ``after`` are
  arithmetic means all the same.
- **Not measured** (None, NaN): left out of the analysis; indices are still the input's.

The constants were chosen on synthetic series (normal and log-normal noise, 10 to 500 runs,
steps, bumps; ``tools/bench_changes.py`` has the suite). With MAX_PVALUE 0.01 false alarms
stay at 0.3-1.0 % of noise series at every length; 0.005 halves them but finds a 10 % step
in 5 % noise four runs from the start less often (27 % of the time, against 34 %; Otava's
uncorrected 0.001, 40 %, at the false alarms above), 0.02 doubles them. MIN_SEGMENT 3 shows
a change three runs after it (4 found no fewer false alarms in logs). MIN_MAGNITUDE 0.05
keeps real but small shifts of a quiet series (3 % in 1 % noise) off the report.

numpy only, deliberately: ruptures needs scipy (a ~35 MB wheel, 143 MB installed); Otava's
package pins numpy==2.2.0 and pulls google-cloud-bigquery and slack-sdk; MongoDB's
signal-processing-algorithms needs numpy<2 and gevent. Nor does ruptures fit better: on the
same suite its Pelt (l2 cost) finds steps about as often only with its penalty raised to
false alarms like these (5 sigma² log n: 1.3-1.6 % of noise series, against 0.5-1.0 %), and
takes 8 times as long (167 ms a 500-run series, against 20 ms); with a BIC penalty it finds
more small steps but alarms on 7-21 % of noise series. Student's t comes from the
regularised incomplete beta function, by its continued fraction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "EXPLORE",
    "FALSE_ALARM_RATE",
    "MAX_PVALUE",
    "MIN_MAGNITUDE",
    "MIN_SEGMENT",
    "ChangePoint",
    "change_points",
    "t_pvalue",
]

#: A change point is kept if its p-value (Student's t between the segments either side, times
#: the places between its neighbours where it could have been) is at most this...
MAX_PVALUE = 0.01
#: ... and the level moves by at least this share of the level before.
MIN_MAGNITUDE = 0.05
#: Runs on each side of a change point, at least.
MIN_SEGMENT = 3
#: The share of series of pure noise in which any change point is found, at most, with
#: MAX_PVALUE and no MIN_MAGNITUDE (measured 0.3-1.0 %: normal and log-normal noise, 10 to 500
#: runs); MIN_MAGNITUDE only lowers it.
FALSE_ALARM_RATE = 0.01
#: Splitting explores with a threshold this many times looser; the merge holds to MAX_PVALUE.
EXPLORE = 10.0

_Array = NDArray[np.float64]


@dataclass(frozen=True)
class ChangePoint:
    """A shift of a series' level. ``index``: the position in the input of the first run at
    the new level (the first measured one); ``before`` and ``after``: the means of the
    segments either side, each bounded by the neighbouring change points; ``pvalue``:
    Student's t between them, times the places between the neighbours (at most 1)."""

    index: int
    before: float
    after: float
    pvalue: float

    @property
    def relative(self) -> float | None:
        """The change as a share of the level before; None when that level is 0."""
        if self.before == 0:
            return None
        return (self.after - self.before) / abs(self.before)

    @property
    def direction(self) -> Literal["up", "down"]:
        return "up" if self.after > self.before else "down"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "before": self.before,
            "after": self.after,
            "relative": self.relative,
            "direction": self.direction,
            "pvalue": self.pvalue,
        }


def change_points(
    values: Sequence[float | None],
    *,
    max_pvalue: float = MAX_PVALUE,
    min_magnitude: float = MIN_MAGNITUDE,
    min_segment: int = MIN_SEGMENT,
) -> list[ChangePoint]:
    """The change points of ``values`` (one per run, oldest first; None, NaN or infinite: not
    measured, left out), by index."""
    if min_segment < 2:
        raise ValueError(f"min_segment must be at least 2, not {min_segment}")
    kept = [(i, float(v)) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(kept) < 2 * min_segment:
        return []
    positions = [i for i, _ in kept]
    raw = np.array([v for _, v in kept], dtype=np.float64)
    x = np.log(raw) if raw.min() > 0 else raw
    splits = _split(x, min(1.0, max_pvalue * EXPLORE), min_segment)
    held = _merge(
        x,
        splits,
        raw,
        max_pvalue=max_pvalue,
        min_magnitude=min_magnitude,
        min_segment=min_segment,
    )
    return [ChangePoint(positions[at], before, after, pvalue) for at, before, after, pvalue in held]


def _split(x: _Array, threshold: float, min_segment: int) -> list[int]:
    """E-Divisive: each segment split where q̂ is largest, while the split is significant:
    either the segments either side differ (t, times the places τ could have been) or the
    segment before τ and the one from τ to κ do (t, times the (τ, κ) pairs)."""
    prefix = _pair_prefix(x)
    splits = []
    todo = [(0, len(x))]
    while todo:
        start, end = todo.pop()
        if end - start < 2 * min_segment:
            continue
        tau, kappa = _best_split(prefix, start, end, min_segment)
        places = _places(end - start, min_segment)
        whole = _pvalue(x[start:tau], x[tau:end]) * places
        window = _pvalue(x[start:tau], x[tau:kappa]) * places * (places + 1) / 2
        if min(whole, window) <= threshold:
            splits.append(tau)
            todo += [(start, tau), (tau, end)]
    return sorted(splits)


def _merge(
    x: _Array,
    splits: list[int],
    raw: _Array,
    *,
    max_pvalue: float,
    min_magnitude: float,
    min_segment: int,
) -> list[tuple[int, float, float, float]]:
    """Drop the weakest point (the largest p-value above ``max_pvalue``, else the smallest
    change under ``min_magnitude``) and test its neighbours again, until every point holds:
    each one kept, with the raw means before and after it and its p-value."""
    splits = list(splits)
    while True:
        bounds = [0, *splits, len(x)]
        tests = [
            (
                at,
                float(raw[left:at].mean()),
                float(raw[at:right].mean()),
                min(1.0, _pvalue(x[left:at], x[at:right]) * _places(right - left, min_segment)),
            )
            for left, at, right in zip(bounds, bounds[1:], bounds[2:], strict=False)
        ]
        if not tests:
            return tests
        worst = max(range(len(tests)), key=lambda i: tests[i][3])
        if tests[worst][3] <= max_pvalue:
            worst = min(range(len(tests)), key=lambda i: _magnitude(*tests[i][1:3]))
            if _magnitude(*tests[worst][1:3]) >= min_magnitude:
                return tests
        del splits[worst]


def _places(length: int, min_segment: int) -> int:
    """Where a segment of ``length`` runs can be split leaving ``min_segment`` either side."""
    return max(1, length - 2 * min_segment + 1)


def _magnitude(before: float, after: float) -> float:
    if before == 0:
        return 0.0 if after == 0 else math.inf
    return abs(after - before) / abs(before)


def _pair_prefix(x: _Array) -> _Array:
    """P[a, b]: the sum of |x_i - x_j| over i < a, j < b."""
    n = len(x)
    prefix = np.zeros((n + 1, n + 1))
    prefix[1:, 1:] = np.abs(x[:, None] - x[None, :]).cumsum(axis=0).cumsum(axis=1)
    return prefix


def _best_split(prefix: _Array, start: int, end: int, min_segment: int) -> tuple[int, int]:
    """The split τ of x[start:end], and κ, the end of the segment after it, maximising q̂."""
    p = prefix[start : end + 1, start : end + 1]
    p = p - p[0:1, :] - p[:, 0:1] + p[0, 0]
    length = end - start
    taus = np.arange(min_segment, length - min_segment + 1)
    kappas = np.arange(2 * min_segment, length + 1)
    t = taus[:, None].astype(np.float64)
    k = kappas[None, :].astype(np.float64)
    diagonal = np.diagonal(p)
    p_tt = diagonal[taus][:, None]
    p_kk = diagonal[kappas][None, :]
    p_tk = p[taus[0] : taus[-1] + 1, kappas[0] :]
    cross = p_tk - p_tt
    within_x = p_tt / 2
    within_y = (p_kk - 2 * p_tk + p_tt) / 2
    size_y = k - t
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (
            2 / k * cross
            - 2 * size_y / (k * (t - 1)) * within_x
            - 2 * t / (k * (size_y - 1)) * within_y
        )
    q[size_y < min_segment] = -np.inf
    best = int(np.argmax(q))
    row, column = divmod(best, q.shape[1])
    return start + int(taus[row]), start + int(kappas[column])


def _pvalue(left: _Array, right: _Array) -> float:
    """Student's two-sided p-value (pooled variance) that ``left`` and ``right`` have one
    mean. Both constant: 1 if they are equal, else 0."""
    n1, n2 = len(left), len(right)
    m1, m2 = float(left.mean()), float(right.mean())
    dof = n1 + n2 - 2
    variance = float(((left - m1) ** 2).sum() + ((right - m2) ** 2).sum()) / dof
    # Rounding leaves a constant series a little variance: below this it counts as none.
    resolution = 1e-12 * max(abs(m1), abs(m2))
    if variance <= resolution**2:
        return 1.0 if abs(m2 - m1) <= resolution else 0.0
    return t_pvalue((m2 - m1) / math.sqrt(variance * (1 / n1 + 1 / n2)), dof)


def t_pvalue(t: float, dof: float) -> float:
    """The two-sided p-value of Student's t with ``dof`` degrees of freedom: P(|T| >= |t|),
    the regularised incomplete beta I_x(dof/2, 1/2) at x = dof / (dof + t²)."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {dof}")
    if math.isinf(t):
        return 0.0
    return _incomplete_beta(dof / 2, 0.5, dof / (dof + t * t))


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), by its continued fraction (where it converges fast; by symmetry,
    1 - I_(1-x)(b, a), elsewhere)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    return math.exp(log_front) / a * _beta_fraction(a, b, x)


_TINY = 1e-300
_EPS = 1e-15


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction 1 / (1 + d1 / (1 + d2 / (1 + ...))) of I_x(a, b), by the
    modified Lentz method: d(2m+1) = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)) and
    d(2m) = m(b-m)x / ((a+2m-1)(a+2m))."""
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            result *= c * d
        if abs(c * d - 1.0) < _EPS:
            break
    return result
