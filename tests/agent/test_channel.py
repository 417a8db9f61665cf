"""The agent's WebSocket channel over real sockets: registration and sessions across replicas,
hello/welcome, heartbeats, pushed tasks, the connection limit, the drain, the metrics."""

from __future__ import annotations

import asyncio
import re
import resource
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from .helpers import AgentProcess, call

TOKEN = "agent-token-for-tests"
ADMIN = {"Authorization": "Bearer admin"}


@pytest.fixture
def agent():
    process = AgentProcess(
        env={"STRESSBED_AGENT_TOKEN": TOKEN, "STRESSBED_AGENT_ADMIN_TOKEN": "admin"}
    )
    process.wait_listening()
    yield process
    process.stop()


def run(test: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as session:
            return await asyncio.wait_for(test(session), 30)

    return asyncio.run(main())


def ws_url(process: AgentProcess) -> str:
    return process.url.replace("http://", "ws://") + "/v1/channel"


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.TEXT, msg
    found: dict[str, Any] = msg.json()
    return found


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    msg = await ws.receive(timeout=10)
    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
    return msg.data, msg.extra


async def hello(client: aiohttp.ClientSession, url: str, agent: str, **extra: Any) -> Any:
    ws = await client.ws_connect(url)
    await ws.send_json({"type": "hello", "agent_id": agent, **extra})
    return ws, await receive(ws)


def metric(url: str, name: str) -> float | None:
    for line in call(url + "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_register_counts_duplicates_and_lists_ids(agent):
    first = call(agent.url + "/v1/register", "POST", {"agent_id": "a1", "host": "h1"})
    assert first.status == 200
    assert first.json()["agent_id"] == "a1"
    assert first.json()["duplicate"] is False
    assert re.fullmatch(r"YTE\.[0-9a-f]{64}", first.json()["session"])  # base64url("a1")
    again = call(agent.url + "/v1/register", "POST", {"agent_id": "a1", "attrs": {"os": "x"}})
    assert again.json() == {**first.json(), "duplicate": True}
    call(agent.url + "/v1/register", "POST", {"agent_id": "a2"})
    assert call(agent.url + "/v1/registrations").json() == {
        "count": 2,
        "registrations": 3,
        "duplicates": 1,
    }
    assert call(agent.url + "/v1/registrations?ids=1").json()["ids"] == {"a1": 2, "a2": 1}
    for body, message in (
        ({"agent_id": ""}, "agent_id: expected a string of 1..200 characters"),
        ({"agent_id": "a", "host": 5}, "host: expected a string"),
        ({"agent_id": "a", "attrs": []}, "attrs: expected an object"),
    ):
        reply = call(agent.url + "/v1/register", "POST", body)
        assert (reply.status, reply.json()) == (400, {"error": message})
    assert metric(agent.url, "agent_registrations_total") == 3
    assert metric(agent.url, "agent_duplicate_registrations_total") == 1


def test_a_session_verifies_on_another_replica_with_the_same_token(agent):
    other = AgentProcess(env={"STRESSBED_AGENT_TOKEN": TOKEN})
    stranger = AgentProcess(env={"STRESSBED_AGENT_TOKEN": "another-token"})
    try:
        other.wait_listening()
        stranger.wait_listening()
        session = call(agent.url + "/v1/register", "POST", {"agent_id": "a1"}).json()["session"]

        async def test(client: aiohttp.ClientSession) -> None:
            ws, welcome = await hello(client, ws_url(other), "a1", session=session)
            assert welcome == {"type": "welcome", "agent_id": "a1"}
            await ws.close()
            # Someone else's session, or one keyed by another token: closed with 1008.
            for url, agent_id in ((ws_url(other), "a2"), (ws_url(stranger), "a1")):
                ws = await client.ws_connect(url)
                await ws.send_json({"type": "hello", "agent_id": agent_id, "session": session})
                assert await closed_with(ws) == (1008, "session not accepted")

        run(test)
        # A hello with a session is no registration.
        assert call(other.url + "/v1/registrations").json()["registrations"] == 0
        assert metric(stranger.url, 'agent_channel_refused_total{reason="session"}') == 1
    finally:
        other.stop()
        stranger.stop()


def test_a_hello_without_session_registers_over_the_channel(agent):
    async def test(client: aiohttp.ClientSession) -> None:
        ws, welcome = await hello(client, ws_url(agent), "a1")
        assert welcome["duplicate"] is False
        session = welcome.pop("session")
        assert welcome == {"type": "welcome", "agent_id": "a1", "duplicate": False}
        await ws.close()
        ws, welcome = await hello(client, ws_url(agent), "a1")
        assert (welcome["duplicate"], welcome["session"]) == (True, session)
        await ws.close()
        ws, welcome = await hello(client, ws_url(agent), "a1", session=session)
        assert welcome == {"type": "welcome", "agent_id": "a1"}
        await ws.close()

    run(test)
    assert call(agent.url + "/v1/registrations?ids=1").json() == {
        "count": 1,
        "registrations": 2,
        "duplicates": 1,
        "ids": {"a1": 2},
    }


@pytest.mark.parametrize(
    ("first", "close"),
    [
        ({"type": "heartbeat", "seq": 1, "status": "ok"}, "expected a hello first"),
        ({"type": "hello"}, "hello: agent_id: expected a string of 1..200 characters"),
        ({"type": "hello", "agent_id": "a1", "session": None}, "session not accepted"),
        ({"type": "hello", "agent_id": "a1", "session": "YTE.00"}, "session not accepted"),
        ("not json", "expected a hello first"),
    ],
)
def test_anything_but_a_good_hello_first_is_closed_with_1008(agent, first, close):
    async def test(client: aiohttp.ClientSession) -> None:
        ws = await client.ws_connect(ws_url(agent))
        if isinstance(first, str):
            await ws.send_str(first)
        else:
            await ws.send_json(first)
        assert await closed_with(ws) == (1008, close)

    run(test)


def test_a_frame_over_64_kib_closes_the_channel_with_1009(agent):
    async def test(client: aiohttp.ClientSession) -> None:
        ws, _ = await hello(client, ws_url(agent), "a1")
        await ws.send_str("x" * ((1 << 16) + 1))
        assert (await closed_with(ws))[0] == 1009

    run(test)


def test_heartbeats_are_acknowledged_and_list_the_agent(agent):
    async def test(client: aiohttp.ClientSession) -> None:
        ws, _ = await hello(client, ws_url(agent), "a1")
        await ws.send_json({"type": "heartbeat", "seq": 7, "status": "degraded"})
        assert await receive(ws) == {"type": "heartbeat_ack", "seq": 7}
        assert call(agent.url + "/v1/agents").json() == {
            "agents": [{"agent_id": "a1", "status": "degraded"}],
            "count": 1,
        }
        # Unknown types and bad messages get an error; the channel stays open.
        for sent, error in (
            ({"type": "dance"}, "type: got 'dance'; expected heartbeat or task_result"),
            ({"type": "heartbeat", "seq": "x"}, "heartbeat: seq: expected a number"),
            ({"type": "heartbeat", "seq": 1, "status": "?"}, "heartbeat: status: expected ok"),
            ({"type": "task_result", "id": "nope"}, "task_result: id: no task 'nope' pending"),
            ({"type": "hello", "agent_id": "a2"}, "hello: this channel is agent 'a1''s"),
        ):
            await ws.send_json(sent)
            reply = await receive(ws)
            assert reply["type"] == "error"
            assert reply["error"].startswith(error)
        await ws.send_bytes(b"\x00")
        assert (await receive(ws))["error"] == "expected a JSON object in a text frame"
        await ws.send_json({"type": "heartbeat", "seq": 8})
        assert await receive(ws) == {"type": "heartbeat_ack", "seq": 8}
        await ws.close()

    run(test)
    text = call(agent.url + "/metrics").body.decode()
    assert 'agent_channel_messages_total{direction="in",type="heartbeat"} 4.0' in text
    assert 'agent_channel_messages_total{direction="in",type="other"} 2.0' in text
    assert 'agent_channel_messages_total{direction="out",type="heartbeat_ack"} 2.0' in text
    assert 'agent_channel_messages_total{direction="out",type="error"} 6.0' in text


def test_tasks_are_pushed_on_a_timer_and_answered():
    process = AgentProcess(env={"STRESSBED_AGENT_CHANNEL_TASK_INTERVAL_S": "0.2"})
    process.wait_listening()
    try:

        async def test(client: aiohttp.ClientSession) -> None:
            ws, _ = await hello(client, ws_url(process), "a1")
            ids = set()
            for _ in range(2):
                task = await receive(ws)
                assert task.keys() == {"type", "id", "kind"}
                assert (task["type"], task["kind"]) == ("task", "collect")
                await ws.send_json({"type": "task_result", "id": task["id"], "ok": True})
                assert await receive(ws) == {"type": "task_done", "id": task["id"]}
                ids.add(task["id"])
            assert len(ids) == 2
            await ws.close()

        run(test)
        assert metric(process.url, "agent_channel_task_rtt_seconds_count") == 2
    finally:
        process.stop()


def test_the_admin_push_sends_one_task_to_every_channel_now(agent):
    assert call(agent.url + "/admin/push", "POST").status == 403

    async def test(client: aiohttp.ClientSession) -> None:
        channels = [(await hello(client, ws_url(agent), f"a{i}"))[0] for i in range(3)]
        silent = await client.ws_connect(ws_url(agent))  # no hello yet: no agent to task
        reply = await asyncio.to_thread(call, agent.url + "/admin/push", "POST", headers=ADMIN)
        assert reply.json() == {"pushed": 3}
        for ws in channels:
            task = await receive(ws)
            await ws.send_json({"type": "task_result", "id": task["id"], "ok": True})
            assert await receive(ws) == {"type": "task_done", "id": task["id"]}
            await ws.close()
        await silent.close()

    run(test)
    assert metric(agent.url, "agent_channel_task_rtt_seconds_count") == 3


def test_past_max_connections_the_upgrade_is_refused_with_503():
    process = AgentProcess(env={"STRESSBED_AGENT_MAX_CONNECTIONS": "2"})
    process.wait_listening()
    try:

        async def test(client: aiohttp.ClientSession) -> None:
            first = await client.ws_connect(ws_url(process))
            second = await client.ws_connect(ws_url(process))
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url(process))
            assert refused.value.status == 503
            assert refused.value.headers is not None
            assert refused.value.headers["Retry-After"] == "1"
            assert metric(process.url, "agent_channel_connected") == 2
            await first.close()
            await asyncio.to_thread(
                wait_for, lambda: metric(process.url, "agent_channel_connected") == 1
            )
            third = await client.ws_connect(ws_url(process))
            await third.close()
            await second.close()

        run(test)
        assert metric(process.url, 'agent_channel_refused_total{reason="limit"}') == 1
    finally:
        process.stop()


def test_sigterm_closes_channels_with_1001_refuses_upgrades_and_exits_0():
    process = AgentProcess(env={"STRESSBED_AGENT_ADMIN_TOKEN": "admin"})
    process.wait_listening()
    try:
        # A request held in flight keeps the drain going while upgrades are tried.
        call(
            process.url + "/admin/faults",
            "POST",
            {"kind": "latency", "ms": 3000, "duration_s": 30},
            headers=ADMIN,
        )
        held = threading.Thread(target=call, args=(process.url + "/v1/agents",))

        async def test(client: aiohttp.ClientSession) -> None:
            channels = [(await hello(client, ws_url(process), f"a{i}"))[0] for i in range(3)]
            held.start()
            await asyncio.to_thread(
                wait_for, lambda: metric(process.url, "agent_in_flight_requests") == 2
            )
            process.proc.send_signal(signal.SIGTERM)
            for ws in channels:
                assert await closed_with(ws) == (1001, "going away")
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await client.ws_connect(ws_url(process))
            assert refused.value.status == 503
            assert refused.value.headers is not None
            assert refused.value.headers["Retry-After"] == "1"

        run(test)
        held.join(timeout=10)
        process.proc.wait(timeout=20)
        code, err = process.stop()
        assert code == 0, err
        assert "3 channels open" in err
        assert "open files limit" in err
    finally:
        if process.proc.poll() is None:
            process.stop()


def test_the_open_files_limit_is_raised_and_exported(agent):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    assert metric(agent.url, "agent_nofile_limit") == expected
    text = call(agent.url + "/metrics").body.decode()
    for name in (
        "agent_channel_connected",
        "agent_channel_messages_total",
        "agent_channel_refused_total",
        "agent_registrations_total",
        "agent_duplicate_registrations_total",
        "agent_channel_task_rtt_seconds_bucket",
    ):
        assert name in text, name
    reply = call(agent.url + "/v1/channel")  # plain HTTP, no upgrade
    assert (reply.status, reply.json()["error"]) == (
        400,
        "expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)",
    )
    assert call(agent.url + "/v1/channel", "POST", {}).status == 405
