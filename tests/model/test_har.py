"""The HAR reader: on a HAR made from a real headless Chromium's DevTools events (a page of
the test's own making a known mix of fetch() calls), then on the edges, entry by entry."""

from __future__ import annotations

import gzip
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stressbed.errors import ConfigError
from stressbed.model import har
from stressbed.model.har import read_har
from stressbed.model.hits import Hit, Tally

from ..browser import Browser, needs_browser
from .har_capture import Capture, to_har

#: The page's fetch() calls, in order: (method, path, query, status, parsed body), with the
#: body each sends (JSON.stringify'd, a form, a string) and the headers it sets.
FETCHES = [
    ("GET", "/api/items", "page=2&sort=name%20asc&tag=a&tag=b", 200, None),
    ("GET", "/api/items/42", "", 200, None),
    ("POST", "/api/orders", "", 201, {"item": 42, "qty": 3, "note": "caf\u00e9"}),
    ("PUT", "/api/orders/7", "notify=false", 200, [{"op": "replace", "path": "/qty", "v": 4}]),
    ("POST", "/api/login", "", 200, {"user": "ada", "remember": "1"}),
    ("POST", "/api/events", "", 202, {"kind": "click"}),
    ("DELETE", "/api/orders/7", "", 204, None),
    ("GET", "/api/missing", "", 404, None),
]
SCRIPT = """
const auth = {Authorization: %(bearer)s};
const json = (body, type) => ({method: 'POST', headers: {...auth, 'Content-Type': type},
                               body: JSON.stringify(body)});
async function go() {
  const calls = [
    ['/api/items?page=2&sort=name%%20asc&tag=a&tag=b', {}],
    ['/api/items/42', {headers: {'X-Client-Id': 'agent-7'}}],
    ['/api/orders', json({item: 42, qty: 3, note: 'caf\\u00e9'}, 'application/json')],
    ['/api/orders/7?notify=false', {...json([{op: 'replace', path: '/qty', v: 4}],
                                            'application/json-patch+json'), method: 'PUT'}],
    ['/api/login', {method: 'POST', body: new URLSearchParams({user: 'ada', remember: '1'})}],
    ['/api/events', {method: 'POST', body: '{"kind":"click"}'}],
    ['/api/orders/7', {method: 'DELETE', headers: auth}],
    ['/api/missing', {}],
    [%(other)s, {}],
  ];
  for (const [url, init] of calls) {
    const response = await fetch(url, init);
    await response.text();
  }
  document.title = 'done';
}
go();
"""
STATUS = {(m, p): s for m, p, _, s, _ in FETCHES}
PAYLOAD = b'{"ok":true}'


@dataclass
class Site:
    """The page's origin, and another one (a CDN) it fetches from once."""

    url: str
    other: str
    bearer: str
    cookie: str


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?", 1)[0]
            extra: dict[str, str] = {"Access-Control-Allow-Origin": "*"}
            if path == "/":
                script = SCRIPT % {
                    "bearer": json.dumps(site.bearer),
                    "other": json.dumps(f"{site.other}/cdn/lib.json"),
                }
                body = f'<!doctype html><link rel="icon" href="data:,"><script>{script}</script>'
                payload, status, kind = body.encode(), 200, "text/html"
                extra["Set-Cookie"] = f"session={site.cookie}; Path=/; HttpOnly"
            else:
                status = STATUS.get((self.command, path), 200)
                payload, kind = (b"" if status == 204 else PAYLOAD), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for name, value in extra.items():
                self.send_header(name, value)
            if status != 204:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, *args: object) -> None:
            return

    return Handler


