"""A capacity search's declaration: the SLOs each probe must hold, the rates it may try, and the
time it may take. A scenario module may carry one beside its ``scenario``::

    capacity = Capacity(
        slos=[latency("p(95) < 300ms"), error_rate("< 1%")],
        min_rate=50, max_rate=5000, step_duration="30s", budget="10m",
    )

``stressbed capacity`` options override it field by field (``--slo`` replaces the SLOs). Rates
are iterations per second of the scenario's flow, offered as an open model (k6's
constant-arrival-rate executor): with one request per iteration, requests per second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from .thresholds import Threshold, error_rate, latency
from .units import parse_duration_ms

__all__ = [
    "MAX_RATE",
    "MIN_STEADY_S",
    "Capacity",
    "parse_slo",
    "slo_label",
    "window_judgeable",
]

#: The highest rate a search may offer (iterations per second, the whole fleet).
MAX_RATE = 1_000_000
#: A probe's steady window (its step less the warm-up) is at least this long: the trend test
#: needs points to fit, and the SLO a window's worth of requests.
MIN_STEADY_S = 3.0
WARMUP_SHARE = 1 / 3
MIN_WARMUP_S = 5.0
_UPPER_BOUNDS = ("<", "<=")


@dataclass(frozen=True)
class Capacity:
    """What a capacity search may do; validated when built (ConfigError naming the field)."""

    slos: Sequence[Threshold | str] = ()
    min_rate: int = 10
    max_rate: int = 10_000
    step_duration: str = "30s"
    #: The start of each probe that is not judged; default a third of the step, at least 5 s
    #: (and never more than leaves MIN_STEADY_S of steady window).
    warmup: str | None = None
    budget: str = "10m"
    #: Bisection stops once the bracket is within this share of its lower rate.
    resolution: float = 0.05
    #: The workload whose flow the probes offer (needed when the scenario has several).
    workload: str | None = None
    #: The longest wait between probes for the stack to settle (replicas back, in-flight low).
    cooldown: str = "60s"
    #: Repeat the probes either side of the boundary (two trials must agree).
    confirm: bool = True
    _slos: tuple[Threshold, ...] = field(init=False, repr=False, compare=False)
    _ms: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        slos = self.slos
        if isinstance(slos, str | Threshold) or not isinstance(slos, Sequence):
            raise ConfigError("capacity.slos", slos, "a list of SLOs like 'p(95)<300ms'")
        parsed = tuple(_slo(s, f"capacity.slos[{i}]") for i, s in enumerate(slos))
        object.__setattr__(self, "_slos", parsed)
        for name in ("min_rate", "max_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
                raise ConfigError(
                    f"--{name.replace('_', '-')}",
                    value,
                    f"a whole number of iterations per second, 1..{MAX_RATE:,}",
                )
        if self.min_rate > self.max_rate:
            raise ConfigError("--min-rate", self.min_rate, f"at most --max-rate ({self.max_rate})")
        ms = {
            "step": parse_duration_ms(self.step_duration, "--step-duration"),
            "budget": parse_duration_ms(self.budget, "--budget"),
            "cooldown": parse_duration_ms(self.cooldown, "--cooldown", allow_zero=True),
        }
        if ms["step"] < (MIN_STEADY_S + 1) * 1000:
            raise ConfigError(
                "--step-duration",
                self.step_duration,
                f"at least {MIN_STEADY_S + 1:g}s (a warm-up and a steady window)",
            )
        if self.warmup is None:
            warmup = max(MIN_WARMUP_S * 1000, ms["step"] * WARMUP_SHARE)
            ms["warmup"] = min(warmup, ms["step"] - MIN_STEADY_S * 1000)
        else:
            ms["warmup"] = parse_duration_ms(self.warmup, "--warmup", allow_zero=True)
            if ms["step"] - ms["warmup"] < MIN_STEADY_S * 1000:
                raise ConfigError(
                    "--warmup",
                    self.warmup,
                    f"a warm-up that leaves at least {MIN_STEADY_S:g}s of the "
                    f"{self.step_duration} step to judge",
                )
        if (
            isinstance(self.resolution, bool)
            or not isinstance(self.resolution, int | float)
            or not 0.005 <= self.resolution <= 0.5
        ):
            raise ConfigError("--resolution", self.resolution, "a share 0.005..0.5 (0.05: 5%)")
        if self.workload is not None and not isinstance(self.workload, str):
            raise ConfigError("capacity.workload", self.workload, "a workload name")
        if not isinstance(self.confirm, bool):
            raise ConfigError("capacity.confirm", self.confirm, "True or False")
        object.__setattr__(self, "_ms", ms)

    # -- what the search reads ---------------------------------------------------------

    @property
    def slo_thresholds(self) -> tuple[Threshold, ...]:
        return self._slos

    @property
    def step_s(self) -> float:
        return self._ms["step"] / 1000

    @property
    def warmup_s(self) -> float:
        return self._ms["warmup"] / 1000

    @property
    def budget_s(self) -> float:
        return self._ms["budget"] / 1000

    @property
    def cooldown_s(self) -> float:
        return self._ms["cooldown"] / 1000

    def with_changes(self, **changes: Any) -> Capacity:
        """The same declaration with some fields replaced (validated again)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slos": [slo_label(t) for t in self._slos],
            "min_rate": self.min_rate,
            "max_rate": self.max_rate,
            "step_s": self.step_s,
            "warmup_s": self.warmup_s,
            "budget_s": self.budget_s,
            "resolution": self.resolution,
            "cooldown_s": self.cooldown_s,
            "confirm": self.confirm,
            "workload": self.workload,
        }


