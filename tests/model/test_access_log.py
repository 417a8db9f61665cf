"""The access log reader: on logs a real nginx wrote (its own escaping, its time zones, a
request retried on a second upstream, a TLS handshake sent to its plain port, credentials in
its columns), then line by line on the formats nginx and Apache write."""

from __future__ import annotations

import calendar
import json
import re
import urllib.request
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from stressbed.app.replay import LOG_FORMAT, replay_target
from stressbed.errors import ConfigError
from stressbed.model.access_log import FORMATS, compile_format, sniff
from stressbed.model.hits import Hit, Tally
from stressbed.model.read import read_inputs

from .nginx_logs import ANSWER, NGINX, http_request, nginx_logging

needs_nginx = pytest.mark.skipif(NGINX is None, reason="no nginx (apt-get install nginx-light)")

#: Every variable read, and the credentials' columns (never read), as a production log has them.
NGINX_FORMAT = (
    '$remote_addr [$time_local] $time_iso8601 $msec "$request" $status $body_bytes_sent '
    "$request_length $request_time urt=$upstream_response_time ua=$upstream_addr "
    '"$http_x_forwarded_for" "$http_Authorization" "$http_cookie" "$http_user_agent" '
    '"$request_body"'
)
BEARER = "Bearer s3cr3t-Tok3n-that-must-not-be-read"
COOKIE = "session=c00kie-that-must-not-be-read"
GET = http_request(
    "GET",
    "/v1/items?page=2&sort=name",
    {
        "Authorization": BEARER,
        "Cookie": COOKIE,
        "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
        "User-Agent": "probe/1",
    },
)
BODY = {"note": 'say "hi" \\ back', "city": "Zürich", "lines": "a\nb\tc", "n": 3}
POST = http_request(
    "POST",
    "/v1/orders",
    {"Content-Type": "application/json"},
    json.dumps(BODY, ensure_ascii=False).encode(),
)
#: The start of a TLS ClientHello, as a client sends it to a plain HTTP port by mistake.
TLS = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32))


def read(path: Path, fmt: str | None) -> tuple[list[Hit], Tally]:
    with ExitStack() as stack:
        reading = read_inputs([path], fmt, stack)
        hits = list(reading.hits)
    return hits, reading.tallies[0]


def read_lines(
    tmp_path: Path, lines: list[bytes], fmt: str | None = None
) -> tuple[list[Hit], Tally]:
    path = tmp_path / "access.log"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return read(path, fmt)


def renamed(fmt: str, *names: str) -> str:
    """``fmt`` with the variables ``names`` renamed to ones the reader does not know (matched,
    not read), to read the same lines another way."""
    for name in names:
        fmt = fmt.replace(f"${name}", f"$x_{name}")
    return fmt


