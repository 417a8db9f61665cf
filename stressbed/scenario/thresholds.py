"""Thresholds: the SLOs a run is judged by, typed or as raw k6 expressions.

    latency("p(95) < 500ms")                        # http_req_duration
    latency("p(99) < 1s", request="report")         # on the requests named "report"
    error_rate("< 0.5%")                            # http_req_failed
    request_rate("> 1000/s")                        # http_reqs
    check_rate("> 99%")                             # checks
    threshold("http_req_waiting", "p(90) < 200")    # any k6 metric and expression

and for a population of simulated agents (the runtime's ``agent_*`` metrics):

    connected("> 99%")                 # connected / wanted agents over the plateau
    reconnect_time("p(99) < 60s")      # agent_reconnect_time
    checkin_lateness("p(99) < 2s")     # agent_checkin_lateness
    connect_time("p(95) < 1s")         # agent_connect_time
    command_rtt("p(99) < 500ms")       # agent_command_rtt

Each becomes one k6 threshold (``metric{tag:value}`` -> ``"p(95)<500"``); the parsed parts
are kept so the fleet can evaluate the same threshold on merged data. ``connected`` is the
exception: k6 has no such metric (it is a level read from counters of every runner), so it is
judged by stressbed alone and left out of k6's options (:attr:`Threshold.k6`).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypedDict, Unpack

from ..errors import ConfigError
from .units import format_duration, parse_duration_ms, parse_per_second, parse_percent

__all__ = [
    "AGENT_METRICS",
    "BUILTIN_METRICS",
    "CONNECTED_METRIC",
    "METRICS",
    "OPERATORS",
    "SYSTEM_TAGS",
    "Selection",
    "Threshold",
    "check_rate",
    "checkin_lateness",
    "command_rtt",
    "connect_time",
    "connected",
    "error_rate",
    "latency",
    "reconnect_time",
    "request_rate",
    "threshold",
]

#: k6's built-in metrics and their types; thresholds on them are checked against the type.
BUILTIN_METRICS: Mapping[str, str] = {
    "checks": "rate",
    "data_received": "counter",
    "data_sent": "counter",
    "dropped_iterations": "counter",
    "group_duration": "trend",
    "http_req_blocked": "trend",
    "http_req_connecting": "trend",
    "http_req_duration": "trend",
    "http_req_failed": "rate",
    "http_req_receiving": "trend",
    "http_req_sending": "trend",
    "http_req_tls_handshaking": "trend",
    "http_req_waiting": "trend",
    "http_reqs": "counter",
    "iteration_duration": "trend",
    "iterations": "counter",
    "vus": "gauge",
    "vus_max": "gauge",
}
#: The custom metrics a population's k6 runtime emits (tagged with the workload's ``scenario``;
#: ``agent_connect_failures`` and ``agent_disconnects`` with a ``reason`` too), and their types.
AGENT_METRICS: Mapping[str, str] = {
    "agent_checkin_lateness": "trend",
    "agent_checkins_missed": "counter",
    "agent_command_rtt": "trend",
    "agent_commands": "counter",
    "agent_connect_attempts": "counter",
    "agent_connect_failures": "counter",
    "agent_connect_time": "trend",
    "agent_connects": "counter",
    "agent_disconnects": "counter",
    "agent_gave_up": "counter",
    "agent_reconnect_time": "trend",
    "agent_reconnects": "counter",
    "agent_registrations": "counter",
    "agents_joined": "counter",
    "agents_left": "counter",
}
#: Every metric a threshold may read in k6's samples: k6's own and the population's.
METRICS: Mapping[str, str] = {**BUILTIN_METRICS, **AGENT_METRICS}
#: The share of the wanted agents that were connected over the population's plateau: no k6
#: metric, a level stressbed reads from the merged counters (``connected(...)``).
CONNECTED_METRIC = "agents_connected"
#: The tags k6 attaches to samples in a stressbed run (``--system-tags``): what a threshold can
#: select on. The runtime tags requests with ``name``; ``scenario`` is the workload.
SYSTEM_TAGS = (
    "check",
    "error_code",
    "expected_response",
    "group",
    "method",
    "name",
    "scenario",
    "status",
)
_AGGREGATIONS = {
    "trend": "avg, min, max, med or p(N)",
    "counter": "count or rate",
    "rate": "rate",
    "gauge": "value",
    "share": "share",
}
#: The comparisons a bound may use (a k6 threshold's, a resilience threshold's).
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "===": operator.eq,
    "!=": operator.ne,
}
_AGG = r"(avg|min|max|med|count|rate|value|p\(\s*\d+(?:\.\d+)?\s*\))"
_OP = r"(<=|>=|===|==|!=|<|>)"
_RAW = re.compile(rf"\s*{_AGG}\s*{_OP}\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*")
_TYPED = re.compile(rf"\s*{_AGG}?\s*{_OP}\s*(.+?)\s*")
_METRIC = re.compile(r"[A-Za-z0-9_]{1,128}")
_TAG = re.compile(r"[^{}:,]+")


@dataclass(frozen=True)
class Threshold:
    """One threshold: ``aggregation operator value`` on ``metric`` restricted to ``tags``."""

    metric: str
    aggregation: str
    operator: str
    value: float
    tags: tuple[tuple[str, str], ...] = ()
    abort_on_fail: bool = False
    delay_ms: float | None = None
    #: With no samples at all (a request that never ran), it passes instead of failing.
    optional: bool = False
    #: How the user wrote it (``"p(95) < 500ms"``), for reports.
    label: str = ""

    @property
    def key(self) -> str:
        """The k6 metric key, with a tag selector when restricted: ``m{name:report}``."""
        if not self.tags:
            return self.metric
        return self.metric + "{" + ",".join(f"{k}:{v}" for k, v in self.tags) + "}"

    @property
    def expression(self) -> str:
        return f"{self.aggregation}{self.operator}{_number(self.value)}"

    @property
    def k6(self) -> bool:
        """Whether k6 has the metric, so the threshold goes into k6's options; False for one
        stressbed alone judges on the merged data (``connected``)."""
        return self.metric != CONNECTED_METRIC

    def passes(self, observed: float) -> bool:
        """k6's verdict for ``observed``; a missing (NaN) observation fails."""
        if math.isnan(observed):
            return False
        return OPERATORS[self.operator](observed, self.value)

    def to_dict(self) -> dict[str, object]:
        """Every field, JSON-ready: how a threshold travels to a process that judges it (the
        coordinator in a cluster); :meth:`from_dict` reads it back."""
        return {
            "metric": self.metric,
            "aggregation": self.aggregation,
            "operator": self.operator,
            "value": self.value,
            "tags": [list(pair) for pair in self.tags],
            "abort_on_fail": self.abort_on_fail,
            "delay_ms": self.delay_ms,
            "optional": self.optional,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Threshold:
        """A threshold written by :meth:`to_dict`; ConfigError naming the field when not."""

        def field(name: str, *kinds: type) -> object:
            value = data.get(name)
            # bool is an int to isinstance, and never a number here.
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise ConfigError(f"threshold.{name}", value, "a threshold as to_dict() writes it")
            return value

        metric = str(field("metric", str))  # checked in the order of the fields
        aggregation = str(field("aggregation", str))
        operator_ = str(field("operator", str))
        if operator_ not in OPERATORS:
            raise ConfigError("threshold.operator", operator_, ", ".join(OPERATORS))
        value = float(field("value", int, float))  # type: ignore[arg-type]
        pairs = []
        for pair in field("tags", list):  # type: ignore[attr-defined]
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
            ):
                raise ConfigError("threshold.tags", pair, "[name, value] pairs of strings")
            pairs.append((pair[0], pair[1]))
        abort_on_fail = bool(field("abort_on_fail", bool))
        delay = field("delay_ms", int, float, type(None))
        return cls(
            metric=metric,
            aggregation=aggregation,
            operator=operator_,
            value=value,
            tags=tuple(pairs),
            abort_on_fail=abort_on_fail,
            delay_ms=None if delay is None else float(delay),  # type: ignore[arg-type]
            optional=bool(field("optional", bool)),
            label=str(field("label", str)),
        )

    def to_k6(self) -> dict[str, object] | str:
        if not self.abort_on_fail:
            return self.expression
        spec: dict[str, object] = {"threshold": self.expression, "abortOnFail": True}
        if self.delay_ms is not None:
            spec["delayAbortEval"] = format_duration(self.delay_ms)
        return spec


