"""An instrumented HTTP service for the OTLP reader's tests: a small WSGI app on wsgiref, in
OpenTelemetry's WSGI middleware, its spans batched by the SDK and sent gzip'd by the OTLP/HTTP
(protobuf) exporter to ``--endpoint``.

Run ``python otlp_service.py --endpoint http://127.0.0.1:PORT/v1/traces``: it prints its port
once it listens, serves on 127.0.0.1 until SIGTERM, then shuts its tracer provider down (which
exports what the batch still holds) and exits 0.

What the middleware records is up to the environment, as in production:
``OTEL_SEMCONV_STABILITY_OPT_IN`` (unset: the old attribute names; ``http``: the stable ones)
and ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` (headers kept as attributes).
``--raw-uri``: the server passes the raw request target on (``RAW_URI``, as gunicorn does);
wsgiref does not, and without it the middleware records the full URL (``http.url``) under the
old names and no path at all under the stable ones.

The app routes as a framework would and names the route on the server span (``http.route``,
in Flask's ``<int:id>`` style, as Flask's instrumentation does); it sets ``enduser.id`` for a
request with credentials, as an authentication layer does, and records its own work on an
INTERNAL span.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

#: (method, path pattern, route, status): the app's routes.
ROUTES = [
    ("GET", r"/items", "/items", 200),
    ("GET", r"/items/(\d+)", "/items/<int:item_id>", 200),
    ("POST", r"/orders", "/orders", 201),
    ("DELETE", r"/orders/([^/]+)", "/orders/<order_id>", 204),
    ("GET", r"/boom", "/boom", 500),
]
REASONS = {200: "OK", 201: "Created", 204: "No Content", 404: "Not Found", 500: "Error"}


def app_for(tracer: trace.Tracer) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        span = trace.get_current_span()
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        status = 404
        for verb, pattern, route, code in ROUTES:
            if verb == method and re.fullmatch(pattern, path):
                span.set_attribute("http.route", route)
                status = code
                break
        if environ.get("HTTP_AUTHORIZATION"):
            span.set_attribute("enduser.id", "user-ada")
        if method == "POST":
            # An INTERNAL span around no work: the reader must skip it (not a server span).
            with tracer.start_as_current_span("save order"):
                pass
        payload = b"" if status == 204 else b'{"ok":true}'
        start_response(
            f"{status} {REASONS[status]}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    return app


class RawUriHandler(WSGIRequestHandler):
    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["RAW_URI"] = self.path
        return environ

    def log_message(self, *args: object) -> None:
        return


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args: object) -> None:
        return


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--raw-uri", action="store_true")
    args = parser.parse_args()
    session = requests.Session()
    session.trust_env = False  # loopback only, whatever proxy the environment names
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    exporter = OTLPSpanExporter(
        endpoint=args.endpoint, compression=Compression.Gzip, session=session
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("shop")
    app = OpenTelemetryMiddleware(app_for(tracer), tracer_provider=provider)
    handler = RawUriHandler if args.raw_uri else QuietHandler
    httpd = make_server("127.0.0.1", 0, app, handler_class=handler)

    def stop(*_: object) -> None:
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
        provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
