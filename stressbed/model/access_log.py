"""Access logs: nginx and Apache ``combined`` and ``common``, or any nginx ``log_format``.

A format is an nginx ``log_format`` string; the named ones are::

    combined  $remote_addr $ident $remote_user [$time_local] "$request" $status $body_bytes_sent
              "$http_referer" "$http_user_agent"
    common    $remote_addr $ident $remote_user [$time_local] "$request" $status $body_bytes_sent

(nginx writes ``-`` where Apache's ``%l`` puts the ident: both read as either). A custom
format is compiled to one regular expression over bytes: each variable matches what nginx
writes for it (``$status`` three digits, ``$request_time`` seconds with milliseconds, ``-``
where nginx has no value), an unknown one a field up to the next literal. Read when present:
``$time_local``/``$time_iso8601``/``$msec``, ``$request`` (or ``$request_method`` with
``$request_uri``, or ``$uri`` and ``$args``), ``$status``, ``$request_time`` (else
``$upstream_response_time``, the sum of its upstreams), ``$request_length``,
``$body_bytes_sent`` (else ``$bytes_sent``), ``$remote_addr`` (the first address of
``$http_x_forwarded_for`` when logged), ``$request_body`` (JSON bodies) and ``$http_*`` headers
(never ``$http_authorization`` or ``$http_cookie``: they are matched, not read). Values are
unescaped as nginx escapes them (``\\xHH``; ``escape=json``'s ``\\"`` and ``\\uXXXX``).
"""

from __future__ import annotations

import calendar
import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from ..errors import ConfigError
from .files import Opened
from .hits import NEVER_READ, Hit, Tally

__all__ = ["FORMATS", "LogFormat", "compile_format", "read_access_log", "sniff"]

FORMATS = {
    # What stressbed's own replay nginx writes (stressbed model --check, the shipped example):
    # combined, then the request's time, its size and its body.
    "stressbed": '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_time $request_length "$request_body"',
    "combined": '$remote_addr $ident $remote_user [$time_local] "$request" $status '
    '$body_bytes_sent "$http_referer" "$http_user_agent"',
    "common": '$remote_addr $ident $remote_user [$time_local] "$request" $status $body_bytes_sent',
}

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_NUMBER_OR_DASH = rb"(?:\d+|-)"
_SECONDS_OR_DASH = rb"(?:\d+(?:\.\d+)?|-)"
#: The upstream variables: one value per upstream tried, ", " between them and " : " between
#: the groups of an internal redirect ("0.004, 0.002 : 0.001"), so spaces inside (and empty
#: with escape=json when no upstream was tried).
_UPSTREAMS = rb"(?:[^\s,]+(?:(?:, | : )[^\s,]+)*)?"
#: A list of addresses ("203.0.113.9, 10.0.0.1"), as a proxy chain writes it.
_ADDRESSES = rb"(?:[^\s,\"]+(?:, ?[^\s,\"]+)*)?"
#: What nginx writes for the variables read here (a field's own pattern; others are generic).
_PATTERNS: dict[str, bytes] = {
    "time_local": rb"\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}",
    "time_iso8601": rb"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",
    "msec": rb"\d+\.\d+",
    "status": rb"\d{3}",
    "body_bytes_sent": _NUMBER_OR_DASH,
    "bytes_sent": _NUMBER_OR_DASH,
    "request_length": _NUMBER_OR_DASH,
    "request_time": _SECONDS_OR_DASH,
    "request_method": rb"[A-Z]+|-",
}
#: Variables read into a record (any other is matched and dropped).
_READ = {
    *("time_local", "time_iso8601", "msec", "request", "request_method", "request_uri"),
    *("uri", "args", "query_string", "status", "request_time", "upstream_response_time"),
    *("request_length", "body_bytes_sent", "bytes_sent", "remote_addr", "request_body"),
}
#: An HTTP method: a token (RFC 9110), so never a line break or a quote.
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: An absolute-form request target's scheme and authority (``GET http://host/path``).
_ABSOLUTE = re.compile(r"https?://[^/?#]*", re.IGNORECASE)
_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_ESCAPE = re.compile(rb"\\x([0-9A-Fa-f]{2})|\\u([0-9A-Fa-f]{4})|\\([\"\\/bfnrt])")
_SIMPLE_ESCAPES = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f"}
_SIMPLE_ESCAPES |= {b"n": b"\n", b"r": b"\r", b"t": b"\t"}


