"""Scenarios: the unit users write, list, render and run.

A :class:`Scenario` names one or more :class:`Workload` (a flow driven by a load profile,
each a k6 scenario), the variables its flows use, and the thresholds it is judged by. It is
validated as a whole when built: every template refers to a variable that a binding or an
earlier step defines, every threshold selects a request or workload that exists, secrets stay
out of URLs, data files have the rows their mode needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from ..errors import ConfigError
from .faults import Fault, check_faults
from .flow import Flow, Group, Journey, Mix, Think, is_flow, requests
from .gen import Env, PerVU, Rows
from .http import Request
from .load_profiles import LoadProfile
from .population import Agent, Agents, check_refs
from .resilience import Resilience
from .templates import IDENTIFIER
from .thresholds import AGENT_METRICS, CONNECTED_METRIC, Threshold
from .units import format_duration, parse_duration_ms
from .values import Node, as_value_node, walk
from .writes import Writes

__all__ = ["CONFIG_FORMAT", "CONFIG_VERSION", "Binding", "Scenario", "Workload"]

CONFIG_FORMAT = "stressbed.k6-config"
CONFIG_VERSION = 1

_SCENARIO_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# k6 accepts only these characters in scenario names.
_WORKLOAD_NAME = re.compile(r"[0-9A-Za-z_-]{1,64}")
_RESERVED_OPTIONS = ("scenarios", "thresholds", "vus", "duration", "iterations", "stages")
#: Trend statistics in k6's own summary: everything stressbed's reports show.
SUMMARY_TREND_STATS = ("avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "p(99.9)", "count")


@dataclass(frozen=True)
class Workload:
    """A flow driven by a load profile: one k6 scenario."""

    name: str
    flow: Flow | Agent
    profile: LoadProfile
    start_time: str = "0s"
    graceful_stop: str = "30s"
    _start_ms: float = field(init=False, repr=False, compare=False)
    _graceful_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _WORKLOAD_NAME.fullmatch(self.name):
            raise ConfigError("name", self.name, "1-64 of A-Z a-z 0-9 _ - (k6 scenario names)")
        if isinstance(self.flow, Agent) != isinstance(self.profile, Agents):
            raise ConfigError(
                "profile" if isinstance(self.flow, Agent) else "flow",
                self.profile if isinstance(self.flow, Agent) else self.flow,
                "an Agent flow and an Agents profile together (see population(...))",
            )
        if not is_flow(self.flow) and not isinstance(self.flow, Agent):
            raise ConfigError("flow", self.flow, "a request, journey, group, mix or Agent")
        if not isinstance(self.profile, LoadProfile):
            raise ConfigError(
                "profile", self.profile, "a load profile (ConstantVUs, ConstantArrivalRate, ...)"
            )
        start = parse_duration_ms(self.start_time, "start_time", allow_zero=True)
        graceful = parse_duration_ms(self.graceful_stop, "graceful_stop", allow_zero=True)
        object.__setattr__(self, "_start_ms", start)
        object.__setattr__(self, "_graceful_ms", graceful)

    @property
    def start_ms(self) -> float:
        return self._start_ms

    @property
    def end_ms(self) -> float:
        """When k6 stops this workload at the latest, graceful stop included."""
        return self._start_ms + self.profile.duration_ms() + self._graceful_ms

    @property
    def active_end_ms(self) -> float:
        """When this workload's own timeline ends (graceful stop not included)."""
        return self._start_ms + self.profile.duration_ms()

    def scaled(self, factor: float) -> Workload:
        return Workload(
            self.name,
            self.flow,
            self.profile.scaled(factor),
            start_time=format_duration(round(self._start_ms * factor)),
            graceful_stop=self.graceful_stop,
        )

    def to_k6(self) -> dict[str, object]:
        return {
            **self.profile.to_k6(),
            "startTime": format_duration(self._start_ms),
            "gracefulStop": format_duration(self._graceful_ms),
        }


@dataclass(frozen=True)
class Binding:
    """A named variable: evaluated lazily once per iteration, or once per VU."""

    name: str
    value: Node
    scope: Literal["iteration", "vu"] = "iteration"

    def to_config(self) -> dict[str, object]:
        return {"name": self.name, "scope": self.scope, "value": self.value.to_config()}


