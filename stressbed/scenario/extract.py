"""Extractors: take a value out of a response into a variable that later steps use.

An extraction that finds nothing fails a check named ``extract <variable>`` and ends the
journey for that iteration: the steps after it could not be built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError
from ._jsonpath import parse_json_path

__all__ = ["Extractor", "Header", "JsonPath", "Regex", "header", "json", "regex"]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class Extractor:
    kind: ClassVar[str]
    needs_body: ClassVar[bool] = True

    def params(self) -> dict[str, object]:
        return {}

    def to_config(self) -> dict[str, object]:
        return {"kind": self.kind, **self.params()}


@dataclass(frozen=True)
class JsonPath(Extractor):
    path: tuple[str | int, ...]
    kind: ClassVar[str] = "json"

    def params(self) -> dict[str, object]:
        return {"path": list(self.path)}


@dataclass(frozen=True)
class Header(Extractor):
    name: str
    kind: ClassVar[str] = "header"
    needs_body: ClassVar[bool] = False

    def params(self) -> dict[str, object]:
        return {"name": self.name}


@dataclass(frozen=True)
class Regex(Extractor):
    """The first match of ``pattern`` in the body: its first group, or the whole match."""

    pattern: str
    kind: ClassVar[str] = "regex"

    def params(self) -> dict[str, object]:
        return {"pattern": self.pattern}


def json(path: str) -> JsonPath:
    return JsonPath(parse_json_path(path, "extract.json"))


def header(name: str) -> Header:
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ConfigError("extract.header", name, "an HTTP header name like 'Location'")
    return Header(name)


def regex(pattern: str) -> Regex:
    """A regular expression in the common subset of Python and JavaScript syntax."""
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError("extract.regex", pattern, "a non-empty regular expression")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ConfigError("extract.regex", pattern, f"a valid regular expression ({exc})") from None
    if "(?P<" in pattern or "(?P=" in pattern:
        raise ConfigError("extract.regex", pattern, "no Python-only (?P<...>) groups")
    return Regex(pattern)
