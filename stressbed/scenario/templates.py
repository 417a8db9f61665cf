"""String templates: ``"/v1/tasks/{{task_id}}"`` and ``"{{node.hostname}}"``.

A template is parsed once, when the scenario is built, into literal text and references; the
k6 runtime only concatenates. ``{{ name }}`` refers to a variable; ``{{ name.a.b }}`` walks into
an object variable (a data-file row, an extracted JSON object). Text that must keep ``{{``
literally is wrapped in :func:`literal`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError

__all__ = ["Literal", "Ref", "Template", "literal", "parse_template"]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
_TEMPLATE_HELP = "'{{name}}' or '{{name.field}}' references; wrap literal '{{' text in literal()"


@dataclass(frozen=True)
class Ref:
    """A reference to variable ``name``, optionally walking ``path`` into its value."""

    name: str
    path: tuple[str, ...] = ()
    is_value_node: ClassVar[bool] = True

    def refs(self) -> Iterator[Ref]:
        yield self

    def to_config(self) -> list[object]:
        return ["ref", self.name, list(self.path)]

    def __str__(self) -> str:
        return "{{" + ".".join((self.name, *self.path)) + "}}"


@dataclass(frozen=True)
class Template:
    """Literal text interleaved with references. Always holds at least one reference."""

    parts: tuple[str | Ref, ...]
    is_value_node: ClassVar[bool] = True

    def refs(self) -> Iterator[Ref]:
        for part in self.parts:
            if isinstance(part, Ref):
                yield part

    def to_config(self) -> list[object]:
        return ["tpl", [p if isinstance(p, str) else p.to_config() for p in self.parts]]

    def __str__(self) -> str:
        return "".join(str(p) for p in self.parts)


@dataclass(frozen=True)
class Literal:
    """Text used exactly as written, ``{{`` included."""

    text: str


def literal(text: str) -> Literal:
    """Mark ``text`` as literal: no ``{{...}}`` is interpreted in it."""
    if not isinstance(text, str):
        raise ConfigError("literal", text, "a string")
    return Literal(text)


def parse_template(text: str, field: str) -> str | Ref | Template:
    """``text`` itself when it holds no reference, a :class:`Ref` when it is exactly one
    reference (so the variable keeps its type: a number stays a number), else a Template."""
    if "{{" not in text and "}}" not in text:
        return text
    parts: list[str | Ref] = []
    pos = 0
    for match in _REF.finditer(text):
        _reject_braces(text[pos : match.start()], text, field)
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        name, *path = match.group(1).split(".")
        parts.append(Ref(name, tuple(path)))
        pos = match.end()
    _reject_braces(text[pos:], text, field)
    if pos < len(text):
        parts.append(text[pos:])
    if len(parts) == 1 and isinstance(parts[0], Ref):
        return parts[0]
    return Template(tuple(parts))


def _reject_braces(chunk: str, text: str, field: str) -> None:
    if "{{" in chunk or "}}" in chunk:
        raise ConfigError(field, text, _TEMPLATE_HELP)
