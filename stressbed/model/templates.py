"""Paths to endpoint templates, online and in bounded memory.

``/v1/agents/8f3a0c2e-.../report`` becomes ``/v1/agents/{agent_id}/report``. A path segment is
a parameter when

- its shape is an identifier's (a UUID, a number, a hash, an ``id`` like ``node-17``, a token,
  an email, an address, a date: :mod:`stressbed.model.shapes`), or
- its position holds more than :data:`DISTINCT` different words (``/users/alice``,
  ``/users/bob``, ...): then every word there that carries less than :data:`HOT_SHARE` of the
  position's requests is a value of one parameter (a word carrying more stays an endpoint of
  its own: a hot key is traffic worth keeping apart), or
- it is a word that carries less than :data:`HOT_SHARE` of its position's requests, written as
  a parameter's values there may be (a token with no digit, a hash of letters only).

A route the input names (a trace's ``http.route``) is taken as it is, its parameters named as
the route names them. A parameter is named after the segment before it (``agents`` ->
``agent_id``; a word parameter ``users/{user}``), else after its shape: the most requested
shape of its position, so ids written several ways there (UUIDs and numbers, hashes some of
which are all digits) are one template.

Paths are walked down a tree of segments; a node's words are capped at :data:`DISTINCT` (the
next new word goes to the parameter at once), and the tree at :data:`MAX_NODES`, so a gigabyte
of distinct paths takes the memory of a few thousand: once it is full, a segment with no node
of its own, and every segment after it, is a parameter ``{param}`` of one shared node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .shapes import shape

__all__ = ["DISTINCT", "HOT_SHARE", "Leaf", "Templates", "param_name", "split_route"]

#: Distinct words a position may hold before its words are a parameter's values.
DISTINCT = 50
#: The share of a position's requests that keeps a word an endpoint of its own.
HOT_SHARE = 0.02
#: Nodes of the tree at most; past it every new word is a parameter's value.
MAX_NODES = 200_000
#: Segments of a path read at most (deeper ones are folded into the last).
MAX_DEPTH = 16
#: Paths remembered with their leaf: a path seen again skips the walk.
CACHE = 100_000

_WORD_PARAM = "{word}"
#: How a parameter's values may be written and still be taken for words (a token with no
#: digit, a hash of letters only): such a word beside the parameter is one of its values.
_LOOSE = {
    "token": re.compile(r"[A-Za-z0-9_\-+/=.~]{16,}"),
    "hash": re.compile(r"[0-9a-fA-F]{16,}"),
}
#: The token of a segment past a full tree (of any shape: the shared node has no children).
_FULL_PARAM = "{param}"
#: A route's parameter: ``{id}`` (``{id:int}``, ``{id?}``: a converter or a mark after the
#: name), ``:id`` or ``<int:id>``.
_ROUTE_PARAM = re.compile(
    r"\{([^}/:?]+)\??(?::[^/]*)?\}|:([A-Za-z_][A-Za-z0-9_]*)|<(?:[a-z]+:)?([A-Za-z_]\w*)>"
)
_NOT_IDENT = re.compile(r"[^0-9a-zA-Z_]+")
_SHAPE_NAMES = {
    "uuid": "id",
    "number": "id",
    "hash": "hash",
    "id": "id",
    "token": "token",
    "jwt": "token",
    "email": "email",
    "ip": "ip",
    "date": "date",
    "word": "name",
}


@dataclass(eq=False)
class _Node:
    hits: int = 0
    #: Of its hits, those that went on to a child: the requests of the position below it.
    below: int = 0
    words: dict[str, _Node] = field(default_factory=dict)
    params: dict[str, _Node] = field(default_factory=dict)
    overflowed: bool = False
    #: A route's own name for the parameter this node stands for.
    route_name: str | None = None


@dataclass(eq=False)
class Leaf:
    """Where a path ended in the tree: the endpoint's key until templates are final.
    ``tokens``: its segments, a word as itself and a parameter as ``{shape}``."""

    tokens: tuple[str, ...]
    route: bool = False
    names: tuple[str | None, ...] = ()
    #: The paths that ended here (the tree's counts are made from these: :meth:`Templates.
    #: template` settles them once every path is in).
    count: int = 0


class Templates:
    """The tree of every path seen; :meth:`leaf` walks one path down it, :meth:`template` says
    what a leaf's template is once every path is in."""

    def __init__(self) -> None:
        self._root = _Node()
        #: Where every path goes on once the tree is full: the node of all its segments.
        self._full = _Node()
        self._nodes = 2
        self._leaves: dict[tuple[str, ...], Leaf] = {}
        self._settled = True
        self._cache: dict[str, tuple[Leaf, tuple[str, ...]]] = {}
        self._shapes: dict[str, str] = {}

    def leaf(self, path: str) -> tuple[Leaf, tuple[str, ...]]:
        """The leaf of ``path`` and its parameters' values (in order)."""
        self._settled = False
        found = self._cache.get(path)
        if found is not None:
            found[0].count += 1
            return found
        segments = _segments(path)
        node = self._root
        tokens: list[str] = []
        values: list[str] = []
        for segment in segments:
            token, child = self._step(node, segment)
            if token.startswith("{"):
                values.append(segment)
            tokens.append(token)
            node = child
        leaf = self._leaves.get(key := tuple(tokens))
        if leaf is None:
            leaf = self._leaves[key] = Leaf(key)
        leaf.count += 1
        if len(self._cache) >= CACHE:
            self._cache.clear()
        self._cache[path] = (leaf, tuple(values))
        return leaf, tuple(values)

    def route_leaf(self, route: str, path: str) -> tuple[Leaf, tuple[str, ...]]:
        """The leaf of a named route (``/v1/agents/{id}``) and the values ``path`` gives its
        parameters (none when the path does not follow the route)."""
        route_segments = _segments(route)
        names = tuple(_route_param(s) for s in route_segments)
        tokens = tuple(
            "{route:" + n + "}" if n else s for s, n in zip(route_segments, names, strict=True)
        )
        key = ("route", *tokens)
        leaf = self._leaves.get(key)
        if leaf is None:
            leaf = self._leaves[key] = Leaf(tokens, route=True, names=names)
        segments = _segments(path)
        values: tuple[str, ...] = ()
        if len(segments) == len(route_segments):
            values = tuple(v for v, n in zip(segments, names, strict=True) if n)
        return leaf, values

    def template(self, leaf: Leaf) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The leaf's template (``/v1/agents/{agent_id}``) and its parameters as (name,
        shape) pairs, in order (a route's parameters have the shape "route")."""
        self._settle()
        if leaf.route:
            named = _unique([(n, "route") for n in leaf.names if n])
            return "/" + "/".join(
                "{" + n + "}" if n else t for t, n in zip(leaf.tokens, leaf.names, strict=True)
            ), named
        node = self._root
        parts: list[str] = []
        params: list[tuple[str, str]] = []
        previous: str | None = None
        for token in leaf.tokens:
            child = self._child(node, token)
            if token in node.words and self._folded(node, token, child) is None:
                parts.append(token)
                previous = token
            else:
                kind = self._kind_at(node)
                name = param_name(previous, kind)
                params.append((name, kind))
                parts.append("{" + name + "}")
                previous = None
            node = child
        named = _unique(params)
        out = []
        i = 0
        for part in parts:
            if part.startswith("{"):
                out.append("{" + named[i][0] + "}")
                i += 1
            else:
                out.append(part)
        return "/" + "/".join(out), named

    def _settle(self) -> None:
        """Each node's hits (the paths through it) and the paths that went on below it, from
        the leaves' counts: made once, when templates are asked for, not at every path."""
        if self._settled:
            return
        pending = [self._root, self._full]
        while pending:
            node = pending.pop()
            node.hits = node.below = 0
            pending += node.words.values()
            pending += (c for c in node.params.values() if c is not node)
        for leaf in self._leaves.values():
            if leaf.route or not leaf.count:
                continue
            node = self._root
            node.hits += leaf.count
            for token in leaf.tokens:
                node.below += leaf.count
                node = self._child(node, token)
                node.hits += leaf.count
        self._settled = True

    def absorb(self, other: Templates) -> None:
        """Join ``other``'s tree (what a reading of another part of the input walked) into
        this one: hits add, children join; a position may then hold up to twice DISTINCT
        words (it is crowded when it holds more than DISTINCT). ``other`` is used up."""
        _join(self._root, other._root)
        _join(self._full, other._full)
        for key, leaf in other._leaves.items():
            mine = self._leaves.get(key)
            if mine is None:
                self._leaves[key] = leaf
            else:
                mine.count += leaf.count
        self._settled = False
        self._nodes += other._nodes
        self._cache.clear()

    def leaf_by_key(self, key: tuple[str, ...]) -> Leaf:
        """The leaf of ``key`` (its tokens, a route's led by "route")."""
        return self._leaves[key]

    def forget_caches(self) -> None:
        """Drop what only speeds reading up (before the tree is sent to another process)."""
        self._cache.clear()
        self._shapes.clear()

    @property
    def nodes(self) -> int:
        """The tree's nodes (at most :data:`MAX_NODES`)."""
        return self._nodes

    def _step(self, node: _Node, segment: str) -> tuple[str, _Node]:
        """The token ``segment`` is at ``node`` and the child it leads to (made if new)."""
        if node is self._full:
            return _FULL_PARAM, node
        kind = self._shape(segment)
        if kind == "word" and not segment.isprintable():
            # No resource is named with a control character: a value (and never a word of
            # the template, which comments quote).
            return self._param(node, "{word}")
        if kind == "word" and (segment in node.words or self._room(node)):
            child = node.words.get(segment)
            if child is None:
                child = node.words[segment] = _Node()
                self._nodes += 1
            return segment, child
        if kind == "word":
            node.overflowed = True
        return self._param(node, "{" + kind + "}")

    def _param(self, node: _Node, token: str) -> tuple[str, _Node]:
        child = node.params.get(token)
        if child is None:
            if self._nodes >= MAX_NODES:
                return _FULL_PARAM, self._full
            child = node.params[token] = _Node()
            self._nodes += 1
        return token, child

    def _folded(self, node: _Node, word: str, child: _Node) -> str | None:
        """The shape of the parameter a word of ``node`` is a value of, if it is one: a cold
        word of a crowded position, or a cold word written as a sibling parameter's values
        may be (a token with no digit, a hash of letters only)."""
        if child.hits >= HOT_SHARE * node.below:
            return None
        for kind, written in _LOOSE.items():
            if "{" + kind + "}" in node.params and written.fullmatch(word):
                return kind
        return _WORD_PARAM[1:-1] if node.overflowed else None

    def _kind_at(self, node: _Node) -> str:
        """The shape a position's parameters are named after: its most requested one, so a
        position of several (ids, a few all-digit hashes, folded words) is one template."""
        hits: dict[str, int] = {}
        for token, child in node.params.items():
            hits[token[1:-1]] = hits.get(token[1:-1], 0) + child.hits
        for word, child in node.words.items():
            if (kind := self._folded(node, word, child)) is not None:
                hits[kind] = hits.get(kind, 0) + child.hits
        return max(sorted(hits), key=hits.__getitem__) if hits else _FULL_PARAM[1:-1]

    def _room(self, node: _Node) -> bool:
        return len(node.words) < DISTINCT and self._nodes < MAX_NODES

    def _child(self, node: _Node, token: str) -> _Node:
        return node.words.get(token) or node.params.get(token) or self._full

    def _shape(self, segment: str) -> str:
        found = self._shapes.get(segment)
        if found is None:
            if len(self._shapes) >= CACHE:
                self._shapes.clear()
            found = self._shapes[segment] = shape(segment)
        return found


def _join(into: _Node, other: _Node) -> None:
    into.hits += other.hits
    into.below += other.below
    into.overflowed = into.overflowed or other.overflowed or len(into.words) > DISTINCT
    into.route_name = into.route_name or other.route_name
    for mine, theirs in ((into.words, other.words), (into.params, other.params)):
        for token, child in theirs.items():
            found = mine.get(token)
            if found is None:
                mine[token] = child
            else:
                _join(found, child)
    into.overflowed = into.overflowed or len(into.words) > DISTINCT


def _segments(path: str) -> list[str]:
    parts = [p for p in path.split("/") if p]
    if len(parts) > MAX_DEPTH:
        parts = [*parts[: MAX_DEPTH - 1], "/".join(parts[MAX_DEPTH - 1 :])]
    return parts


def _route_param(segment: str) -> str | None:
    found = _ROUTE_PARAM.fullmatch(segment)
    if found is None:
        return None
    return _identifier(next(g for g in found.groups() if g))


def split_route(route: str) -> str:
    """A route in any of the usual spellings (``{id}``, ``{id:int}``, ``:id``, ``<int:id>``) as
    ``{id}``."""
    return "/" + "/".join("{" + n + "}" if (n := _route_param(s)) else s for s in _segments(route))


def param_name(previous: str | None, kind: str) -> str:
    """A parameter's name: after the word before it (``agents`` -> ``agent_id``, a word
    parameter after ``users`` -> ``user``), else after its shape."""
    if previous is None or kind in ("email", "ip", "date"):
        return _SHAPE_NAMES.get(kind, "param")
    base = _singular(_identifier(previous))
    if kind == "word":
        return base
    if kind in ("hash", "token", "jwt"):
        return f"{base}_{_SHAPE_NAMES[kind]}"
    return f"{base}_id"


def _identifier(text: str) -> str:
    name = _NOT_IDENT.sub("_", text).strip("_").lower() or "param"
    return name if not name[0].isdigit() else "p_" + name


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def _unique(params: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    seen: dict[str, int] = {}
    out = []
    for name, kind in params:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}_{seen[name]}", kind))
    return tuple(out)