@pytest.fixture(scope="module")
def chromium_har(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Site]:
    """A HAR of the page's session in real headless Chromium, written to a file."""
    site = Site("", "", f"Bearer SECRET-{secrets.token_hex(12)}", f"COOKIE-{secrets.token_hex(12)}")
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _handler(site)) for _ in range(2)]
    site.url, site.other = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Browser(offline=False)
    try:
        driver = browser.driver
        capture = Capture(driver)
        capture.drain()  # what came before the page is not its
        capture.requests.clear()
        driver.get(f"{site.url}/")
        deadline = time.monotonic() + 60
        while driver.title != "done":
            assert time.monotonic() < deadline, "the page's fetches did not end"
            time.sleep(0.1)
        capture.settle(count=len(FETCHES) + 2)  # the page and the other origin's call

        def post_data(request_id: str) -> str | None:
            found = driver.execute_cdp_cmd("Network.getRequestPostData", {"requestId": request_id})
            return str(found["postData"])

        har = to_har(capture, driver.capabilities["browserVersion"], post_data)
    finally:
        browser.close()
        for server in servers:
            server.shutdown()
            server.server_close()
    path = tmp_path_factory.mktemp("har") / "session.har"
    path.write_text(json.dumps(har, indent=2))
    return path, site


def _read(path: Path) -> tuple[list[Hit], Tally]:
    tally = Tally(source=str(path), format="har", unit="entry")
    return list(read_har(path, tally)), tally


@needs_browser
def test_a_real_chromium_session(chromium_har: tuple[Path, Site]) -> None:
    """Every fetch is a hit with its method, raw path and query, status and parsed body, in the
    order the page made them, after the page itself; the other origin's call is skipped; no
    hit holds the bearer token or the cookie, though the HAR does."""
    path, site = chromium_har
    text = path.read_text()
    assert site.bearer in text
    assert site.cookie in text  # the Cookie header and the cookies lists
    started = json.loads(text)["log"]["entries"][0]["startedDateTime"]
    hits, tally = _read(path)
    page, *calls = hits
    assert (page.method, page.path, page.status) == ("GET", "/", 200)
    assert [(h.method, h.path, h.query, h.status, h.body) for h in calls] == FETCHES
    assert tally.read == len(FETCHES) + 1
    assert (tally.bad, tally.skipped_by) == (0, {"other origin": 1})
    times = [h.time for h in hits]
    assert times == sorted(times)
    assert times[0] == pytest.approx(datetime.fromisoformat(started).timestamp(), abs=1e-3)
    assert all(h.duration_s is not None and h.duration_s >= 0 for h in hits)
    assert [h.client for h in calls] == [None, "agent-7", *[None] * 6]
    orders = calls[2]
    sent = json.dumps(FETCHES[2][4], separators=(",", ":"), ensure_ascii=False)  # as JS does
    assert orders.request_bytes == len(sent.encode())
    assert orders.headers["content-type"] == "application/json"
    assert calls[0].response_bytes == len(PAYLOAD)
    assert calls[0].request_bytes == 0
    for hit in hits:
        assert not {"authorization", "cookie"} & set(hit.headers)
        assert "user-agent" in hit.headers
    shown = repr(hits)
    assert site.bearer.split()[1] not in shown
    assert site.cookie not in shown


@needs_browser
def test_a_gzip_har_reads_the_same(chromium_har: tuple[Path, Site], tmp_path: Path) -> None:
    path, _ = chromium_har
    packed = tmp_path / "session.har"  # told by its bytes, not its name
    packed.write_bytes(gzip.compress(path.read_bytes()))
    (hits, tally), (plain_hits, plain_tally) = _read(packed), _read(path)
    assert hits == plain_hits
    assert (tally.read, tally.skipped_by) == (plain_tally.read, plain_tally.skipped_by)


# --- The edges, entry by entry ---------------------------------------------------------------


def _entry(url: str = "https://api.example/v1/x?a=1", **fields: Any) -> dict[str, Any]:
    request = {
        "method": "GET",
        "url": url,
        "headers": [],
        "bodySize": 0,
        **fields.pop("request", {}),
    }
    return {
        "startedDateTime": "2024-05-01T10:00:00.000+02:00",
        "time": 12.5,
        "request": request,
        "response": {"status": 200, "content": {"size": 7}, "bodySize": 9},
        **fields,
    }


def _har(tmp_path: Path, entries: list[Any]) -> Path:
    path = tmp_path / "x.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


