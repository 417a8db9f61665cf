"""The scenario module: what was learned, written as ordinary stressbed code a person can edit,
each figure with a comment saying what it was read from.

One request per iteration of a weighted :func:`~stressbed.mix` (its weights: the requests
each endpoint had, so the shares replay as counted), driven by a
:class:`~stressbed.RampingArrivalRate` through the rate's stages
(:mod:`stressbed.model.rate`), with the observed latency (p95, p99 per endpoint with
:data:`MIN_TIMED` timed requests) and error rate as thresholds to start from. The status mix
of each endpoint is written as a comment: the baseline to compare a run's with.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from ..scenario.units import format_duration
from .flows import Flows, plan_flows
from .generators import SHAPE_VARIABLES
from .hits import Tally
from .learn import Learned
from .pysource import Call, Dict, Item, List, Node, Raw, Tuple, emit, number, parsed, string
from .rate import Shape, shape_of
from .requests import METHODS, Endpoint, endpoints_of, names, quantiles, request_block
from .write_flows import MixSource, mix_block, population_block

__all__ = ["Endpoint", "Written", "endpoints_of", "write_module"]

_REFERENCE = re.compile(r"\{\{(\w+)\}\}")

#: Endpoints written at most (the rest are named in a comment, their requests left out).
MAX_ENDPOINTS = 100
#: Timed requests an endpoint needs for its latency thresholds.
MIN_TIMED = 100
#: Iterations per time unit the rate is written with at its peak, at least.
RATE_RESOLUTION = 50


@dataclass
class Written:
    """The module's text and what it holds (for the terminal and ``--check``)."""

    text: str
    endpoints: list[Endpoint]
    shape: Shape | None
    total: int
    left_out: int = 0
    flows: Flows | None = None


def write_module(
    learned: Learned,
    name: str,
    tallies: list[Tally],
    *,
    compress: float = 1.0,
    scale: float = 1.0,
    command: list[str] | None = None,
    join_at_once: bool = False,
) -> Written:
    """The scenario module for what was learned (see the module's docstring)."""
    endpoints = endpoints_of(learned)
    kept, rest = endpoints[:MAX_ENDPOINTS], endpoints[MAX_ENDPOINTS:]
    total = learned.count
    shape = None
    if learned.first is not None and learned.last is not None:
        shape = shape_of(learned.per_second, learned.first, learned.last).scaled(compress, scale)
    variables: dict[str, tuple[Node, str]] = {}
    shape_variables: set[str] = set()
    blocks: list[str] = []
    consts = dict(zip((e.key for e in kept), names(kept), strict=True))
    for endpoint in kept:
        blocks.append(
            request_block(endpoint, consts[endpoint.key], total, variables, shape_variables)
        )
    # The shape variables first: variables that read them ({{email_user}}@...) come after.
    shapes = {
        var: (parsed(SHAPE_VARIABLES[var]), "a shape's part (values never copied)")
        for var in sorted(shape_variables)
    }
    variables = shapes | {k: v for k, v in variables.items() if k not in shapes}
    flows = plan_flows(learned, kept)
    refs = {e.key: set(_REFERENCE.findall(b)) for e, b in zip(kept, blocks, strict=True)}
    others: list[tuple[Endpoint, float]] = []
    if flows.population is not None and shape is not None:
        others = _agents_own(flows, kept, refs, learned, shape.span_s / compress)
        for endpoint, _ in others:
            flows.singles.pop(endpoint.key, None)
    theirs = _population_keys(flows) | {e.key for e, _ in others}
    used = {name for key in theirs for name in refs[key]}
    identity = {name: variables.pop(name) for name in list(variables) if name in used}
    mixed = mix_block(flows, kept, consts, total, rest)
    agents = ""
    if flows.population is not None and shape is not None:
        agents = population_block(
            flows,
            consts,
            identity,
            others,
            scale=scale,
            lasting_s=shape.seconds(),
            join_at_once=join_at_once,
        )
    written = Written("", kept, shape, total, sum(e.stats.count for e in rest), flows=flows)
    parts = [
        _docstring(
            name,
            learned,
            tallies=tallies,
            written=written,
            command=command,
            compress=compress,
            scale=scale,
        ),
        "from __future__ import annotations\n",
        _imports(kept, any("literal(" in b for b in blocks), flows, mixed),
        _variables(variables),
        *blocks,
        agents,
        mixed.text,
        _profile(shape, learned, kept, mixed) if mixed.text else "",
        _scenario(name, kept, learned, agents=bool(agents), traffic=bool(mixed.text)),
    ]
    written.text = "\n\n".join(p.rstrip("\n") for p in parts if p) + "\n"
    return written


