"""What the records add up to, one record at a time, in bounded memory.

Per endpoint (a method and a path's leaf, :mod:`stressbed.model.templates`): its requests, their
statuses, a uniform sample of their durations and sizes, and each parameter's figures (its
query parameters, its JSON body's fields, its path's parameters). Over everything: requests per
second (the rate's shape) and the span.

The privacy filter stands before anything is kept: a value is kept (to be counted as a
category) only when its field's name is not a secret's (:func:`~stressbed.model.shapes.
is_sensitive_name`) and its shape is not one a secret, an address or an id has, unless the
user named the field with ``--keep``; of any other value only its shape, its length and the
kinds of characters it is written in are kept.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from .clients import CLIENT_HEADERS, Clients, client_field, client_word
from .fits import BoundedCounter, Reservoir
from .hits import Hit
from .shapes import SENSITIVE_SHAPES, is_sensitive_name, shape
from .templates import Leaf, Templates

__all__ = [
    "EndpointKey",
    "EndpointStats",
    "FieldStats",
    "Learned",
    "leaf_key",
    "learn",
    "merge_field",
    "merged",
]

#: Query parameters and body fields followed per endpoint (more are counted, not followed).
MAX_FIELDS = 64
#: Depth of a JSON body followed (deeper objects are one field).
MAX_BODY_DEPTH = 4
#: Distinct values counted per field before new ones go to "other".
MAX_VALUES = 1000
#: An endpoint's requests whose parameters are all read before they are sampled.
SAMPLE_ALL = 50_000
#: Characters remembered per field (to say which alphabet its values are written in), read
#: from its first ALPHABET_FROM values.
MAX_CHARS = 128
ALPHABET_FROM = 1000
#: Values whose shape is remembered (a value seen again is not looked at twice).
SHAPES_CACHED = 100_000
_shapes: dict[str, str] = {}


def _shape(text: str) -> str:
    found = _shapes.get(text)
    if found is None:
        if len(_shapes) >= SHAPES_CACHED:
            _shapes.clear()
        found = _shapes[text] = shape(text) if text else "word"
    return found


@dataclass
class FieldStats:
    """One parameter's figures: how often it was there, its shapes and JSON kinds, its kept
    values, its numbers, its lengths (strings and arrays) and the characters it is written in."""

    count: int = 0
    shapes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    values: BoundedCounter = field(default_factory=lambda: BoundedCounter(MAX_VALUES))
    numbers: Reservoir = field(default_factory=lambda: Reservoir(2048))
    lengths: Reservoir = field(default_factory=lambda: Reservoir(2048))
    chars: set[str] = field(default_factory=set)
    #: Values kept though their shape is sensitive (the user's --keep).
    kept: bool = False

    def add(self, name: str, value: Any, keep: bool, weight: int = 1) -> None:
        self.count += weight
        if isinstance(value, bool):
            self.kinds["bool"] += weight
            self.values.add(value, weight)
            return
        if isinstance(value, int | float):
            self.kinds["int" if isinstance(value, int) else "float"] += weight
            if keep or not is_sensitive_name(name):
                if math.isfinite(value):
                    self.numbers.add(float(value))
            else:
                # A secret's number (a pin, a card): its number of digits only.
                self.lengths.add(float(len(str(abs(int(value))))) if math.isfinite(value) else 1.0)
            return
        if value is None:
            self.kinds["null"] += weight
            return
        if isinstance(value, list):
            self.kinds["array"] += weight
            self.lengths.add(float(len(value)))
            return
        if isinstance(value, dict):
            self.kinds["object"] += weight
            return
        text = str(value)
        self.kinds["string"] += weight
        kind = _shape(text)
        self.shapes[kind] += weight
        self.lengths.add(float(len(text)))
        if self.lengths.count <= ALPHABET_FROM and len(self.chars) < MAX_CHARS:
            self.chars.update(text[:64])
        if kind in ("number", "decimal") and not is_sensitive_name(name):
            self.numbers.add(float(text))
        if keep or (kind not in SENSITIVE_SHAPES and not is_sensitive_name(name)):
            self.kept = self.kept or keep
            self.values.add(text, weight)


#: An endpoint as the records are read: its method and its leaf's key (stable across
#: processes, unlike the leaf object).
EndpointKey = tuple[str, tuple[str, ...]]


def leaf_key(leaf: Leaf) -> tuple[str, ...]:
    return ("route", *leaf.tokens) if leaf.route else leaf.tokens


@dataclass
class EndpointStats:
    """One endpoint's figures (see the module's docstring)."""

    method: str
    leaf: Leaf
    count: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    durations: Reservoir = field(default_factory=lambda: Reservoir(8192))
    timed: int = 0
    request_bytes: Reservoir = field(default_factory=lambda: Reservoir(2048))
    request_lengths: Reservoir = field(default_factory=lambda: Reservoir(2048))
    response_bytes: Reservoir = field(default_factory=lambda: Reservoir(2048))
    query: dict[str, FieldStats] = field(default_factory=dict)
    body: dict[str, FieldStats] = field(default_factory=dict)
    bodies: int = 0
    #: The requests whose parameters were read (a sample: see SAMPLE_ALL).
    sampled: int = 0
    path: list[FieldStats] = field(default_factory=list)
    other_fields: int = 0

    @property
    def key(self) -> EndpointKey:
        return (self.method, leaf_key(self.leaf))


@dataclass
class Learned:
    """Everything learned from the records: endpoints, the rate per second, the span, and the
    templates' tree (to name each endpoint once every path is in)."""

    templates: Templates
    endpoints: dict[EndpointKey, EndpointStats]
    per_second: Counter[int]
    first: float | None
    last: float | None
    count: int
    keep: frozenset[str]
    clients: Clients = field(default_factory=Clients)


