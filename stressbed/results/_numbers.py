"""How numbers read in a run's documents: finite for JSON, short for people."""

from __future__ import annotations

import math

__all__ = ["finite", "show"]


def finite(value: float) -> float | None:
    """JSON has no infinity or NaN: a statistic of no samples reads null (not measured; a 0
    would read as the best value there is)."""
    return value if math.isfinite(value) else None


def show(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.1f}"
