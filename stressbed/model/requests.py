"""Each endpoint as a request a person can read: its template, its name, its query and JSON
body as generators (:mod:`stressbed.model.generators`), the statuses it may answer, and a
comment with its figures (requests, share, statuses, latency).

A query parameter or a body field is written when at least :data:`PRESENT` of the requests
carry it (the others are named in the comment); path parameters become the module's
variables, one per name, drawn by their values' shape.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass

from .clients import CLIENT_FIELDS
from .generators import Drawn, drawn, shares
from .learn import EndpointKey, EndpointStats, FieldStats, Learned, merged
from .pysource import Call, Dict, Item, List, Node, Raw, emit, number, one_line, string

__all__ = [
    "METHODS",
    "PRESENT",
    "Endpoint",
    "endpoints_of",
    "names",
    "quantiles",
    "request_block",
    "wrap",
]

#: A query parameter or body field is written when this share of requests carry it.
PRESENT = 0.5


@dataclass(frozen=True)
class Endpoint:
    """One endpoint once every path is in: its template and its merged figures."""

    method: str
    template: str
    params: tuple[tuple[str, str], ...]
    stats: EndpointStats
    #: The identities of the leaves' figures merged into it (what clients were told).
    members: tuple[EndpointKey, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def name(self) -> str:
        """The requests' name tag (a tag value has no braces: ``<agent_id>`` for the
        parameter), what per-request thresholds select."""
        return self.key.replace("{", "<").replace("}", ">")


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
        ids = tuple(m[0].key for m in members)
        out.append(Endpoint(method, template, members[0][1], stats, ids))
    out.sort(key=lambda e: (-e.stats.count, e.key))
    return out


METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}


def request_block(
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
        p95, p99 = quantiles(stats)
        comment.append(f"latency p95 {_ms(p95)}, p99 {_ms(p99)} over {stats.timed:,} timed")
    for (param, kind), values in zip(endpoint.params, stats.path, strict=False):
        if param not in variables:
            found = _path_variable(param, kind, values)
            variables[param] = (found.node, f"{{{param}}}: {found.comment}")
            shape_variables.update(found.variables)
    path = endpoint.template.replace("{", "{{").replace("}", "}}")
    args: list[Item] = []
    func = endpoint.method.lower() if endpoint.method in METHODS else "request"
    if func == "request":
        args.append(Item(Raw(string(endpoint.method))))
    args.append(Item(Raw(string(path))))
    args.append(Item(Raw(string(endpoint.name)), "name"))
    query, absent_query = _fields(stats.query, stats.sampled, shape_variables)
    if query:
        args.append(Item(Dict(tuple(query)), "query"))
    ids: dict[str, FieldStats] = {}
    body, absent_body = _body(stats, shape_variables, ids)
    for name, values in ids.items():
        if name not in variables:
            found = drawn(name, values, url_safe=True)
            variables[name] = (found.node, f"{name}: the client's id in bodies; {found.comment}")
            shape_variables.update(found.variables)
    if body is None and endpoint.method in _WITH_BODY:
        body, sized = _sized_body(stats)
        if sized:
            comment.append(sized)
    if body is not None:
        args.append(Item(body, "json"))
    expect = sorted(s for s in stats.statuses if s < 500)
    if expect and any(not 200 <= s < 400 for s in expect):
        args.append(Item(List(tuple(Item(Raw(str(s))) for s in expect)), "expect"))
    for label, absent in (("query", absent_query), ("body", absent_body)):
        if absent:
            comment.append(f"{label} fields in fewer than half the requests, left out: {absent}")
    head = "".join(f"{line}\n" for c in comment for line in wrap(c, "# "))
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
        items.append(Item(found.node, string(name), (f"{prefix}{name}: {found.comment}",)))
    return items, ", ".join(absent[:6]) + (", ..." if len(absent) > 6 else "")


#: The methods whose requests carry a body.
_WITH_BODY = ("POST", "PUT", "PATCH")


def _sized_body(stats: EndpointStats) -> tuple[Node | None, str]:
    """A body of the median size seen where only its size is known (a HAR's or a trace's
    bodies not kept); where only the whole request's size is (nginx's ``$request_length``: its
    line and headers too), that is said, and no body written."""
    if stats.request_bytes.values:
        size = round(statistics.median(stats.request_bytes.values))
        if size > 2:
            note = (
                f"bodies of {size:,} bytes (median of {stats.request_bytes.count:,}); their "
                "content unknown: a JSON string of that size"
            )
            return Raw(f"gen.random_string({size - 2})"), note
    if stats.request_lengths.values:
        size = round(statistics.median(stats.request_lengths.values))
        return None, (
            f"requests of {size:,} bytes whole (median; line, headers and body: "
            "$request_length); their bodies unknown, none written"
        )
    return None, ""


def _body(
    stats: EndpointStats, shape_variables: set[str], ids: dict[str, FieldStats]
) -> tuple[Node | None, str]:
    """The JSON body; a top-level field naming the client (``agent_id``) reads the variable
    of that name (``ids`` gets its figures), so a client's id is one across its requests."""
    if not stats.bodies or stats.bodies < PRESENT * stats.sampled:
        return None, ""
    absent: list[str] = []
    node = _object(stats.body, "", stats.bodies, shape_variables, absent, ids=ids)
    return node, ", ".join(absent[:6]) + (", ..." if len(absent) > 6 else "")


def _object(
    fields: dict[str, FieldStats],
    prefix: str,
    count: int,
    shape_variables: set[str],
    absent: list[str],
    *,
    ids: dict[str, FieldStats] | None = None,
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
        elif ids is not None and not prefix and key in CLIENT_FIELDS and kind == "string":
            ids[key] = stats
            value, comment = Raw(string("{{" + key + "}}")), (f"{name}: the client's id",)
        else:
            found = drawn(key, stats)
            shape_variables.update(found.variables)
            value, comment = found.node, (f"{name}: {found.comment}",)
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


def names(kept: list[Endpoint]) -> list[str]:
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


def quantiles(stats: EndpointStats) -> tuple[float | None, float | None]:
    values = sorted(stats.durations.values)
    if not values:
        return None, None
    return _at(values, 0.95), _at(values, 0.99)


def _at(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{number(seconds * 1000, 3)} ms"


def wrap(text: str, prefix: str, width: int = 96) -> list[str]:
    """``text`` as comment lines of ``width`` characters at most after ``prefix``; on one
    line whatever it holds first (it may quote the input: see pysource.one_line)."""
    words = one_line(text).split(" ")
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
