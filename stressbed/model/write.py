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
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..scenario.units import format_duration
from .generators import SHAPE_VARIABLES, Drawn, drawn, shares
from .hits import Tally
from .learn import EndpointStats, FieldStats, Learned, merged
from .pysource import Call, Dict, Item, List, Node, Raw, Tuple, emit, number, parsed, string
from .rate import Shape, shape_of

__all__ = ["Endpoint", "Written", "endpoints_of", "write_module"]

#: Endpoints written at most (the rest are named in a comment, their requests left out).
MAX_ENDPOINTS = 100
#: Timed requests an endpoint needs for its latency thresholds.
MIN_TIMED = 100
#: A query parameter or body field is written when this share of requests carry it.
PRESENT = 0.5
#: Iterations per time unit the rate is written with at its peak, at least.
RATE_RESOLUTION = 50


@dataclass(frozen=True)
class Endpoint:
    """One endpoint once every path is in: its template and its merged figures."""

    method: str
    template: str
    params: tuple[tuple[str, str], ...]
    stats: EndpointStats

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def name(self) -> str:
        """The requests' name tag (a tag value has no braces: ``<agent_id>`` for the
        parameter), what per-request thresholds select."""
        return self.key.replace("{", "<").replace("}", ">")


@dataclass
class Written:
    """The module's text and what it holds (for the terminal and ``--check``)."""

    text: str
    endpoints: list[Endpoint]
    shape: Shape | None
    total: int
    left_out: int = 0
    notes: list[str] = field(default_factory=list)


def endpoints_of(learned: Learned) -> list[Endpoint]:
    """Every endpoint with its final template, leaves of one template merged, most requests
    first."""
    grouped: dict[tuple[str, str], list[tuple[EndpointStats, tuple[tuple[str, str], ...]]]] = {}
    for stats in learned.endpoints.values():
        template, params = learned.templates.template(stats.leaf)
        grouped.setdefault((stats.method, template), []).append((stats, params))
    out = []
    for (method, template), members in grouped.items():
        members.sort(key=lambda m: -m[0].count)
        stats = merged([m[0] for m in members], learned.templates, [m[1] for m in members])
        out.append(Endpoint(method, template, members[0][1], stats))
    out.sort(key=lambda e: (-e.stats.count, e.key))
    return out


def write_module(
    learned: Learned,
    name: str,
    tallies: list[Tally],
    *,
    compress: float = 1.0,
    scale: float = 1.0,
    command: list[str] | None = None,
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
    names = _names(kept)
    for endpoint, const in zip(kept, names, strict=True):
        blocks.append(_request(endpoint, const, total, variables, shape_variables))
    for var in sorted(shape_variables):
        variables[var] = (parsed(SHAPE_VARIABLES[var]), "a shape's part (values never copied)")
    written = Written("", kept, shape, total, sum(e.stats.count for e in rest))
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
        _imports(kept, any("literal(" in b for b in blocks)),
        _variables(variables),
        *blocks,
        _mix(kept, names, total, rest),
        _profile(shape, learned, kept),
        _scenario(name, kept, learned),
    ]
    written.text = "\n\n".join(p.rstrip("\n") for p in parts if p) + "\n"
    return written


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
    lines = [f'"""{name}: modelled by `stressbed model` from production traffic.', ""]
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
    text = "\n".join(lines)
    return ("r" if "\\" in text else "") + text + '\n"""\n'


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


def _imports(kept: list[Endpoint], literal: bool) -> str:
    names = {"RampingArrivalRate", "Scenario", "Workload", "mix"}
    if literal:
        names.add("literal")
    names |= {e.method.lower() if e.method in _METHODS else "request" for e in kept}
    if any(e.stats.timed >= MIN_TIMED for e in kept):
        names.add("latency")
    if any(e.stats.statuses for e in kept):
        names.add("error_rate")
    names.add("gen")
    ordered = sorted(names, key=_import_key)
    line = f"from stressbed import {', '.join(ordered)}"
    if len(line) <= 100:
        return line + "\n"
    return "from stressbed import (\n" + "".join(f"    {n},\n" for n in ordered) + ")\n"


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


_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}


