"""Load profiles: one class per k6 executor, validated, rendered one to one.

    ConstantVUs(vus=10, duration="1m")
    RampingVUs(stages=[("30s", 20), ("2m", 20), ("10s", 0)])
    ConstantArrivalRate(rate=200, duration="1m", pre_allocated_vus=20, max_vus=100)
    RampingArrivalRate(stages=[("2m", 500), ("3m", 500)], pre_allocated_vus=50, max_vus=400)
    PerVUIterations(vus=10, iterations=100)
    SharedIterations(vus=10, iterations=1000)

Each profile also states what k6 will need (:meth:`LoadProfile.peak_vus`) and how long it may
run (:meth:`LoadProfile.duration_ms`), as ``k6 inspect --execution-requirements`` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

from ..errors import ConfigError
from .units import format_duration, parse_duration_ms

__all__ = [
    "ConstantArrivalRate",
    "ConstantVUs",
    "LoadProfile",
    "PerVUIterations",
    "RampingArrivalRate",
    "RampingVUs",
    "SharedIterations",
    "Stage",
]


@dataclass(frozen=True)
class Stage:
    """Move to ``target`` (VUs or iterations per time unit) over ``duration``."""

    duration_ms: float
    target: int

    def to_k6(self) -> dict[str, object]:
        return {"duration": format_duration(self.duration_ms), "target": self.target}


class LoadProfile(ABC):
    """Base of the executor profiles."""

    executor: ClassVar[str]

    @abstractmethod
    def to_k6(self) -> dict[str, object]:
        """The executor-specific part of a k6 scenario (no startTime, gracefulStop, exec)."""

    @abstractmethod
    def peak_vus(self) -> int:
        """The most VUs k6 will initialise for this profile."""

    @abstractmethod
    def duration_ms(self) -> float:
        """How long the executor may run, before its graceful stop."""

    @abstractmethod
    def scaled(self, factor: float) -> LoadProfile:
        """The same profile with every duration multiplied by ``factor``."""


@dataclass(frozen=True)
class ConstantVUs(LoadProfile):
    vus: int
    duration: str
    executor: ClassVar[str] = "constant-vus"
    _ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count(f"{self.executor}.vus", self.vus)
        object.__setattr__(self, "_ms", _at_least_1s(self.duration, self.executor))

    def to_k6(self) -> dict[str, object]:
        return {"executor": self.executor, "vus": self.vus, "duration": format_duration(self._ms)}

    def peak_vus(self) -> int:
        return self.vus

    def duration_ms(self) -> float:
        return self._ms

    def scaled(self, factor: float) -> ConstantVUs:
        return replace(self, duration=_scale(self._ms, factor))


@dataclass(frozen=True)
class RampingVUs(LoadProfile):
    stages: Sequence[tuple[str, int] | Stage]
    start_vus: int = 1
    graceful_ramp_down: str = "30s"
    executor: ClassVar[str] = "ramping-vus"
    _stages: tuple[Stage, ...] = field(init=False, repr=False, compare=False)
    _ramp_down_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count(f"{self.executor}.start_vus", self.start_vus, allow_zero=True)
        object.__setattr__(self, "_stages", _stages(self.stages, self.executor))
        object.__setattr__(
            self,
            "_ramp_down_ms",
            parse_duration_ms(
                self.graceful_ramp_down, f"{self.executor}.graceful_ramp_down", allow_zero=True
            ),
        )
        if self.peak_vus() == 0:
            raise ConfigError(
                f"{self.executor}.stages", self.stages, "at least one stage with a target > 0"
            )

    def to_k6(self) -> dict[str, object]:
        return {
            "executor": self.executor,
            "startVUs": self.start_vus,
            "stages": [s.to_k6() for s in self._stages],
            "gracefulRampDown": format_duration(self._ramp_down_ms),
        }

    def peak_vus(self) -> int:
        return max([self.start_vus, *(s.target for s in self._stages)])

    def duration_ms(self) -> float:
        return sum(s.duration_ms for s in self._stages)

    def scaled(self, factor: float) -> RampingVUs:
        return replace(self, stages=_scale_stages(self._stages, factor))


@dataclass(frozen=True)
class ConstantArrivalRate(LoadProfile):
    """``rate`` iterations per ``time_unit``, started whether or not earlier ones finished."""

    rate: int
    duration: str
    pre_allocated_vus: int
    max_vus: int | None = None
    time_unit: str = "1s"
    executor: ClassVar[str] = "constant-arrival-rate"
    _peak: int = field(init=False, repr=False, compare=False)
    _ms: float = field(init=False, repr=False, compare=False)
    _unit_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count(f"{self.executor}.rate", self.rate)
        peak = _vu_pool(self.executor, self.pre_allocated_vus, self.max_vus)
        object.__setattr__(self, "_peak", peak)
        object.__setattr__(self, "_ms", _at_least_1s(self.duration, self.executor))
        object.__setattr__(
            self, "_unit_ms", parse_duration_ms(self.time_unit, f"{self.executor}.time_unit")
        )

    def to_k6(self) -> dict[str, object]:
        return {
            "executor": self.executor,
            "rate": self.rate,
            "timeUnit": format_duration(self._unit_ms),
            "duration": format_duration(self._ms),
            "preAllocatedVUs": self.pre_allocated_vus,
            "maxVUs": self.peak_vus(),
        }

    def peak_vus(self) -> int:
        return self._peak

    def duration_ms(self) -> float:
        return self._ms

    def scaled(self, factor: float) -> ConstantArrivalRate:
        return replace(self, duration=_scale(self._ms, factor))


@dataclass(frozen=True)
class RampingArrivalRate(LoadProfile):
    """Iteration rate moving through ``stages`` (targets per ``time_unit``) from ``start_rate``."""

    stages: Sequence[tuple[str, int] | Stage]
    pre_allocated_vus: int
    max_vus: int | None = None
    start_rate: int = 0
    time_unit: str = "1s"
    executor: ClassVar[str] = "ramping-arrival-rate"
    _peak: int = field(init=False, repr=False, compare=False)
    _stages: tuple[Stage, ...] = field(init=False, repr=False, compare=False)
    _unit_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count(f"{self.executor}.start_rate", self.start_rate, allow_zero=True)
        peak = _vu_pool(self.executor, self.pre_allocated_vus, self.max_vus)
        object.__setattr__(self, "_peak", peak)
        object.__setattr__(self, "_stages", _stages(self.stages, self.executor))
        object.__setattr__(
            self, "_unit_ms", parse_duration_ms(self.time_unit, f"{self.executor}.time_unit")
        )
        if self.start_rate == 0 and all(s.target == 0 for s in self._stages):
            raise ConfigError(
                f"{self.executor}.stages", self.stages, "at least one stage with a target rate > 0"
            )

    def to_k6(self) -> dict[str, object]:
        return {
            "executor": self.executor,
            "startRate": self.start_rate,
            "timeUnit": format_duration(self._unit_ms),
            "stages": [s.to_k6() for s in self._stages],
            "preAllocatedVUs": self.pre_allocated_vus,
            "maxVUs": self.peak_vus(),
        }

    def peak_vus(self) -> int:
        return self._peak

    def duration_ms(self) -> float:
        return sum(s.duration_ms for s in self._stages)

    def scaled(self, factor: float) -> RampingArrivalRate:
        return replace(self, stages=_scale_stages(self._stages, factor))


@dataclass(frozen=True)
class _Iterations(LoadProfile):
    """A fixed number of iterations, within ``max_duration``."""

    vus: int
    iterations: int
    max_duration: str = "10m"
    _ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _count(f"{self.executor}.vus", self.vus)
        _count(f"{self.executor}.iterations", self.iterations)
        object.__setattr__(
            self, "_ms", parse_duration_ms(self.max_duration, f"{self.executor}.max_duration")
        )

    def to_k6(self) -> dict[str, object]:
        return {
            "executor": self.executor,
            "vus": self.vus,
            "iterations": self.iterations,
            "maxDuration": format_duration(self._ms),
        }

    def peak_vus(self) -> int:
        return self.vus

    def duration_ms(self) -> float:
        return self._ms

    def scaled(self, factor: float) -> _Iterations:
        # Iterations stay as prescribed; only the time allowed for them scales.
        return replace(self, max_duration=_scale(self._ms, factor))


@dataclass(frozen=True)
class PerVUIterations(_Iterations):
    """Each of ``vus`` VUs runs ``iterations`` iterations, within ``max_duration``."""

    executor: ClassVar[str] = "per-vu-iterations"


@dataclass(frozen=True)
class SharedIterations(_Iterations):
    """``iterations`` iterations in all, shared by ``vus`` VUs, within ``max_duration``."""

    executor: ClassVar[str] = "shared-iterations"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations < self.vus:
            raise ConfigError(
                f"{self.executor}.iterations",
                self.iterations,
                f"an integer >= vus ({self.vus}), as k6 requires",
            )


def _at_least_1s(duration: str, executor: str) -> float:
    """k6 refuses constant-vus and constant-arrival-rate durations under one second."""
    ms = parse_duration_ms(duration, f"{executor}.duration")
    if ms < 1000:
        raise ConfigError(f"{executor}.duration", duration, "at least 1s (k6's shortest)")
    return ms


def _scale(ms: float, factor: float) -> str:
    # Whole milliseconds, at least 1 ms: k6 rejects sub-millisecond precision in places.
    return format_duration(max(1.0, round(ms * factor)))


def _scale_stages(stages: tuple[Stage, ...], factor: float) -> list[tuple[str, int]]:
    return [(format_duration(round(s.duration_ms * factor)), s.target) for s in stages]


def _vu_pool(executor: str, pre_allocated: object, maximum: object) -> int:
    """Validate an arrival-rate executor's VU pool; its peak (maxVUs defaults to preAllocated)."""
    _count(f"{executor}.pre_allocated_vus", pre_allocated)
    assert isinstance(pre_allocated, int)
    if maximum is None:
        return pre_allocated
    _count(f"{executor}.max_vus", maximum)
    assert isinstance(maximum, int)
    if maximum < pre_allocated:
        raise ConfigError(
            f"{executor}.max_vus", maximum, f"an integer >= pre_allocated_vus ({pre_allocated})"
        )
    return maximum


def _count(name: str, value: object, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        raise ConfigError(name, value, "an integer >= 0" if allow_zero else "an integer >= 1")


def _stages(stages: object, executor: str) -> tuple[Stage, ...]:
    if isinstance(stages, str) or not isinstance(stages, Sequence) or not stages:
        raise ConfigError(
            f"{executor}.stages", stages, "a non-empty list of (duration, target) pairs"
        )
    out = []
    for i, stage in enumerate(stages):
        if isinstance(stage, Stage):
            out.append(stage)
            continue
        if not isinstance(stage, tuple | list) or len(stage) != 2:
            raise ConfigError(
                f"{executor}.stages[{i}]", stage, "a (duration, target) pair like ('1m', 50)"
            )
        duration, target = stage
        ms = parse_duration_ms(duration, f"{executor}.stages[{i}].duration", allow_zero=True)
        _count(f"{executor}.stages[{i}].target", target, allow_zero=True)
        out.append(Stage(ms, target))
    if sum(s.duration_ms for s in out) <= 0:
        raise ConfigError(f"{executor}.stages", stages, "stages lasting more than 0s in total")
    return tuple(out)
