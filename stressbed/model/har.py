"""HAR 1.2 files: what a browser's developer tools save of a session, one entry per request.

A HAR holds one browser session, so it is small enough to read whole: its entries are read,
then sorted by the time each request started (``startedDateTime``; one without an offset is
taken as UTC).

One target: a page talks to several origins (its API, a CDN, an analytics host), a load test
to one. When entries of more than one origin (scheme, host, port) occur, only the origin with
the most entries is kept (on a tie, the one whose entry came first in the file) and the others
are skipped as ``"other origin"``. Skipped too, as not the application's traffic: requests a
browser answered from its own cache (Chromium's ``_fromCache``: the server never saw them),
CORS preflights (``OPTIONS`` with ``Access-Control-Request-Method``: the browser's, not the
page's) and URLs that are not HTTP (``data:``, ``blob:``, ``ws:``).

Credentials are never read: request headers named in :data:`~stressbed.model.hits.NEVER_READ`
(``Authorization``, ``Cookie``...) are passed over by name, and so are HTTP/2 pseudo-headers
(``:authority``); the entries' ``cookies`` lists are never looked at. A HAR is one browser, so
a hit has a client only when a header names one (:data:`CLIENT_HEADERS`).

An entry without a start time, a method or a URL is counted as bad; a figure an entry lacks or
gives as -1 (a size, a duration, status 0 for no response) is None.
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlsplit

from ..errors import ConfigError
from .files import open_input
from .hits import NEVER_READ, Hit, Tally

__all__ = ["CLIENT_HEADERS", "read_har"]

EXPECTED = "a HAR 1.2 file (JSON with log.entries)"
#: Request headers that name the client that sent a request, in the order they are looked at.
CLIENT_HEADERS = ("x-client-id", "x-agent-id", "x-device-id")
_FORM = "application/x-www-form-urlencoded"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _Unreadable(ValueError):
    """An entry lacks a field every request has, or holds one of the wrong type."""


class _Skipped(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_har(path: Path, tally: Tally) -> Iterator[Hit]:
    """The requests of the HAR file at ``path`` (plain or gzip), in the order they started."""
    kept: list[tuple[str, Hit]] = []
    for entry in _entries(path):
        try:
            kept.append(_read(entry))
        except _Skipped as skipped:
            tally.skip(skipped.reason)
        except _Unreadable:
            tally.failed(_excerpt(entry))
    target = _target(origin for origin, _ in kept)
    hits = []
    for origin, hit in kept:
        if origin == target:
            hits.append(hit)
        else:
            tally.skip("other origin")
    hits.sort(key=lambda hit: hit.time)
    tally.read += len(hits)
    yield from hits


def _entries(path: Path) -> list[Any]:
    """``log.entries`` of the file, or a ConfigError when it is no HAR."""
    with open_input(path) as opened:
        try:
            document = json.loads(opened.stream.read())
        except (ValueError, OSError, EOFError, zlib.error):
            raise ConfigError("INPUT", str(path), EXPECTED) from None
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise ConfigError("INPUT", str(path), EXPECTED)
    return entries


def _target(origins: Iterator[str]) -> str | None:
    """The origin with the most entries; the first seen of those tied."""
    counts = Counter(origins)  # insertion-ordered: most_common keeps the first of a tie first
    return counts.most_common(1)[0][0] if counts else None


def _read(entry: object) -> tuple[str, Hit]:
    """(origin, hit) of one entry."""
    if not isinstance(entry, dict):
        raise _Unreadable("entry")
    request = _object(entry, "request")
    url = _text(request, "url")
    parts = urlsplit(url)
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise _Skipped("not http")
    method = _text(request, "method").upper()
    headers = _headers(request.get("headers"))
    if method == "OPTIONS" and "access-control-request-method" in headers:
        raise _Skipped("cors preflight")
    if entry.get("_fromCache"):
        raise _Skipped("browser cache")
    response = _mapping(entry.get("response"))
    post = _mapping(request.get("postData"))
    text = post.get("text") if isinstance(post.get("text"), str) else None
    status = _count(response.get("status"))
    duration_ms = _number(entry.get("time"))
    request_bytes = _count(request.get("bodySize"))
    if request_bytes is None and text is not None:
        request_bytes = len(text.encode())
    response_bytes = _count(_mapping(response.get("content")).get("size"))
    if response_bytes is None:
        response_bytes = _count(response.get("bodySize"))
    hit = Hit(
        time=_started(_text(entry, "startedDateTime")),
        method=method,
        path=parts.path or "/",
        query=parts.query,
        status=status or None,
        duration_s=None if duration_ms is None else duration_ms / 1000,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        client=next((headers[h] for h in CLIENT_HEADERS if headers.get(h)), None),
        body=_body(post, text),
        headers=headers,
    )
    return _origin(parts), hit


def _origin(parts: SplitResult) -> str:
    """scheme://host[:port], the port only when it is not the scheme's own."""
    try:
        port = parts.port
    except ValueError:
        raise _Unreadable("request.url") from None
    scheme = parts.scheme.lower()
    shown = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{parts.hostname or ''}{shown}"


