"""The resilience thresholds that judge a scenario's faults, every fault each:

    recovery_time("< 30s"), time_to_detect("< 10s"), lost_writes("== 0"),
    errors_during_fault("< 5%")

Each is one line naming what is wrong when it is written wrong; judged by
:mod:`stressbed.results.resilience`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .thresholds import OPERATORS
from .units import parse_duration_ms, parse_percent

__all__ = ["Resilience", "errors_during_fault", "lost_writes", "recovery_time", "time_to_detect"]

_SPEC = re.compile(r"\s*(<=|>=|==|<|>)\s*(\S+)\s*")
#: metric -> (what its value is, an example, its unit's parser)
_METRICS: dict[str, tuple[str, str]] = {
    "recovery_time": ("seconds", "< 30s"),
    "time_to_detect": ("seconds", "< 10s"),
    "lost_writes": ("count", "== 0"),
    "errors_during_fault": ("share", "< 5%"),
}


@dataclass(frozen=True)
class Resilience:
    """A bound on one resilience measure, judged per fault (every fault must meet it)."""

    metric: str  # recovery_time, time_to_detect, lost_writes, errors_during_fault
    op: str
    value: float  # seconds, a count or a fraction
    spec: str  # as written

    def holds(self, observed: float | None) -> bool:
        """Whether ``observed`` meets the bound; a measure that never came (a fault that
        never recovered, never detected) does not."""
        if observed is None or (isinstance(observed, float) and math.isnan(observed)):
            return False
        return OPERATORS[self.op](observed, self.value)

    @property
    def label(self) -> str:
        return f"{self.metric} {self.spec.strip()}"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "op": self.op, "value": self.value, "spec": self.spec}


def _resilience(metric: str, spec: object) -> Resilience:
    kind, example = _METRICS[metric]
    match = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if not match:
        raise ConfigError(metric, spec, f"a bound like {example!r}")
    op, text = match.groups()
    value: float
    if kind == "seconds":
        value = parse_duration_ms(text, metric, allow_zero=True) / 1000
    elif kind == "share":
        value = parse_percent(text, metric)
    else:
        try:
            value = float(int(text))
        except ValueError:
            raise ConfigError(metric, spec, f"a whole count, like {example!r}") from None
    return Resilience(metric, op, value, str(spec))


def recovery_time(spec: str) -> Resilience:
    """From injection to the first second after which p95 and the error rate stay within
    the SLO for 10 s: ``recovery_time("< 30s")``."""
    return _resilience("recovery_time", spec)


def time_to_detect(spec: str) -> Resilience:
    """From injection to the stack noticing (a probe failing, a restart, a replica routed
    around): ``time_to_detect("< 10s")``."""
    return _resilience("time_to_detect", spec)


def lost_writes(spec: str) -> Resilience:
    """Writes acknowledged to the load but not stored: ``lost_writes("== 0")``."""
    return _resilience("lost_writes", spec)


def errors_during_fault(spec: str) -> Resilience:
    """The failed share of the requests from injection to recovery:
    ``errors_during_fault("< 5%")``."""
    return _resilience("errors_during_fault", spec)
