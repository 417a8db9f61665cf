"""What the reference agent has stored, read back per agent id, and what a SIGKILL loses:
acknowledged on queueing, the queue dies with the process; acknowledged once flushed, nothing."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from .helpers import AgentProcess, call

TOKEN = "agent-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POINT = {"ts": 1, "name": "cpu", "value": 1.5, "labels": {"host": "h1"}}


def _agent(sink, ack, **extra):
    process = AgentProcess(
        env={
            "STRESSBED_AGENT_TOKEN": TOKEN,
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": str(sink),
            "STRESSBED_AGENT_ACK": ack,
            # Flushed by time only after a minute: what "queued" holds is held until the kill.
            "STRESSBED_AGENT_FLUSH_INTERVAL_S": "60",
            "STRESSBED_AGENT_FLUSH_BATCH_POINTS": "100000",
            **extra,
        }
    )
    process.wait_listening()
    return process


def _report(url, agent, n):
    reply = call(url + "/v1/report", "POST", {"agent_id": agent, "points": [POINT] * n})
    assert reply.status == 202, reply.body
    return reply


def _points_in(sink):
    if not sink.exists():
        return {}
    counts: dict[str, int] = {}
    for line in sink.read_text().splitlines():
        batch = json.loads(line)
        counts[batch["agent_id"]] = counts.get(batch["agent_id"], 0) + len(batch["points"])
    return counts


def _kill(process):
    process.proc.send_signal(signal.SIGKILL)
    process.proc.communicate(timeout=10)


def test_acknowledged_before_flushing_a_kill_loses_the_queue(tmp_path):
    sink = tmp_path / "sink.jsonl"
    agent = _agent(sink, "queued")
    for _ in range(3):
        _report(agent.url, "a1", 4)
    assert call(agent.url + "/v1/agents/a1/stored", headers=AUTH).json()["stored"] == 0
    _kill(agent)
    assert _points_in(sink) == {}  # 12 points acknowledged, none stored


def test_acknowledged_once_flushed_a_kill_loses_nothing(tmp_path):
    sink = tmp_path / "sink.jsonl"
    agent = _agent(sink, "flushed")
    for n in (4, 5, 6):
        _report(agent.url, "a1", n)
    _report(agent.url, "a2", 2)
    _kill(agent)
    assert _points_in(sink) == {"a1": 15, "a2": 2}


def test_the_read_back_counts_what_every_replica_stored_across_restarts(tmp_path):
    sink = tmp_path / "sink.jsonl"
    first, second = _agent(sink, "flushed"), _agent(sink, "flushed")
    try:
        _report(first.url, "a1", 3)
        _report(second.url, "a1", 4)
        _kill(first)
        reply = call(second.url + "/v1/agents/a1/stored", headers=AUTH).json()
        assert (reply["agent_id"], reply["stored"]) == ("a1", 7)
        assert sum(reply["by_second"].values()) == 7
        assert all(second.isdigit() for second in reply["by_second"])
        third = _agent(sink, "flushed")  # a new replica reads what is already stored
        try:
            assert call(third.url + "/v1/agents/a1/stored", headers=AUTH).json()["stored"] == 7
            assert call(third.url + "/v1/agents/none/stored", headers=AUTH).json()["stored"] == 0
        finally:
            third.stop()
    finally:
        second.stop()


def test_concurrent_replicas_append_whole_lines(tmp_path):
    sink = tmp_path / "sink.jsonl"
    agents = [_agent(sink, "flushed"), _agent(sink, "flushed")]
    big = [POINT] * 900  # lines of ~50 kB: larger than a buffered writer's chunk

    def send(url, agent):
        for _ in range(10):
            _report(url, agent, len(big))

    try:
        workers = [
            threading.Thread(target=send, args=(a.url, f"w{i}")) for i, a in enumerate(agents)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert _points_in(sink) == {"w0": 9000, "w1": 9000}  # every line parses
    finally:
        for agent in agents:
            agent.stop()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403)],
)
def test_the_read_back_needs_the_agent_token(tmp_path, headers, status):
    agent = _agent(tmp_path / "sink.jsonl", "queued")
    try:
        assert call(agent.url + "/v1/agents/a1/stored", headers=headers).status == status
    finally:
        agent.stop()


def test_a_session_reads_back_its_own_agent_only(tmp_path):
    agent = _agent(tmp_path / "sink.jsonl", "flushed")
    try:
        session = call(agent.url + "/v1/login", "POST", {"agent_id": "a1"}, headers=AUTH)
        mine = {"Authorization": f"Bearer {session.json()['token']}"}
        assert call(agent.url + "/v1/agents/a1/stored", headers=mine).status == 200
        assert call(agent.url + "/v1/agents/a2/stored", headers=mine).status == 403
    finally:
        agent.stop()


def test_the_null_sink_has_no_read_back():
    agent = AgentProcess(env={"STRESSBED_AGENT_TOKEN": TOKEN})
    agent.wait_listening()
    try:
        reply = call(agent.url + "/v1/agents/a1/stored", headers=AUTH)
        assert reply.status == 409
        assert "read-back needs sink: file" in reply.json()["error"]
    finally:
        agent.stop()


def test_a_bad_ack_setting_is_refused_at_start(tmp_path):
    agent = AgentProcess(env={"STRESSBED_AGENT_ACK": "eventually"})
    _, err = agent.proc.communicate(timeout=30)
    code = agent.proc.returncode
    assert code == 2
    assert "ack: got 'eventually'; expected 'queued' or 'flushed'" in err


def test_a_sink_failure_hook_holds_writes_until_it_is_stopped(tmp_path):
    sink = tmp_path / "sink.jsonl"
    agent = _agent(
        sink,
        "queued",
        STRESSBED_AGENT_ADMIN_TOKEN="admin",
        STRESSBED_AGENT_FLUSH_INTERVAL_S="0.05",
        STRESSBED_AGENT_BREAKER_RESET_S="0.2",
    )
    admin = {"Authorization": "Bearer admin"}
    try:
        started = call(
            agent.url + "/admin/faults", "POST", {"kind": "sink_failure", "duration_s": 600},
            headers=admin,
        )  # fmt: skip
        assert started.status == 200
        _report(agent.url, "a1", 5)  # accepted into the queue: the sink fails it
        assert call(agent.url + "/v1/agents/a1/stored", headers=AUTH).json()["stored"] == 0
        assert call(agent.url + "/admin/faults/sink_failure", "DELETE").status == 403
        stopped = call(agent.url + "/admin/faults/sink_failure", "DELETE", headers=admin)
        assert stopped.json() == {"stopped": "sink_failure", "was_active": True}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _points_in(sink):
            time.sleep(0.05)
        assert _points_in(sink) == {"a1": 5}  # kept, then stored once the sink came back
        assert call(agent.url + "/admin/faults/nope", "DELETE", headers=admin).status == 404
    finally:
        agent.stop()
