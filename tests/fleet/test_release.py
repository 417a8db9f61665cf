"""Starting a fleet: every runner's k6 resumed at once, not one after another."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stressbed.fleet.release import ReleaseFailed, release_together

DELAY_S = 0.4  # each stand-in k6 takes this long to acknowledge its resume


class SlowK6(BaseHTTPRequestHandler):
    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        time.sleep(DELAY_S)
        body = json.dumps({"data": {"attributes": {"paused": False}}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def k6s():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), SlowK6) for _ in range(3)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


def test_runners_are_resumed_together(k6s):
    _, skew_ms = release_together(k6s)
    # One after another, the acknowledgements would be spread over 2 x 0.4 s.
    assert skew_ms < DELAY_S * 1000


def test_a_runner_that_cannot_be_resumed_is_named():
    with pytest.raises(ReleaseFailed, match=r"^runner 0: k6 did not resume: "):
        release_together(["http://127.0.0.1:9"])
