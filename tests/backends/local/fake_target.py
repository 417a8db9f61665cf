"""A controllable target for the local backend's tests: ``python fake_target.py``.

Listens on 127.0.0.1:$PORT. What its probes answer is read, on every request, from the JSON
file $FAKE_CONTROL (written by the test), keyed by the replica's port or "*":

    {"*": {"ready": true, "live": true}, "40123": {"ready": false}}

Other environment: FAKE_LISTEN_AFTER_S (seconds before it listens at all), FAKE_EXIT_AFTER_S
(exit with code 3 that long after it first answered /readyz as ready, so that a crash always
comes after readiness, however busy the machine), FAKE_IGNORE_TERM (ignore SIGTERM).
Endpoints: /healthz (liveness), /readyz (readiness), /whoami (the port), /slow?s=N (answers
after N seconds), /burn?s=N (spins a CPU for N seconds), /alloc?mb=N (keeps N MiB resident),
/metrics (Prometheus text: fake_pages_served_total counts the pages it served, fake_replicas
is 1).
SIGTERM: stop listening, finish in-flight requests, exit 0.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ["PORT"])
CONTROL = os.environ.get("FAKE_CONTROL", "")
BALLAST: list[bytearray] = []
SERVED = [0]  # /metrics pages served


def control() -> dict[str, object]:
    try:
        with open(CONTROL) as f:
            table = json.load(f)
    except (OSError, ValueError):
        return {}
    return {**table.get("*", {}), **table.get(str(PORT), {})}


_EXIT_ARMED = threading.Lock()


def exit_later() -> None:
    """Once, after the first ready answer: exit 3 after FAKE_EXIT_AFTER_S, if it is set."""
    after = os.environ.get("FAKE_EXIT_AFTER_S")
    if after and _EXIT_ARMED.acquire(blocking=False):
        threading.Timer(float(after), lambda: os._exit(3)).start()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the tests read the stack's events, not access logs

    def answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        state = control()
        if url.path == "/healthz":
            if state.get("hang_live"):
                time.sleep(30)
            live = state.get("live", True)
            self.answer(200 if live else 500, {"live": live})
        elif url.path == "/readyz":
            ready = state.get("ready", True)
            self.answer(200 if ready else 503, {"ready": ready})
            if ready:
                exit_later()
        elif url.path == "/metrics":
            SERVED[0] += 1
            page = (
                "# TYPE fake_pages_served_total counter\n"
                f"fake_pages_served_total {SERVED[0]}\n"
                "# TYPE fake_replicas gauge\n"
                "fake_replicas 1\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
        elif url.path == "/whoami":
            self.answer(200, {"port": PORT, "pid": os.getpid()})
        elif url.path == "/slow":
            time.sleep(float(query.get("s", "1")))
            self.answer(200, {"port": PORT, "slept": float(query.get("s", "1"))})
        elif url.path == "/burn":
            end = time.process_time() + float(query.get("s", "1"))
            while time.process_time() < end:
                continue  # spin: the HPA tests need CPU time used
            self.answer(200, {"port": PORT})
        elif url.path == "/alloc":
            block = bytearray(int(query.get("mb", "1")) << 20)
            for i in range(0, len(block), 4096):
                block[i] = 1  # touch every page so it is resident
            BALLAST.append(block)
            self.answer(200, {"port": PORT, "mb": sum(len(b) for b in BALLAST) >> 20})
        else:
            self.answer(404, {"error": "not found"})


def main() -> int:
    time.sleep(float(os.environ.get("FAKE_LISTEN_AFTER_S", "0")))
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = False
    server.block_on_close = True

    def stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("FAKE_IGNORE_TERM") else stop)
    server.serve_forever(poll_interval=0.05)
    server.server_close()  # joins the threads of requests in flight
    return 0


if __name__ == "__main__":
    sys.exit(main())