def _request(
    endpoint: Endpoint,
    const: str,
    total: int,
    variables: dict[str, tuple[Node, str]],
    shape_variables: set[str],
) -> str:
    stats = endpoint.stats
    comment = [
        f"{endpoint.key}: {stats.count:,} requests ({stats.count / total:.2%}); "
        f"statuses: {shares(stats.statuses)}"
    ]
    if stats.timed:
        p95, p99 = _quantiles(stats)
        comment.append(f"latency p95 {_ms(p95)}, p99 {_ms(p99)} over {stats.timed:,} timed")
    for (param, kind), values in zip(endpoint.params, stats.path, strict=False):
        if param not in variables:
            found = _path_variable(param, kind, values)
            variables[param] = (found.node, f"{{{param}}}: {found.comment}")
            shape_variables.update(found.variables)
    path = endpoint.template.replace("{", "{{").replace("}", "}}")
    args: list[Item] = []
    func = endpoint.method.lower() if endpoint.method in _METHODS else "request"
    if func == "request":
        args.append(Item(Raw(string(endpoint.method))))
    args.append(Item(Raw(string(path))))
    args.append(Item(Raw(string(endpoint.name)), "name"))
    query, absent_query = _fields(stats.query, stats.count, shape_variables)
    if query:
        args.append(Item(Dict(tuple(query)), "query"))
    body, absent_body = _body(stats, shape_variables)
    if body is not None:
        args.append(Item(body, "json"))
    expect = sorted(s for s in stats.statuses if s < 500)
    if expect and any(not 200 <= s < 400 for s in expect):
        args.append(Item(List(tuple(Item(Raw(str(s))) for s in expect)), "expect"))
    for label, absent in (("query", absent_query), ("body", absent_body)):
        if absent:
            comment.append(f"{label} fields in fewer than half the requests, left out: {absent}")
    head = "".join(f"{line}\n" for c in comment for line in _wrap(c, "# "))
    return head + f"{const} = " + emit(Call(func, tuple(args)), 0, len(const) + 3) + "\n"


def _path_variable(param: str, kind: str, values: FieldStats) -> Drawn:
    if kind == "number" and values.numbers.values:
        low, high = int(min(values.numbers.values)), int(max(values.numbers.values))
        if high > low:
            return Drawn(Raw(f"gen.uniform_int({low}, {high})"), f"{values.count:,} numbers")
    return drawn(param, values, url_safe=True)


def _fields(
    fields: dict[str, FieldStats], count: int, shape_variables: set[str], prefix: str = ""
) -> tuple[list[Item], str]:
    items = []
    absent = []
    for name, stats in fields.items():
        if stats.count < PRESENT * count:
            absent.append(f"{prefix}{name} ({stats.count / count:.0%})")
            continue
        found = drawn(name, stats)
        shape_variables.update(found.variables)
        items.append(
            Item(found.node, string(name), tuple(_wrap(f"{prefix}{name}: {found.comment}", "")))
        )
    return items, ", ".join(absent[:6]) + (", ..." if len(absent) > 6 else "")


def _body(stats: EndpointStats, shape_variables: set[str]) -> tuple[Node | None, str]:
    if not stats.bodies or stats.bodies < PRESENT * stats.count:
        return None, ""
    absent: list[str] = []
    node = _object(stats.body, "", stats.bodies, shape_variables, absent)
    return node, ", ".join(absent[:6]) + (", ..." if len(absent) > 6 else "")


def _object(
    fields: dict[str, FieldStats],
    prefix: str,
    count: int,
    shape_variables: set[str],
    absent: list[str],
) -> Node:
    items = []
    for name, stats in fields.items():
        if not name.startswith(prefix) or "." in name[len(prefix) :] or "[]" in name[len(prefix) :]:
            continue
        key = name[len(prefix) :]
        if not key:
            continue
        if stats.count < PRESENT * count:
            absent.append(f"{name} ({stats.count / count:.0%})")
            continue
        kind = stats.kinds.most_common(1)[0][0] if stats.kinds else "string"
        comment: tuple[str, ...] = ()
        if kind == "object":
            value = _object(fields, name + ".", stats.count, shape_variables, absent)
        elif kind == "array":
            value, comment = _array(fields, name, stats, shape_variables, absent)
        else:
            found = drawn(key, stats)
            shape_variables.update(found.variables)
            value, comment = found.node, tuple(_wrap(f"{name}: {found.comment}", ""))
        items.append(Item(value, string(key), comment))
    return Dict(tuple(items))


