"""Reconnect policies and churn: what a simulated agent does when its channel fails.

    reconnect.none()                                    # give up at the first failure
    reconnect.fixed("5s", jitter="20%", budget=10)      # 5 s +- 20 %, at most 10 attempts
    reconnect.backoff("1s", cap="60s", jitter="full")   # exponential, capped, full jitter
    Churn(rate="30/m", away="20s", never_back="10%")  # agents leaving and coming back

The backoff jitter modes are those of Marc Brooker's "Exponential Backoff And Jitter" (AWS
Architecture Blog, 2015), with ``attempt`` counted from 0 and ``exp = min(cap, base * 2^attempt)``:

- ``none``: ``exp`` (every agent retries at the same instants: the storm in waves);
- ``full``: uniform in ``[0, exp)``;
- ``equal``: ``exp / 2`` plus uniform in ``[0, exp / 2)``;
- ``decorrelated``: ``min(cap, uniform in [base, 3 * previous))``, previous starting at base.

The maths here is the specification: the JS runtime (``runtime/policy.js``) computes the same
delays from the same seeded generator (:class:`Mulberry32`), and a test runs both side by side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, cast

from ..errors import ConfigError
from .units import parse_duration_ms, parse_per_second, parse_percent

__all__ = [
    "JITTERS",
    "Churn",
    "Mulberry32",
    "Reconnect",
    "agent_seed",
    "backoff",
    "delays",
    "fixed",
    "none",
]

JITTERS = ("none", "full", "equal", "decorrelated")
Jitter = Literal["none", "full", "equal", "decorrelated"]
#: Longest wait a policy may declare: beyond an hour an agent has given up in all but name.
MAX_DELAY_MS = 3_600_000.0
_U32 = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    """JavaScript's Math.imul: the low 32 bits of the product, as an unsigned integer here."""
    return (a * b) & _U32


class Mulberry32:
    """A small seeded generator (Tommy Ettinger's mulberry32), exact in JS and Python alike:
    uniform floats in [0, 1) with 32 bits each."""

    def __init__(self, seed: int) -> None:
        self.state = seed & _U32

    def __call__(self) -> float:
        self.state = (self.state + 0x6D2B79F5) & _U32
        t = self.state
        t = _imul(t ^ (t >> 15), t | 1)
        t = (t + _imul(t ^ (t >> 7), t | 61)) & _U32 ^ t
        return ((t ^ (t >> 14)) & _U32) / 4294967296.0


def agent_seed(seed: int, index: int) -> int:
    """The seed of agent ``index``'s generator: the same agent draws the same numbers whichever
    runner and VU run it."""
    h = _imul((seed & _U32) ^ 0x9E3779B9, 0x85EBCA6B)
    h ^= _imul((index + 1) & _U32, 0xC2B2AE35)
    h ^= h >> 16
    return _imul(h, 0x7FEB352D) ^ (_imul(h, 0x7FEB352D) >> 15)


@dataclass(frozen=True)
class Reconnect:
    """A reconnect policy. ``budget`` is how many attempts in a row may fail before the agent
    gives up (None: never); a success resets it."""

    kind: Literal["none", "fixed", "backoff"]
    base_ms: float = 0.0
    cap_ms: float = 0.0
    jitter: Jitter | float = "none"
    budget: int | None = None

    def label(self) -> str:
        if self.kind == "none":
            return "none"
        budget = "" if self.budget is None else f", budget {self.budget}"
        if self.kind == "fixed":
            spread = f" +- {self.jitter:.0%}" if isinstance(self.jitter, float) else ""
            return f"fixed {self.base_ms:g} ms{spread}{budget}"
        return f"backoff {self.base_ms:g}..{self.cap_ms:g} ms, {self.jitter} jitter{budget}"

    def to_config(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "base_ms": self.base_ms,
            "cap_ms": self.cap_ms,
            "jitter": self.jitter,
            "budget": self.budget,
        }

    def delay_ms(self, attempt: int, previous_ms: float, rng: Callable[[], float]) -> float:
        """The wait before retry ``attempt`` (0 for the first after a failure); ``previous_ms``
        is the last wait (the base before the first), which only decorrelated jitter reads."""
        if self.kind == "fixed":
            spread = self.jitter if isinstance(self.jitter, float) else 0.0
            return self.base_ms * (1.0 + spread * (2.0 * rng() - 1.0))
        exp = min(self.cap_ms, self.base_ms * 2.0 ** min(attempt, 62))
        if self.jitter == "full":
            return rng() * exp
        if self.jitter == "equal":
            return exp / 2.0 + rng() * exp / 2.0
        if self.jitter == "decorrelated":
            high = max(self.base_ms, previous_ms * 3.0)
            return min(self.cap_ms, self.base_ms + rng() * (high - self.base_ms))
        return exp


