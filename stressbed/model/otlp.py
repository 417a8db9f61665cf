"""OTLP JSON traces: the OpenTelemetry Collector's ``file`` exporter's output, one
``ExportTraceServiceRequest`` in the protobuf JSON mapping per line (plain or gzip; one such
request pretty-printed over the whole file is read too).

Each request's ``resourceSpans[].scopeSpans[].spans[]`` (``instrumentationLibrarySpans`` in
files of OTLP before 0.15) is read line by line, and of its spans only the SERVER spans are
kept: a request as the service received it. Client, internal, producer and consumer spans are
skipped by kind (a client span is a caller's view of a request some server span records too);
a server span with no HTTP attribute at all (a gRPC method, a queue) as ``"not http"``; one
with HTTP attributes but no method or no path is counted as bad. Lines of metrics or logs
(``resourceMetrics``, ``resourceLogs``: a file exporter shared by pipelines) are passed over.

Order: exporters send a span when it ends, in batches, from several processes, so a file is
not in the order spans started, and no bounded look-ahead puts a long span back in its place.
The reader keeps only the hits (a few hundred bytes each; a span's JSON is several times
that, and the Collector rotates its files at 100 MB by default), then sorts them all by start.

Both the stable HTTP semantic conventions and the older names are read (the first found of
each list below wins): method ``http.request.method`` (``_OTHER``: its
``http.request.method_original``) | ``http.method``; path and query ``url.path`` with
``url.query`` | ``http.target`` | ``url.full`` | ``http.url``; route ``http.route``, its
parameters written ``{name}`` (:func:`normalise_route`); status
``http.response.status_code`` | ``http.status_code``; sizes ``http.request.body.size`` |
``http.request_content_length`` and ``http.response.body.size`` |
``http.response_content_length``; headers the instrumentation captured
(``http.request.header.<name>``; Python's instrumentations write ``_`` for ``-``), never those
in :data:`~stressbed.model.hits.NEVER_READ`: an attribute of theirs is passed over by its key,
its value not even looked at.

The client is taken from the span's own attributes: an id the application set
(:data:`CLIENT_IDS`; it tells apart clients that share an address behind a NAT or a proxy),
else a captured client-id header, else an address (:data:`CLIENT_ADDRESSES`). Resource
attributes are not looked at: a server span's resource is the service that received the
request (its ``service.instance.id`` is the server, not the caller).
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from .files import Opened, open_input
from .har import CLIENT_HEADERS
from .hits import NEVER_READ, Hit, Tally

__all__ = ["CLIENT_ADDRESSES", "CLIENT_IDS", "normalise_route", "read_otlp"]

EXPECTED = "OTLP JSON traces (an ExportTraceServiceRequest with resourceSpans per line)"
#: Span attributes that name the client, in the order they are looked at; after the ids, the
#: headers of :data:`~stressbed.model.har.CLIENT_HEADERS` the instrumentation captured, then
#: :data:`CLIENT_ADDRESSES`.
CLIENT_IDS = ("enduser.id", "user.id", "client.id", "agent.id", "device.id")
CLIENT_ADDRESSES = ("client.address", "http.client_ip", "net.peer.ip", "net.sock.peer.addr")
#: SpanKind by its number and by its name in the protobuf JSON mapping.
_KIND_NAMES = ("unspecified", "internal", "server", "client", "producer", "consumer")
_KINDS: dict[int | str, str] = dict(enumerate(_KIND_NAMES))
_KINDS.update({f"SPAN_KIND_{name.upper()}": name for name in _KIND_NAMES})
_OTHER_SIGNALS = ("resourceMetrics", "resourceLogs", "resourceProfiles")
_HEADER = "http.request.header."
_HEADERS = (_HEADER, "http.response.header.")
_HTTP_KEYS = ("http.", "url.")

#: Route parameters as frameworks write them: ``<id>``, ``<int:id>`` (Flask, Django);
#: ``:id``, ``:id?``, ``:id(\\d+)`` (Express, Rails, Gin); ``{id:int}``, ``{id:[0-9]+}``
#: (ASP.NET, gorilla/mux).
_ANGLE = re.compile(r"<(?:[^<>:/]+:)?(\w+)>")
_COLON = re.compile(r"(?<![^/.-]):(\w+)(?:\([^)/]*\))?\??")
_BRACE = re.compile(r"\{(\w+)(?::[^{}/]*)?\}")


class _Unreadable(ValueError):
    """A span or line lacks what every one has, or holds it in the wrong type."""


class _Skipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def normalise_route(route: str) -> str:
    """``route`` with its parameters written ``{name}``, whatever the framework's style:
    ``/users/:id``, ``/users/<int:id>`` and ``/users/{id:int}`` are all ``/users/{id}``."""
    route = _ANGLE.sub(r"{\1}", route)
    route = _COLON.sub(r"{\1}", route)
    return _BRACE.sub(r"{\1}", route)


def read_otlp(path: Path, tally: Tally) -> Iterator[Hit]:
    """The server spans of the OTLP JSON file at ``path`` as hits, in the order they started
    (the file is read whole before the first; see the module's note on order)."""
    hits: list[Hit] = []
    with open_input(path) as opened:
        for number, line, export in _exports(opened, path, tally):
            try:
                spans = list(_spans(export))
            except _Unreadable as error:
                tally.failed(_line_excerpt(number, f"{error} malformed", line))
                continue
            for span in spans:
                try:
                    hits.append(_hit(span))
                except _Skipped as skipped:
                    tally.skip(skipped.reason)
                except _Unreadable:
                    tally.failed(_excerpt(span))
    hits.sort(key=lambda hit: hit.time)
    tally.read += len(hits)
    yield from hits


def _exports(opened: Opened, path: Path, tally: Tally) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, line, ExportTraceServiceRequest) of each line that holds one. A
    ConfigError when the first line is not OTLP JSON, or no line held traces."""
    traces = seen = False
    try:
        for number, raw in enumerate(opened.stream, 1):
            line = raw.decode("utf-8", errors="replace")
            if not line.strip():
                continue
            try:
                export = json.loads(line)
            except ValueError:
                if seen:
                    tally.failed(_line_excerpt(number, "not JSON", line))
                    continue
                # Not one object per line: the file may be one pretty-printed request.
                line = line + opened.stream.read().decode("utf-8", errors="replace")
                try:
                    export = json.loads(line)
                except ValueError:
                    raise ConfigError("INPUT", str(path), EXPECTED) from None
            if isinstance(export, dict) and "resourceSpans" in export:
                traces = seen = True
                yield number, line, export
            elif isinstance(export, dict) and any(k in export for k in _OTHER_SIGNALS):
                seen = True
            elif seen:
                tally.failed(_line_excerpt(number, "no resourceSpans", line))
            else:
                raise ConfigError("INPUT", str(path), EXPECTED)
    except (OSError, EOFError, zlib.error):
        raise ConfigError("INPUT", str(path), EXPECTED) from None
    if not traces:
        raise ConfigError("INPUT", str(path), EXPECTED)


def _spans(export: dict[str, Any]) -> Iterator[object]:
    for resource in _list(export, "resourceSpans"):
        scopes = _list(resource, "scopeSpans") or _list(resource, "instrumentationLibrarySpans")
        for scope in scopes:
            yield from _list(scope, "spans")


def _list(value: object, key: str) -> list[Any]:
    if not isinstance(value, dict):
        raise _Unreadable(key)
    found = value.get(key, [])
    if not isinstance(found, list):
        raise _Unreadable(key)
    return found


def _hit(span: object) -> Hit:
    if not isinstance(span, dict):
        raise _Unreadable("span")
    kind = span.get("kind", 0)  # 0, the default, is left out of the JSON mapping
    kind = _KINDS.get(kind) if isinstance(kind, int | str) else None
    if kind is None:
        raise _Unreadable("kind")
    if kind != "server":
        raise _Skipped(f"{kind} span")
    attributes = _attributes(span.get("attributes"))
    if not any(key.startswith(_HTTP_KEYS) for key in attributes):
        raise _Skipped("not http")
    method = _first(attributes, "http.request.method", "http.method")
    if method == "_OTHER":
        method = _first(attributes, "http.request.method_original") or method
    target = _target(attributes)
    start = _nanos(span.get("startTimeUnixNano"))
    if not isinstance(method, str) or not method or target is None or not start:
        raise _Unreadable("span")
    end = _nanos(span.get("endTimeUnixNano"))
    route = _first(attributes, "http.route")
    headers = _headers(attributes)
    client = _first(attributes, *CLIENT_IDS)
    if client is None:
        client = next((headers[h] for h in CLIENT_HEADERS if headers.get(h)), None)
    if client is None:
        client = _first(attributes, *CLIENT_ADDRESSES)
    return Hit(
        time=start / 1e9,
        method=sys.intern(method.upper()),
        path=target[0],
        query=target[1],
        status=_count(_first(attributes, "http.response.status_code", "http.status_code")),
        duration_s=(end - start) / 1e9 if end and end >= start else None,
        request_bytes=_count(
            _first(attributes, "http.request.body.size", "http.request_content_length")
        ),
        response_bytes=_count(
            _first(attributes, "http.response.body.size", "http.response_content_length")
        ),
        client=None if client is None else str(client),
        route=sys.intern(normalise_route(route)) if isinstance(route, str) and route else None,
        headers=headers,
    )


def _attributes(value: object) -> dict[str, Any]:
    """A span's attributes by key (a malformed one is passed over: the span is still a span),
    but for the captured headers that are never read. A list value (an array attribute, a
    captured header) is kept as a list."""
    attributes: dict[str, Any] = {}
    for item in value if isinstance(value, list) else []:
        key = item.get("key") if isinstance(item, dict) else None
        if isinstance(key, str) and not _never_read(key):
            found = _value(item.get("value"))
            if found is not None:
                attributes[key] = found
    return attributes


def _never_read(key: str) -> bool:
    """Whether ``key`` is a captured header of NEVER_READ (request or response)."""
    for prefix in _HEADERS:
        if key.startswith(prefix):
            return _header_name(key[len(prefix) :]) in NEVER_READ
    return False


def _header_name(name: str) -> str:
    return name.lower().replace("_", "-")


def _value(value: object) -> Any:
    """An AnyValue in the JSON mapping (64-bit integers as strings or numbers)."""
    if not isinstance(value, dict):
        return None
    try:
        if "stringValue" in value:
            return str(value["stringValue"])
        if "intValue" in value:
            return int(value["intValue"])
        if "doubleValue" in value:
            return float(value["doubleValue"])
        if "boolValue" in value:
            return bool(value["boolValue"])
        if "arrayValue" in value:
            return [_value(v) for v in value["arrayValue"].get("values", [])]
        if "kvlistValue" in value:
            return {kv["key"]: _value(kv.get("value")) for kv in value["kvlistValue"]["values"]}
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    return None


def _first(attributes: dict[str, Any], *keys: str) -> Any:
    """The first of ``keys`` the span has (a list's first item: a captured header's value)."""
    for key in keys:
        found = attributes.get(key)
        if isinstance(found, list):
            found = found[0] if found else None
        if found is not None and found != "":
            return found
    return None


def _target(attributes: dict[str, Any]) -> tuple[str, str] | None:
    """(path, raw query) of the request, None when the span has neither."""
    path = attributes.get("url.path")
    if isinstance(path, str) and path:
        query = attributes.get("url.query")
        return path, query if isinstance(query, str) else ""
    target = attributes.get("http.target")
    if isinstance(target, str) and target:
        path, _, query = target.partition("?")
        return path or "/", query
    full = _first(attributes, "url.full", "http.url")
    if isinstance(full, str) and full:
        parts = urlsplit(full)
        return parts.path or "/", parts.query
    return None


def _nanos(value: object) -> int | None:
    """A ``fixed64`` time in unix nanoseconds (a string in the JSON mapping, or a number)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _count(value: object) -> int | None:
    """A status or a size the span gives; None for one it lacks or that makes no sense."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _headers(attributes: dict[str, Any]) -> dict[str, str]:
    """Request headers the instrumentation captured, by lower-case name (NEVER_READ's were
    passed over as the attributes were read), without pseudo-headers."""
    headers: dict[str, str] = {}
    for key, value in attributes.items():
        if not key.startswith(_HEADER):
            continue
        name = _header_name(key[len(_HEADER) :])
        if name.startswith(":"):
            continue
        values = value if isinstance(value, list) else [value]
        headers[name] = ", ".join(str(v) for v in values if v is not None)
    return headers


def _line_excerpt(number: int, what: str, line: str) -> str:
    """A bad line for a person to find: its number, what is wrong, how it starts (a line
    starts with its resource, not with a span's attributes)."""
    return f"line {number}: {what}: {line.strip()[:60]}"


def _excerpt(span: object) -> str:
    """What a bad span is, for a person to find it: its name, kind, start and the keys of its
    attributes, never their values."""
    if not isinstance(span, dict):
        return json.dumps(span) if not isinstance(span, list | dict) else "[...]"
    shown = {k: span[k] for k in ("name", "kind", "startTimeUnixNano") if k in span}
    attributes = span.get("attributes")
    if isinstance(attributes, list):
        shown["attributes"] = [a.get("key") for a in attributes if isinstance(a, dict)]
    return json.dumps(shown)
