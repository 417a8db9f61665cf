"""``--notify``: a real run's alerts posted to a webhook receiver on loopback, one document per
event, in order, in Alertmanager's webhook shape with the run's identity; credentials from the
environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ..conftest import needs_k6

TOKEN = "notify-token-0f3c9a"  # a made-up credential

#: Half the requests fail (503): the error-rate threshold fails fleet-wide and aborts the run.
FAILING = """
from stressbed import *
from stressbed.thresholds import error_rate
scenario = Scenario('alerts', description='alerts', workloads=[
    Workload('ok', get('/ok', name='ok'), ConstantArrivalRate(rate=20, duration='30s',
                                                             pre_allocated_vus=4)),
    Workload('bad', get('/fail', name='fail'), ConstantArrivalRate(rate=20, duration='30s',
                                                                  pre_allocated_vus=4))],
    thresholds=[error_rate('< 5%', abort_on_fail=True, delay='4s')])
"""
PASSING = """
from stressbed import *
scenario = Scenario('quiet', description='quiet', workloads=[
    Workload('ok', get('/ok', name='ok'), ConstantArrivalRate(rate=10, duration='3s',
                                                             pre_allocated_vus=2))])
"""


class Receiver:
    """A webhook receiver on loopback: each POST's headers and JSON body, in order."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        lock = threading.Lock()
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    posts.append((dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    try:
        yield made
    finally:
        made.close()


def run(
    tmp_path: Path, target: str, scenario: str, *args: str, seconds: str = "3s"
) -> subprocess.CompletedProcess:
    (tmp_path / "s.py").write_text(scenario)
    return subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--scenario", str(tmp_path / "s.py"),
         "--target-url", target, "--results", str(tmp_path / "r"), "--duration", seconds,
         *args],
        capture_output=True, text=True, timeout=180, check=False,
        # CI=true: nothing served, and still notified.
        env={**os.environ, "K6_NO_USAGE_REPORT": "true", "CI": "true",
             "STRESSBED_NOTIFY_BEARER_TOKEN": TOKEN},
    )  # fmt: skip


@needs_k6
def test_a_failing_threshold_the_abort_and_the_end_are_posted_in_order(server, receiver, tmp_path):
    server.route("/fail", status=503)
    done = run(tmp_path, server.url, FAILING, "--notify", receiver.url, seconds="30s")
    assert done.returncode == 1, done.stderr  # a failed threshold
    assert "stressbed: notify: 3 sent" in done.stderr
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["live"]["notify"] == {"sent": 3, "not_delivered": 0, "last_error": None}
    documents = [body for _, body in receiver.posts]
    assert [d["stressbed"]["event"] for d in documents] == ["threshold-failed", "aborted", "ended"]
    assert [d["stressbed"]["seq"] for d in documents] == [1, 2, 3]
    for headers, document in receiver.posts:
        assert headers["Authorization"] == f"Bearer {TOKEN}"
        assert headers["Content-Type"] == "application/json"
        # Alertmanager's webhook, version 4: one alert, labelled with the run's identity.
        assert document["version"] == "4"
        (alert,) = document["alerts"]
        assert alert["labels"]["run_id"] == summary["run_id"]
        assert alert["labels"]["scenario"] == "alerts"
        assert document["commonLabels"] == alert["labels"]
        assert alert["status"] == document["status"]
        assert alert["startsAt"].endswith("Z")
    failed, aborted, ended = documents
    assert failed["status"] == "firing"
    assert failed["alerts"][0]["labels"]["alertname"] == "StressbedThresholdFailed"
    assert failed["alerts"][0]["labels"]["threshold"] == "http_req_failed: rate<0.05"
    assert aborted["alerts"][0]["labels"]["alertname"] == "StressbedRunAborted"
    assert aborted["alerts"][0]["labels"]["reason"] == "aborted"
    assert ended["alerts"][0]["labels"] | {"verdict": "fail"} == ended["alerts"][0]["labels"]
    assert ended["status"] == "firing"
    assert ended["stressbed"]["exit_code"] == 1
    # The credential is in the header only: not in argv, the output or a results file.
    assert TOKEN not in done.stderr + done.stdout
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


@needs_k6
def test_a_run_that_passes_posts_its_end_resolved(server, receiver, tmp_path):
    done = run(tmp_path, server.url, PASSING, "--notify", receiver.url)
    assert done.returncode == 0, done.stderr
    assert "stressbed: live:" not in done.stderr  # CI=true: nothing served unless asked
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["settings"]["live_url"] is None
    ((_, ended),) = receiver.posts
    assert ended["stressbed"]["event"] == "ended"
    assert ended["status"] == "resolved"
    assert ended["alerts"][0]["labels"]["verdict"] == "pass"
    assert ended["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("ftp://example.invalid/hook", "--notify: got 'ftp://example.invalid/hook'; expected"),
        ("https://u:secret@example.invalid/hook", "--notify: got '(a URL with credentials)'"),
    ],
)
def test_a_bad_notify_url_is_one_line_and_exit_2_before_anything_runs(tmp_path, given, says):
    done = run(tmp_path, "http://127.0.0.1:9", PASSING, "--notify", given)
    assert done.returncode == 2, done.stderr
    errors = [x for x in done.stderr.splitlines() if x.startswith("stressbed: error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"stressbed: error: {says}"), errors
    assert "secret" not in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()
