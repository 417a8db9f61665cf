"""Durations, rates, percentages and sizes as people write them, parsed once into plain
numbers.

Durations use k6's (Go's) syntax: ``"250ms"``, ``"30s"``, ``"1m30s"``, ``"1.5h"``. They are
held as milliseconds and written back in a form k6 accepts.
"""

from __future__ import annotations

import datetime
import re

from ..errors import ConfigError

__all__ = [
    "format_duration",
    "parse_duration_ms",
    "parse_per_second",
    "parse_percent",
    "parse_size",
]

_UNIT_MS = {"h": 3_600_000.0, "m": 60_000.0, "s": 1000.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|us|µs|h|m|s)")
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d+)?|\.\d+)(?:ms|us|µs|h|m|s))+")
DURATION_HELP = "a duration like '250ms', '30s', '1m30s' or '2h'"

Duration = str | datetime.timedelta


def parse_duration_ms(value: object, field: str, *, allow_zero: bool = False) -> float:
    """Milliseconds in ``value`` (a k6 duration string or a timedelta); > 0 unless allowed."""
    expected = DURATION_HELP if not allow_zero else DURATION_HELP + " (zero allowed)"
    if isinstance(value, datetime.timedelta):
        ms = value.total_seconds() * 1000.0
    elif isinstance(value, str):
        text = value.strip()
        if text == "0":
            ms = 0.0
        elif _DURATION.fullmatch(text):
            ms = sum(float(n) * _UNIT_MS[u] for n, u in _PART.findall(text))
        else:
            raise ConfigError(field, value, expected)
    else:
        raise ConfigError(field, value, expected)
    if ms < 0 or (ms == 0 and not allow_zero):
        raise ConfigError(field, value, "a duration > 0" if not allow_zero else "a duration >= 0")
    return ms


def format_duration(ms: float) -> str:
    """A k6 duration string for ``ms`` milliseconds, e.g. 90500 -> ``'1m30s500ms'``."""
    if ms == 0:
        return "0s"
    whole = int(ms)
    frac = ms - whole
    parts = []
    hours, rest = divmod(whole, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds:
        parts.append(f"{seconds}s")
    if millis or frac:
        parts.append(f"{_trim(millis + frac)}ms")
    return "".join(parts)


def parse_percent(value: object, field: str) -> float:
    """A fraction from ``'0.5%'`` (0.005) or a plain number already a fraction (0.005)."""
    if isinstance(value, bool):
        raise ConfigError(field, value, "a percentage like '0.5%' or a fraction like 0.005")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ConfigError(
                field, value, "a percentage like '0.5%' or a fraction like 0.005"
            ) from None
    else:
        raise ConfigError(field, value, "a percentage like '0.5%' or a fraction like 0.005")
    if not 0.0 <= number <= 1.0:
        raise ConfigError(field, value, "a percentage between 0% and 100%")
    return number


_RATE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*/\s*(ms|s|m|h)")
_RATE_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_per_second(value: object, field: str) -> float:
    """Events per second from ``'1000/s'``, ``'60/m'`` or a plain number (per second)."""
    expected = "a rate like '1000/s', '60/m' or a number per second"
    if isinstance(value, bool):
        raise ConfigError(field, value, expected)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _RATE.fullmatch(value.strip())
        if match:
            return float(match.group(1)) / _RATE_UNIT_S[match.group(2)]
    raise ConfigError(field, value, expected)


def _trim(number: float) -> str:
    return f"{number:.6f}".rstrip("0").rstrip(".")


_SIZE = re.compile(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
SIZE_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def parse_size(value: object, field: str) -> int:
    """Bytes from a Kubernetes-style size: ``"256Mi"``, ``"1G"``, ``134217728``."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _SIZE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ConfigError(field, value, "a size like '256Mi' or '1Gi'")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])