def test_the_fields_of_an_entry(tmp_path: Path) -> None:
    ((hit,), tally) = _read(_har(tmp_path, [_entry()]))
    assert hit == Hit(
        time=1714550400.0,  # 08:00 UTC
        method="GET",
        path="/v1/x",
        query="a=1",
        status=200,
        duration_s=0.0125,
        request_bytes=0,
        response_bytes=7,
    )
    assert tally.read == 1


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"time": -1}, {"duration_s": None}),
        ({"response": {"status": 0, "bodySize": -1, "content": {"size": -1}}},
         {"status": None, "response_bytes": None}),
        ({"response": {"status": 502, "bodySize": 9, "content": {}}},
         {"status": 502, "response_bytes": 9}),
        ({"request": {"bodySize": -1}}, {"request_bytes": None}),
        ({"request": {"bodySize": -1, "postData": {"mimeType": "text/plain", "text": "h\u00e9"}}},
         {"request_bytes": 3}),
        ({"startedDateTime": "2024-05-01T08:00:00"}, {"time": 1714550400.0}),  # taken as UTC
        ({"startedDateTime": "2024-05-01T08:00:00.123456789Z"}, {"time": 1714550400.123456}),
    ],
)  # fmt: skip
def test_figures_an_entry_lacks_are_none(
    tmp_path: Path, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    ((hit,), _) = _read(_har(tmp_path, [_entry(**fields)]))
    assert {k: getattr(hit, k) for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize(
    ("post", "body"),
    [
        ({"mimeType": "application/json; charset=utf-8", "text": '{"a": [1, 2]}'}, {"a": [1, 2]}),
        ({"mimeType": "application/vnd.api+json", "text": "42"}, 42),
        ({"mimeType": "text/plain", "text": "[1]"}, [1]),
        ({"mimeType": "text/plain", "text": "42"}, None),
        ({"mimeType": "application/json", "text": '{"cut": '}, None),
        ({"mimeType": "application/x-www-form-urlencoded", "text": "a=1&b=%20x&a=2&c="},
         {"a": "1", "b": " x", "c": ""}),
        ({"mimeType": "application/x-www-form-urlencoded",
          "params": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}]}, {"a": "1"}),
        ({"mimeType": "multipart/form-data; boundary=x", "text": "--x\r\n"}, None),
    ],
)  # fmt: skip
def test_bodies(tmp_path: Path, post: dict[str, Any], body: Any) -> None:
    ((hit,), _) = _read(_har(tmp_path, [_entry(request={"method": "POST", "postData": post})]))
    assert hit.body == body


def test_credentials_and_pseudo_headers_are_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Headers of NEVER_READ are passed over by name: reading their value (a sealed one here)
    would fail the test; so are the entry's cookie lists."""
    headers = [
        {"name": ":authority", "value": "api.example"},
        {"name": ":path", "value": "/v1/x"},
        _Sealed(name="Authorization"),
        _Sealed(name="Proxy-Authorization"),
        _Sealed(name="cookie"),
        _Sealed(name="Set-Cookie"),
        {"name": "Accept", "value": "application/json"},
        {"name": "X-Trace", "value": "a"},
        {"name": "x-trace", "value": "b"},
        {"value": "no name"},
        "not a header",
    ]
    entry = _entry(request={"headers": headers})
    entry["request"] = _Sealed(entry["request"], sealed="cookies")
    entry["response"] = _Sealed(entry["response"], sealed="cookies")
    monkeypatch.setattr(har, "_entries", lambda _: [entry])
    ((hit,), tally) = _read(tmp_path / "unused")
    assert hit.headers == {"accept": "application/json", "x-trace": "a, b"}
    assert tally.bad == 0


class _Sealed(dict[str, Any]):
    """An object whose ``sealed`` field must not be read."""

    def __init__(self, *args: Any, sealed: str = "value", **fields: Any) -> None:
        super().__init__(*args, **fields)
        self.sealed = sealed

    def __getitem__(self, key: str) -> Any:
        if key == self.sealed:
            raise AssertionError(f"read {key} of {dict.get(self, 'name', 'an entry')}")
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def test_the_client_is_a_header_naming_one(tmp_path: Path) -> None:
    named = _entry(request={"headers": [{"name": "X-Device-Id", "value": "phone-1"},
                                        {"name": "X-Agent-Id", "value": "agent-3"}]})  # fmt: skip
    hits, _ = _read(_har(tmp_path, [named, _entry()]))
    assert [h.client for h in hits] == ["agent-3", None]