def _population_keys(flows: Flows) -> set[str]:
    plan = flows.population
    if plan is None:
        return set()
    keys = {c.endpoint.key for c in plan.checkins}
    return keys | ({plan.register.key} if plan.register is not None else set())


def _agents_own(
    flows: Flows,
    kept: list[Endpoint],
    refs: dict[str, set[str]],
    learned: Learned,
    span_s: float,
) -> list[tuple[Endpoint, float]]:
    """The endpoints an agent calls besides its check-ins: those sharing a variable with the
    population's requests (its id in their paths), each at its rate per agent (the seconds
    between two of one agent's requests to it, on average)."""
    plan = flows.population
    assert plan is not None
    theirs = _population_keys(flows)
    used = {name for key in theirs for name in refs[key]}
    own: list[Endpoint] = []
    changed = True
    while changed:
        changed = False
        for endpoint in kept:
            if endpoint.key in theirs or endpoint in own or not refs[endpoint.key] & used:
                continue
            own.append(endpoint)
            used |= refs[endpoint.key]
            changed = True
    return [(e, max(0.1, plan.agents * span_s / e.stats.count)) for e in own]


def _docstring(
    name: str,
    learned: Learned,
    *,
    tallies: list[Tally],
    written: Written,
    command: list[str] | None,
    compress: float,
    scale: float,
) -> str:
    lines = [f"{name}: modelled by `stressbed model` from production traffic.", ""]
    for tally in tallies:
        bad = f", {tally.bad:,} not read" if tally.bad else ""
        skipped = f", {tally.skipped:,} skipped" if tally.skipped else ""
        read = f"{tally.read:,} {tally.unit}s read"
        lines.append(f"- {_base(tally.source)} ({tally.format}): {read}{bad}{skipped}")
    if learned.first is not None and learned.last is not None:
        lines.append(
            f"- {learned.count:,} requests from {_when(learned.first)} to "
            f"{_when(learned.last)} UTC ({format_duration(1000 * (learned.last - learned.first))})"
        )
    lines.append(f"- {len(written.endpoints)} endpoints written")
    if written.left_out:
        lines.append(f"  ({written.left_out:,} requests of rarer endpoints left out)")
    if compress != 1 or scale != 1:
        lines.append(f"- played in {number(compress)} of the time, rates times {number(scale)}")
    lines += [
        "",
        "Weights are the requests each endpoint had; each endpoint's statuses are the baseline",
        "to compare a run's with; thresholds are the latency and errors observed, a start.",
        "Values of a secret's shape or name (tokens, emails, addresses, ids) were never copied:",
        "generators of their shape stand in.",
    ]
    if command:
        lines += ["", *_shell_lines(command)]
    # A file name is the user's, but a docstring must hold whatever it is.
    text = "\n".join(lines).replace('"""', '" " "')
    return ("r" if "\\" in text else "") + '"""' + text + '\n"""\n'


def _shell_lines(command: list[str]) -> list[str]:
    """A command's words, quoted for the shell, over lines of at most 96 characters (a word
    longer than that alone on its line), joined by the shell's ``\\``."""
    lines, line = [], "   "
    for word in map(shlex.quote, command):
        if len(line) + 1 + len(word) > 94 and line.strip():
            lines.append(line + " \\")
            line = "       "
        line += " " + word
    return [*lines, line]


def _imports(kept: list[Endpoint], literal: bool, flows: Flows, mixed: MixSource) -> str:
    names = {"Scenario", "gen"}
    if mixed.text:
        names |= {"RampingArrivalRate", "Workload", "mix"}
    if mixed.uses_journeys:
        names.add("journey")
        if flows.think is not None:
            names.add("think_uniform")
    if literal:
        names.add("literal")
    names |= {e.method.lower() if e.method in METHODS else "request" for e in kept}
    if any(e.stats.timed >= MIN_TIMED for e in kept):
        names.add("latency")
    if any(e.stats.statuses for e in kept):
        names.add("error_rate")
    lines = _import("stressbed", names)
    if flows.population is not None:
        lines += _import("stressbed.population", {"Agent", "KeepAlive", "every", "population"})
    return lines


def _import(module: str, names: set[str]) -> str:
    ordered = sorted(names, key=_import_key)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= 100:
        return line + "\n"
    return f"from {module} import (\n" + "".join(f"    {n},\n" for n in ordered) + ")\n"


def _import_key(name: str) -> tuple[int, str]:
    # isort's order: constants, classes, then functions and modules (case-sensitive).
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def _variables(variables: dict[str, tuple[Node, str]]) -> str:
    items = tuple(
        Item(node, string(name), (comment,)) for name, (node, comment) in variables.items()
    )
    head = "#: Path parameters, drawn once per iteration (wrap one in gen.per_vu() to pin it).\n"
    return head + "VARIABLES: dict[str, object] = " + emit(Dict(items), 0, 32) + "\n"


