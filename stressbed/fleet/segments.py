"""k6 execution segments: runner i of N takes the i-th of N equal slices of the test.

Every runner gets its own ``--execution-segment`` and the same full
``--execution-segment-sequence``, so k6 divides VUs and arrival rates exactly as one k6 would
(no rounding that loses or duplicates iterations).
"""

from __future__ import annotations

from fractions import Fraction

from ..errors import ConfigError

__all__ = ["MAX_RUNNERS", "segment", "sequence"]

MAX_RUNNERS = 64


def _cuts(count: int) -> list[str]:
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RUNNERS:
        raise ConfigError("--runners", count, f"an integer 1..{MAX_RUNNERS}")
    return [_fraction(Fraction(i, count)) for i in range(count + 1)]


def segment(index: int, count: int) -> str:
    """``--execution-segment`` of runner ``index`` (0-based) of ``count``: ``"1/4:1/2"``."""
    cuts = _cuts(count)
    if not 0 <= index < count:
        raise ConfigError("runner index", index, f"an integer 0..{count - 1}")
    return f"{cuts[index]}:{cuts[index + 1]}"


def sequence(count: int) -> str:
    """``--execution-segment-sequence`` shared by all runners: ``"0,1/4,1/2,3/4,1"``."""
    return ",".join(_cuts(count))


def _fraction(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(value)
