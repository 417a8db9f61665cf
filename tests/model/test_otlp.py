"""The OTLP JSON reader: on traces the real OpenTelemetry SDK made (an instrumented service
and its caller, exported over OTLP/HTTP to a receiver that writes them as the Collector's file
exporter does), under the old and the stable HTTP semantic conventions; then on the edges."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stressbed.errors import ConfigError
from stressbed.model import otlp
from stressbed.model.hits import Hit, Tally
from stressbed.model.otlp import normalise_route, read_otlp

from .otlp_capture import Collector

SERVICE = Path(__file__).with_name("otlp_service.py")
HOME = "127.0.0.1"
#: The caller's requests: (method, target, headers), and what the service's span says of
#: each: (path, query, status, route, client); ``HOME``: its address, no id.
CALLS = [
    ("GET", "/items?page=2&sort=name", {}),
    ("GET", "/items/42", {"X-Client-Id": "agent-7"}),
    ("POST", "/orders", {"Authorization": "", "Cookie": "", "X-Client-Id": "agent-7"}),
    ("DELETE", "/orders/a-9", {"X-Client-Id": "agent-8"}),
    ("GET", "/missing", {}),
    ("GET", "/boom", {}),
    ("GET", "/items?page=3", {}),
]
EXPECTED = [
    ("/items", "page=2&sort=name", 200, "/items", HOME),
    ("/items/42", "", 200, "/items/{item_id}", "agent-7"),
    ("/orders", "", 201, "/orders", "user-ada"),  # enduser.id before a header
    ("/orders/a-9", "", 204, "/orders/{order_id}", "agent-8"),
    ("/missing", "", 404, None, HOME),
    ("/boom", "", 500, "/boom", HOME),
    ("/items", "page=3", 200, "/items", HOME),
]
#: The service's settings, and attribute keys its spans must then hold and must not.
MODES = {
    "old": ({}, False, {"http.method", "http.url", "net.peer.ip"}, {"http.target"}),
    "old-raw-uri": ({}, True, {"http.method", "http.target"}, {"http.url", "url.path"}),
    "stable": (
        {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"},
        True,
        {"http.request.method", "url.path", "http.response.status_code", "client.address"},
        {"http.method", "http.target", "http.url"},
    ),
}


@dataclass
class Traces:
    path: Path
    bearer: str
    cookie: str
    started: float
    ended: float


def _port(proc: subprocess.Popen[str], timeout_s: float = 60.0) -> int:
    """The port the service prints once it listens."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), f"the service did not start in {timeout_s}s"
    return int(proc.stdout.readline())