def _profile(shape: Shape | None, learned: Learned, kept: list[Endpoint], mixed: MixSource) -> str:
    if shape is None or learned.first is None:
        return ""
    # The mix's iterations: its share of the requests, over the requests an iteration makes.
    factor = mixed.share / mixed.per_iteration
    shape = shape.scaled(1.0, factor)
    unit, per = _unit(shape.peak_rate)
    stages = []
    for stage in shape.stages:
        when = f"{_clock(learned.first + stage.start)}-{_clock(learned.first + stage.end)} UTC"
        stages.append(
            Item(
                Tuple(
                    (
                        Item(Raw(string(format_duration(round(stage.seconds * 1000))))),
                        Item(Raw(str(max(0, round(stage.rate * per))))),
                    )
                ),
                None,
                (f"{when}: {stage.observed:,} requests",),
            )
        )
    p95 = max((quantiles(e.stats)[0] or 0.0) for e in kept) if kept else 0.0
    pre = max(10, math.ceil(shape.peak_rate * max(p95, 0.1) * 2))
    at = _clock(learned.first + shape.peak_at_s)
    peak = f"{number(shape.peak_rate, 3)} iterations/s at {at} UTC"
    head = (
        f"#: The rate: {format_duration(round(1000 * shape.seconds()))} of stages read in "
        f"{format_duration(round(1000 * shape.bucket_s))} buckets; peak {peak}.\n"
    )
    if factor != 1:
        head += (
            f"#: In iterations: the mix's {mixed.share:.1%} of the requests, "
            f"{number(mixed.per_iteration, 3)} requests an iteration.\n"
        )
    call = Call(
        "RampingArrivalRate",
        (
            Item(List(tuple(stages)), "stages"),
            Item(Raw(str(max(0, round(shape.start_rate * per)))), "start_rate"),
            Item(Raw(string(unit)), "time_unit"),
            Item(Raw(str(pre)), "pre_allocated_vus"),
            Item(Raw(str(max(50, 4 * pre))), "max_vus"),
        ),
    )
    return head + "PROFILE = " + emit(call, 0, 10) + "\n"


def _scenario(
    name: str, kept: list[Endpoint], learned: Learned, *, agents: bool, traffic: bool
) -> str:
    thresholds: list[Item] = []
    for e in kept:
        if e.stats.timed >= MIN_TIMED:
            p95, p99 = quantiles(e.stats)
            for label, value in (("p(95)", p95), ("p(99)", p99)):
                if value is not None:
                    spec = f"{label} < {_ceil_ms(value)}ms"
                    thresholds.append(
                        Item(
                            Call(
                                "latency",
                                (Item(Raw(string(spec))), Item(Raw(string(e.name)), "request")),
                            )
                        )
                    )
    statuses: Counter[int] = Counter()
    for e in kept:
        statuses.update(e.stats.statuses)
    counted = sum(statuses.values())
    if counted:
        errors = sum(n for s, n in statuses.items() if s >= 500) / counted
        limit = max(1.0, math.ceil(errors * 1000) / 10)
        thresholds.append(
            Item(
                Call("error_rate", (Item(Raw(string(f"< {number(limit)}%"))),)),
                None,
                (f"observed: {errors:.2%} of responses 5xx",),
            )
        )
    workload = Call(
        "Workload", (Item(Raw(string("traffic"))), Item(Raw("TRAFFIC")), Item(Raw("PROFILE")))
    )
    call = Call(
        "Scenario",
        (
            Item(Raw(string(name))),
            Item(
                Raw(string(f"Modelled from {learned.count:,} production requests")), "description"
            ),
            Item(Raw("VARIABLES"), "variables"),
            Item(
                List(
                    ((Item(Raw("AGENTS")),) if agents else ())
                    + ((Item(workload),) if traffic else ())
                ),
                "workloads",
            ),
            Item(List(tuple(thresholds)), "thresholds"),
        ),
    )
    return "scenario = " + emit(call, 0, 11) + "\n"


def _ceil_ms(seconds: float) -> int:
    ms = max(1.0, seconds * 1000)
    digits = 10 ** max(0, math.floor(math.log10(ms)) - 1)
    return int(math.ceil(ms / digits) * digits)


def _unit(peak: float) -> tuple[str, int]:
    for unit, per in (("1s", 1), ("1m", 60), ("1h", 3600)):
        if peak * per >= RATE_RESOLUTION:
            return unit, per
    return "1h", 3600


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S")


def _base(source: str) -> str:
    return source.rsplit("/", 1)[-1]