class Selection(TypedDict, total=False):
    """What every threshold constructor accepts besides its expression."""

    #: Only the requests with this name (the ``name`` tag).
    request: str
    #: Only this workload (the ``scenario`` tag).
    workload: str
    #: Any other tags, e.g. ``{"status": "500"}``.
    tags: Mapping[str, str]
    #: Stop the whole test as soon as the threshold fails.
    abort_on_fail: bool
    #: With ``abort_on_fail``: how long after the start to begin judging.
    delay: str
    #: With nothing measured (a request that never ran): pass, rather than fail as "no data".
    optional: bool


def threshold(metric: str, expression: str, **options: Unpack[Selection]) -> Threshold:
    """A raw k6 threshold: ``expression`` is k6's syntax (``"p(95)<500"``, ``"rate<0.01"``)."""
    match = _RAW.fullmatch(expression) if isinstance(expression, str) else None
    if not match:
        raise ConfigError(
            "threshold.expression", expression, "k6 syntax like 'p(95)<500' or 'rate<0.01'"
        )
    aggregation, op, value = match.groups()
    return _build(metric, _agg(aggregation), op, float(value), label=expression, options=options)


def latency(
    spec: str, *, metric: str = "http_req_duration", **options: Unpack[Selection]
) -> Threshold:
    """A latency SLO with units: ``"p(95) < 500ms"``, ``"avg < 0.2s"``, ``"max < 2s"``."""
    return _duration("latency", metric, spec, "'p(95) < 500ms'", options)