def _end(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, then SIGKILL to its group if it has not ended by the deadline; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


def _call(base: str, tracer: Any, method: str, target: str, headers: dict[str, str]) -> None:
    """One request, in a CLIENT span whose context goes with it (the service's span is its
    child), as an instrumented HTTP client does."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with tracer.start_as_current_span(method, kind=SpanKind.CLIENT) as span:
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.full", base + target)
        sent = dict(headers)
        TraceContextTextMapPropagator().inject(sent)
        data = b'{"item":42,"qty":3}' if method == "POST" else None
        if data is not None:
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(base + target, data, sent, method=method)
        try:
            with opener.open(request, timeout=30) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as error:
            error.read()
            status = error.code
        span.set_attribute("http.response.status_code", status)


@pytest.fixture(scope="module", params=sorted(MODES))
def traces(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Traces:
    """The calls made at the instrumented service, their spans written as the Collector's
    file exporter writes them."""
    env, raw_uri, _, _ = MODES[request.param]
    base = tmp_path_factory.mktemp(f"otlp-{request.param}")
    bearer, cookie = f"Bearer SECRET-{secrets.token_hex(12)}", f"COOKIE-{secrets.token_hex(12)}"
    collector = Collector(base / "traces.jsonl")
    log = (base / "service.log").open("w")
    capture = "x-client-id,user-agent,authorization,cookie"
    proc = subprocess.Popen(
        [sys.executable, str(SERVICE), "--endpoint", collector.endpoint]
        + (["--raw-uri"] if raw_uri else []),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        env={
            **os.environ,
            "OTEL_SEMCONV_STABILITY_OPT_IN": "",
            "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": capture,
            **env,
        },
    )
    session = requests.Session()
    session.trust_env = False
    caller = TracerProvider(resource=Resource.create({"service.name": "caller"}))
    exporter = OTLPSpanExporter(endpoint=collector.endpoint, session=session)
    caller.add_span_processor(BatchSpanProcessor(exporter))
    try:
        try:
            url = f"http://127.0.0.1:{_port(proc)}"
            tracer = caller.get_tracer("caller")
            started = time.time()
            for method, target, headers in CALLS:
                credentials = {"Authorization": bearer, "Cookie": f"session={cookie}"}
                sent = {k: credentials.get(k, v) for k, v in headers.items()}
                _call(url, tracer, method, target, sent)
            ended = time.time()
        finally:
            caller.shutdown()  # exports the caller's spans
            code = _end(proc)  # the service exports its own as it ends
        assert code == 0, (base / "service.log").read_text()
        # A CLIENT (the caller's) and a SERVER span for each call, an INTERNAL one for the POST.
        collector.wait_for(2 * len(CALLS) + 1)
    finally:
        collector.close()
        log.close()
    return Traces(collector.path, bearer, cookie, started, ended)


def _read(path: Path) -> tuple[list[Hit], Tally]:
    tally = Tally(source=str(path), format="otlp", unit="span")
    return list(read_otlp(path, tally)), tally


def test_the_sdks_spans(traces: Traces, request: pytest.FixtureRequest) -> None:
    """Each call is a hit with its method, path, query, status, route and client, in the order
    made, a duration each; the caller's CLIENT and the app's INTERNAL spans are skipped; the
    attribute names are those of the conventions asked for; the captured credentials are in
    the file and nowhere in a hit."""
    text = traces.path.read_text()
    _, _, present, absent = MODES[request.node.callspec.params["traces"]]
    keys = {a["key"] for line in text.splitlines() for a in _all_attributes(json.loads(line))}
    assert present <= keys
    assert not absent & keys
    assert traces.bearer in text
    assert traces.cookie in text
    hits, tally = _read(traces.path)
    assert [h.method for h in hits] == [method for method, _, _ in CALLS]
    assert [(h.path, h.query, h.status, h.route, h.client) for h in hits] == EXPECTED
    assert tally.read == len(CALLS)
    assert (tally.bad, tally.skipped_by) == (0, {"client span": len(CALLS), "internal span": 1})
    times = [h.time for h in hits]
    assert times == sorted(times)
    assert traces.started <= times[0]
    assert times[-1] <= traces.ended
    assert all(h.duration_s is not None and h.duration_s >= 0 for h in hits)
    agent = "Python-urllib/{}.{}".format(*sys.version_info[:2])
    assert hits[2].headers == {"x-client-id": "agent-7", "user-agent": agent}
    shown = repr(hits)
    assert traces.bearer.split()[1] not in shown
    assert traces.cookie not in shown


def test_a_gzip_file_reads_the_same(traces: Traces, tmp_path: Path) -> None:
    packed = tmp_path / "traces.jsonl"
    packed.write_bytes(gzip.compress(traces.path.read_bytes()))
    (hits, tally), (plain_hits, plain_tally) = _read(packed), _read(traces.path)
    assert hits == plain_hits
    assert (tally.read, tally.skipped_by) == (plain_tally.read, plain_tally.skipped_by)


def _all_attributes(export: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in export["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                yield from span.get("attributes", [])


# --- The edges, span by span -----------------------------------------------------------------


def _attrs(**values: Any) -> list[dict[str, Any]]:
    """Attributes in the JSON mapping; keys with ``__`` for ``.``."""

    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": v}

    return [{"key": k.replace("__", "."), "value": value(v)} for k, v in values.items()]


def _span(start_s: float = 1_700_000_000.0, **fields: Any) -> dict[str, Any]:
    attributes = fields.pop("attributes", None)
    return {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "name": "GET /x",
        "kind": 2,
        "startTimeUnixNano": str(int(start_s * 1e9)),
        "endTimeUnixNano": str(int(start_s * 1e9) + 250_000_000),
        "attributes": attributes
        if attributes is not None
        else _attrs(http__request__method="GET", url__path="/x", http__response__status_code=200),
        **fields,
    }


def _line(*spans: Any, scopes: str = "scopeSpans") -> str:
    export = {"resourceSpans": [{"resource": {"attributes": []}, scopes: [{"spans": list(spans)}]}]}
    return json.dumps(export)


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def _one(tmp_path: Path, span: dict[str, Any]) -> Hit:
    hits, tally = _read(_file(tmp_path, _line(span)))
    assert (len(hits), tally.bad) == (1, 0), tally
    return hits[0]


def test_the_fields_of_a_stable_span(tmp_path: Path) -> None:
    attributes = _attrs(
        http__request__method="post",
        url__path="/v1/orders/7",
        url__query="a=1&b=%20",
        http__route="/v1/orders/:id",
        http__response__status_code=201,
        http__request__body__size=120,
        http__response__body__size=0,
        client__address="10.0.0.9",
        http__request__header__x_agent_id=["agent-3"],
        http__request__header__accept=["application/json", "text/plain"],
    )
    hit = _one(tmp_path, _span(attributes=attributes))
    assert hit == Hit(
        time=1_700_000_000.0,
        method="POST",
        path="/v1/orders/7",
        query="a=1&b=%20",
        status=201,
        duration_s=0.25,
        request_bytes=120,
        response_bytes=0,
        client="agent-3",
        route="/v1/orders/{id}",
        headers={"x-agent-id": "agent-3", "accept": "application/json, text/plain"},
    )


def test_the_old_names(tmp_path: Path) -> None:
    """The conventions before 1.21, and the JSON a producer may write otherwise: the kind by
    name, integers as numbers, the scopes under their pre-0.15 name."""
    attributes = [
        {"key": "http.method", "value": {"stringValue": "GET"}},
        {"key": "http.target", "value": {"stringValue": "/search?q=a%20b&page=2"}},
        {"key": "http.status_code", "value": {"intValue": 200}},
        {"key": "http.request_content_length", "value": {"intValue": "0"}},
        {"key": "http.response_content_length", "value": {"intValue": 512}},
        {"key": "http.client_ip", "value": {"stringValue": "203.0.113.5"}},
        {"key": "net.peer.ip", "value": {"stringValue": "10.0.0.1"}},
    ]
    span = _span(attributes=attributes, kind="SPAN_KIND_SERVER")
    span["startTimeUnixNano"] = 1_700_000_000_000_000_000
    span["endTimeUnixNano"] = 1_700_000_000_500_000_000
    hits, _ = _read(_file(tmp_path, _line(span, scopes="instrumentationLibrarySpans")))
    assert hits == [
        Hit(
            time=1_700_000_000.0,
            method="GET",
            path="/search",
            query="q=a%20b&page=2",
            status=200,
            duration_s=0.5,
            request_bytes=0,
            response_bytes=512,
            client="203.0.113.5",  # the original client's, before the peer's (a proxy)
        )
    ]


@pytest.mark.parametrize(
    ("attributes", "path", "query"),
    [
        ({"http__url": "https://shop.example:8443/a/b?c=d#frag"}, "/a/b", "c=d"),
        ({"url__full": "http://shop.example"}, "/", ""),
        ({"http__target": "/a?", "http__url": "http://x/b"}, "/a", ""),
        ({"url__path": "/p", "http__target": "/t?q=1"}, "/p", ""),
    ],
)
def test_where_the_path_comes_from(
    tmp_path: Path, attributes: dict[str, str], path: str, query: str
) -> None:
    hit = _one(tmp_path, _span(attributes=_attrs(http__method="GET", **attributes)))
    assert (hit.path, hit.query) == (path, query)


def test_a_method_the_conventions_call_other(tmp_path: Path) -> None:
    attributes = _attrs(http__request__method="_OTHER", http__request__method_original="PURGE",
                        url__path="/cache")  # fmt: skip
    assert _one(tmp_path, _span(attributes=attributes)).method == "PURGE"


@pytest.mark.parametrize(
    ("attributes", "client"),
    [
        ({"enduser__id": "u1", "client__address": "10.0.0.1"}, "u1"),
        ({"agent__id": 7, "net__peer__ip": "10.0.0.1"}, "7"),
        ({"http__request__header__x-client-id": ["c1"], "client__address": "10.0.0.1"}, "c1"),
        ({"net__sock__peer__addr": "10.0.0.2", "net__peer__ip": "10.0.0.1"}, "10.0.0.1"),
        ({"net__sock__peer__addr": "10.0.0.2"}, "10.0.0.2"),
        ({}, None),
    ],
)
def test_the_client(tmp_path: Path, attributes: dict[str, Any], client: str | None) -> None:
    span = _span(attributes=_attrs(http__method="GET", http__target="/", **attributes))
    assert _one(tmp_path, span).client == client


def test_the_resource_does_not_name_the_client(tmp_path: Path) -> None:
    export = json.loads(_line(_span()))
    resource = _attrs(service__instance__id="shop-1", client__id="not-the-caller")
    export["resourceSpans"][0]["resource"]["attributes"] = resource
    (hit,), _ = _read(_file(tmp_path, json.dumps(export)))
    assert hit.client is None


@pytest.mark.parametrize(
    ("route", "normal"),
    [
        ("/users/:id", "/users/{id}"),
        ("/users/:id/posts/:post_id?", "/users/{id}/posts/{post_id}"),
        ("/files/:name.:ext", "/files/{name}.{ext}"),
        ("/users/:id(\\d+)", "/users/{id}"),
        ("/users/<id>", "/users/{id}"),
        ("/users/<int:id>/x/<path:rest>", "/users/{id}/x/{rest}"),
        ("/users/{id}", "/users/{id}"),
        ("/users/{id:int}/{slug:[a-z-]+}", "/users/{id}/{slug}"),
        ("/time/10:30", "/time/10:30"),
        ("/a:b", "/a:b"),
        ("/", "/"),
    ],
)
def test_route_normalisation(route: str, normal: str) -> None:
    assert normalise_route(route) == normal


def test_spans_that_are_not_requests_to_the_service_are_skipped(tmp_path: Path) -> None:
    spans = [
        _span(kind=3),
        _span(kind="SPAN_KIND_CLIENT"),
        _span(kind=1),
        _span(kind=4),
        _span(kind=5),
        {k: v for k, v in _span().items() if k != "kind"},  # 0: left out of the mapping
        _span(attributes=_attrs(rpc__system="grpc", rpc__method="Get")),
        _span(),
    ]
    hits, tally = _read(_file(tmp_path, _line(*spans)))
    assert len(hits) == tally.read == 1
    assert tally.skipped_by == {
        "client span": 2,
        "internal span": 1,
        "producer span": 1,
        "consumer span": 1,
        "unspecified span": 1,
        "not http": 1,
    }


def test_hits_come_in_time_order_across_lines(tmp_path: Path) -> None:
    late, early, middle = (_span(start_s=1_700_000_000.0 + s, name=f"s{s}") for s in (3, 1, 2))
    path = _file(tmp_path, _line(late, early), _line(middle))
    hits, _ = _read(path)
    assert [h.time - 1_700_000_000 for h in hits] == pytest.approx([1, 2, 3])


def test_bad_spans_are_counted_with_examples(tmp_path: Path) -> None:
    """An example of a bad span shows the keys of its attributes, never their values."""
    no_method = _span(attributes=_attrs(url__path="/x", enduser__id="SECRET-USER"))
    no_start = _span()
    del no_start["startTimeUnixNano"]
    path = _file(tmp_path, _line(no_method, _span(kind=9), no_start, "span?", _span()))
    hits, tally = _read(path)
    assert len(hits) == tally.read == 1
    assert tally.bad == 4
    assert tally.examples == [
        '{"name": "GET /x", "kind": 2, "startTimeUnixNano": "1700000000000000000", '
        '"attributes": ["url.path", "enduser.id"]}',
        '{"name": "GET /x", "kind": 9, "startTimeUnixNano": "1700000000000000000", "attributes": '
        '["http.request.method", "url.path", "http.response.status_code"]}',
        '{"name": "GET /x", "kind": 2, "attributes": ["http.request.method", "url.path", '
        '"http.response.status_code"]}',
    ]
    assert "SECRET-USER" not in repr(tally)


def test_bad_lines_are_counted_by_number(tmp_path: Path) -> None:
    """After a first good line, a bad one is counted (once: its spans are unknown); another
    signal's line is passed over."""
    path = _file(
        tmp_path,
        _line(_span()),
        "",
        '{"resourceSpans": [{"scopeSpans": {"spans": []}}]}',
        '{"resourceSpans": "nope"}',
        "{cut short",
        '{"something": "else"}',
        '{"resourceMetrics": []}',
    )
    hits, tally = _read(path)
    assert (len(hits), tally.bad, tally.skipped) == (1, 4, 0)
    assert tally.examples == [
        'line 3: scopeSpans malformed: {"resourceSpans": [{"scopeSpans": {"spans": []}}]}',
        'line 4: resourceSpans malformed: {"resourceSpans": "nope"}',
        "line 5: not JSON: {cut short",
    ]


def test_captured_credentials_are_never_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An attribute of a NEVER_READ header is passed over by its key: reading its value (a
    sealed one here) would fail the test."""
    keys = ["http.request.header.authorization", "http.request.header.Proxy_Authorization",
            "http.request.header.cookie", "http.response.header.set-cookie"]  # fmt: skip
    span = _span()
    span["attributes"] += [_Sealed(key=key) for key in keys]
    span["attributes"] += _attrs(**{"http__request__header__:authority": ["shop"]})
    export = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    monkeypatch.setattr(otlp, "_exports", lambda *_: iter([(1, "", export)]))
    hits, tally = _read(_file(tmp_path))  # its lines are those _exports gives
    assert (len(hits), tally.bad) == (1, 0)
    assert hits[0].headers == {}


class _Sealed(dict[str, Any]):
    """An attribute whose value must not be read."""

    def __getitem__(self, key: str) -> Any:
        if key == "value":
            raise AssertionError(f"read the value of {dict.get(self, 'key')}")
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def test_one_pretty_printed_request_reads(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(json.loads(_line(_span())), indent=2))
    hits, tally = _read(path)
    assert (len(hits), tally.bad) == (1, 0)


def test_a_file_of_no_server_span_is_read(tmp_path: Path) -> None:
    """No server span: the caller says so (it sees nothing read); the reader does not."""
    hits, tally = _read(_file(tmp_path, _line(_span(kind=3)), '{"resourceSpans": []}'))
    assert (hits, tally.read, tally.skipped) == ([], 0, 1)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n",
        b"not json\n",
        b'{"log": {"entries": []}}\n',
        b'{"resourceMetrics": []}\n',
        b'[{"resourceSpans": []}]\n',
        b'{"resourceSpans": [',
        gzip.compress(b'{"resourceSpans": []}\n' * 50)[:-30],  # gzip, cut short
    ],
    ids=lambda content: repr(content[:24]) if content[:2] != b"\x1f\x8b" else "gzip cut short",
)
def test_not_otlp(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "traces.jsonl"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        _read(path)
    error = caught.value
    assert (error.field, error.value) == ("INPUT", str(path))
    if content[:2] == b"\x1f\x8b":  # the gzip stream itself is what is wrong
        assert error.expected.startswith("a complete gzip file")
    else:
        assert error.expected == otlp.EXPECTED
    assert otlp.EXPECTED == (
        "OTLP JSON traces (an ExportTraceServiceRequest with resourceSpans per line)"
    )