def delays(policy: Reconnect, seed: int, count: int) -> Iterator[float]:
    """The first ``count`` waits of ``policy`` for a generator seeded with ``seed``: what an
    agent whose attempts all fail waits between them."""
    rng = Mulberry32(seed)
    previous = policy.base_ms
    for attempt in range(count):
        previous = policy.delay_ms(attempt, previous, rng)
        yield previous


def none() -> Reconnect:
    """No reconnect: an agent whose channel fails gives up."""
    return Reconnect("none")


def fixed(delay: object, *, jitter: object = "0%", budget: int | None = None) -> Reconnect:
    """Retry after ``delay``, spread uniformly by +- ``jitter`` (a share below 100 %)."""
    base = _delay(delay, "reconnect.fixed.delay")
    spread = parse_percent(jitter, "reconnect.fixed.jitter")
    if not 0.0 <= spread < 1.0:
        raise ConfigError("reconnect.fixed.jitter", jitter, "a share from 0% to below 100%")
    return Reconnect("fixed", base, base, spread, _budget(budget, "reconnect.fixed.budget"))


def backoff(
    base: object,
    *,
    cap: object = "60s",
    jitter: str = "full",
    budget: int | None = None,
) -> Reconnect:
    """Exponential backoff from ``base``, doubling up to ``cap``, with a jitter mode."""
    base_ms = _delay(base, "reconnect.backoff.base")
    cap_ms = _delay(cap, "reconnect.backoff.cap")
    if cap_ms < base_ms:
        raise ConfigError("reconnect.backoff.cap", cap, f"a duration >= base ({base})")
    if jitter not in JITTERS:
        raise ConfigError("reconnect.backoff.jitter", jitter, ", ".join(JITTERS))
    mode = cast("Jitter", jitter)
    return Reconnect("backoff", base_ms, cap_ms, mode, _budget(budget, "reconnect.backoff.budget"))


@dataclass(frozen=True)
class Churn:
    """Agents leaving at ``rate`` (fleet-wide, e.g. ``"30/m"``), each away for a time drawn
    from an exponential distribution with mean ``away``; a share ``never_back`` never returns."""

    rate_per_s: float
    away_ms: float
    never_back: float

    def __init__(self, rate: object, *, away: object = "30s", never_back: object = "0%") -> None:
        rate_per_s = parse_per_second(rate, "churn.rate")
        if not 0 < rate_per_s < math.inf:
            raise ConfigError("churn.rate", rate, "a finite rate > 0 like '30/m'")
        share = parse_percent(never_back, "churn.never_back")
        if not 0.0 <= share <= 1.0:
            raise ConfigError("churn.never_back", never_back, "a share from 0% to 100%")
        object.__setattr__(self, "rate_per_s", rate_per_s)
        object.__setattr__(self, "away_ms", _delay(away, "churn.away"))
        object.__setattr__(self, "never_back", share)

    def to_config(self) -> dict[str, object]:
        return {
            "rate_per_s": self.rate_per_s,
            "away_ms": self.away_ms,
            "never_back": self.never_back,
        }


def _delay(value: object, field: str) -> float:
    ms = parse_duration_ms(value, field)
    if ms > MAX_DELAY_MS:
        raise ConfigError(field, value, "a duration up to 1h")
    return ms


def _budget(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(field, value, "an integer >= 1 (attempts), or None for no limit")
    return value
