"""The cluster's coordinator and runners, as processes on loopback: the same code a pod runs
(`python -m stressbed.runner ... --api-port P --result-stdout`, `python -m
stressbed.coordinator`), with real k6."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stressbed import Scenario, SharedIterations, Workload, extract, get, post, render
from stressbed.results.merge import merge
from stressbed.results.runner_result import RunnerResult
from stressbed.results.transport import read_document

from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def start_runner(
    bundle: Path, index: int, count: int, port: int, out: Path
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stressbed.runner",
            "--bundle",
            str(bundle),
            "--index",
            str(index),
            "--count",
            str(count),
            "--out",
            str(out / str(index)),
            "--api-port",
            str(port),
            "--result-stdout",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def coordinate(ports: list[int], ready_timeout: float) -> subprocess.CompletedProcess[str]:
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "stressbed.coordinator",
            "--runners",
            str(len(ports)),
            "--runner-urls",
            urls,
            "--ready-timeout",
            str(ready_timeout),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_coordinator_starts_pod_runners_as_one_fleet(server, tmp_path, monkeypatch):
    server.route("/login", body={"token": "t-1"})
    scenario = Scenario(
        "cluster",
        description="as in a cluster",
        setup=post("/login", extract={"token": extract.json("token")}),
        workloads=[
            Workload(
                "w",
                get("/work", headers={"Authorization": "Bearer {{token}}"}),
                SharedIterations(vus=4, iterations=30),
            )
        ],
    )
    bundle = render(scenario, tmp_path / "bundle").root
    monkeypatch.setenv("TARGET_URL", server.url)
    monkeypatch.setenv("K6_NO_USAGE_REPORT", "true")
    ports = free_ports(3)
    runners = [start_runner(bundle, i, 3, port, tmp_path / "out") for i, port in enumerate(ports)]
    try:
        done = coordinate(ports, ready_timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        said = events(done.stdout)
        assert sorted(e["index"] for e in said if e["event"] == "ready") == [0, 1, 2]
        assert [e["event"] for e in said][-2:] == ["setup", "started"]
        assert 0 <= said[-1]["skew_ms"] < 1000  # together (bench_fleet measures how close)
        outputs = [r.communicate(timeout=60)[0] for r in runners]
    finally:
        for r in runners:
            if r.poll() is None:
                r.kill()
                r.wait()
    # Each pod's log ends with its result document: what the backend collects and merges.
    results = [RunnerResult.from_dict(read_document(out) or {}) for out in outputs]
    assert [r.index for r in results] == [0, 1, 2]
    fleet = merge(results)
    assert fleet.aggregates["iterations"].total == 30
    paths = [r.path for r in server.received]
    assert paths.count("/login") == 1  # setup() once for the fleet
    assert {r.headers["Authorization"] for r in server.received if r.path == "/work"} == {
        "Bearer t-1"
    }


class PausedK6(BaseHTTPRequestHandler):
    """k6's REST API as a paused k6 with every VU initialised answers it."""

    def do_GET(self) -> None:
        body = json.dumps({"data": {"attributes": {"status": 4, "paused": True}}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.mark.parametrize("stuck", [0, 1])
def test_a_runner_that_never_gets_ready_fails_the_start_with_its_index(tmp_path, stuck):
    ready = ThreadingHTTPServer(("127.0.0.1", 0), PausedK6)
    threading.Thread(target=ready.serve_forever, daemon=True).start()
    with socket.socket() as listening:  # the stuck runner accepts and answers nothing
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        ports = [ready.server_address[1], listening.getsockname()[1]]
        if stuck == 0:
            ports.reverse()
        try:
            done = coordinate(ports, ready_timeout=2)
        finally:
            ready.shutdown()
            ready.server_close()
    assert done.returncode == 3
    said = events(done.stdout)
    assert {"event": "ready", "index": 1 - stuck} in said
    assert said[-1] == {
        "event": "failed",
        "reason": f"runner {stuck} was not ready within 2 s",
    }
