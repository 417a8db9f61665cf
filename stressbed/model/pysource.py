"""Python source, written as ``ruff format`` writes it, so a generated module is formatted as
it comes out (the package has no formatter to call).

The rules used are the formatter's: an expression that fits in the line stays on one line;
one that does not is exploded, one item per line with a trailing comma (the "magic trailing
comma", which keeps it exploded on the next format); strings in double quotes unless single
ones avoid escapes; comments on their own line before an item.
"""

from __future__ import annotations

import ast
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "LINE",
    "Call",
    "Dict",
    "Item",
    "List",
    "Raw",
    "Tuple",
    "emit",
    "number",
    "one_line",
    "parsed",
    "string",
    "width",
]

#: The project's line length (pyproject's ruff line-length).
LINE = 100
#: What may not stand in a comment as it is: control characters (a line break, a NUL) and
#: the Unicode line and paragraph separators.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class Raw:
    """Source text as it is (a name, a number, a string already quoted)."""

    text: str


@dataclass(frozen=True)
class Item:
    """An element of a collection or an argument, with comment lines written before it."""

    value: Node
    key: Node | str | None = None
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class Call:
    func: str
    items: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Dict:
    items: tuple[Item, ...] = ()


@dataclass(frozen=True)
class List:
    items: tuple[Item, ...] = ()


@dataclass(frozen=True)
class Tuple:
    items: tuple[Item, ...] = field(default=())


Node = Raw | Call | Dict | List | Tuple


def string(text: str) -> str:
    """``text`` as a Python string literal in the formatter's quotes: double ones, unless
    single ones need fewer escapes."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    out = []
    body = repr(text)[1:-1]
    i = 0
    while i < len(body):
        piece = body[i : i + 2] if body[i] == "\\" else body[i]
        i += len(piece)
        if piece in ("\\'", '\\"'):  # a quote repr escaped, escaped again below if it is ours
            piece = piece[1]
        out.append("\\" + piece if piece == quote else piece)
    return quote + "".join(out) + quote


def number(value: float, digits: int = 4) -> str:
    """``value`` with ``digits`` significant digits at most, as short as Python writes it and
    as ruff format writes an exponent (``1e16``, not ``1e+16``)."""
    if isinstance(value, bool):
        return repr(value)
    if not isinstance(value, int) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, int) or (value == int(value) and abs(value) < 1e15):
        return str(int(value))
    rounded = float(f"{value:.{digits}g}")
    if not math.isfinite(rounded):  # rounded up past the largest float
        rounded = value
    if rounded == int(rounded) and abs(rounded) < 1e15:
        return str(int(rounded))
    return repr(rounded).replace("e+", "e")


def call(func: str, *args: Node, **kwargs: Node | None) -> Call:
    items = [Item(a) for a in args]
    items += [Item(v, k) for k, v in kwargs.items() if v is not None]
    return Call(func, tuple(items))


def emit(node: Node, indent: int = 0, lead: int = 0, trail: int = 0) -> str:
    """``node``'s source at ``indent`` spaces, its first line after ``lead`` characters and its
    last followed by ``trail`` (a comma, a closing bracket): on one line when it fits."""
    flat = _flat(node)
    if flat is not None and (indent + lead + width(flat) + trail <= LINE or not _items(node)):
        return flat
    if isinstance(node, Raw):
        return node.text
    opener, closer = _brackets(node)
    inner = indent + 4
    lines = [opener]
    for item in node.items:
        for comment in item.comments:
            lines += [" " * inner + _comment(p) for p in wrap(one_line(comment), LINE - inner - 2)]
        prefix = _key(item, node)
        text = emit(item.value, inner, width(prefix), 1)
        lines.append(" " * inner + prefix + text + ",")
    lines.append(" " * indent + closer)
    return "\n".join(lines)


def width(text: str) -> int:
    """How many columns ``text`` takes as ruff format counts them (a wide character, CJK or
    an emoji, two; a combining mark none), to tell whether a line fits."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in text
    )


def _comment(text: str) -> str:
    return ("# " + text).rstrip() if text.strip() else "#"


def one_line(text: str) -> str:
    """A comment's text on one line whatever it holds: it may quote the input (a field's
    name, a path), and a line break in it would end the comment and make the rest code.
    Every comment written from the input goes through it (emit() does for an item's)."""
    return _UNSAFE.sub(lambda found: repr(found.group())[1:-1], text)


def _flat(node: Node) -> str | None:
    """One line, or None when it cannot be (a comment inside, a line break in a piece)."""
    if isinstance(node, Raw):
        return node.text if "\n" not in node.text else None
    if any(item.comments for item in node.items):
        return None
    parts = []
    for item in node.items:
        value = _flat(item.value)
        if value is None:
            return None
        parts.append(_key(item, node) + value)
    opener, closer = _brackets(node)
    if isinstance(node, Tuple) and len(parts) == 1:
        return f"({parts[0]},)"
    return opener + ", ".join(parts) + closer


def _items(node: Node) -> tuple[Item, ...]:
    return () if isinstance(node, Raw) else node.items


def _key(item: Item, node: Node) -> str:
    if item.key is None:
        return ""
    if isinstance(node, Call):
        return f"{item.key}="
    key = item.key if isinstance(item.key, str) else _flat(item.key) or ""
    return f"{key}: "


def _brackets(node: Call | Dict | List | Tuple) -> tuple[str, str]:
    if isinstance(node, Call):
        return node.func + "(", ")"
    if isinstance(node, Dict):
        return "{", "}"
    if isinstance(node, List):
        return "[", "]"
    return "(", ")"


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters (a longer word alone on its line)."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


def parsed(source: str) -> Node:
    """An expression's source (``gen.normal(50.1, 10.0, minimum=12.8)``) as nodes, so that
    it is split like any other when it does not fit its line."""
    return _node(ast.parse(source, mode="eval").body, source)


def _node(expr: ast.expr, source: str) -> Node:
    if isinstance(expr, ast.Call):
        func = ast.get_source_segment(source, expr.func) or ""
        args = [Item(_node(a, source)) for a in expr.args]
        args += [Item(_node(k.value, source), k.arg) for k in expr.keywords]
        return Call(func, tuple(args))
    if isinstance(expr, ast.Dict):
        return Dict(
            tuple(
                Item(_node(v, source), ast.get_source_segment(source, k) or "")
                for k, v in zip(expr.keys, expr.values, strict=True)
                if k is not None
            )
        )
    if isinstance(expr, ast.List | ast.Tuple):
        kind = List if isinstance(expr, ast.List) else Tuple
        return kind(tuple(Item(_node(e, source)) for e in expr.elts))
    return Raw(ast.get_source_segment(source, expr) or "")


def items(values: Sequence[Node]) -> tuple[Item, ...]:
    return tuple(Item(v) for v in values)
