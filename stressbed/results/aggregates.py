"""The additive data of a run: per-metric aggregates and per-second windows.

Everything here merges exactly across runners (counts and sums add, minima and maxima take the
extreme, sketches merge bucket by bucket); statistics such as percentiles are read after the
merge (:mod:`stressbed.results.merge`), never combined across runners.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from .sketch import Sketch

__all__ = ["Aggregate", "Window"]


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

    def add(self, value: float, key: int | None = None) -> None:
        """Add a sample; for a trend, ``key`` is its sketch bucket (computed by the caller)."""
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

    def copy(self) -> Aggregate:
        return Aggregate(
            self.kind,
            self.sketch.copy(),
            self.total,
            self.count,
            self.last,
            self.minimum,
            self.maximum,
        )

    def merge(self, other: Aggregate) -> None:
        self.sketch.merge(other.sketch)
        self.total += other.total
        self.count += other.count
        if not math.isnan(other.last):
            self.last = other.last if math.isnan(self.last) else self.last + other.last
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def to_dict(self) -> dict[str, object]:
        if self.kind == "trend":
            return {"kind": "trend", "sketch": self.sketch.to_dict()}
        data: dict[str, object] = {"kind": self.kind, "total": self.total, "count": self.count}
        if self.kind == "gauge":
            data.update(
                last=None if math.isnan(self.last) else self.last,
                min=None if self.count == 0 else self.minimum,
                max=None if self.count == 0 else self.maximum,
            )
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Aggregate:
        kind = str(data["kind"])
        if kind == "trend":
            sketch = data["sketch"]
            assert isinstance(sketch, dict)
            return cls("trend", sketch=Sketch.from_dict(sketch))
        total, count = data["total"], data["count"]
        assert isinstance(total, int | float)
        assert isinstance(count, int)
        agg = cls(kind, total=float(total), count=count)
        if kind == "gauge":
            last, low, high = data.get("last"), data.get("min"), data.get("max")
            agg.last = float(last) if isinstance(last, int | float) else math.nan
            agg.minimum = float(low) if isinstance(low, int | float) else math.inf
            agg.maximum = float(high) if isinstance(high, int | float) else -math.inf
        return agg


@dataclass
class Window:
    """One second of the run: what the fleet time series shows."""

    requests: int = 0
    failed: int = 0
    iterations: int = 0
    vus: float = 0.0
    duration: Sketch = field(default_factory=Sketch)

    def copy(self) -> Window:
        return Window(self.requests, self.failed, self.iterations, self.vus, self.duration.copy())

    def merge(self, other: Window) -> None:
        self.requests += other.requests
        self.failed += other.failed
        self.iterations += other.iterations
        self.vus += other.vus  # VUs of different runners add up
        self.duration.merge(other.duration)

    def to_dict(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "iterations": self.iterations,
            "vus": self.vus,
            "duration": self.duration.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Window:
        duration = data["duration"]
        assert isinstance(duration, dict)
        return cls(
            requests=int(data["requests"]),  # type: ignore[call-overload]
            failed=int(data["failed"]),  # type: ignore[call-overload]
            iterations=int(data["iterations"]),  # type: ignore[call-overload]
            vus=float(data["vus"]),  # type: ignore[arg-type]
            duration=Sketch.from_dict(duration),
        )