def connected(spec: str, *, optional: bool = False) -> Threshold:
    """The share of the population's wanted agents that were connected over its plateau
    (after the join ramp until the population ends): the sum over its seconds of connected
    agents over the sum of wanted ones, fleet-wide: ``"> 99%"``. Judged by stressbed on the
    merged data (k6 has no such metric), so never ``abort_on_fail``."""
    match = _TYPED.fullmatch(spec) if isinstance(spec, str) else None
    if not match or match.group(1) is not None:
        raise ConfigError("connected", spec, "an expression like '> 99%'")
    value = parse_percent(_maybe_number(match.group(3)), "connected")
    return _build(
        CONNECTED_METRIC,
        "share",
        match.group(2),
        value,
        label=spec,
        options={"optional": optional},
    )


def reconnect_time(spec: str, **options: Unpack[Selection]) -> Threshold:
    """How long an agent stays disconnected before it is connected again
    (``agent_reconnect_time``): ``"p(99) < 60s"``."""
    return _agent("reconnect_time", "agent_reconnect_time", spec, "'p(99) < 60s'", options)


def checkin_lateness(spec: str, **options: Unpack[Selection]) -> Threshold:
    """How late an agent's periodic activity was sent after it fell due
    (``agent_checkin_lateness``): ``"p(99) < 2s"``."""
    return _agent("checkin_lateness", "agent_checkin_lateness", spec, "'p(99) < 2s'", options)


def connect_time(spec: str, **options: Unpack[Selection]) -> Threshold:
    """From an agent's connection attempt to its channel established
    (``agent_connect_time``): ``"p(95) < 1s"``."""
    return _agent("connect_time", "agent_connect_time", spec, "'p(95) < 1s'", options)


def command_rtt(spec: str, **options: Unpack[Selection]) -> Threshold:
    """From a server-pushed command received to the server confirming the answer
    (``agent_command_rtt``): ``"p(99) < 500ms"``."""
    return _agent("command_rtt", "agent_command_rtt", spec, "'p(99) < 500ms'", options)


def _agent(field: str, metric: str, spec: str, example: str, options: Selection) -> Threshold:
    # The runtime tags agent metrics with their workload only: no request name, no status.
    if options.get("request") is not None:
        raise ConfigError(f"{field}.request", options.get("request"), _AGENT_TAGS)
    if options.get("tags"):
        raise ConfigError(f"{field}.tags", dict(options.get("tags") or {}), _AGENT_TAGS)
    return _duration(field, metric, spec, example, options)


_AGENT_TAGS = "workload= alone: agent metrics carry no request name or other tag"


def _duration(field: str, metric: str, spec: str, example: str, options: Selection) -> Threshold:
    aggregation, op, text = _typed(spec, field, example, default=None)
    if aggregation in ("count", "rate", "value"):
        raise ConfigError(field, spec, "a trend aggregation: avg, min, max, med or p(N)")
    value = parse_duration_ms(text, field, allow_zero=True)
    return _build(metric, aggregation, op, value, label=spec, options=options)


def error_rate(spec: str, **options: Unpack[Selection]) -> Threshold:
    """The share of failed requests (``http_req_failed``): ``"< 0.5%"``."""
    _, op, text = _typed(spec, "error_rate", "'< 0.5%'", default="rate")
    value = parse_percent(_maybe_number(text), "error_rate")
    return _build("http_req_failed", "rate", op, value, label=spec, options=options)


