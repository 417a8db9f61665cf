"""A runner's control endpoint in a cluster: its live snapshots out, a stop in.

A pod's runner cannot report on stdout while it runs (a log line a second would bring the
pod's log nearer its rotation, and nothing reads it live), so with ``--control-port`` it
serves, beside k6's REST API and reachable only by the coordinator (the fleet's
NetworkPolicy):

    GET  /v1/snapshot?since=T  ->  {"windows": {second: Window, ...}, "aggregates": {...},
                                    "latest": T', "running": bool}
    POST /v1/stop              ->  202; the runner stops its k6 as the fleet stops it locally

Every request carries ``Authorization: Bearer <token>``, the run's own token (made per run,
handed to the runners and the coordinator in :data:`TOKEN_ENV` from a Secret, never in argv):
on a CNI that does not enforce NetworkPolicy any pod can reach this port, and one without the
token gets 401 and nothing else: no snapshot (the run's data), no stop.

``windows`` holds the seconds closed after ``T`` (the caller keeps ``latest`` for its next
call), ``aggregates`` the threshold submetrics so far: what :class:`~.live.LiveMerge` takes.
The client side (:func:`snapshot`, :func:`stop`) is what the coordinator calls.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["TOKEN_ENV", "ControlServer", "snapshot", "stop"]

#: Where a runner and the coordinator find the run's control token: their environment (a
#: Secret's key in a pod), never an argument, which any process on the node can read.
TOKEN_ENV = "STRESSBED_CONTROL_TOKEN"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

#: ``take(since)``: the runner's snapshot after second ``since``, and the latest second in it.
Take = Callable[[int], tuple[dict[str, object], int]]


class ControlServer:
    """The endpoint, on its own threads, until :meth:`close`."""

    def __init__(
        self,
        host: str,
        port: int,
        take: Take,
        running: Callable[[], bool],
        on_stop: Callable[[], None],
        *,
        token: str,
    ) -> None:
        if not token:
            raise ValueError(f"a control endpoint needs the run's token ({TOKEN_ENV})")
        handler = _handler(take, running, on_stop, token.encode())
        host = host.strip("[]")
        self._server = (_Server6 if ":" in host else _Server)((host, port), handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="control", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a coordinator that hangs up leaves no thread behind

    def handle_error(self, request: object, client_address: object) -> None:
        return  # a coordinator that timed out and hung up: no traceback in the pod's log


class _Server6(_Server):
    address_family = socket.AF_INET6  # a pod on an IPv6-only cluster


def _handler(
    take: Take, running: Callable[[], bool], on_stop: Callable[[], None], token: bytes
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self._authorized():
                return
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/v1/snapshot":
                self._answer(404, {"error": "not found"})
                return
            query = urllib.parse.parse_qs(url.query)
            try:
                since = int(query.get("since", ["0"])[0])
            except ValueError:
                self._answer(400, {"error": "since: expected a unix second"})
                return
            data, latest = take(since)
            self._answer(200, {**data, "latest": latest, "running": running()})

        def do_POST(self) -> None:
            if not self._authorized():
                return
            if self.path != "/v1/stop":
                self._answer(404, {"error": "not found"})
                return
            # The stop waits for k6's graceful end; the answer does not.
            threading.Thread(target=on_stop, name="stop", daemon=True).start()
            self._answer(202, {"stopping": True})

        def _authorized(self) -> bool:
            """Whether the request bears the run's token; if not, it is answered 401 (before
            its path is even read: an outsider learns nothing of what is served)."""
            scheme, _, given = self.headers.get("Authorization", "").partition(" ")
            # Constant time: how much of a guess matched must not show in the answer's time.
            if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
                return True
            self._answer(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
            return False

        def _answer(
            self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return  # the runner's stdout carries its events, nothing else

    return Handler


def snapshot(url: str, since: int, token: str, timeout: float = 2.0) -> dict[str, Any]:
    """Runner ``url``'s snapshot after second ``since``; OSError/ValueError when it does not
    answer with one (an HTTPError 401 when ``token`` is not the run's)."""
    request = urllib.request.Request(f"{url}/v1/snapshot?since={since}")
    request.add_header("Authorization", f"Bearer {token}")
    with _OPENER.open(request, timeout=timeout) as response:
        data = json.loads(response.read())
    if not isinstance(data, dict):
        raise ValueError(f"a snapshot is a JSON object, got {type(data).__name__}")
    return data


def stop(url: str, token: str, timeout: float = 2.0) -> None:
    """Ask runner ``url`` to stop its k6 (gracefully, as the fleet's stop); OSError if it
    cannot be asked (an HTTPError 401 when ``token`` is not the run's)."""
    request = urllib.request.Request(f"{url}/v1/stop", data=b"{}", method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    with _OPENER.open(request, timeout=timeout) as response:
        response.read()
