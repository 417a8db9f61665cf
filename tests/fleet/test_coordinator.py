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

from stressbed import (
    ConstantVUs,
    Scenario,
    SharedIterations,
    Workload,
    error_rate,
    extract,
    get,
    post,
    render,
)
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
    bundle: Path, index: int, count: int, port: int, out: Path, *, control_port: int | None = None
) -> subprocess.Popen[str]:
    control = [] if control_port is None else ["--control-port", str(control_port)]
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
            *control,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def coordinate(
    ports: list[int], ready_timeout: float, *watching: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
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
            *watching,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
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


def test_the_coordinator_follows_the_fleet_and_stops_every_runner_on_a_fleet_wide_abort(
    server, tmp_path, monkeypatch
):
    server.route("/work", status=500)
    aborting = error_rate("< 5%", abort_on_fail=True)
    scenario = Scenario(
        "cluster",
        description="fails at once",
        workloads=[Workload("w", get("/work"), ConstantVUs(vus=2, duration="5m"))],
        thresholds=[aborting],
    )
    bundle = render(scenario, tmp_path / "bundle").root
    monkeypatch.setenv("TARGET_URL", server.url)
    monkeypatch.setenv("K6_NO_USAGE_REPORT", "true")
    *apis, control_0, control_1 = free_ports(4)
    controls = [control_0, control_1]
    runners = [
        start_runner(bundle, i, 2, port, tmp_path / "out", control_port=controls[i])
        for i, port in enumerate(apis)
    ]
    try:
        done = coordinate(
            apis,
            60,
            "--control-urls",
            ",".join(f"http://127.0.0.1:{p}" for p in controls),
            "--abort-thresholds",
            json.dumps([aborting.to_dict()]),
            "--watch-timeout",
            "240",
            timeout=300,
        )
        outputs = [r.communicate(timeout=60)[0] for r in runners]
    finally:
        for r in runners:
            if r.poll() is None:
                r.kill()
                r.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    said = events(done.stdout)
    kinds = [e["event"] for e in said]
    assert kinds.count("aborted") == 1
    (aborted,) = [e for e in said if e["event"] == "aborted"]
    assert (aborted["threshold"], aborted["expression"]) == ("http_req_failed", "rate<0.05")
    assert kinds.index("started") < kinds.index("aborted")
    assert said[-1] == {"event": "finished", "runners": 2}
    # Each progress line is the fleet's: both runners' requests, from what they served.
    lines = [e for e in said if e["event"] == "progress"]
    assert lines
    assert all(line["error_rate"] in (0.0, 1.0) for line in lines)
    # Stopped by the fleet: each runner ended well before its 5 minutes, not failed.
    results = [RunnerResult.from_dict(read_document(out) or {}) for out in outputs]
    assert [r.status.value for r in results] == ["stopped", "stopped"]
    # Each runner measured its k6's CPU, second by second (cores, never negative).
    assert any(r.cpu for r in results)
    assert all(0 <= cores < 64 for r in results for cores in r.cpu.values())
    assert all(r.ended_at - r.started_at < 240 for r in results)
    assert [r.returncode for r in runners] == [0, 0]
    fleet = merge(results)
    # What k6 completed (a request cut by the stop is the server's, not k6's), all failed.
    assert 0 < fleet.aggregates["http_reqs"].count <= len(server.received)
    assert fleet.aggregates["http_req_failed"].total == fleet.aggregates["http_reqs"].count


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
