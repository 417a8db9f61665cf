"""Reading a target back after the load, over a real socket: with the declared token, writer
by writer, until a queue still draining has drained; a target that cannot answer is a
problem in one line, not a crash."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stressbed.app.readback import read_back
from stressbed.scenario.writes import Writes

WRITES = Writes(request="report", read_back="/v1/agents/{writer}/stored", token="T")


class Target:
    """Stores ``final`` of each writer, ``late`` of them only ``delay_s`` after starting."""

    def __init__(self, final: dict[str, int], late: dict[str, int], delay_s: float) -> None:
        self.final, self.late, self.delay_s = final, late, delay_s
        self.started = time.monotonic()
        self.tokens: list[str | None] = []
        self.status = 200
        self.blips = 0  # answer 503 to this many requests first
        self.redirect = ""

    def answer(self, writer: str) -> tuple[int, dict]:
        if self.blips > 0:
            self.blips -= 1
            return 503, {"error": "busy"}
        if self.status != 200:
            return self.status, {"error": "the null sink stores nothing"}
        stored = self.final.get(writer, 0)
        if time.monotonic() - self.started < self.delay_s:
            stored -= self.late.get(writer, 0)
        return 200, {"stored": stored, "by_second": {"100": stored}}


@pytest.fixture
def target() -> Iterator[tuple[Target, str]]:
    state = Target({"a": 10, "b/c": 5}, {"a": 4}, delay_s=1.5)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.tokens.append(self.headers.get("Authorization"))
            writer = self.path.split("/")[3].replace("%2F", "/")
            if state.redirect:
                self.send_response(302)
                self.send_header("Location", state.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, body = state.answer(writer)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_queue_still_draining_is_waited_for_not_counted_lost(target):
    state, url = target
    found = read_back(WRITES, url, {"a": 10, "b/c": 5}, "secret-token", quiet_s=3)
    assert found.problem is None
    assert found.stored == {"a": 10, "b/c": 5}
    assert found.by_second == {100: 15}
    assert found.rounds >= 2
    assert set(state.tokens) == {"Bearer secret-token"}


def test_what_stays_short_is_read_until_quiet_then_given(target):
    _, url = target
    started = time.monotonic()
    found = read_back(WRITES, url, {"a": 12, "b/c": 5}, None, quiet_s=3, settle_s=20)
    assert found.stored == {"a": 10, "b/c": 5}  # 2 of a's never came
    assert time.monotonic() - started < 15


def test_a_target_that_cannot_answer_is_a_one_line_problem(target):
    state, url = target
    state.status = 409
    found = read_back(WRITES, url, {"a": 1}, None)
    assert found.problem == ("read-back of writer 'a': HTTP 409: the null sink stores nothing")
    # Refused connections are asked again until the settle time is over, then said.
    closed = read_back(WRITES, "http://127.0.0.1:9", {"a": 1}, None, timeout_s=1, settle_s=2)
    assert closed.problem is not None
    assert closed.problem.startswith("read-back of writer 'a': ")


def test_a_blip_of_the_target_is_asked_again_not_counted_lost(target):
    state, url = target
    state.delay_s = 0
    state.blips = 3  # the first round's answers, or most of them: 503
    found = read_back(WRITES, url, {"a": 10, "b/c": 5}, None, quiet_s=1)
    assert found.problem is None
    assert found.stored == {"a": 10, "b/c": 5}


def test_a_redirect_is_not_followed_with_the_token(target):
    state, url = target
    state.redirect = url + "/elsewhere"
    found = read_back(WRITES, url, {"a": 1}, "secret-token")
    assert found.problem == "read-back of writer 'a': HTTP 302"
    assert len(state.tokens) == 1  # asked once; the redirect's target never saw the token


def test_a_target_that_never_answers_costs_the_settle_time_not_writers_times_timeout():
    import socket  # noqa: PLC0415

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        started = time.monotonic()
        writers = {f"w{i}": 1 for i in range(40)}  # 40 x 5 s / 8 at a time = 25 s unbounded
        found = read_back(
            WRITES, f"http://127.0.0.1:{silent.getsockname()[1]}", writers, None, settle_s=3
        )
        took = time.monotonic() - started
    finally:
        silent.close()
    assert found.problem is not None
    assert took < 3 + 5 + 1  # the settle time and one request's timeout at the most
