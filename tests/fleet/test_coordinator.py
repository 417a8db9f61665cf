"""The cluster's coordinator and runners, as processes on loopback: the same code a pod runs
(`python -m stressbed.runner ... --api-port P --result-stdout`, `python -m
stressbed.coordinator`), with real k6."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
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
from stressbed.fleet import control
from stressbed.fleet.control import TOKEN_ENV
from stressbed.fleet.coordinator import coordinate as coordinate_here
from stressbed.results.aggregates import Window
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
    bundle: Path,
    index: int,
    count: int,
    port: int,
    out: Path,
    *,
    control_port: int | None = None,
    token: str = "",
) -> subprocess.Popen[str]:
    """A runner as a pod runs it; with ``control_port``, its endpoint answers ``token``,
    handed over in the environment as the pod's Secret does."""
    control = [] if control_port is None else ["--control-port", str(control_port)]
    env = {**os.environ, TOKEN_ENV: token} if token else None
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
        env=env,
    )


def coordinate(
    ports: list[int],
    ready_timeout: float,
    *watching: str,
    timeout: float = 120,
    token: str = "",
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
        env={**os.environ, TOKEN_ENV: token} if token else None,
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
    token = secrets.token_urlsafe(32)
    runners = [
        start_runner(bundle, i, 2, port, tmp_path / "out", control_port=controls[i], token=token)
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
            token=token,
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
    # Each second the whole fleet closed, said once, in order (what the command's live page
    # and endpoint are drawn from); the runners' results bring the seconds after them.
    seconds = [e for e in said if e["event"] == "second"]
    assert [e["t"] for e in seconds] == sorted({e["t"] for e in seconds})
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
    # The token the coordinator stopped them with is in no log and no results file.
    assert token not in done.stdout + done.stderr + "".join(outputs)
    assert not files_holding(tmp_path / "out", token)
    fleet = merge(results)
    # What k6 completed (a request cut by the stop is the server's, not k6's), all failed.
    assert 0 < fleet.aggregates["http_reqs"].count <= len(server.received)
    assert fleet.aggregates["http_req_failed"].total == fleet.aggregates["http_reqs"].count
    in_seconds = sum(Window.from_dict(e["window"]).requests for e in seconds)
    assert in_seconds <= fleet.aggregates["http_reqs"].count
    for e in seconds:  # each one both runners' second, merged: what they measured in it
        assert Window.from_dict(e["window"]).requests == sum(
            r.windows[e["t"]].requests for r in results if e["t"] in r.windows
        )


def files_holding(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def process_of(pid: int, what: str) -> bytes:
    """``/proc/<pid>/<what>`` (cmdline, environ): b"" once the process is gone."""
    try:
        return (Path("/proc") / str(pid) / what).read_bytes()
    except OSError:
        return b""


def children_of(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            stat = process_of(int(proc.name), "stat").decode(errors="replace")
            if stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(proc.name))
    return found


def ask(url: str, method: str, authorization: str | None) -> int:
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method)
    if authorization is not None:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_a_running_runners_control_endpoint_obeys_only_the_runs_token(
    server, tmp_path, monkeypatch
):
    scenario = Scenario(
        "cluster",
        description="runs until stopped",
        workloads=[Workload("w", get("/work"), ConstantVUs(vus=1, duration="5m"))],
    )
    bundle = render(scenario, tmp_path / "bundle").root
    monkeypatch.setenv("TARGET_URL", server.url)
    monkeypatch.setenv("K6_NO_USAGE_REPORT", "true")
    api, port = free_ports(2)
    token = secrets.token_urlsafe(32)
    runner = start_runner(bundle, 0, 1, api, tmp_path / "out", control_port=port, token=token)
    url = f"http://127.0.0.1:{port}"
    try:
        said: list[dict[str, object]] = []
        assert coordinate_here([f"http://127.0.0.1:{api}"], 60, 60, said.append) == 0, said
        # Another pod, without the token (or with a guess), can neither stop it nor read it.
        for authorization in (None, "Bearer guess", f"Bearer {token[:-1]}"):
            assert ask(f"{url}/v1/stop", "POST", authorization) == 401
            assert ask(f"{url}/v1/snapshot?since=0", "GET", authorization) == 401
        before = len(server.received)
        time.sleep(2)
        assert runner.poll() is None
        assert len(server.received) > before  # its k6 still loads the target
        assert control.snapshot(url, 0, token)["running"] is True
        # The token is in no process's arguments, and not in k6's environment (__ENV).
        (k6,) = [pid for pid in children_of(runner.pid) if b"run" in process_of(pid, "cmdline")]
        for pid in (runner.pid, k6):
            assert token.encode() not in process_of(pid, "cmdline")
        assert TOKEN_ENV.encode() not in process_of(k6, "environ")
        assert process_of(k6, "environ")  # read, not gone: the check above means something
        control.stop(url, token)  # the coordinator's stop, with the token: obeyed
        output = runner.communicate(timeout=60)[0]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 0
    (result,) = [RunnerResult.from_dict(read_document(output) or {})]
    assert result.status.value == "stopped"
    assert token not in output
    assert not files_holding(tmp_path / "out", token)


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
