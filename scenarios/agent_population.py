"""A population of simulated agents on the reference agent: each registers once, holds a
WebSocket, checks in every 30 s (+-10 %), reports every minute over HTTP and answers the tasks
the service pushes; after a failure it reconnects with exponential backoff and full jitter.

    stressbed run --scenario agent_population --runners 2

2,000 agents joining over 20 s, then staying a minute, 250 on each k6 VU. Judged on the
plateau: at least 99 % of the agents connected, check-ins at most 2 s late (p99), connects
within 2 s (p99). The building blocks (:func:`agent`) serve the reconnect storm scenarios too.
"""

from __future__ import annotations

from stressbed import Scenario, extract, gen, post
from stressbed.population import Agent, Commands, WebSocket, every, population, reconnect, send
from stressbed.thresholds import checkin_lateness, connect_time, connected

__all__ = ["agent", "scenario", "stack"]

REGISTER = post(
    "/v1/register",
    name="register",
    json={"agent_id": "{{agent_id}}", "host": "{{host}}", "attrs": {"os": "{{os}}"}},
    extract={"session": extract.json("session")},
)
CHANNEL = WebSocket(
    "/v1/channel",
    hello={"type": "hello", "agent_id": "{{agent_id}}", "session": "{{session}}"},
    welcome={"type": "welcome"},
    commands=Commands(
        {"type": "task"},
        answer={"type": "task_result", "id": "{{command.id}}", "ok": True},
        confirm={"type": "task_done"},
    ),
)
HEARTBEAT = send({"type": "heartbeat", "seq": "{{seq}}", "status": "ok"})
REPORT = post(
    "/v1/report",
    name="report",
    expect=202,
    json={
        "agent_id": "{{agent_id}}",
        "points": [{"ts": gen.timestamp(), "name": "cpu", "value": gen.uniform_float(0, 100)}],
    },
)


def agent(jitter: str = "full", *, base: str = "1s", cap: str = "30s") -> Agent:
    """The reference agent's simulated agent, reconnecting by backoff with ``jitter``."""
    return Agent(
        identity={"host": "node-{{agent_index}}", "os": gen.choice({"linux": 8, "windows": 2})},
        register=REGISTER,
        channel=CHANNEL,
        activities=[every("30s", HEARTBEAT, jitter="10%"), every("60s", REPORT, jitter="10%")],
        reconnect=reconnect.backoff(base, cap=cap, jitter=jitter),
    )


scenario = Scenario(
    "agent_population",
    description="2,000 agents holding a WebSocket each: register, check in, report, answer tasks",
    workloads=[population("agents", agent(), agents=2000, join="20s", lasting="1m", per_vu=250)],
    thresholds=[connected("> 99%"), checkin_lateness("p(99) < 2s"), connect_time("p(99) < 2s")],
)

#: The reference agent pushing a task to every channel every 10 s (off by default).
stack = {"target": {"env": {"STRESSBED_AGENT_CHANNEL_TASK_INTERVAL_S": "10"}}}
