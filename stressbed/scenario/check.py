"""Checks on a response, recorded by k6's ``check()`` (the ``checks`` rate metric).

A failed check never stops an iteration; pair checks with a threshold such as
``thresholds.check_rate("> 99%")`` to make them count in the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError
from ._jsonpath import parse_json_path
from .units import parse_duration_ms
from .values import Const, as_value_node

__all__ = [
    "BodyContains",
    "Check",
    "DurationUnder",
    "JsonEquals",
    "JsonExists",
    "Status",
    "body_contains",
    "duration_under",
    "json_equals",
    "json_exists",
    "status",
]


class Check:
    kind: ClassVar[str]
    name: str

    #: Whether the check reads the response body (so k6 must keep it).
    needs_body: ClassVar[bool] = True

    def params(self) -> dict[str, object]:
        return {}

    def to_config(self) -> dict[str, object]:
        return {"kind": self.kind, "name": self.name, **self.params()}


@dataclass(frozen=True)
class Status(Check):
    codes: tuple[int, ...]
    name: str
    kind: ClassVar[str] = "status"
    needs_body: ClassVar[bool] = False

    def params(self) -> dict[str, object]:
        return {"codes": list(self.codes)}


@dataclass(frozen=True)
class JsonExists(Check):
    path: tuple[str | int, ...]
    name: str
    kind: ClassVar[str] = "json_exists"

    def params(self) -> dict[str, object]:
        return {"path": list(self.path)}


@dataclass(frozen=True)
class JsonEquals(Check):
    path: tuple[str | int, ...]
    value: Const
    name: str
    kind: ClassVar[str] = "json_equals"

    def params(self) -> dict[str, object]:
        return {"path": list(self.path), "value": self.value.value}


@dataclass(frozen=True)
class BodyContains(Check):
    text: str
    name: str
    kind: ClassVar[str] = "body_contains"

    def params(self) -> dict[str, object]:
        return {"text": self.text}


@dataclass(frozen=True)
class DurationUnder(Check):
    limit_ms: float
    name: str
    kind: ClassVar[str] = "duration_under"
    needs_body: ClassVar[bool] = False

    def params(self) -> dict[str, object]:
        return {"limit_ms": self.limit_ms}


def status(*codes: int, name: str | None = None) -> Status:
    """The response status is one of ``codes``."""
    if not codes:
        raise ConfigError("check.status", (), "at least one status code")
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ConfigError("check.status", code, "an HTTP status code 100..599")
    label = " or ".join(str(c) for c in codes)
    return Status(tuple(codes), _name(name, f"status is {label}"))


def json_exists(path: str, *, name: str | None = None) -> JsonExists:
    """The JSON body has a value at ``path``."""
    return JsonExists(parse_json_path(path, "check.json_exists"), _name(name, f"{path} exists"))


def json_equals(path: str, value: object, *, name: str | None = None) -> JsonEquals:
    """The JSON body's value at ``path`` equals ``value`` (compared as JSON)."""
    node = as_value_node(value, "check.json_equals.value")
    if not isinstance(node, Const):
        raise ConfigError("check.json_equals.value", value, "a constant JSON value")
    return JsonEquals(
        parse_json_path(path, "check.json_equals"), node, _name(name, f"{path} == {node.json_text}")
    )


def body_contains(text: str, *, name: str | None = None) -> BodyContains:
    if not isinstance(text, str) or not text:
        raise ConfigError("check.body_contains", text, "a non-empty string")
    return BodyContains(text, _name(name, f"body contains {text!r}"))


def duration_under(limit: str, *, name: str | None = None) -> DurationUnder:
    """The request took less than ``limit`` (k6's ``http_req_duration``)."""
    ms = parse_duration_ms(limit, "check.duration_under")
    return DurationUnder(ms, _name(name, f"duration < {limit}"))


def _name(name: str | None, default: str) -> str:
    if name is None:
        return default
    if not isinstance(name, str) or not name:
        raise ConfigError("check.name", name, "a non-empty string")
    return name