def learn(hits: Iterable[Hit], keep: Iterable[str] = ()) -> Learned:
    """Fold ``hits`` (in time order) into what the model is made of."""
    keep_fields = frozenset(keep)
    templates = Templates()
    endpoints: dict[EndpointKey, EndpointStats] = {}
    per_second: Counter[int] = Counter()
    first = last = None
    count = 0
    clients = Clients()
    for hit in hits:
        count += 1
        if first is None:
            first = hit.time
        last = hit.time
        per_second[int(hit.time)] += 1
        if hit.route:
            leaf, values = templates.route_leaf(hit.route, hit.path)
        else:
            leaf, values = templates.leaf(hit.path)
        key = (hit.method, leaf_key(leaf))
        stats = endpoints.get(key)
        if stats is None:
            stats = endpoints[key] = EndpointStats(hit.method, leaf)
        _add(stats, hit, values, keep_fields)
        clients.see(_client(hit, leaf, values), hit.client, key, hit.time)
    clients.finish()
    return Learned(templates, endpoints, per_second, first, last, count, keep_fields, clients)


def _client(hit: Hit, leaf: Leaf, values: tuple[str, ...]) -> str | None:
    """The id of who sent ``hit`` when the request names one (see
    :mod:`stressbed.model.clients`): kept in memory only."""
    if values:
        index = 0
        previous = None
        for token in leaf.tokens:
            if token.startswith("{"):
                if client_word(previous) and index < len(values):
                    return values[index]
                index += 1
            previous = token
    for header in CLIENT_HEADERS:
        value = hit.headers.get(header)
        if value:
            return value
    found = client_field(hit.body)
    return found