@pytest.fixture(scope="module", params=["default", "json"])
def nginx_log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The log of a real nginx (escape=default or escape=json, in UTC+01:30) after a GET with
    credentials and a proxy chain, a POST with a JSON body, and a TLS handshake."""
    if NGINX is None:
        pytest.skip("no nginx (apt-get install nginx-light)")
    workdir = tmp_path_factory.mktemp(f"nginx-{request.param}")
    with nginx_logging(workdir, NGINX_FORMAT, escape=request.param, tz="ABC-1:30") as nginx:
        for raw in (GET, POST, TLS):
            nginx.send(raw)
    return nginx.log


@needs_nginx
def test_nginx_s_lines_are_read_as_it_wrote_them(nginx_log):
    hits, tally = read(nginx_log, NGINX_FORMAT)
    assert (tally.read, tally.bad, tally.skipped) == (2, 0, 1), tally.examples
    assert tally.skipped_by == {"no request line": 1}  # the TLS handshake: skipped, not bad
    get, post = hits
    assert (get.method, get.path, get.query, get.status) == (
        "GET",
        "/v1/items",
        "page=2&sort=name",
        200,
    )
    assert get.request_length == len(GET)  # the whole request: line, headers, body
    assert get.response_bytes == len(ANSWER)
    assert get.client == "203.0.113.9"  # the first address of X-Forwarded-For
    assert get.headers == {"x-forwarded-for": "203.0.113.9, 10.0.0.1", "user-agent": "probe/1"}
    assert get.duration_s is not None
    assert (post.method, post.path, post.query) == ("POST", "/v1/orders", "")
    assert post.body == BODY  # quotes, a backslash, UTF-8 and control characters unescaped
    assert post.request_length == len(POST)
    assert post.request_bytes is None  # the body alone: an access log does not say
    assert post.client == "127.0.0.1"
    assert post.headers == {}


@needs_nginx
def test_nginx_s_credential_columns_are_never_read(nginx_log):
    text = nginx_log.read_text(errors="replace")
    assert BEARER in text  # nginx logged them (its variable names are case-insensitive) ...
    assert COOKIE in text
    hits, _ = read(nginx_log, NGINX_FORMAT)
    for hit in hits:  # ... the reader did not keep them anywhere
        assert "s3cr3t" not in repr(hit)
        assert "c00kie" not in repr(hit)
        assert not set(hit.headers) & {"authorization", "cookie", "Authorization"}


@needs_nginx
def test_nginx_s_three_clocks_read_as_the_same_second(nginx_log):
    text = nginx_log.read_text(errors="replace")
    assert "+0130]" in text  # the local time is not UTC: the zone is really read
    assert "+01:30 " in text
    by_local = read(nginx_log, renamed(NGINX_FORMAT, "time_iso8601", "msec"))[0]
    by_iso = read(nginx_log, renamed(NGINX_FORMAT, "time_local", "msec"))[0]
    by_msec = read(nginx_log, renamed(NGINX_FORMAT, "time_local", "time_iso8601"))[0]
    for local, iso, msec in zip(by_local, by_iso, by_msec, strict=True):
        assert local.time == iso.time == int(msec.time)


@needs_nginx
def test_nginx_s_two_upstreams_times_are_summed(nginx_log):
    lines = nginx_log.read_text(errors="replace").splitlines()
    hits, tally = read(nginx_log, renamed(NGINX_FORMAT, "request_time"))
    assert tally.bad == 0
    for line, hit in zip(lines, hits, strict=False):
        tried = re.search(r" urt=(.*) ua=", line)
        assert tried is not None
        assert ", " in tried.group(1)  # a refused upstream, then the backup
        assert hit.duration_s == pytest.approx(sum(float(t) for t in tried.group(1).split(", ")))


@needs_nginx
def test_the_replay_target_s_log_is_read_without_credentials(tmp_path):
    with replay_target(tmp_path / "nginx") as target:
        for method, path, body in (
            ("GET", "/v1/agents/7/config?limit=10", None),
            ("POST", "/v1/login", json.dumps({"user": "ada"}).encode()),
        ):
            sent = urllib.request.Request(
                target.url + path,
                data=body,
                method=method,
                headers={"Authorization": BEARER, "Cookie": COOKIE, "User-Agent": "probe/2"},
            )
            with urllib.request.urlopen(sent, timeout=30) as response:
                assert response.status == 200
    hits, tally = read(target.log, LOG_FORMAT)
    assert (tally.read, tally.bad) == (2, 0)
    assert [(h.method, h.path, h.query, h.status) for h in hits] == [
        ("GET", "/v1/agents/7/config", "limit=10", 200),
        ("POST", "/v1/login", "", 200),
    ]
    assert hits[1].body == {"user": "ada"}
    assert all(h.headers == {"user-agent": "probe/2"} for h in hits)
    assert all("s3cr3t" not in repr(h) and "c00kie" not in repr(h) for h in hits)


# Line by line: the named formats.

NGINX_COMBINED = (
    b'203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?x=1 HTTP/1.1" 200 2326 '
    b'"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)
APACHE_COMBINED = (
    b'127.0.0.1 ident frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 - '
    b'"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)
APACHE_COMMON = b'127.0.0.1 ident frank [10/Oct/2000:13:55:36 -0700] "POST /a/b HTTP/1.0" 201 512'
WHEN = datetime(2000, 10, 10, 13, 55, 36, tzinfo=timezone(timedelta(hours=-7))).timestamp()


@pytest.mark.parametrize(
    ("line", "fmt", "expected"),
    [
        (NGINX_COMBINED, "combined", ("GET", "/apache_pb.gif", "x=1", 200, 2326, "203.0.113.9")),
        (APACHE_COMBINED, "combined", ("GET", "/apache_pb.gif", "", 200, 0, "127.0.0.1")),
        (APACHE_COMMON, "common", ("POST", "/a/b", "", 201, 512, "127.0.0.1")),
    ],
)
def test_combined_and_common_lines_of_nginx_and_apache(tmp_path, line, fmt, expected):
    hits, tally = read_lines(tmp_path, [line] * 3)
    assert tally.format == fmt  # told from the lines
    assert (tally.read, tally.bad) == (3, 0)
    hit = hits[0]
    assert (hit.method, hit.path, hit.query, hit.status, hit.response_bytes, hit.client) == expected
    assert hit.time == WHEN
    assert hit.duration_s is None  # not in the format: unknown, never 0
    assert hit.request_bytes is None
    assert hit.request_length is None


def test_combined_headers_are_the_referer_and_the_user_agent(tmp_path):
    hits, _ = read_lines(tmp_path, [NGINX_COMBINED])
    assert hits[0].headers == {
        "referer": "http://www.example.com/start.html",
        "user-agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
    }


@pytest.mark.parametrize(
    ("zone", "offset_s"), [("+0000", 0), ("+0100", 3600), ("-0700", -25200), ("+0530", 19800)]
)
def test_a_local_time_is_read_in_its_own_zone(tmp_path, zone, offset_s):
    line = f'1.2.3.4 - - [31/Dec/1999:23:59:59 {zone}] "GET / HTTP/1.1" 200 1 "-" "-"'
    hits, _ = read_lines(tmp_path, [line.encode()])
    assert hits[0].time == calendar.timegm((1999, 12, 31, 23, 59, 59)) - offset_s


def test_the_minute_s_cached_time_follows_the_zone_and_the_year(tmp_path):
    lines = [
        b'1.2.3.4 - - [31/Dec/1999:23:59:58 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
        b'1.2.3.4 - - [31/Dec/1999:23:59:59 +0100] "GET / HTTP/1.1" 200 1 "-" "-"',
        b'1.2.3.4 - - [01/Jan/2000:00:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',
    ]
    hits, _ = read_lines(tmp_path, lines)
    base = calendar.timegm((1999, 12, 31, 23, 59, 58))
    assert [h.time - base for h in hits] == [0, 1 - 3600, 2]


def test_a_line_that_does_not_parse_is_counted_with_an_example(tmp_path):
    lines = [NGINX_COMBINED] * 8 + [b"this is not an access log line", NGINX_COMBINED]
    hits, tally = read_lines(tmp_path, lines)
    assert len(hits) == 9
    assert (tally.read, tally.bad, tally.skipped) == (9, 1, 0)
    assert tally.examples == ["this is not an access log line"]
    assert tally.bad_share == pytest.approx(0.1)


def test_a_tls_handshake_is_skipped_not_bad(tmp_path):
    garbage = (
        b'203.0.113.9 - - [10/Oct/2000:13:55:36 -0700] "\\x16\\x03\\x01\\x00\\xA5\\x01\\x00\\x00'
        b'\\xA1\\x03\\x03" 400 157 "-" "-"'
    )
    hits, tally = read_lines(
        tmp_path,
        [NGINX_COMBINED, garbage, b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "-" 400 0 "-" "-"'],
    )
    assert len(hits) == 1
    assert (tally.read, tally.bad, tally.skipped) == (1, 0, 2)
    assert tally.skipped_by == {"no request line": 2}


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("http://api.example.com/v1/items?page=2", "/v1/items", "page=2"),
        ("HTTPS://api.example.com", "/", ""),
        ("http://api.example.com?q=1", "/", "q=1"),
    ],
)
def test_an_absolute_form_target_is_read_as_its_path(tmp_path, target, path, query):
    line = f'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET {target} HTTP/1.1" 200 1 "-" "-"'
    hits, _ = read_lines(tmp_path, [line.encode()])
    assert (hits[0].path, hits[0].query) == (path, query)


def test_connect_and_options_star_are_skipped(tmp_path):
    lines = [
        b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "CONNECT h.example:443 HTTP/1.1" 200 0 "-" "-"',
        b'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "OPTIONS * HTTP/1.1" 200 0 "-" "-"',
    ]
    hits, tally = read_lines(tmp_path, lines)
    assert (hits, tally.skipped, tally.bad) == ([], 2, 0)


# Line by line: a custom log_format.

CUSTOM = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    "$request_length $request_time $upstream_response_time $upstream_addr "
    '$http_x_forwarded_for "$request_body"'
)


def custom_line(
    upstream: str = "0.004", addr: str = "10.0.0.1:80", forwarded: str = "-", body: str = "-"
) -> bytes:
    return (
        f'198.51.100.7 - - [10/Oct/2000:13:55:36 +0000] "POST /v1/x HTTP/1.1" 200 12 345 0.010 '
        f'{upstream} {addr} {forwarded} "{body}"'
    ).encode()


@pytest.mark.parametrize(
    ("upstream", "addr", "expected"),
    [
        ("0.004", "10.0.0.1:80", 0.004),
        ("0.004, 0.002", "10.0.0.1:80, 10.0.0.2:80", 0.006),  # retried on a second upstream
        ("0.004, 0.002 : 0.001", "10.0.0.1:80, 10.0.0.2:80 : 10.0.0.3:80", 0.007),  # redirect
        ("-, 0.002", "10.0.0.1:80, 10.0.0.2:80", 0.002),
        ("-", "-", None),
    ],
)
def test_upstream_response_time_is_the_sum_of_the_upstreams_tried(
    tmp_path, upstream, addr, expected
):
    fmt = renamed(CUSTOM, "request_time")
    hits, tally = read_lines(tmp_path, [custom_line(upstream, addr)], fmt)
    assert tally.bad == 0, tally.examples
    assert hits[0].duration_s == (pytest.approx(expected) if expected is not None else None)


def test_request_time_wins_over_the_upstreams(tmp_path):
    hits, _ = read_lines(tmp_path, [custom_line("0.004, 0.002", "a:1, b:2")], CUSTOM)
    assert hits[0].duration_s == pytest.approx(0.010)
    assert (hits[0].request_length, hits[0].response_bytes) == (345, 12)


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("203.0.113.9, 10.0.0.1", "203.0.113.9"),  # the first address is the client
        ("2001:db8::7,10.0.0.1", "2001:db8::7"),
        ("-", "198.51.100.7"),  # none: the remote address
    ],
)
def test_the_client_is_the_first_forwarded_address(tmp_path, forwarded, client):
    hits, tally = read_lines(tmp_path, [custom_line(forwarded=forwarded)], CUSTOM)
    assert tally.bad == 0, tally.examples
    assert hits[0].client == client


@pytest.mark.parametrize(
    ("logged", "body"),
    [
        # escape=default: ", \ and bytes outside printable ASCII as \xHH
        (
            r"{\x22a\x22:\x22x\x5C\x22y\x22,\x22city\x22:\x22Z\xC3\xBCrich\x22}",
            {"a": 'x"y', "city": "Zürich"},
        ),
        # escape=json: \" \\ \n and \u00XX; UTF-8 as it is
        (
            r"{\n\t\"a\":\"x\\\"y\",\"t\":\"\\u0007\\n\",\"city\":\"Zürich\"}",
            {"a": 'x"y', "t": "\x07\n", "city": "Zürich"},
        ),
        (r"{\u0009\"a\":1}", {"a": 1}),  # a control character outside a string: \u00XX
        (r"[1,2,{\x22k\x22:null}]", [1, 2, {"k": None}]),
        ("user=ada&remember=1", None),  # a form: not JSON, not read
        (r"{\x22cut", None),  # cut short by the log's limit
        ("-", None),
        ("", None),
    ],
)
def test_request_body_is_unescaped_as_nginx_escapes_it(tmp_path, logged, body):
    hits, tally = read_lines(tmp_path, [custom_line(body=logged)], CUSTOM)
    assert tally.bad == 0, tally.examples
    assert hits[0].body == body


@pytest.mark.parametrize(
    ("fmt", "field", "expected"),
    [
        (
            "$time_iso8601",
            "2000-10-10T13:55:36+01:00",
            datetime(2000, 10, 10, 12, 55, 36, tzinfo=UTC),
        ),
        (
            "$time_iso8601",
            "2000-10-10T13:55:36+00:00",
            datetime(2000, 10, 10, 13, 55, 36, tzinfo=UTC),
        ),
        ("$msec", "971186136.250", datetime(2000, 10, 10, 13, 55, 36, 250000, tzinfo=UTC)),
    ],
)
def test_iso8601_and_msec_times(tmp_path, fmt, field, expected):
    line = f'{field} "GET /a HTTP/1.1" 200'.encode()
    hits, tally = read_lines(tmp_path, [line], f'{fmt} "$request" $status')
    assert tally.bad == 0, tally.examples
    assert hits[0].time == pytest.approx(expected.timestamp())


@pytest.mark.parametrize(
    "column",
    [
        "$http_authorization",
        "$http_Authorization",
        "${http_cookie}",
        "$HTTP_COOKIE",
        "$http_proxy_authorization",
    ],
)
def test_credential_columns_are_matched_never_read(tmp_path, column):
    fmt = f'$remote_addr [$time_local] "$request" $status "{column}" "$http_x_client"'
    _, groups = compile_format(fmt)
    assert groups & {"http_authorization", "http_cookie", "http_proxy_authorization"} == set()
    line = b'1.2.3.4 [10/Oct/2000:13:55:36 +0000] "GET / HTTP/1.1" 200 "Bearer abc.def" "c-7"'
    hits, tally = read_lines(tmp_path, [line], fmt)
    assert tally.bad == 0
    assert hits[0].headers == {"x-client": "c-7"}
    assert "abc.def" not in repr(hits[0])


def test_request_method_with_uri_or_uri_and_args(tmp_path):
    fmt = '[$time_local] $request_method $uri "$args" $status'
    line = b'[10/Oct/2000:13:55:36 +0000] PUT /v1/items/7 "notify=false" 204'
    hits, _ = read_lines(tmp_path, [line], fmt)
    assert (hits[0].method, hits[0].path, hits[0].query, hits[0].status) == (
        "PUT", "/v1/items/7", "notify=false", 204,
    )  # fmt: skip


def test_sniffing_names_the_input_and_says_to_pass_format():
    with pytest.raises(ConfigError) as raised:
        sniff([b'{"ts": 1, "path": "/x"}'] * 5 + [NGINX_COMBINED] * 4, None, "logs/app.json")
    assert raised.value.field == "logs/app.json"
    assert raised.value.value == "5 of its first 9 lines not nginx/Apache combined or common"
    assert "pass --format with the log_format string" in raised.value.expected


def test_sniffing_prefers_combined_and_takes_a_given_format_as_it_is():
    assert sniff([NGINX_COMBINED, APACHE_COMMON], None).name == "combined"  # a tie
    assert sniff([APACHE_COMMON] * 3, None).name == "common"
    assert sniff([], "common").text == FORMATS["common"]
    custom = sniff([], CUSTOM)
    assert (custom.name, custom.has_time, custom.has_request) == ("custom", True, True)
    with pytest.raises(ConfigError) as raised:
        sniff([], "json")  # neither a name nor a log_format
    assert raised.value.field == "--format"


def test_a_method_that_is_no_http_token_is_no_request(tmp_path):
    junk = (
        rb'1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "\x0A__import__(\x22os\x22)\x0A# /x HTTP/1.1"'
        rb' 400 0 "-" "-"'
    )
    hits, tally = read_lines(tmp_path, [junk, NGINX_COMBINED])
    assert [h.method for h in hits] == ["GET"]
    assert (tally.read, tally.skipped, tally.bad) == (1, 1, 0)