@dataclass(frozen=True, init=False)
class Scenario:
    """A whole test: workloads, variables, thresholds. Immutable and validated on creation."""

    name: str
    description: str
    workloads: tuple[Workload, ...]
    thresholds: tuple[Threshold, ...]
    variables: tuple[Binding, ...]
    k6_options: str  # canonical JSON of extra k6 options
    setup: Flow | None
    teardown: Flow | None
    faults: tuple[Fault, ...]
    resilience: tuple[Resilience, ...]
    writes: Writes | None

    def __init__(
        self,
        name: str,
        *,
        description: str,
        workloads: Sequence[Workload],
        thresholds: Sequence[Threshold] = (),
        variables: Mapping[str, object] | None = None,
        k6_options: Mapping[str, Any] | None = None,
        setup: Flow | None = None,
        teardown: Flow | None = None,
        faults: Sequence[Fault] = (),
        resilience: Sequence[Resilience] = (),
        writes: Writes | None = None,
    ) -> None:
        """``setup`` runs once before the test (once for a whole fleet); the values it
        extracts are available to every iteration and to ``teardown``, which runs once after.
        ``faults`` happen during the load (:mod:`stressbed.fault`), each judged by the
        ``resilience`` thresholds; ``writes`` says which request writes and how to read its
        writes back, to count acknowledged writes that were lost (:mod:`.writes`)."""
        if not isinstance(name, str) or not _SCENARIO_NAME.fullmatch(name):
            raise ConfigError("name", name, "1-64 of A-Z a-z 0-9 _ . -")
        try:
            fields = _normalise(description, workloads, thresholds, variables, k6_options)
            for field_name, flow in (("setup", setup), ("teardown", teardown)):
                if flow is not None and not is_flow(flow):
                    raise ConfigError(field_name, flow, "a request, journey, group or mix")
            fields["setup"] = setup
            fields["teardown"] = teardown
            loads = cast("tuple[Workload, ...]", fields["workloads"])
            fields.update(_faults(loads, faults, resilience))
            if writes is not None and not isinstance(writes, Writes):
                raise ConfigError("writes", writes, "a Writes(...) declaration")
            fields["writes"] = writes
        except ConfigError as exc:
            raise exc.in_scenario(name) from None
        object.__setattr__(self, "name", name)
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        try:
            self.validate()
        except ConfigError as exc:
            raise exc.in_scenario(name) from None

    # -- derived facts -------------------------------------------------------------------

    def requests(self) -> Iterator[tuple[str, Request]]:
        """Every request with where it stands: a workload's name, "setup" or "teardown"."""
        for workload in self.workloads:
            flow = workload.flow
            for req in flow.requests() if isinstance(flow, Agent) else requests(flow):
                yield workload.name, req
        for where, once in (("setup", self.setup), ("teardown", self.teardown)):
            if once is not None:
                for req in requests(once):
                    yield where, req

    def setup_exports(self) -> list[str]:
        """The variables setup() extracts, in order: the data it hands every iteration."""
        if self.setup is None:
            return []
        return [name for req in requests(self.setup) for name, _ in req.extract]

    def peak_vus(self) -> int:
        """An upper bound of k6's VU count (workloads may overlap): the sum of their peaks."""
        return sum(w.profile.peak_vus() for w in self.workloads)

    def agents(self) -> int:
        """The simulated agents of every population (each holds a connection at most)."""
        return sum(w.profile.count for w in self.workloads if isinstance(w.profile, Agents))

    def plateau_s(self) -> tuple[float, float] | None:
        """When every population is steady, in seconds from the load's start: after the last
        join ramp, until the first population ends (None without a population, or when they
        are never steady together)."""
        spans = [
            (w.start_ms + w.profile.join_ms, w.active_end_ms)
            for w in self.workloads
            if isinstance(w.profile, Agents)
        ]
        if not spans:
            return None
        start, end = max(s for s, _ in spans), min(e for _, e in spans)
        return (start / 1000, end / 1000) if end > start else None

    def duration_ms(self) -> float:
        """When the last workload ends at the latest, graceful stops included."""
        return max(w.end_ms for w in self.workloads)

    def scaled_to(self, duration_ms: float) -> Scenario:
        """The same scenario with its whole timeline (start times, durations, stages) scaled
        so that it lasts ``duration_ms`` before graceful stops; iteration counts are kept."""
        active = max(w.active_end_ms for w in self.workloads)
        factor = duration_ms / active
        return self._with(
            workloads=[w.scaled(factor) for w in self.workloads],
            faults=[f.scaled(factor) for f in self.faults],
        )

    def with_thresholds(self, thresholds: Sequence[Threshold]) -> Scenario:
        """The same scenario judged by ``thresholds`` instead of its own."""
        return self._with(thresholds=thresholds)

    def with_workloads(self, workloads: Sequence[Workload]) -> Scenario:
        """The same scenario (variables, setup, teardown, options) driving ``workloads``."""
        return self._with(workloads=workloads)

    def _with(self, **changes: Any) -> Scenario:
        fields: dict[str, Any] = {
            "description": self.description,
            "workloads": self.workloads,
            "thresholds": self.thresholds,
            "variables": {
                b.name: PerVU(b.value) if b.scope == "vu" else b.value for b in self.variables
            },
            "k6_options": json.loads(self.k6_options),
            "setup": self.setup,
            "teardown": self.teardown,
            "faults": self.faults,
            "resilience": self.resilience,
            "writes": self.writes,
        }
        return Scenario(self.name, **{**fields, **changes})

    def data_files(self) -> list[Rows]:
        """Every data-file generator, once each, in order of appearance."""
        seen: dict[str, Rows] = {}
        for node in self._nodes():
            if isinstance(node, Rows):
                seen.setdefault(node.bundle_path, node)
        return list(seen.values())

    # -- validation ----------------------------------------------------------------------

    def validate(self) -> None:
        """Check the scenario as a whole; raises :class:`ConfigError` naming the field."""
        names = [w.name for w in self.workloads]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError("workloads", name, "unique workload names")
        defined: set[str] = set()
        vu_scoped: set[str] = set()
        for binding in self.variables:
            where = f"variables.{binding.name}"
            allowed = vu_scoped if binding.scope == "vu" else defined
            for ref in binding.value.refs():
                if ref.name not in allowed:
                    kind = (
                        "a per-VU variable defined before it"
                        if binding.scope == "vu"
                        else ("a variable defined before it")
                    )
                    raise ConfigError(where, str(ref), f"{kind} ({_names(allowed)})")
            defined.add(binding.name)
            if binding.scope == "vu":
                vu_scoped.add(binding.name)
        base = frozenset(defined)
        if self.setup is not None:
            base = _check_flow(self.setup, base, "setup")
        for workload in self.workloads:
            where = f"workloads.{workload.name}.flow"
            if isinstance(workload.flow, Agent):
                check_refs(workload.flow, base, where)
            else:
                _check_flow(workload.flow, base, where)
        if self.teardown is not None:
            _check_flow(self.teardown, base, "teardown")
        self._check_secrets()
        self._check_thresholds()
        self._check_writes()
        peak = self.peak_vus()
        for rows in self.data_files():
            if rows.mode == "unique" and rows.row_count < peak:
                raise ConfigError(
                    f"data file {rows.data.path}",
                    f"{rows.row_count} rows",
                    f"at least one row per VU ({peak}) for mode='unique'",
                )

    def _check_secrets(self) -> None:
        secret_vars = {b.name for b in self.variables if any(_is_secret(n) for n in walk(b.value))}
        for workload in self.workloads:
            channel = getattr(workload.flow, "channel", None)
            path = getattr(channel, "path", None)
            if path is not None and (
                {r.name for r in path.refs()} & secret_vars
                or any(_is_secret(inner) for inner in walk(path))
            ):
                raise ConfigError(
                    f"workloads.{workload.name}.channel.path",
                    str(path.to_config()),
                    "secrets in headers or messages only (URLs are recorded in k6 metrics)",
                )
        for where, req in self.requests():
            for node in req.url_nodes():
                leaked = sorted({r.name for r in node.refs()} & secret_vars)
                if leaked or any(_is_secret(inner) for inner in walk(node)):
                    place = where if where in ("setup", "teardown") else f"workloads.{where}"
                    raise ConfigError(
                        f"{place} request {req.name!r}",
                        "{{" + leaked[0] + "}}" if leaked else "secret(...)",
                        "secrets in headers or bodies only (URLs are recorded in k6 metrics)",
                    )

    def _check_thresholds(self) -> None:
        request_names = sorted({req.name for _, req in self.requests()})
        workload_names = [w.name for w in self.workloads]
        populated = any(isinstance(w.profile, Agents) for w in self.workloads)
        for i, item in enumerate(self.thresholds):
            if not populated and (item.metric in AGENT_METRICS or item.metric == CONNECTED_METRIC):
                raise ConfigError(
                    f"thresholds[{i}]",
                    f"{item.key} {item.expression}",
                    "a population to judge (population(...) in workloads)",
                )
            tags = dict(item.tags)
            if "name" in tags and tags["name"] not in request_names:
                raise ConfigError(
                    f"thresholds[{i}].request",
                    tags["name"],
                    f"a request name ({_names(request_names)})",
                )
            if "scenario" in tags and tags["scenario"] not in workload_names:
                raise ConfigError(
                    f"thresholds[{i}].workload",
                    tags["scenario"],
                    f"a workload name ({_names(workload_names)})",
                )

    def _check_writes(self) -> None:
        if self.writes is None:
            if any(r.metric == "lost_writes" for r in self.resilience):
                raise ConfigError(
                    "resilience", "lost_writes", "writes=Writes(...): which request writes"
                )
            return
        loaded = sorted({r.name for w, r in self.requests() if w not in ("setup", "teardown")})
        if self.writes.request not in loaded:
            raise ConfigError(
                "writes.request", self.writes.request, f"a request of a workload ({_names(loaded)})"
            )
        for where, req in self.requests():
            if req.name == self.writes.request and (req.body is None or req.body.kind != "json"):
                raise ConfigError(
                    f"writes.request {req.name!r}", where, "a request with a JSON body"
                )

    def _nodes(self) -> Iterator[Node]:
        for binding in self.variables:
            yield from walk(binding.value)
        for _, req in self.requests():
            for node in req.nodes():
                yield from walk(node)
        for workload in self.workloads:
            if isinstance(workload.flow, Agent):
                for node in workload.flow.nodes():
                    yield from walk(node)

    # -- serialisation -------------------------------------------------------------------

    def k6_options_dict(self) -> dict[str, object]:
        """The complete k6 ``options`` object."""
        thresholds: dict[str, list[object]] = {}
        for item in self.thresholds:
            if item.k6:  # not one stressbed alone judges (connected): k6 has no such metric
                thresholds.setdefault(item.key, []).append(item.to_k6())
        options: dict[str, object] = {
            "scenarios": {w.name: w.to_k6() for w in self.workloads},
            "thresholds": thresholds,
            "summaryTrendStats": list(SUMMARY_TREND_STATS),
        }
        options.update(json.loads(self.k6_options))
        return options

    def to_config(self) -> dict[str, object]:
        """The JSON document the k6 runtime interprets (config.json of a bundle)."""
        return {
            "format": CONFIG_FORMAT,
            "version": CONFIG_VERSION,
            "scenario": self.name,
            "description": self.description,
            "vu_id_stride": self.peak_vus(),
            "variables": [b.to_config() for b in self.variables],
            "workloads": {w.name: _flow_config(w) for w in self.workloads},
            "setup": self.setup.to_config() if self.setup is not None else None,
            "setup_exports": self.setup_exports(),
            "teardown": self.teardown.to_config() if self.teardown is not None else None,
            "options": self.k6_options_dict(),
        } | ({"writes": self.writes.to_config()} if self.writes is not None else {})