def parse_slo(text: str, where: str = "--slo") -> Threshold:
    """An SLO as the command line writes it: ``p(95)<300ms``, ``avg<50ms``, ``error_rate<1%``."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(where, text, "an SLO like 'p(95)<300ms' or 'error_rate<1%'")
    body = text.strip()
    try:
        if body.startswith("error_rate"):
            found = error_rate(body[len("error_rate") :])
        else:
            found = latency(body)
    except ConfigError:
        raise ConfigError(
            where, text, "an SLO like 'p(95)<300ms', 'avg<50ms' or 'error_rate<1%'"
        ) from None
    return replace(found, label=body)


def slo_label(threshold: Threshold) -> str:
    """An SLO as :func:`parse_slo` reads it back: ``p(95)<300ms``, ``error_rate<1%``; one
    request's latency is prefixed with its name (``report: p(95)<300ms``)."""
    op = threshold.operator
    if threshold.metric == "http_req_failed":
        return f"error_rate{op}{threshold.value * 100:g}%"
    text = f"{threshold.aggregation}{op}{threshold.value:g}ms"
    name = dict(threshold.tags).get("name")
    return f"{name}: {text}" if name else text


def window_judgeable(threshold: Threshold) -> bool:
    """A threshold one probe's steady window can judge: an upper bound on latency (overall or
    of one request name) or on the error rate."""
    tags = dict(threshold.tags)
    if threshold.operator not in _UPPER_BOUNDS or threshold.abort_on_fail:
        return False
    if threshold.metric == "http_req_duration":
        return set(tags) <= {"name"}
    return threshold.metric == "http_req_failed" and not tags


def _slo(value: object, where: str) -> Threshold:
    found = parse_slo(value, where) if isinstance(value, str) else value
    if not isinstance(found, Threshold):
        raise ConfigError(where, value, "an SLO string or a latency()/error_rate() threshold")
    if not window_judgeable(found):
        raise ConfigError(
            where,
            slo_label(found),
            "an upper bound (< or <=) on latency (overall or one request's) or on the error "
            "rate, without abort_on_fail: what one probe's steady window can judge",
        )
    return found