def _add(stats: EndpointStats, hit: Hit, values: tuple[str, ...], keep: frozenset[str]) -> None:
    stats.count += 1
    if hit.status is not None:
        stats.statuses[hit.status] += 1
    if hit.duration_s is not None:
        stats.timed += 1
        stats.durations.add(hit.duration_s)
    if hit.request_bytes is not None:
        stats.request_bytes.add(float(hit.request_bytes))
    if hit.request_length is not None:
        stats.request_lengths.add(float(hit.request_length))
    if hit.response_bytes is not None:
        stats.response_bytes.add(float(hit.response_bytes))
    # The parameters are read from a sample of each endpoint's requests: all of its first
    # SAMPLE_ALL, then one in every k, k growing by one each further SAMPLE_ALL: a few hundred
    # thousand per endpoint from a gigabyte, uniform enough for shares and fits.
    if stats.count > SAMPLE_ALL and stats.count % (stats.count // SAMPLE_ALL + 1):
        return
    stats.sampled += 1
    while len(stats.path) < len(values):
        stats.path.append(FieldStats())
    for i, value in enumerate(values):
        stats.path[i].add("", value, False)
    if hit.query:
        for name, value in parse_qsl(hit.query, keep_blank_values=True):
            _field(stats, stats.query, name, value, name in keep)
    if hit.body is not None:
        stats.bodies += 1
        for name, value in _flatten(hit.body, "", 0):
            _field(stats, stats.body, name, value, name in keep)


def _field(
    stats: EndpointStats, fields: dict[str, FieldStats], name: str, value: Any, keep: bool
) -> None:
    found = fields.get(name)
    if found is None:
        if len(fields) >= MAX_FIELDS:
            stats.other_fields += 1
            return
        found = fields[name] = FieldStats()
    found.add(name, value, keep)


def _flatten(value: Any, prefix: str, depth: int) -> Iterable[tuple[str, Any]]:
    """A JSON body's fields as (path, value): ``a.b`` for an object's, ``a[]`` for an array's
    items (the array itself is a field too: its length is one of its figures)."""
    if isinstance(value, Mapping) and depth < MAX_BODY_DEPTH:
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(item, Mapping) and depth + 1 < MAX_BODY_DEPTH:
                yield name, {}
                yield from _flatten(item, name, depth + 1)
            elif isinstance(item, list):
                yield name, item
                for element in item[:16]:
                    yield from _flatten_item(element, name + "[]", depth + 1)
            else:
                yield name, item
    elif isinstance(value, list) and not prefix:
        yield "[]", value
        for element in value[:16]:
            yield from _flatten_item(element, "[]", depth + 1)


def _flatten_item(value: Any, name: str, depth: int) -> Iterable[tuple[str, Any]]:
    if isinstance(value, Mapping):
        yield name, {}
        yield from _flatten(value, name, depth)
    elif not isinstance(value, list):
        yield name, value


def merged(
    members: list[EndpointStats],
    templates: Templates,
    params: list[tuple[tuple[str, str], ...]],
) -> EndpointStats:
    """The figures of several leaves that became one template (words of a position with too
    many of them, now one parameter's values), as one endpoint's: counts add, samples pool,
    and each collapsed word counts as a value of its parameter (its length and shape; a word
    is never copied, as no parameter's value is)."""
    out = EndpointStats(members[0].method, members[0].leaf)
    for member in members:
        template, _ = templates.template(member.leaf)
        parts = template.split("/")[1:]
        final: list[int] = []  # the final parameter index of each of the member's parameters
        words: list[tuple[int, str]] = []
        index = 0
        for token, part in zip(member.leaf.tokens, parts, strict=False):
            if not part.startswith("{"):
                continue
            if token.startswith("{"):
                final.append(index)
            else:
                words.append((index, token))
            index += 1
        while len(out.path) < index:
            out.path.append(FieldStats())
        for own, stats in zip(final, member.path, strict=False):
            merge_field(out.path[own], stats)
        for at, word in words:
            out.path[at].add("", word, False, weight=member.count)
        merge_counts(out, member)
    return out


def merge_counts(into: EndpointStats, other: EndpointStats) -> None:
    """Fold ``other``'s figures but its path's parameters into ``into`` (counts add,
    samples merge, fields merge by name)."""
    into.count += other.count
    into.statuses.update(other.statuses)
    into.timed += other.timed
    into.bodies += other.bodies
    into.sampled += other.sampled
    into.other_fields += other.other_fields
    into.durations.merge(other.durations)
    into.request_bytes.merge(other.request_bytes)
    into.request_lengths.merge(other.request_lengths)
    into.response_bytes.merge(other.response_bytes)
    for fields, more in ((into.query, other.query), (into.body, other.body)):
        for name, stats in more.items():
            merge_field(fields.setdefault(name, FieldStats()), stats)


def merge_field(into: FieldStats, other: FieldStats) -> None:
    """Fold ``other``'s figures into ``into`` (counts add, samples merge)."""
    into.count += other.count
    into.shapes.update(other.shapes)
    into.kinds.update(other.kinds)
    into.values.merge(other.values)
    into.numbers.merge(other.numbers)
    into.lengths.merge(other.lengths)
    into.chars |= other.chars
    into.kept = into.kept or other.kept
