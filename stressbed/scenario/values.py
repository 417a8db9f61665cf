"""Values a request is built from: constants, templates, references, generators, trees.

Anything a user writes in a path, query, header or body is normalised here, when the scenario
is built, into an immutable node. Each node knows the variables it references (for
validation) and its JSON form for the k6 runtime, a tagged array::

    ["lit", value]           a constant JSON value
    ["tpl", [parts...]]      a string template; parts are strings or ["ref", ...]
    ["ref", name, [path...]] a variable, keeping its type
    ["gen", kind, {params}]  a generator, evaluated each time the value is built
    ["obj", [[key, node]...]] / ["arr", [node...]]  trees holding dynamic parts

Every node is tagged, so no user data (a body with a key named "tpl", say) is ever mistaken
for structure.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from ..errors import ConfigError
from .templates import IDENTIFIER, Literal, Ref, parse_template

__all__ = [
    "Arr",
    "Const",
    "Node",
    "Obj",
    "ValueNode",
    "as_string_node",
    "as_value_node",
    "var",
]


@runtime_checkable
class ValueNode(Protocol):
    """Anything that can stand in a request: it lists its references and serialises.

    ``is_value_node`` tells value nodes from other objects that also serialise (a request).
    """

    is_value_node: ClassVar[bool]

    def refs(self) -> Iterator[Ref]: ...

    def to_config(self) -> list[object]: ...


@dataclass(frozen=True)
class Const:
    """A constant JSON value, held as canonical JSON text so it cannot be mutated later."""

    json_text: str
    is_value_node: ClassVar[bool] = True

    @classmethod
    def of(cls, value: object) -> Const:
        return cls(json.dumps(value, ensure_ascii=False, sort_keys=False, allow_nan=False))

    @property
    def value(self) -> Any:
        return json.loads(self.json_text)

    def refs(self) -> Iterator[Ref]:
        return iter(())

    def to_config(self) -> list[object]:
        return ["lit", self.value]


@dataclass(frozen=True)
class Obj:
    items: tuple[tuple[str, Node], ...]
    is_value_node: ClassVar[bool] = True

    def refs(self) -> Iterator[Ref]:
        for _, node in self.items:
            yield from node.refs()

    def to_config(self) -> list[object]:
        return ["obj", [[key, node.to_config()] for key, node in self.items]]


@dataclass(frozen=True)
class Arr:
    items: tuple[Node, ...]
    is_value_node: ClassVar[bool] = True

    def refs(self) -> Iterator[Ref]:
        for node in self.items:
            yield from node.refs()

    def to_config(self) -> list[object]:
        return ["arr", [node.to_config() for node in self.items]]


Node: TypeAlias = ValueNode


def var(name: str, *path: str) -> Ref:
    """A typed reference to variable ``name`` (same as the string ``"{{name}}"``)."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigError("var", name, "a variable name (letters, digits, _; not first a digit)")
    return Ref(name, tuple(path))


def as_value_node(value: object, field: str) -> Node:
    """Normalise any value a user may write in a body or a generator argument."""
    if isinstance(value, Literal):
        return Const.of(value.text)
    if isinstance(value, ValueNode):
        return value
    if isinstance(value, str):
        parsed = parse_template(value, field)
        return Const.of(parsed) if isinstance(parsed, str) else parsed
    if value is None or isinstance(value, bool | int):
        return Const.of(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(field, value, "a finite number (JSON has no NaN or infinity)")
        return Const.of(value)
    if isinstance(value, Mapping):
        items: list[tuple[str, Node]] = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(field, key, "string keys in a JSON object")
            items.append((key, as_value_node(item, f"{field}.{key}")))
        consts = {k: n for k, n in items if isinstance(n, Const)}
        if len(consts) == len(items):
            return Const.of({k: n.value for k, n in consts.items()})
        return Obj(tuple(items))
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        nodes = tuple(as_value_node(item, f"{field}[{i}]") for i, item in enumerate(value))
        constants = [n for n in nodes if isinstance(n, Const)]
        if len(constants) == len(nodes):
            return Const.of([n.value for n in constants])
        return Arr(nodes)
    raise ConfigError(
        field, value, "a JSON value (str, number, bool, None, dict, list), a generator or var()"
    )


def as_string_node(value: object, field: str) -> Node:
    """Normalise a value that must end up a string (a header, a query value, a path)."""
    if isinstance(value, bool) or value is None:
        raise ConfigError(field, value, "a string, a number, a generator or var()")
    if isinstance(value, int | float):
        return as_value_node(str(value), field)
    if isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str)):
        raise ConfigError(field, value, "a string, a number, a generator or var()")
    return as_value_node(value, field)


def walk(node: Node) -> Iterator[Node]:
    """``node`` and every node inside it (tree items, generator arguments)."""
    yield node
    children = getattr(node, "children", None)
    if isinstance(node, Obj):
        for _, child in node.items:
            yield from walk(child)
    elif isinstance(node, Arr):
        for child in node.items:
            yield from walk(child)
    elif callable(children):
        for child in children():
            yield from walk(child)
