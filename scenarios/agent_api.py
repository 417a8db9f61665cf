"""Requests of the reference agent's HTTP API (agent/), as building blocks for scenarios.

The API these requests expect (the reference agent implements it):

    POST /v1/login      {"agent_id"} + bearer agent token  -> 200 {"token", "expires_in"}
    POST /v1/report     {"agent_id", "points": [{"ts", "name", "value", "labels"}]}
                                                            -> 202 {"accepted": n}
    POST /v1/heartbeat  {"agent_id", "status"}              -> 200 {"ttl_s": n}
    POST /v1/tasks      {"type", "args", "timeout_s"} + bearer token
                                                            -> 202 {"id", "state"}
    GET  /v1/tasks/{id} + bearer token                      -> 200 {"id", "state", "result"}

Every builder reads the variables in :data:`AGENT_VARIABLES` (an agent id and host row per VU,
the agent token from the environment); a scenario using them passes those variables on.
"""

from __future__ import annotations

from pathlib import Path

from stressbed import check, extract, gen, get, post
from stressbed.scenario.http import Request

__all__ = [
    "AGENT_VARIABLES",
    "NODES_CSV",
    "heartbeat",
    "login",
    "report",
    "submit_task",
    "task_status",
]

NODES_CSV = Path(__file__).parent / "data" / "nodes.csv"

#: The variables every request here may read. ``agent_id`` and ``node`` are fixed per VU, so
#: each virtual user behaves like one agent on one host across its iterations.
AGENT_VARIABLES: dict[str, object] = {
    "agent_id": gen.per_vu(gen.uuid4()),
    "node": gen.per_vu(gen.rows(NODES_CSV, mode="random")),
    "agent_token": gen.secret("STRESSBED_AGENT_TOKEN"),
}

_METRIC_NAMES = {
    "cpu.util": 4,
    "mem.used": 3,
    "disk.io": 2,
    "net.rx": 2,
    "net.tx": 2,
    "proc.count": 1,
}


def report(*, max_points: int = 20) -> Request:
    """A batch of 1..max_points metric points from this VU's agent."""
    point = {
        "ts": gen.timestamp("ms"),
        "name": gen.choice(_METRIC_NAMES),
        "value": gen.normal(50.0, 15.0, minimum=0.0, maximum=100.0),
        "labels": {"host": "{{node.hostname}}", "region": "{{node.region}}", "os": "{{node.os}}"},
    }
    return post(
        "/v1/report",
        name="report",
        json={
            "agent_id": "{{agent_id}}",
            "points": gen.repeat(gen.uniform_int(1, max_points), point),
        },
        expect=202,
        checks=[check.status(202)],
    )


def heartbeat() -> Request:
    return post(
        "/v1/heartbeat",
        name="heartbeat",
        json={
            "agent_id": "{{agent_id}}",
            "status": gen.choice({"ok": 95, "degraded": 4, "failing": 1}),
        },
        expect=200,
        checks=[check.status(200)],
    )


def login() -> Request:
    """Exchange the agent token for a session token, extracted into ``session``."""
    return post(
        "/v1/login",
        name="login",
        headers={"Authorization": "Bearer {{agent_token}}"},
        json={"agent_id": "{{agent_id}}"},
        expect=200,
        checks=[check.status(200)],
        extract={"session": extract.json("token")},
    )


def submit_task(*, token: str = "agent_token") -> Request:
    """Submit an allow-listed task; its id is extracted into ``task_id``."""
    return post(
        "/v1/tasks",
        name="submit_task",
        headers={"Authorization": "Bearer {{" + token + "}}"},
        json={
            "type": "checksum",
            "args": {"data": gen.random_string(64), "algorithm": "sha256"},
            "timeout_s": 5,
        },
        expect=202,
        checks=[check.status(202), check.json_exists("id")],
        extract={"task_id": extract.json("id")},
    )


def task_status(*, token: str = "agent_token") -> Request:
    return get(
        "/v1/tasks/{{task_id}}",
        name="task_status",
        headers={"Authorization": "Bearer {{" + token + "}}"},
        expect=200,
        checks=[check.status(200), check.json_exists("state")],
    )