class LogFormat:
    """A compiled format: its regular expression and the variables it captures."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.pattern, self.groups = compile_format(text)
        self.has_time = bool(self.groups & {"time_local", "time_iso8601", "msec"})
        #: The header variables captured, with the header each one is.
        self.headers = tuple(
            (name, name[5:].replace("_", "-"))
            for name in sorted(self.groups)
            if name.startswith("http_")
        )
        self.has_request = "request" in self.groups or bool(self.groups & {"request_uri", "uri"})


def compile_format(text: str) -> tuple[re.Pattern[bytes], set[str]]:
    """``text`` (an nginx log_format) as a regular expression over a line's bytes, and the
    variables it captures (a repeated variable is captured once)."""
    if not isinstance(text, str) or "$" not in text:
        raise ConfigError("--format", text, "combined, common, or an nginx log_format string")
    out = [b"^"]
    groups: set[str] = set()
    position = 0
    for found in _VARIABLE.finditer(text):
        literal = text[position : found.start()]
        out.append(re.escape(literal.encode()))
        # nginx's variable names are case-insensitive: $http_Authorization is the header too.
        name = (found.group(1) or found.group(2)).lower()
        before = literal[-1:] if literal else ""
        pattern = _PATTERNS.get(name) or _generic(name, before)
        readable = name in _READ or (
            name.startswith("http_") and name[5:].replace("_", "-") not in NEVER_READ
        )
        if readable and name not in groups:
            groups.add(name)
            out.append(b"(?P<" + name.encode() + b">" + pattern + b")")
        else:
            out.append(b"(?:" + pattern + b")")
        position = found.end()
    out.append(re.escape(text[position:].encode()))
    out.append(rb"\s*$")
    try:
        return re.compile(b"".join(out)), groups
    except re.error as exc:  # pragma: no cover - every piece above is escaped
        raise ConfigError("--format", text, f"a format nginx writes ({exc})") from None


def _generic(name: str, before: str) -> bytes:
    if before == '"':
        # The unrolled loop: a run of plain characters, then escapes each followed by one.
        return rb'[^"\\]*(?:\\.[^"\\]*)*'
    if before == "[":
        return rb"[^\]]*"
    if name.startswith("upstream_"):
        return _UPSTREAMS
    if name == "http_x_forwarded_for":
        return _ADDRESSES
    return rb"\S*"


def sniff(lines: list[bytes], given: str | None, source: str = "INPUT") -> LogFormat:
    """The format of ``lines`` (the first ones of the input ``source``): ``given`` when the user
    named one (a name or a log_format string), else the named format most of them parse as
    (the first of FORMATS on a tie: the one with more fields). ConfigError naming ``source``
    when none reads half."""
    if given is not None:
        return LogFormat(given, FORMATS[given]) if given in FORMATS else LogFormat("custom", given)
    candidates = [LogFormat(name, text) for name, text in FORMATS.items()]
    sample = [line for line in lines if line.strip()]
    scores = [sum(1 for line in sample if c.pattern.match(line)) for c in candidates]
    best = max(range(len(candidates)), key=lambda i: scores[i])
    if not sample or scores[best] * 2 < len(sample):
        found = f"{len(sample) - scores[best]} of its first {len(sample)} lines" if sample else ""
        raise ConfigError(
            source,
            f"{found} not nginx/Apache combined or common" if sample else "no lines",
            "an access log in combined or common format: pass --format with the log_format "
            "string of the server that wrote it (or har, otlp)",
        )
    return candidates[best]


def read_access_log(opened: Opened, fmt: LogFormat, tally: Tally) -> Iterator[Hit]:
    """Every line of ``opened`` that parses as ``fmt``, as a record; the others are counted
    (a line that parses without a request line, such as a TLS handshake sent to a plain port,
    is skipped, not bad)."""
    match = fmt.pattern.match
    when = _Clock()
    for line in opened.stream:
        found = match(line)
        if found is None:
            if line.strip():
                tally.failed(line.decode("utf-8", "replace"))
            continue
        fields = found.groupdict()
        hit = _hit(fields, when, fmt.headers)
        if hit is None:
            tally.skip("no request line")
            continue
        tally.read += 1
        yield hit


def _hit(
    fields: dict[str, Any], when: _Clock, header_names: tuple[tuple[str, str], ...]
) -> Hit | None:
    request = fields.get("request")
    if request is not None:
        parts = _text(request).split(" ")
        if len(parts) < 2:
            return None
        method, target = parts[0], parts[1]
    else:
        method = _text(fields.get("request_method") or b"GET")
        target = _text(fields.get("request_uri") or fields.get("uri") or b"")
        args = fields.get("args") or fields.get("query_string")
        if args and args != b"-" and "?" not in target:
            target += "?" + _text(args)
    if not _METHOD.fullmatch(method):
        return None  # bytes that are no request (a handshake, a scanner's junk)
    if not target.startswith("/"):
        found = _ABSOLUTE.match(target)
        if found is None:
            return None
        target = "/" + target[found.end() :].lstrip("/")
    path, _, query = target.partition("?")
    status = fields.get("status")
    headers = {}
    for key, header in header_names:
        value = fields[key]
        if value and value != b"-":
            headers[header] = _text(value)
    return Hit(
        time=when.read(fields),
        method=method,
        path=path,
        query=query,
        status=int(status) if status else None,
        duration_s=_seconds(fields.get("request_time"))
        if "request_time" in fields
        else _upstream(fields.get("upstream_response_time")),
        request_length=_count(fields.get("request_length")),
        response_bytes=_sent(fields.get("body_bytes_sent") or fields.get("bytes_sent")),
        client=_client(fields, headers),
        body=_body(fields.get("request_body")),
        headers=headers,
    )


class _Clock:
    """A line's time, parsed once a minute: log lines of one minute share their prefix."""

    def __init__(self) -> None:
        self._minute = b""
        self._base = 0.0

    def read(self, fields: dict[str, Any]) -> float:
        local = fields.get("time_local")
        if local is not None:
            # 10/Oct/2000:13:55:36 -0700
            if local[:17] != self._minute or local[20:] != self._zone:
                self._minute, self._zone = local[:17], local[20:]
                self._base = _minute_of(local)
            return self._base + int(local[18:20])
        iso = fields.get("time_iso8601")
        if iso is not None:
            return datetime.fromisoformat(iso.decode().replace("Z", "+00:00")).timestamp()
        msec = fields.get("msec")
        return float(msec) if msec is not None else 0.0

    _zone = b""


