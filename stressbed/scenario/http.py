"""Requests: what one step of a flow sends and what it checks and extracts.

Build them with :func:`get`, :func:`post` and friends::

    post("/v1/report", name="report", json={"agent_id": "{{agent}}", "points": [...]},
         expect=202, checks=[check.status(202)], extract={"accepted": extract.json("accepted")})

Paths are written unencoded, relative to the target URL (``TARGET_URL`` at run time); stressbed
percent-encodes them, and the values substituted into them, so every string arrives as written.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigError
from .check import Check
from .extract import Extractor
from .templates import IDENTIFIER, Ref, Template
from .templates import Literal as LiteralText
from .units import parse_duration_ms
from .values import Const, Node, as_string_node, as_value_node

__all__ = ["METHODS", "Body", "Request", "delete", "get", "head", "patch", "post", "put", "request"]

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FORBIDDEN_IN_HEADER = ("\r", "\n", "\x00")
# RFC 3986 pchar without "%": everything else in a literal path is percent-encoded.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = "-._~"

_Unset: Any = object()


@dataclass(frozen=True)
class Body:
    """A request body: "json" (a value tree), "form" (fields), "text" or "bytes" (base64)."""

    kind: Literal["json", "form", "text", "bytes"]
    node: Node | None = None
    fields: tuple[tuple[str, Node], ...] = ()
    data: str = ""

    def nodes(self) -> Iterator[Node]:
        if self.node is not None:
            yield self.node
        for _, node in self.fields:
            yield node

    def to_config(self) -> dict[str, object]:
        if self.kind == "form":
            return {"kind": "form", "fields": [[k, n.to_config()] for k, n in self.fields]}
        if self.kind == "bytes":
            return {"kind": "bytes", "base64": self.data}
        assert self.node is not None
        return {"kind": self.kind, "value": self.node.to_config()}


@dataclass(frozen=True)
class Request:
    """One HTTP request. Immutable; build it with :func:`request` or a method helper."""

    method: str
    path: Node
    name: str
    query: tuple[tuple[str, Node], ...] = ()
    headers: tuple[tuple[str, Node], ...] = ()
    body: Body | None = None
    expect: tuple[int | range, ...] = ()
    timeout_ms: float | None = None
    checks: tuple[Check, ...] = ()
    extract: tuple[tuple[str, Extractor], ...] = ()

    def nodes(self) -> Iterator[Node]:
        """Every value node the request is built from: path, query, headers, body."""
        yield from self.url_nodes()
        for _, node in self.headers:
            yield node
        if self.body is not None:
            yield from self.body.nodes()

    def refs(self) -> Iterator[Ref]:
        """Every variable this request reads (extractions excluded: those it defines)."""
        for node in self.nodes():
            yield from node.refs()

    def url_nodes(self) -> Iterator[Node]:
        """The nodes that end up in the URL, which k6 records in its metric tags."""
        yield self.path
        for _, node in self.query:
            yield node

    @property
    def needs_body(self) -> bool:
        return any(c.needs_body for c in self.checks) or any(e.needs_body for _, e in self.extract)

    def to_config(self) -> dict[str, object]:
        return {
            "type": "request",
            "method": self.method,
            "name": self.name,
            "path": _encoded(self.path, _PATH_SAFE),
            "query": [
                [urllib.parse.quote(k, safe=_QUERY_SAFE), _encoded(n, _QUERY_SAFE)]
                for k, n in self.query
            ],
            "headers": [[k, n.to_config()] for k, n in self.headers],
            "body": self.body.to_config() if self.body is not None else None,
            "expect": [_expect_config(e) for e in self.expect] or None,
            "timeout_ms": self.timeout_ms,
            "checks": [c.to_config() for c in self.checks],
            "extract": [[name, e.to_config()] for name, e in self.extract],
            "response": "text" if self.needs_body else "none",
        }


def request(
    method: str,
    path: str | LiteralText,
    *,
    name: str | None = None,
    query: Mapping[str, object] | None = None,
    headers: Mapping[str, object] | None = None,
    json: object = _Unset,
    form: Mapping[str, object] | None = None,
    body: str | bytes | LiteralText | None = None,
    expect: int | range | Sequence[int | range] | None = None,
    timeout: str | None = None,
    checks: Sequence[Check] = (),
    extract: Mapping[str, Extractor] | None = None,
) -> Request:
    """A request to ``path`` (relative to the target URL), validated now.

    ``json``, ``form`` and ``body`` are exclusive. ``expect`` lists the statuses that count as
    success for ``http_req_failed`` (k6's default is 200-399). ``name`` tags the request's
    metrics and is what per-request thresholds select; it defaults to the path template.
    """
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError("method", method, "one of " + ", ".join(METHODS))
    method = method.upper()
    text = path.text if isinstance(path, LiteralText) else path
    if not isinstance(text, str) or not text.startswith("/"):
        raise ConfigError(
            "path", path, "a path starting with '/' (the base URL comes from TARGET_URL)"
        )
    path_node = as_string_node(path, "path")
    if name is None:
        name = text
    elif not isinstance(name, str) or not name:
        raise ConfigError("name", name, "a non-empty string")
    return Request(
        method=method,
        path=path_node,
        name=name,
        query=_string_items(query, "query"),
        headers=_headers(headers),
        body=_body(json, form, body),
        expect=_expect(expect),
        timeout_ms=parse_duration_ms(timeout, "timeout") if timeout is not None else None,
        checks=_checks(checks),
        extract=_extractors(extract),
    )


def get(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("GET", path, **kwargs)


def post(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("POST", path, **kwargs)


def put(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("PUT", path, **kwargs)


def patch(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("PATCH", path, **kwargs)


def delete(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("DELETE", path, **kwargs)


def head(path: str | LiteralText, **kwargs: Any) -> Request:
    return request("HEAD", path, **kwargs)


def _string_items(items: Mapping[str, object] | None, field: str) -> tuple[tuple[str, Node], ...]:
    if items is None:
        return ()
    if not isinstance(items, Mapping):
        raise ConfigError(field, items, "a mapping of names to values")
    out = []
    for key, value in items.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(field, key, "non-empty string names")
        out.append((key, as_string_node(value, f"{field}.{key}")))
    return tuple(out)


def _headers(headers: Mapping[str, object] | None) -> tuple[tuple[str, Node], ...]:
    items = _string_items(headers, "headers")
    for key, node in items:
        if not _HEADER_NAME.fullmatch(key):
            raise ConfigError("headers", key, "an HTTP header name (letters, digits, -, ...)")
        for i, text in enumerate(_literal_texts(node)):
            if any(c in text for c in _FORBIDDEN_IN_HEADER):
                raise ConfigError(
                    f"headers.{key}",
                    text,
                    "a header value without CR, LF or NUL (HTTP forbids them)",
                )
            if isinstance(node, Const) and i == 0 and text != text.strip(" \t"):
                raise ConfigError(
                    f"headers.{key}",
                    text,
                    "a header value without leading or trailing whitespace (HTTP drops it)",
                )
    return items


def _body(
    json: object, form: Mapping[str, object] | None, body: str | bytes | LiteralText | None
) -> Body | None:
    given = [
        k
        for k, v in (
            ("json", json is not _Unset),
            ("form", form is not None),
            ("body", body is not None),
        )
        if v
    ]
    if len(given) > 1:
        raise ConfigError("body", given, "at most one of json=, form=, body=")
    if json is not _Unset:
        return Body("json", node=as_value_node(json, "json"))
    if form is not None:
        return Body("form", fields=_string_items(form, "form"))
    if isinstance(body, bytes | bytearray):
        return Body("bytes", data=base64.b64encode(bytes(body)).decode("ascii"))
    if isinstance(body, str | LiteralText):
        return Body("text", node=as_string_node(body, "body"))
    if body is not None:
        raise ConfigError("body", body, "a str, bytes or literal() (use json= for JSON values)")
    return None


def _expect(expect: int | range | Sequence[int | range] | None) -> tuple[int | range, ...]:
    if expect is None:
        return ()
    items = list(expect) if isinstance(expect, list | tuple) else [expect]
    if not items:
        raise ConfigError("expect", expect, "at least one status code or range")
    checked: list[int | range] = []
    for item in items:
        if isinstance(item, range):
            ok = item.step == 1 and len(item) > 0 and item.start >= 100 and item.stop - 1 <= 599
        else:
            ok = isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599
        if not ok:
            raise ConfigError("expect", item, "status codes 100..599 or range(200, 300)")
        checked.append(item)  # type: ignore[arg-type]  # narrowed by `ok`
    return tuple(checked)


def _expect_config(item: int | range) -> object:
    if isinstance(item, range):
        return {"min": item.start, "max": item.stop - 1}
    return item


def _checks(checks: Sequence[Check]) -> tuple[Check, ...]:
    if isinstance(checks, Check):
        checks = [checks]
    out = tuple(checks)
    for i, item in enumerate(out):
        if not isinstance(item, Check):
            raise ConfigError(f"checks[{i}]", item, "a check from stressbed.check")
    return out


def _extractors(extract: Mapping[str, Extractor] | None) -> tuple[tuple[str, Extractor], ...]:
    if extract is None:
        return ()
    if not isinstance(extract, Mapping):
        raise ConfigError("extract", extract, "a mapping of variable names to extractors")
    for name, item in extract.items():
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            raise ConfigError("extract", name, "variable names (letters, digits, _)")
        if not isinstance(item, Extractor):
            raise ConfigError(f"extract.{name}", item, "an extractor from stressbed.extract")
    return tuple(extract.items())


def _literal_texts(node: Node) -> Iterator[str]:
    if isinstance(node, Const):
        yield str(node.value)
    elif isinstance(node, Template):
        yield from (p for p in node.parts if isinstance(p, str))


def _encoded(node: Node, safe: str) -> list[object]:
    """The node's config with its literal text percent-encoded; the runtime encodes the
    substituted values the same way, so nothing in a variable can change the URL's shape."""
    if isinstance(node, Const):
        return ["lit", urllib.parse.quote(str(node.value), safe=safe)]
    if isinstance(node, Template):
        parts: list[object] = [
            urllib.parse.quote(p, safe=safe) if isinstance(p, str) else p.to_config()
            for p in node.parts
        ]
        return ["tpl", parts]
    return ["tpl", [node.to_config()]]
