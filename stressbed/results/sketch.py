"""A mergeable latency histogram with a relative-accuracy guarantee (a DDSketch).

Values land in logarithmic buckets ``(gamma^(i-1), gamma^i]`` with
``gamma = (1 + a) / (1 - a)``; the value read back at a rank is within relative error ``a`` of
the value actually recorded at that rank, and so a quantile interpolated between two ranks as
k6 does is within ``a`` of k6's own. Buckets are sparse counts, so two sketches merge by
adding counts, exactly, in any order: percentiles of a fleet come from merged sketches, never
from averaging per-runner percentiles. With a = 0.5% a latency range from 1 µs to 1 h needs at
most about 2,200 buckets, whatever the number of samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ..errors import DocumentError

__all__ = ["ACCURACY", "Sketch", "bucket_key", "bucket_value"]

#: Relative accuracy of every quantile (0.5%, the bound the documentation states).
ACCURACY = 0.005
_GAMMA = (1 + ACCURACY) / (1 - ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
#: Values at or below this count as zero (k6 reports 0 for connection reuse, say).
_MIN_VALUE = 1e-9


def bucket_key(value: float) -> int | None:
    """The bucket of ``value``; None for a value counted as zero."""
    if value <= _MIN_VALUE:
        return None
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(key: int) -> float:
    """Bucket ``key``'s representative value: at most ACCURACY from anything in it."""
    return 2 * _GAMMA**key / (_GAMMA + 1)


@dataclass
class Sketch:
    """Count, sum, min, max exactly; quantiles within :data:`ACCURACY`."""

    buckets: dict[int, int] = field(default_factory=dict)
    zeros: int = 0
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float) -> None:
        self.add_keyed(value, bucket_key(value))

    def add_keyed(self, value: float, key: int | None) -> None:
        """Add ``value`` whose bucket is ``key`` (from :func:`bucket_key`): callers that add
        one sample to several sketches compute the logarithm once."""
        self.count += 1
        self.total += value
        if value < self.minimum:  # noqa: PLR1730 - a compare is cheaper than min() per sample
            self.minimum = value
        if value > self.maximum:  # noqa: PLR1730
            self.maximum = value
        if key is None:
            self.zeros += 1
            return
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + 1

    def copy(self) -> Sketch:
        return Sketch(
            dict(self.buckets), self.zeros, self.count, self.total, self.minimum, self.maximum
        )

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.add(value)

    def merge(self, other: Sketch) -> None:
        """Add ``other``'s samples to this sketch (exact: counts add)."""
        buckets = self.buckets
        for key, n in other.buckets.items():
            buckets[key] = buckets.get(key, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` in [0, 1], as k6 ranks it (``q * (count - 1)``)."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Several quantiles in one walk over the buckets (sorted once)."""
        if not self.count:
            return [math.nan] * len(qs)
        ranks: dict[int, float] = {}
        for q in qs:
            if 0 < q < 1:
                rank = q * (self.count - 1)
                ranks[math.floor(rank)] = 0.0
                ranks[math.ceil(rank)] = 0.0
        pending = sorted(ranks)
        seen, i = self.zeros, 0
        while i < len(pending) and pending[i] < self.zeros:
            i += 1  # ranks among the zeros read as 0.0
        for key in sorted(self.buckets) if i < len(pending) else ():
            seen += self.buckets[key]
            # The bucket's representative value: at most ACCURACY from anything in it.
            while i < len(pending) and pending[i] < seen:
                ranks[pending[i]] = bucket_value(key)
                i += 1
            if i == len(pending):
                break
        for rank in pending[i:]:
            ranks[rank] = self.maximum
        out = []
        for q in qs:
            if q <= 0:
                out.append(self.minimum)
            elif q >= 1:
                out.append(self.maximum)
            else:
                rank = q * (self.count - 1)
                low, high = ranks[math.floor(rank)], ranks[math.ceil(rank)]
                value = low + (high - low) * (rank - math.floor(rank))
                out.append(min(max(value, self.minimum), self.maximum))
        return out

    def to_dict(self) -> dict[str, object]:
        keys = sorted(self.buckets)
        return {
            "accuracy": ACCURACY,
            "count": self.count,
            "sum": self.total,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
            "zeros": self.zeros,
            "keys": keys,
            "counts": [self.buckets[k] for k in keys],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Sketch:
        """A sketch from its document; DocumentError naming the field that is wrong."""
        if data.get("accuracy") != ACCURACY:
            raise DocumentError("sketch.accuracy", data.get("accuracy"), f"{ACCURACY}")
        keys, counts = data.get("keys"), data.get("counts")
        if not _ints(keys):
            raise DocumentError("sketch.keys", keys, "a list of integers")
        if not _ints(counts) or len(counts) != len(keys):
            raise DocumentError("sketch.counts", counts, f"{len(keys)} integers")
        count, total, zeros = data.get("count"), data.get("sum"), data.get("zeros")
        if isinstance(count, bool) or not isinstance(count, int):
            raise DocumentError("sketch.count", count, "an integer")
        if isinstance(zeros, bool) or not isinstance(zeros, int):
            raise DocumentError("sketch.zeros", zeros, "an integer")
        if isinstance(total, bool) or not isinstance(total, int | float):
            raise DocumentError("sketch.sum", total, "a number")
        minimum, maximum = data.get("min"), data.get("max")
        return cls(
            buckets=dict(zip(keys, counts, strict=True)),
            zeros=zeros,
            count=count,
            total=float(total),
            minimum=float(minimum) if isinstance(minimum, int | float) else math.inf,
            maximum=float(maximum) if isinstance(maximum, int | float) else -math.inf,
        )


def _ints(value: Any) -> TypeGuard[list[int]]:
    # One pass in C over what may be thousands of buckets per window (a bool is not an int).
    return type(value) is list and set(map(type, value)) <= {int}