def _minute_of(local: bytes) -> float:
    day, month, year = int(local[0:2]), _MONTHS[local[3:6].decode()], int(local[7:11])
    hour, minute = int(local[12:14]), int(local[15:17])
    zone = local[21:26]
    offset = (int(zone[1:3]) * 60 + int(zone[3:5])) * 60 * (-1 if zone[:1] == b"-" else 1)
    return calendar.timegm((year, month, day, hour, minute, 0)) - offset


def _text(value: bytes) -> str:
    if b"\\" in value:
        value = _ESCAPE.sub(_unescape, value)
    return value.decode("utf-8", "replace")


def _unescape(found: re.Match[bytes]) -> bytes:
    if found.group(1):
        return bytes([int(found.group(1), 16)])
    if found.group(2):
        return chr(int(found.group(2), 16)).encode("utf-8", "replace")
    return _SIMPLE_ESCAPES.get(found.group(3), found.group(3))


def _seconds(value: bytes | None) -> float | None:
    if value is None or value == b"-":
        return None
    return float(value)


def _upstream(value: bytes | None) -> float | None:
    """``$upstream_response_time``: one time per upstream tried, ``, `` or `` : `` between."""
    if value is None:
        return None
    times = [float(t) for t in re.split(rb"[,:]\s*", value.strip()) if t and t != b"-"]
    return sum(times) if times else None


def _count(value: bytes | None) -> int | None:
    if value is None or value == b"-":
        return None
    return int(value)


def _sent(value: bytes | None) -> int | None:
    """The body's bytes: Apache's %b (common, combined) writes ``-`` for none sent."""
    return 0 if value == b"-" else _count(value)


def _client(fields: dict[str, Any], headers: dict[str, str]) -> str | None:
    forwarded = headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()
    address = fields.get("remote_addr")
    return address.decode() if address and address != b"-" else None


def _body(value: bytes | None) -> Any:
    if not value or value == b"-":
        return None
    text = _text(value)
    if text[:1] not in "{[":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
