"""The reference agent over a real socket: endpoints, errors, auth, probes, overload, drain."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from .helpers import AgentProcess, call

TOKEN = "agent-token-for-tests"
POINT = {"ts": 1, "name": "cpu", "value": 1.5, "labels": {"host": "h1"}}


@pytest.fixture
def agent():
    process = AgentProcess(env={"STRESSBED_AGENT_TOKEN": TOKEN})
    process.wait_listening()
    yield process
    process.stop()


def test_report_heartbeat_and_agents(agent):
    reply = call(agent.url + "/v1/report", "POST", {"agent_id": "a1", "points": [POINT] * 3})
    assert (reply.status, reply.json()) == (202, {"accepted": 3})
    assert reply.headers["X-Request-Id"]
    reply = call(agent.url + "/v1/heartbeat", "POST", {"agent_id": "a1", "status": "ok"})
    assert reply.status == 200
    assert call(agent.url + "/v1/agents").json() == {
        "agents": [{"agent_id": "a1", "status": "ok"}],
        "count": 1,
    }


def test_tasks_need_a_token_and_run(agent):
    body = {"type": "checksum", "args": {"data": "abc"}, "timeout_s": 5}
    assert call(agent.url + "/v1/tasks", "POST", body).status == 401
    assert (
        call(
            agent.url + "/v1/tasks", "POST", body, headers={"Authorization": "Bearer wrong"}
        ).status
        == 403
    )
    reply = call(
        agent.url + "/v1/tasks", "POST", body, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert reply.status == 202
    task = reply.json()["id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        state = call(
            f"{agent.url}/v1/tasks/{task}", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        if state["state"] == "done":
            break
        time.sleep(0.05)
    assert state["result"] == {
        "digest": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    }
    unknown = call(
        agent.url + "/v1/tasks",
        "POST",
        {"type": "shell", "args": {"cmd": "ls"}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert unknown.status == 400
    assert unknown.json()["error"] == "type: expected one of checksum, echo, sleep"


def test_login_sessions_authenticate_tasks(agent):
    reply = call(
        agent.url + "/v1/login",
        "POST",
        {"agent_id": "a1"},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert reply.status == 200
    session = reply.json()["token"]
    submitted = call(
        agent.url + "/v1/tasks",
        "POST",
        {"type": "echo", "args": {"x": 1}},
        headers={"Authorization": f"Bearer {session}"},
    )
    assert submitted.status == 202
    # A session cannot log in again: only the agent token can.
    assert (
        call(
            agent.url + "/v1/login",
            "POST",
            {"agent_id": "a1"},
            headers={"Authorization": f"Bearer {session}"},
        ).status
        == 403
    )


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "message"),
    [
        (b"{not json", "application/json", 400, "body: not valid JSON"),
        (b'{"agent_id": "a"}', "text/plain", 415, "Content-Type: got 'text/plain'"),
        (
            b'{"agent_id": "a", "points": []}',
            "application/json",
            400,
            "points: expected a non-empty list",
        ),
        (b'{"agent_id": 5, "points": [1]}', "application/json", 400, "agent_id: expected a string"),
        (
            b'{"agent_id": "a", "points": [{"ts": 1, "name": "x", "value": 1e999}]}',
            "application/json",
            400,
            "points[0].value: expected a finite number",
        ),
        (
            b'{"agent_id": "a", "points": [{"ts": 1, "name": "x", "value": ' + b"9" * 5000 + b"}]}",
            "application/json",
            400,
            "body: cannot be decoded",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "body: cannot be decoded"),
        (
            b'{"agent_id": "a", "points": [{"ts": true, "name": "x", "value": 1}]}',
            "application/json",
            400,
            "points[0].ts: expected a number",
        ),
    ],
)
def test_bad_bodies_get_a_4xx_naming_the_problem(agent, raw, content_type, status, message):
    reply = call(agent.url + "/v1/report", "POST", raw=raw, headers={"Content-Type": content_type})
    assert reply.status == status
    assert reply.json()["error"].startswith(message)


def test_oversize_bodies_and_unknown_routes_are_json_errors(agent):
    big = json.dumps({"agent_id": "a", "points": [POINT] * 20_000}).encode()
    reply = call(
        agent.url + "/v1/report", "POST", raw=big, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 413
    assert "error" in reply.json()
    assert call(agent.url + "/nope").status == 404
    assert call(agent.url + "/v1/report").status == 405


def test_probes_and_metrics(agent):
    assert call(agent.url + "/healthz").json() == {"status": "ok"}
    assert call(agent.url + "/readyz").json() == {"ready": True}
    call(agent.url + "/v1/report", "POST", {"agent_id": "a1", "points": [POINT]})
    text = call(agent.url + "/metrics").body.decode()
    for name in (
        "agent_requests_total",
        "agent_request_duration_seconds_bucket",
        "agent_queue_points",
        "agent_points_accepted_total",
        "agent_circuit_breaker_state",
        "agent_in_flight_requests",
        "agent_process_max_rss_bytes",
        "process_resident_memory_bytes",
    ):
        assert name in text, name
    assert 'agent_requests_total{route="/v1/report",status="202"} 1.0' in text


def test_fault_hooks_are_off_without_an_admin_token(agent):
    reply = call(agent.url + "/admin/faults", "POST", {"kind": "crash"})
    assert reply.status == 404
    assert agent.proc.poll() is None


def test_readiness_starts_false_and_a_full_queue_sheds_then_recovers():
    process = AgentProcess(
        env={
            "STRESSBED_AGENT_STARTUP_DELAY_S": "1",
            "STRESSBED_AGENT_QUEUE_MAX_POINTS": "100",
            "STRESSBED_AGENT_ADMIN_TOKEN": "admin",
            "STRESSBED_AGENT_BREAKER_RESET_S": "0.5",
            "STRESSBED_AGENT_SINK_RETRIES": "0",
            "STRESSBED_AGENT_BREAKER_FAILURES": "1",
        }
    )
    try:
        process.wait_listening()
        assert call(process.url + "/readyz").json() == {"ready": False, "reason": "starting"}
        time.sleep(1.2)
        assert call(process.url + "/readyz").status == 200
        # A sink that fails opens the breaker: the queue fills instead of draining.
        fault = call(
            process.url + "/admin/faults",
            "POST",
            {"kind": "sink_failure", "duration_s": 2},
            headers={"Authorization": "Bearer admin"},
        )
        assert fault.status == 200
        statuses = [
            call(
                process.url + "/v1/report", "POST", {"agent_id": "a", "points": [POINT] * 10}
            ).status
            for _ in range(15)
        ]
        assert statuses[:9] == [202] * 9
        assert statuses[-1] == 429
        shed = call(process.url + "/v1/report", "POST", {"agent_id": "a", "points": [POINT] * 10})
        assert int(shed.headers["Retry-After"]) >= 1
        assert call(process.url + "/readyz").json() == {
            "ready": False,
            "reason": "queue above high watermark",
        }
        # The flusher tries the sink within its interval and opens the breaker (or half-opens
        # it while trying again).
        opened = re.compile(r"^agent_circuit_breaker_state [12]\.0$", re.M)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if opened.search(call(process.url + "/metrics").body.decode()):
                break
            time.sleep(0.05)
        assert opened.search(call(process.url + "/metrics").body.decode())
        # The sink comes back: the breaker half-opens, closes, the queue drains, readiness returns.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and call(process.url + "/readyz").status != 200:
            time.sleep(0.1)
        assert call(process.url + "/readyz").status == 200
        assert (
            call(process.url + "/v1/report", "POST", {"agent_id": "a", "points": [POINT]}).status
            == 202
        )
        assert "agent_circuit_breaker_state 0.0" in call(process.url + "/metrics").body.decode()
    finally:
        process.stop()


def test_sigterm_drains_in_flight_work_and_exits_0(tmp_path):
    sink = tmp_path / "sink.jsonl"
    process = AgentProcess(
        env={
            "STRESSBED_AGENT_ADMIN_TOKEN": "admin",
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": str(sink),
        }
    )
    process.wait_listening()
    call(
        process.url + "/admin/faults",
        "POST",
        {"kind": "latency", "ms": 700, "duration_s": 30},
        headers={"Authorization": "Bearer admin"},
    )
    replies: list[int] = []
    worker = threading.Thread(
        target=lambda: replies.append(
            call(
                process.url + "/v1/report", "POST", {"agent_id": "slow", "points": [POINT] * 5}
            ).status
        )
    )
    worker.start()
    time.sleep(0.3)  # the request is in flight, held by the latency fault
    process.proc.send_signal(15)
    time.sleep(0.1)
    assert call(process.url + "/readyz").json() == {"ready": False, "reason": "draining"}
    process.proc.send_signal(15)  # a repeated SIGTERM does not cut the drain short
    worker.join(timeout=10)
    code, err = process.stop()
    assert replies == [202]
    assert code == 0
    lines = [json.loads(line) for line in sink.read_text().splitlines()]
    assert sum(len(line["points"]) for line in lines) == 5
    assert all(
        "request_id" in json.loads(line) for line in err.splitlines() if line.startswith("{")
    )


def _metric(url: str, name: str) -> float:
    for line in call(url + "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_fault_hooks_inject_what_they_say():
    process = AgentProcess(env={"STRESSBED_AGENT_ADMIN_TOKEN": "admin"})
    process.wait_listening()
    admin = {"Authorization": "Bearer admin"}
    try:
        faults = process.url + "/admin/faults"
        assert (
            call(faults, "POST", {"kind": "errors"}, headers={"Authorization": "Bearer x"}).status
            == 403
        )
        assert call(faults, "POST", {"kind": "explode"}, headers=admin).status == 400
        assert call(faults, "POST", {"kind": "latency", "ms": -1}, headers=admin).status == 400

        call(
            faults,
            "POST",
            {"kind": "errors", "rate": 1, "status": 503, "duration_s": 1},
            headers=admin,
        )
        reply = call(process.url + "/v1/report", "POST", {"agent_id": "a", "points": [POINT]})
        assert (reply.status, reply.json()) == (503, {"error": "injected fault"})
        assert call(process.url + "/healthz").status == 200  # probes are never faulted

        call(faults, "POST", {"kind": "latency", "ms": 2000, "duration_s": 1}, headers=admin)
        time.sleep(1.2)  # the error fault has ended; the latency one too
        started = time.monotonic()
        assert call(process.url + "/v1/agents").status == 200
        assert time.monotonic() - started < 1.5  # not held the 2 s the fault would hold it

        call(faults, "POST", {"kind": "latency", "ms": 300, "duration_s": 5}, headers=admin)
        started = time.monotonic()
        call(process.url + "/v1/agents")
        assert time.monotonic() - started >= 0.3

        call(
            faults,
            "POST",
            {"kind": "flap_readiness", "period_s": 0.2, "duration_s": 5},
            headers=admin,
        )
        seen = set()
        for _ in range(20):
            seen.add(call(process.url + "/readyz").status)
            time.sleep(0.05)
        assert seen == {200, 503}

        before = _metric(process.url, "process_resident_memory_bytes")
        call(faults, "POST", {"kind": "memory", "mb": 64, "duration_s": 5}, headers=admin)
        assert _metric(process.url, "process_resident_memory_bytes") - before > 50 * 2**20

        call(faults, "POST", {"kind": "crash", "duration_s": 1}, headers=admin)
        process.proc.wait(timeout=5)
        assert process.proc.returncode == -9
    finally:
        process.stop()


def test_rate_limit_is_per_client():
    process = AgentProcess(
        env={"STRESSBED_AGENT_RATE_LIMIT_PER_S": "0.1", "STRESSBED_AGENT_RATE_LIMIT_BURST": "3"}
    )
    process.wait_listening()
    try:
        body = {"agent_id": "a", "points": [POINT]}
        statuses = [
            call(process.url + "/v1/report", "POST", body, headers={"X-Agent-Id": "noisy"}).status
            for _ in range(5)
        ]
        assert statuses == [202, 202, 202, 429, 429]
        other = call(process.url + "/v1/report", "POST", body, headers={"X-Agent-Id": "quiet"})
        assert other.status == 202
    finally:
        process.stop()


def test_bad_configuration_exits_2_with_one_line(tmp_path):
    process = AgentProcess(env={"STRESSBED_AGENT_QUEUE_MAX_POINTS": "-1"})
    process.proc.wait(timeout=20)
    code, err = process.stop()
    assert code == 2
    assert err == "stressbed-agent: error: queue_max_points: got -1; expected an integer >= 1\n"


def test_too_many_requests_in_flight_are_shed_at_once():
    process = AgentProcess(
        env={"STRESSBED_AGENT_MAX_IN_FLIGHT": "3", "STRESSBED_AGENT_ADMIN_TOKEN": "admin"}
    )
    process.wait_listening()
    try:
        call(
            process.url + "/admin/faults",
            "POST",
            {"kind": "latency", "ms": 1000, "duration_s": 5},
            headers={"Authorization": "Bearer admin"},
        )
        statuses: list[int] = []
        workers = [
            threading.Thread(
                target=lambda: statuses.append(call(process.url + "/v1/agents", timeout=10).status)
            )
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        # Until the three are held by the latency fault (the gauge counts this scrape too).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            scrape = call(process.url + "/metrics").body.decode()
            held = re.search(r"^agent_in_flight_requests (\S+)$", scrape, re.M)
            if held and float(held.group(1)) >= 4:
                break
            time.sleep(0.02)
        started = time.monotonic()
        shed = call(process.url + "/v1/agents")
        assert shed.status == 429
        assert shed.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 0.9  # at once, not after the 1 s the others wait
        assert call(process.url + "/healthz").status == 200  # probes are never shed
        for worker in workers:
            worker.join()
        assert sorted(statuses) == [200, 200, 200]
    finally:
        process.stop()