def _array(
    fields: dict[str, FieldStats],
    name: str,
    stats: FieldStats,
    shape_variables: set[str],
    absent: list[str],
) -> tuple[Node, tuple[str, ...]]:
    lengths = sorted(int(v) for v in stats.lengths.values) or [0]
    low, high = lengths[int(0.05 * (len(lengths) - 1))], lengths[int(0.95 * (len(lengths) - 1))]
    item_stats = fields.get(name + "[]")
    if item_stats is None:
        return Raw("[]"), (f"{name}: {stats.count:,} arrays, always empty",)
    kind = item_stats.kinds.most_common(1)[0][0] if item_stats.kinds else "string"
    if kind == "object":
        item: Node = _object(fields, name + "[].", item_stats.count, shape_variables, absent)
    else:
        found = drawn(name, item_stats)
        shape_variables.update(found.variables)
        item = found.node
    count = Raw(str(low)) if low == high else Raw(f"gen.uniform_int({low}, {high})")
    note = f"{name}: {stats.count:,} arrays of {low} to {high} items (5th to 95th percentile)"
    return Call("gen.repeat", (Item(count), Item(item))), (note,)


def _mix(kept: list[Endpoint], names: list[str], total: int, rest: list[Endpoint]) -> str:
    items = tuple(
        Item(
            Tuple((Item(Raw(const)), Item(Raw(str(e.stats.count))))),
            None,
            (f"{e.stats.count / total:.2%}",),
        )
        for e, const in zip(kept, names, strict=True)
    )
    head = "#: The requests in their production proportions (weights: the requests counted).\n"
    if rest:
        left = ", ".join(e.key for e in rest[:5]) + (", ..." if len(rest) > 5 else "")
        head += "".join(
            f"{line}\n" for line in _wrap(f"Left out ({len(rest)} endpoints): {left}", "# ")
        )
    return head + "TRAFFIC = " + emit(Call("mix", items), 0, 10) + "\n"


def _profile(shape: Shape | None, learned: Learned, kept: list[Endpoint]) -> str:
    if shape is None or learned.first is None:
        return ""
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
    p95 = max((_quantiles(e.stats)[0] or 0.0) for e in kept) if kept else 0.0
    pre = max(10, math.ceil(shape.peak_rate * max(p95, 0.1) * 2))
    peak = (
        f"{number(shape.peak_rate, 3)} requests/s at {_clock(learned.first + shape.peak_at_s)} UTC"
    )
    head = (
        f"#: The rate: {format_duration(round(1000 * shape.seconds()))} of stages read in "
        f"{format_duration(round(1000 * shape.bucket_s))} buckets; peak {peak}.\n"
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


def _scenario(name: str, kept: list[Endpoint], learned: Learned) -> str:
    thresholds: list[Item] = []
    for e in kept:
        if e.stats.timed >= MIN_TIMED:
            p95, p99 = _quantiles(e.stats)
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
            Item(List((Item(workload),)), "workloads"),
            Item(List(tuple(thresholds)), "thresholds"),
        ),
    )
    return "scenario = " + emit(call, 0, 11) + "\n"


def _names(kept: list[Endpoint]) -> list[str]:
    out = []
    seen: Counter[str] = Counter()
    for e in kept:
        words = [w for w in e.template.split("/") if w and not w.startswith("{")]
        words = [w for w in words if not re.fullmatch(r"v\d+|api", w)] or ["root"]
        base = re.sub(r"[^0-9A-Za-z]+", "_", "_".join([e.method, *words[-3:]])).strip("_").upper()
        if base[0].isdigit():
            base = "R_" + base
        seen[base] += 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def _quantiles(stats: EndpointStats) -> tuple[float | None, float | None]:
    values = sorted(stats.durations.values)
    if not values:
        return None, None
    return _at(values, 0.95), _at(values, 0.99)


def _at(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{number(seconds * 1000, 3)} ms"


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


def _wrap(text: str, prefix: str, width: int = 96) -> list[str]:
    words = text.split(" ")
    lines, line = [], ""
    for word in words:
        if line and len(prefix) + len(line) + 1 + len(word) > width:
            lines.append(prefix + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(prefix + line)
    return lines
