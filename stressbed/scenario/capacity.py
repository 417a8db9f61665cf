"""A capacity search's declaration: the SLOs each probe must hold, the rates it may try, and the
time it may take. A scenario module may carry one beside its ``scenario``::

    capacity = Capacity(
        slos=[latency("p(95) < 300ms"), error_rate("< 1%")],
        min_rate=50, max_rate=5000, step_duration="30s", budget="10m",
    )

``stressbed capacity`` options override it field by field (``--slo`` replaces the SLOs). Rates
are iterations per second of the scenario's flow, offered as an open model (k6's
constant-arrival-rate executor): with one request per iteration, requests per second.

A population (a workload of simulated agents) is searched along its agent count instead:
``min_agents`` and ``max_agents`` bound it, and its SLOs may also be the population's
(``connected("> 99%")``, ``checkin_lateness("p(99) < 2s")``, ...)::

    capacity = Capacity(slos=[connected(">= 99%"), checkin_lateness("p(99) < 2s")],
                        min_agents=500, max_agents=20_000, step_duration="30s")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ConfigError
from .population import MAX_AGENTS
from .thresholds import (
    AGENT_METRICS,
    CONNECTED_METRIC,
    Threshold,
    checkin_lateness,
    command_rtt,
    connect_time,
    connected,
    error_rate,
    latency,
    reconnect_time,
)
from .units import parse_duration_ms

__all__ = [
    "AGENT_SLOS",
    "MAX_RATE",
    "MIN_STEADY_S",
    "Capacity",
    "parse_slo",
    "population_judgeable",
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
_LOWER_BOUNDS = (">", ">=")
#: The population's trends an SLO may bound, by the name ``--slo`` gives them
#: (``checkin_lateness p(99)<2s``), and how each is built.
AGENT_SLOS = {
    "checkin_lateness": checkin_lateness,
    "connect_time": connect_time,
    "command_rtt": command_rtt,
    "reconnect_time": reconnect_time,
}
_AGENT_NAMES = {f"agent_{name}": name for name in AGENT_SLOS}


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
    #: A population's search: the fewest and the most agents it offers (None: from the
    #: population's declared count, a tenth of it and ten times it).
    min_agents: int | None = None
    max_agents: int | None = None
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
        for name in ("min_agents", "max_agents"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= MAX_AGENTS
            ):
                raise ConfigError(
                    f"--{name.replace('_', '-')}",
                    value,
                    f"a whole number of agents, 1..{MAX_AGENTS:,}",
                )
        if (
            self.min_agents is not None
            and self.max_agents is not None
            and self.min_agents > self.max_agents
        ):
            raise ConfigError(
                "--min-agents", self.min_agents, f"at most --max-agents ({self.max_agents})"
            )
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
            "min_agents": self.min_agents,
            "max_agents": self.max_agents,
        }


def parse_slo(text: str, where: str = "--slo") -> Threshold:
    """An SLO as the command line writes it: ``p(95)<300ms``, ``avg<50ms``, ``error_rate<1%``;
    a population's too: ``connected>=99%``, ``checkin_lateness p(99)<2s`` (any of
    :data:`AGENT_SLOS`)."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(where, text, "an SLO like 'p(95)<300ms' or 'error_rate<1%'")
    body = text.strip()
    name, _, rest = body.partition(" ")
    try:
        if body.startswith("error_rate"):
            found = error_rate(body[len("error_rate") :])
        elif body.startswith("connected"):
            found = connected(body[len("connected") :])
        elif name in AGENT_SLOS:
            found = AGENT_SLOS[name](rest)
        else:
            found = latency(body)
    except ConfigError:
        raise ConfigError(
            where,
            text,
            "an SLO like 'p(95)<300ms', 'avg<50ms', 'error_rate<1%' or, for a population, "
            "'connected>=99%', 'checkin_lateness p(99)<2s'",
        ) from None
    return replace(found, label=body)


def slo_label(threshold: Threshold) -> str:
    """An SLO as :func:`parse_slo` reads it back: ``p(95)<300ms``, ``error_rate<1%``; one
    request's latency is prefixed with its name (``report: p(95)<300ms``)."""
    op = threshold.operator
    if threshold.metric == "http_req_failed":
        return f"error_rate{op}{threshold.value * 100:g}%"
    if threshold.metric == CONNECTED_METRIC:
        return f"connected{op}{threshold.value * 100:g}%"
    text = f"{threshold.aggregation}{op}{threshold.value:g}ms"
    if threshold.metric in _AGENT_NAMES:
        return f"{_AGENT_NAMES[threshold.metric]} {text}"
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


def population_judgeable(threshold: Threshold) -> bool:
    """A threshold of a population that one probe can judge: a lower bound on the connected
    share, or an upper bound on one of its trends (check-in lateness, connect time, command
    round trip, reconnect time), of the whole population (no tag but its workload's)."""
    if threshold.abort_on_fail or not set(dict(threshold.tags)) <= {"scenario"}:
        return False
    if threshold.metric == CONNECTED_METRIC:
        return threshold.operator in _LOWER_BOUNDS
    return (
        threshold.metric in _AGENT_NAMES
        and AGENT_METRICS[threshold.metric] == "trend"
        and threshold.operator in _UPPER_BOUNDS
        and threshold.aggregation != "min"
    )


def _slo(value: object, where: str) -> Threshold:
    found = parse_slo(value, where) if isinstance(value, str) else value
    if not isinstance(found, Threshold):
        raise ConfigError(where, value, "an SLO string or a latency()/error_rate() threshold")
    if not window_judgeable(found) and not population_judgeable(found):
        raise ConfigError(
            where,
            slo_label(found),
            "an upper bound (< or <=) on latency (overall or one request's) or on the error "
            "rate, or a population's connected share (> or >=) or trend (<, <=), without "
            "abort_on_fail: what one probe can judge",
        )
    return found
