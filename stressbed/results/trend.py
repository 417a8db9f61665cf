"""Is a probe in equilibrium? The trend test of a capacity probe: does anything keep growing.

A probe offers a constant arrival rate. It holds only if, over its steady window (after the
warm-up), the SLOs hold on that window alone, the achieved rate keeps up with the offered
one, and neither latency nor the requests in flight keep growing: with Little's law L = λW, a
queue that grows at a constant arrival rate means the target serves less than it is offered,
however good the first seconds looked.

Growth is a least-squares slope over the window's per-second values whose 95% interval lies
above zero. Per-second latencies are autocorrelated (one slow second makes the next slow), so
the interval is widened by the residuals' lag-1 autocorrelation (an effective sample size of
n(1-r)/(1+r)); and a rise too small to matter (under half the starting level over the
window) is not called growth, so noise alone does not fail a probe.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["GROWTH_SHARE", "MIN_POINTS", "Slope", "slope"]

#: Fewer points than this fit no trend.
MIN_POINTS = 4
#: Growth must add at least this share of the fitted starting level over the window.
GROWTH_SHARE = 0.5
_MAX_AUTOCORRELATION = 0.9
# Student's t, two-sided 95%, by degrees of freedom (the last entry: the normal's 1.96).
_T95 = (
    (1, 12.706),
    (2, 4.303),
    (3, 3.182),
    (4, 2.776),
    (5, 2.571),
    (6, 2.447),
    (7, 2.365),
    (8, 2.306),
    (9, 2.262),
    (10, 2.228),
    (12, 2.179),
    (15, 2.131),
    (20, 2.086),
    (30, 2.042),
    (60, 2.000),
    (120, 1.980),
)


@dataclass(frozen=True)
class Slope:
    """A least-squares line through a window's per-second values."""

    per_s: float  # the slope, units per second
    low: float  # its 95% interval
    high: float
    start: float  # the fitted value at the window's first second
    rise: float  # the fitted change over the whole window
    points: int

    def growing(self, floor: float = 0.0) -> bool:
        """Significantly upward, and by enough to matter: at least GROWTH_SHARE of the
        starting level (and ``floor``, in the values' units) over the window."""
        needed = max(floor, GROWTH_SHARE * abs(self.start))
        return self.low > 0 and self.rise >= needed

    def to_dict(self) -> dict[str, float]:
        return {
            "per_s": self.per_s,
            "low": self.low,
            "high": self.high,
            "start": self.start,
            "rise": self.rise,
            "points": self.points,
        }


def slope(values: Sequence[float | None]) -> Slope | None:
    """The trend of ``values`` (one per second; None: no sample that second), or None when
    fewer than MIN_POINTS seconds have a value."""
    points = [(float(i), float(v)) for i, v in enumerate(values) if v is not None]
    n = len(points)
    if n < MIN_POINTS:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    b = sxy / sxx
    a = mean_y - b * mean_x
    residuals = [y - (a + b * x) for x, y in points]
    s2 = sum(e * e for e in residuals) / (n - 2)
    r = _lag1(residuals)
    n_eff = max(3.0, n * (1 - r) / (1 + r))
    se = math.sqrt(s2 / sxx) * math.sqrt(n / n_eff) if sxx > 0 else math.inf
    t = _t95(n_eff - 2)
    first, last = points[0][0], points[-1][0]
    return Slope(
        per_s=b,
        low=b - t * se,
        high=b + t * se,
        start=a + b * first,
        rise=b * (last - first),
        points=n,
    )


def _lag1(residuals: Sequence[float]) -> float:
    """The lag-1 autocorrelation of the residuals, clipped to [0, 0.9] (negative
    autocorrelation would only narrow the interval; it is not trusted to)."""
    total = sum(e * e for e in residuals)
    if total <= 0:
        return 0.0
    lagged = sum(residuals[i] * residuals[i - 1] for i in range(1, len(residuals)))
    return min(_MAX_AUTOCORRELATION, max(0.0, lagged / total))


def _t95(dof: float) -> float:
    if dof < 1:
        return _T95[0][1]
    best = _T95[0][1]
    for d, value in _T95:
        if dof >= d:
            best = value
    return best if dof < 1000 else 1.96