def test_only_the_busiest_origin_is_kept(tmp_path: Path) -> None:
    entries = [
        _entry("https://cdn.example/lib.js"),
        _entry("https://api.example/a"),
        _entry("https://API.example:443/b"),  # the same origin
        _entry("https://api.example:8443/c"),
        _entry("http://api.example/d"),
        _entry("data:text/plain,hi"),
        _entry("wss://api.example/socket"),
    ]
    hits, tally = _read(_har(tmp_path, entries))
    assert [h.path for h in hits] == ["/a", "/b"]
    assert tally.skipped_by == {"other origin": 3, "not http": 2}
    assert tally.read == 2


def test_an_origin_tie_keeps_the_first(tmp_path: Path) -> None:
    entries = [_entry("https://b.example/1"), _entry("https://a.example/2")]
    hits, _ = _read(_har(tmp_path, entries))
    assert [h.path for h in hits] == ["/1"]


def test_preflights_and_cached_responses_are_skipped(tmp_path: Path) -> None:
    preflight = _entry(
        request={
            "method": "OPTIONS",
            "headers": [{"name": "Access-Control-Request-Method", "value": "POST"}],
        }
    )
    cached = _entry(_fromCache="memory")
    plain_options = _entry(request={"method": "OPTIONS"})
    hits, tally = _read(_har(tmp_path, [preflight, cached, plain_options]))
    assert [h.method for h in hits] == ["OPTIONS"]
    assert tally.skipped_by == {"cors preflight": 1, "browser cache": 1}


def test_hits_come_in_time_order(tmp_path: Path) -> None:
    entries = [
        _entry("https://api.example/late", startedDateTime="2024-05-01T10:00:02Z"),
        _entry("https://api.example/early", startedDateTime="2024-05-01T11:00:01+02:00"),
        _entry("https://api.example/middle", startedDateTime="2024-05-01T10:00:01.5Z"),
    ]
    hits, _ = _read(_har(tmp_path, entries))
    assert [h.path for h in hits] == ["/early", "/middle", "/late"]


def test_bad_entries_are_counted_with_examples(tmp_path: Path) -> None:
    secret = "Bearer SECRET-in-a-bad-entry"
    bad_headers = [{"name": "Authorization", "value": secret}]
    entries = [
        _entry(startedDateTime="yesterday", request={"headers": bad_headers}),
        _entry(request={"method": ""}),
        {"startedDateTime": "2024-05-01T10:00:00Z", "request": "GET /"},
        _entry("https://api.example:99999/x"),
        42,
        _entry(),
    ]
    hits, tally = _read(_har(tmp_path, entries))
    assert len(hits) == tally.read == 1
    assert tally.bad == 5
    assert tally.examples == [
        '{"startedDateTime": "yesterday", "time": 12.5, "request": {"method": "GET", "url": '
        '"https://api.example/v1/x?a=1"}}',
        '{"startedDateTime": "2024-05-01T10:00:00.000+02:00", "time": 12.5, "request": '
        '{"method": "", "url": "https://api.example/v1/x?a=1"}}',
        '{"startedDateTime": "2024-05-01T10:00:00Z", "request": "<str>"}',
    ]
    assert secret not in repr(tally)
    assert tally.bad_share == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"log": {"version": "1.2"}}',
        b'{"log": {"entries": {}}}',
        b"[]",
        b'{"resourceSpans": []}',
        gzip.compress(b"GET / HTTP/1.1")[:-4],  # gzip, cut short
    ],
    ids=lambda content: repr(content[:24]) if content[:2] != b"\x1f\x8b" else "gzip cut short",
)
def test_not_a_har(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.har"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        _read(path)
    error = caught.value
    assert (error.field, error.value) == ("INPUT", str(path))
    if content[:2] == b"\x1f\x8b":  # the gzip stream itself is what is wrong
        assert error.expected.startswith("a complete gzip file")
    else:
        assert error.expected == "a HAR 1.2 file (JSON with log.entries)"


def test_an_empty_har_is_a_har(tmp_path: Path) -> None:
    assert _read(_har(tmp_path, [])) == ([], Tally(str(tmp_path / "x.har"), "har", "entry"))
