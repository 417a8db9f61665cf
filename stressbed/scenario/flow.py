"""Flows: what one iteration of a virtual user does.

A flow is a tree: a :class:`~stressbed.http.Request`, a :class:`Journey` of ordered steps, a
:class:`Group` (a journey reported as a k6 group), a :class:`Think` pause, or a :class:`Mix`
that picks one weighted branch per iteration::

    mix((report, 65), (heartbeat, 25), (submit_task, 10))
    journey(login, create, think.uniform("0.5s", "2s"), confirm)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, TypeAlias

from ..errors import ConfigError
from .http import Request
from .units import parse_duration_ms

__all__ = [
    "Flow",
    "Group",
    "Journey",
    "Mix",
    "Think",
    "group",
    "journey",
    "mean_requests",
    "mix",
    "think_constant",
    "think_normal",
    "think_time_s",
    "think_uniform",
]

Flow: TypeAlias = "Request | Journey | Group | Mix | Think"
#: How many draws the runtime makes of a normal pause before it clamps the mean instead.
NORMAL_TRIES = 16


@dataclass(frozen=True)
class Think:
    """A pause, in seconds: constant, uniform in [low, high], or normal truncated to bounds."""

    dist: Literal["constant", "uniform", "normal"]
    low: float
    high: float
    mean: float = 0.0
    sd: float = 0.0

    def to_config(self) -> dict[str, object]:
        config: dict[str, object] = {"type": "think", "dist": self.dist}
        if self.dist == "constant":
            config["seconds"] = self.low
        elif self.dist == "uniform":
            config.update(low=self.low, high=self.high)
        else:
            config.update(mean=self.mean, sd=self.sd, low=self.low, high=self.high)
        return config


def think_constant(duration: str) -> Think:
    seconds = parse_duration_ms(duration, "think", allow_zero=True) / 1000.0
    return Think("constant", seconds, seconds)


def think_uniform(low: str, high: str) -> Think:
    lo = parse_duration_ms(low, "think.low", allow_zero=True) / 1000.0
    hi = parse_duration_ms(high, "think.high") / 1000.0
    if hi <= lo:
        raise ConfigError("think.high", high, f"a duration > low ({low})")
    return Think("uniform", lo, hi)


def think_normal(mean: str, sd: str, *, low: str = "0s", high: str | None = None) -> Think:
    """Normal(mean, sd) seconds, resampled into [low, high] (high defaults to mean + 4 sd)."""
    m = parse_duration_ms(mean, "think.mean") / 1000.0
    s = parse_duration_ms(sd, "think.sd") / 1000.0
    lo = parse_duration_ms(low, "think.low", allow_zero=True) / 1000.0
    hi = parse_duration_ms(high, "think.high") / 1000.0 if high is not None else m + 4 * s
    if hi <= lo:
        raise ConfigError("think.high", high, f"a duration > low ({low})")
    return Think("normal", lo, hi, m, s)


@dataclass(frozen=True)
class Journey:
    """Steps in order; ``think`` (if given) pauses between consecutive steps."""

    steps: tuple[Flow, ...]
    think: Think | None = None

    def to_config(self) -> dict[str, object]:
        return {
            "type": "journey",
            "steps": [s.to_config() for s in self.steps],
            "think": self.think.to_config() if self.think else None,
        }


@dataclass(frozen=True)
class Group:
    """A journey whose requests k6 reports under ``group`` (``group_duration`` metric)."""

    name: str
    steps: tuple[Flow, ...]
    think: Think | None = None

    def to_config(self) -> dict[str, object]:
        return {
            "type": "group",
            "name": self.name,
            "steps": [s.to_config() for s in self.steps],
            "think": self.think.to_config() if self.think else None,
        }


@dataclass(frozen=True)
class Mix:
    """One branch per iteration, with probability proportional to its weight.

    ``sampling="balanced"`` (the default) walks a low-discrepancy sequence from a random start
    per VU: the order looks random, but each VU's proportions converge on the weights as 1/n
    rather than 1/sqrt(n). ``"random"`` draws independently every iteration.
    """

    entries: tuple[tuple[Flow, float], ...]
    sampling: Literal["balanced", "random"] = "balanced"

    def to_config(self) -> dict[str, object]:
        return {
            "type": "mix",
            "sampling": self.sampling,
            "entries": [{"weight": w, "flow": f.to_config()} for f, w in self.entries],
        }


def journey(*steps: Flow, think: Think | None = None) -> Journey:
    return Journey(_steps(steps, "journey"), _think(think, "journey.think"))


def group(name: str, *steps: Flow, think: Think | None = None) -> Group:
    if not isinstance(name, str) or not name or "::" in name:
        raise ConfigError("group.name", name, "a non-empty string without '::'")
    return Group(name, _steps(steps, f"group {name!r}"), _think(think, "group.think"))


def mix(*entries: tuple[Flow, float], sampling: Literal["balanced", "random"] = "balanced") -> Mix:
    if not entries:
        raise ConfigError("mix", (), "at least one (flow, weight) entry")
    if sampling not in ("balanced", "random"):
        raise ConfigError("mix.sampling", sampling, "'balanced' or 'random'")
    checked: list[tuple[Flow, float]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, tuple) or len(entry) != 2:
            raise ConfigError(f"mix[{i}]", entry, "a (flow, weight) pair")
        flow, weight = entry
        if not is_flow(flow):
            raise ConfigError(f"mix[{i}]", flow, "a request, journey, group or mix")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise ConfigError(f"mix[{i}].weight", weight, "a number > 0")
        checked.append((flow, float(weight)))
    return Mix(tuple(checked), sampling)


def is_flow(value: object) -> bool:
    return isinstance(value, Request | Journey | Group | Mix | Think)


def requests(flow: Flow) -> Iterator[Request]:
    """Every request in ``flow``, depth first."""
    if isinstance(flow, Request):
        yield flow
    elif isinstance(flow, Journey | Group):
        for step in flow.steps:
            yield from requests(step)
    elif isinstance(flow, Mix):
        for branch, _ in flow.entries:
            yield from requests(branch)


def mean_requests(flow: Flow) -> float:
    """How many requests one iteration of ``flow`` makes on average (a mix weighs its
    branches): 1 for a mix of single requests, so that iterations/s are requests/s."""
    if isinstance(flow, Request):
        return 1.0
    if isinstance(flow, Journey | Group):
        return sum(mean_requests(step) for step in flow.steps)
    if isinstance(flow, Mix):
        total = sum(weight for _, weight in flow.entries)
        return sum(mean_requests(branch) * weight for branch, weight in flow.entries) / total
    return 0.0


def think_time_s(flow: Flow) -> tuple[float, float]:
    """The seconds one iteration of ``flow`` pauses: (on average, at most). A journey pauses
    between consecutive steps; a mix weighs its branches (the most: its longest branch)."""
    if isinstance(flow, Think):
        return _think_mean(flow), flow.high
    if isinstance(flow, Journey | Group):
        pauses = [think_time_s(step) for step in flow.steps]
        between = (len(flow.steps) - 1) if flow.think is not None else 0
        mean, most = (_think_mean(flow.think), flow.think.high) if flow.think else (0.0, 0.0)
        return (
            sum(p[0] for p in pauses) + between * mean,
            sum(p[1] for p in pauses) + between * most,
        )
    if isinstance(flow, Mix):
        total = sum(weight for _, weight in flow.entries)
        branches = [(think_time_s(branch), weight) for branch, weight in flow.entries]
        return (
            sum(pause[0] * weight for pause, weight in branches) / total,
            max(pause[1] for pause, _ in branches),
        )
    return 0.0, 0.0


def _think_mean(think: Think) -> float:
    """A pause's mean, as the runtime sleeps it: a normal one is drawn up to 16 times until it
    falls in [low, high], else its mean is clamped to them (runtime/generators.js)."""
    if think.dist == "constant":
        return think.low
    if think.dist == "uniform":
        return (think.low + think.high) / 2
    clamped = min(think.high, max(think.low, think.mean))
    a, b = (think.low - think.mean) / think.sd, (think.high - think.mean) / think.sd
    mass = _normal_cdf(b) - _normal_cdf(a)
    if mass <= 0:
        return clamped
    inside = think.mean + think.sd * (_normal_pdf(a) - _normal_pdf(b)) / mass
    missed = (1 - mass) ** NORMAL_TRIES
    return (1 - missed) * inside + missed * clamped


def _normal_pdf(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def _normal_cdf(x: float) -> float:
    return (1 + math.erf(x / math.sqrt(2))) / 2


def _steps(steps: tuple[Flow, ...], where: str) -> tuple[Flow, ...]:
    if not steps:
        raise ConfigError(where, (), "at least one step")
    for i, step in enumerate(steps):
        if not is_flow(step):
            raise ConfigError(
                f"{where}.steps[{i}]", step, "a request, journey, group, mix or think"
            )
    return steps


def _think(value: Think | None, field: str) -> Think | None:
    if value is not None and not isinstance(value, Think):
        raise ConfigError(field, value, "think_constant/think_uniform/think_normal(...)")
    return value