def _flow_config(workload: Workload) -> dict[str, object]:
    """A workload's flow as the runtime reads it; a population's with its numbers."""
    config = workload.flow.to_config()
    if isinstance(workload.profile, Agents):
        config["population"] = workload.profile.to_config()
    return config


def _faults(workloads: Sequence[Workload], faults: object, resilience: object) -> dict[str, object]:
    """The faults checked against the load's timeline, and the thresholds that judge them."""
    if not isinstance(faults, Sequence) or isinstance(faults, str):
        raise ConfigError("faults", faults, "a list of faults from stressbed.fault")
    if not isinstance(resilience, Sequence) or isinstance(resilience, str):
        raise ConfigError("resilience", resilience, "a list like [recovery_time('< 30s')]")
    for i, item in enumerate(resilience):
        if not isinstance(item, Resilience):
            raise ConfigError(f"resilience[{i}]", item, "a resilience threshold")
    if resilience and not faults:
        raise ConfigError("resilience", resilience[0].label, "faults to judge (faults=[...])")
    active = max(w.active_end_ms for w in workloads)
    return {"faults": check_faults(faults, active), "resilience": tuple(resilience)}


def _normalise(
    description: object,
    workloads: object,
    thresholds: object,
    variables: object,
    k6_options: object,
) -> dict[str, object]:
    if not isinstance(description, str) or not description.strip() or "\n" in description:
        raise ConfigError("description", description, "a one-line, non-empty description")
    if isinstance(workloads, Workload):
        workloads = [workloads]
    if not isinstance(workloads, Sequence) or not workloads:
        raise ConfigError("workloads", workloads, "a non-empty list of Workload")
    for i, workload in enumerate(workloads):
        if not isinstance(workload, Workload):
            raise ConfigError(f"workloads[{i}]", workload, "a Workload")
    if not isinstance(thresholds, Sequence):
        raise ConfigError("thresholds", thresholds, "a list of thresholds")
    for i, item in enumerate(thresholds):
        if not isinstance(item, Threshold):
            raise ConfigError(f"thresholds[{i}]", item, "a threshold from stressbed.thresholds")
    if variables is not None and not isinstance(variables, Mapping):
        raise ConfigError("variables", variables, "a mapping of names to values")
    bindings = []
    for key, value in (variables or {}).items():
        if not isinstance(key, str) or not IDENTIFIER.fullmatch(key):
            raise ConfigError("variables", key, "variable names (letters, digits, _)")
        if isinstance(value, PerVU):
            bindings.append(Binding(key, value.value, "vu"))
        else:
            bindings.append(Binding(key, as_value_node(value, f"variables.{key}")))
    if k6_options is not None and not isinstance(k6_options, Mapping):
        raise ConfigError("k6_options", k6_options, "a mapping of k6 option names to values")
    options = dict(k6_options or {})
    for key in options:
        if key in _RESERVED_OPTIONS:
            raise ConfigError(
                "k6_options",
                key,
                "options other than those stressbed sets (use workloads/thresholds)",
            )
    try:
        options_json = json.dumps(options, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigError("k6_options", options, "JSON values") from None
    return {
        "description": description.strip(),
        "workloads": tuple(workloads),
        "thresholds": tuple(thresholds),
        "variables": tuple(bindings),
        "k6_options": options_json,
    }


def _check_flow(flow: Flow, defined: frozenset[str], where: str) -> frozenset[str]:
    """Raise on a reference to an undefined variable; return what is defined after ``flow``."""
    if isinstance(flow, Request):
        here = f"{where} (request {flow.name!r})"
        for ref in flow.refs():
            if ref.name not in defined:
                raise ConfigError(
                    here,
                    str(ref),
                    "a variable defined by the scenario or extracted by an earlier step "
                    f"({_names(defined)})",
                )
        return defined | {name for name, _ in flow.extract}
    if isinstance(flow, Journey | Group):
        for i, step in enumerate(flow.steps):
            defined = _check_flow(step, defined, f"{where}.steps[{i}]")
        return defined
    if isinstance(flow, Mix):
        for i, (branch, _) in enumerate(flow.entries):
            _check_flow(branch, defined, f"{where}.mix[{i}]")
        return defined
    assert isinstance(flow, Think)
    return defined


def _is_secret(node: Node) -> bool:
    return isinstance(node, Env) and node.secret


def _names(names: set[str] | frozenset[str] | list[str]) -> str:
    return ", ".join(sorted(names)) if names else "none defined"