def check_rate(spec: str, **options: Unpack[Selection]) -> Threshold:
    """The share of passing checks (``checks``): ``"> 99%"``."""
    _, op, text = _typed(spec, "check_rate", "'> 99%'", default="rate")
    value = parse_percent(_maybe_number(text), "check_rate")
    return _build("checks", "rate", op, value, label=spec, options=options)


def request_rate(spec: str, **options: Unpack[Selection]) -> Threshold:
    """Requests per second over the whole run (``http_reqs`` rate): ``"> 1000/s"``."""
    _, op, text = _typed(spec, "request_rate", "'> 1000/s'", default="rate")
    value = parse_per_second(_maybe_number(text), "request_rate")
    return _build("http_reqs", "rate", op, value, label=spec, options=options)


def _typed(spec: object, field: str, example: str, *, default: str | None) -> tuple[str, str, str]:
    match = _TYPED.fullmatch(spec) if isinstance(spec, str) else None
    if not match or (match.group(1) is None and default is None):
        raise ConfigError(field, spec, f"an expression like {example}")
    aggregation = _agg(match.group(1)) if match.group(1) else default
    assert aggregation is not None
    return aggregation, match.group(2), match.group(3)


def _build(
    metric: str, aggregation: str, op: str, value: float, *, label: str, options: Selection
) -> Threshold:
    unknown = set(options) - set(Selection.__annotations__)
    if unknown:
        raise ConfigError(
            "threshold", sorted(unknown)[0], "options " + ", ".join(Selection.__annotations__)
        )
    if not isinstance(metric, str) or not _METRIC.fullmatch(metric):
        raise ConfigError("threshold.metric", metric, "a k6 metric name (letters, digits, _)")
    if aggregation.startswith("p(") and not 0 <= float(aggregation[2:-1]) <= 100:
        raise ConfigError(f"threshold {metric}", aggregation, "a percentile between 0 and 100")
    kind = "share" if metric == CONNECTED_METRIC else METRICS.get(metric)
    if kind is None:
        raise ConfigError(
            "threshold.metric",
            metric,
            "a k6 built-in metric ("
            + ", ".join(BUILTIN_METRICS)
            + ") or a population's ("
            + ", ".join(AGENT_METRICS)
            + ")",
        )
    if not _fits(kind, aggregation):
        raise ConfigError(
            f"threshold {metric}", aggregation, f"{_AGGREGATIONS[kind]} on a {kind} metric"
        )
    selector = dict(options.get("tags") or {})
    if options.get("request") is not None:
        selector["name"] = options["request"]
    if options.get("workload") is not None:
        selector["scenario"] = options["workload"]
    abort_on_fail = options.get("abort_on_fail", False)
    delay = options.get("delay")
    for key, val in selector.items():
        if key not in SYSTEM_TAGS:
            raise ConfigError("threshold.tags", key, "a tag k6 records: " + ", ".join(SYSTEM_TAGS))
        if not isinstance(val, str) or not _TAG.fullmatch(val):
            raise ConfigError(
                f"threshold.tags.{key}", val, "a tag value without '{', '}', ':' or ','"
            )
    if not isinstance(abort_on_fail, bool):
        raise ConfigError("threshold.abort_on_fail", abort_on_fail, "True or False")
    optional = options.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError("threshold.optional", optional, "True or False")
    delay_ms = None
    if delay is not None:
        if not abort_on_fail:
            raise ConfigError("threshold.delay", delay, "a delay only with abort_on_fail=True")
        delay_ms = parse_duration_ms(delay, "threshold.delay")
    return Threshold(
        metric=metric,
        aggregation=aggregation,
        operator=op,
        value=value,
        tags=tuple(sorted(selector.items())),
        abort_on_fail=abort_on_fail,
        delay_ms=delay_ms,
        optional=optional,
        label=label.strip(),
    )


def _agg(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _fits(kind: str, aggregation: str) -> bool:
    if kind == "trend":
        return aggregation in ("avg", "min", "max", "med") or aggregation.startswith("p(")
    if kind == "counter":
        return aggregation in ("count", "rate")
    if kind == "rate":
        return aggregation == "rate"
    if kind == "share":
        return aggregation == "share"
    return aggregation in ("value", "min", "max")


def _maybe_number(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
