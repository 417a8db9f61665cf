"""A stand-in for the OpenTelemetry Collector with an OTLP/HTTP receiver and a ``file``
exporter: it receives ``ExportTraceServiceRequest`` protobufs on loopback (``POST
/v1/traces``, gzip'd or not) and appends each to a file as one line of OTLP JSON, as the
Collector's file exporter writes them: the protobuf JSON mapping with lowerCamelCase names,
64-bit integers as strings, enums as numbers, and trace and span ids as hex (the mapping's
base64 aside: OTLP's JSON encoding says hex)."""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_IDS = ("traceId", "spanId", "parentSpanId")


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """``request`` as the Collector's file exporter writes it."""
    document: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                _hex_ids(span)
                for link in span.get("links", []):
                    _hex_ids(link)
    return document


def _hex_ids(item: dict[str, Any]) -> None:
    for key in _IDS:
        if key in item:
            item[key] = base64.b64decode(item[key]).hex()


class Collector:
    """The receiver on 127.0.0.1 (``endpoint``), writing ``path``; ``spans`` counts them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spans = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        collector = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest.FromString(body)
                collector.write(request)
                payload = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def write(self, request: ExportTraceServiceRequest) -> None:
        line = json.dumps(otlp_json(request), separators=(",", ":")) + "\n"
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock, self.path.open("a") as out:
            out.write(line)
            self.spans += count

    def wait_for(self, spans: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.spans < spans:
            assert time.monotonic() < deadline, f"{self.spans} spans of {spans} came"
            time.sleep(0.05)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