def _mapping(value: object) -> dict[str, Any]:
    """An optional object of the entry's: {} when absent or of another type."""
    return value if isinstance(value, dict) else {}


def _object(value: dict[str, Any], key: str) -> dict[str, Any]:
    found = value.get(key)
    if not isinstance(found, dict):
        raise _Unreadable(key)
    return found


def _text(value: dict[str, Any], key: str) -> str:
    found = value.get(key)
    if not isinstance(found, str) or not found:
        raise _Unreadable(key)
    return found


def _number(value: object) -> float | None:
    """A figure the entry gives, or None for one it lacks (absent, -1, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _count(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _started(value: str) -> float:
    try:
        started = datetime.fromisoformat(value)
    except ValueError:
        raise _Unreadable("startedDateTime") from None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started.timestamp()


def _headers(value: object) -> dict[str, str]:
    """The request headers by lower-case name (repeated ones joined by ", "), without those
    never read and without pseudo-headers. A malformed header is passed over: the request is
    still the request."""
    headers: dict[str, str] = {}
    for header in value if isinstance(value, list) else []:
        name = header.get("name") if isinstance(header, dict) else None
        if not isinstance(name, str):
            continue
        name = name.lower()
        if name in NEVER_READ or name.startswith(":"):
            continue  # by name only: the value of a credential is not even looked at
        text = header.get("value")
        if isinstance(text, str):
            headers[name] = f"{headers[name]}, {text}" if name in headers else text
    return headers


def _body(post: dict[str, Any], text: str | None) -> Any:
    """The request body, parsed: JSON when it says so or looks so, a form's fields (the first
    value of each) when it is a form; None for anything else."""
    mime = post.get("mimeType")
    mime = mime.lower() if isinstance(mime, str) else ""
    if text is not None and ("json" in mime or text.lstrip()[:1] in ("{", "[")):
        try:
            parsed = json.loads(text)
        except ValueError:
            return None  # cut short by the exporter, or not JSON after all
        return parsed if "json" in mime or isinstance(parsed, dict | list) else None
    if not mime.startswith(_FORM):
        return None
    if text is not None:
        fields: dict[str, str] = {}
        for name, field in parse_qsl(text, keep_blank_values=True):
            fields.setdefault(name, field)
        return fields
    params = post.get("params")  # HAR's parsed form, for an exporter that left out the text
    fields = {}
    for param in params if isinstance(params, list) else []:
        if isinstance(param, dict) and isinstance(param.get("name"), str):
            value = param.get("value")
            fields.setdefault(param["name"], value if isinstance(value, str) else "")
    return fields


def _excerpt(entry: object) -> str:
    """What a bad entry is, for a person to find it: its time, method and URL, never its
    headers or body."""
    if not isinstance(entry, dict):
        return json.dumps(entry) if not isinstance(entry, list) else "[...]"
    shown: dict[str, Any] = {k: entry[k] for k in ("startedDateTime", "time") if k in entry}
    request = entry.get("request")
    if isinstance(request, dict):
        shown["request"] = {k: request[k] for k in ("method", "url") if k in request}
    elif "request" in entry:
        shown["request"] = f"<{type(request).__name__}>"
    return json.dumps(shown)
