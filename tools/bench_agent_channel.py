"""What a connected WebSocket channel costs the reference agent in memory (issue 25). Prints
figures; asserts nothing; not run in CI.

    python tools/bench_agent_channel.py [--channels 5000] [--hold-s 35]

Starts one agent (``python -m stressbed_agent --port P``), opens and closes a few channels to
warm it up, reads its VmRSS (``/proc/<pid>/status``), then opens ``--channels`` WebSockets
from this one process (aiohttp client), each saying hello (a registration) and sending a
heartbeat every ``--heartbeat-s`` seconds (spread evenly over the period). After
``--hold-s`` (by default one heartbeat period and a bit: every channel has sent one and got
its ack) it reads VmRSS again and prints the cost per connected channel; then closes them
all and reads it once more. Last, the drain: as many channels opened again, SIGTERM, and how
long until every one was closed with 1001 and until the process exited.

Both processes need a socket per channel: keep ``--channels`` well under the open-files limit
(``ulimit -n``; this script raises its own soft limit to the hard one, as the agent does).
All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "agent"))
from helpers import AgentProcess, call

#: File descriptors this process and the agent keep for everything but the channels.
FD_MARGIN = 200


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def metric(url: str, name: str) -> float | None:
    for line in call(url + "/metrics").body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def settle(url: str, connected: int, timeout: float = 60) -> None:
    """Until the agent counts ``connected`` channels open."""
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(metric, url, "agent_channel_connected") != connected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent did not reach {connected} open channels in time")
        await asyncio.sleep(0.2)


class Fleet:
    """Channels from this process: a reader task each (it answers the agent's pings) and one
    task sending every channel's heartbeats, spread over the period."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.replace("http://", "ws://") + "/v1/channel"
        self.session = session
        self.channels: list[aiohttp.ClientWebSocketResponse] = []
        self.readers: list[asyncio.Task[None]] = []
        self.acks = 0
        self.errors = 0
        self.going_away = 0  # channels the agent closed with 1001

    async def open(self, n: int, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)  # under the agent's listen backlog (128)

        async def one(i: int) -> None:
            async with gate:
                ws = await self.session.ws_connect(self.url, autoping=True)
                await ws.send_json({"type": "hello", "agent_id": f"bench-{i}"})
                welcome = await ws.receive_json(timeout=30)
                if welcome.get("type") != "welcome":
                    raise RuntimeError(f"channel {i}: {welcome}")
            self.channels.append(ws)
            self.readers.append(asyncio.create_task(self.read(ws)))

        await asyncio.gather(*(one(i) for i in range(n)))

    async def read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            kind = msg.json().get("type")
            if kind == "heartbeat_ack":
                self.acks += 1
            elif kind == "task":
                await ws.send_json({"type": "task_result", "id": msg.json()["id"], "ok": True})
            elif kind == "error":
                self.errors += 1
        if ws.close_code == 1001:
            self.going_away += 1

    async def heartbeats(self, period: float) -> None:
        seq = 0
        while True:
            seq += 1
            step = period / max(1, len(self.channels))
            for ws in list(self.channels):
                if not ws.closed:
                    await ws.send_json({"type": "heartbeat", "seq": seq, "status": "ok"})
                await asyncio.sleep(step)

    async def close(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.channels), return_exceptions=True)
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def bench(agent: AgentProcess, args: argparse.Namespace) -> None:
    pid = agent.proc.pid
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        warm = Fleet(agent.url, session)
        await warm.open(20, 20)
        await warm.close()
        await settle(agent.url, 0)
        before = rss_kb(pid)
        print(f"agent pid {pid}: VmRSS before {before / 1024:.1f} MiB (after 20 channels warm-up)")

        fleet = Fleet(agent.url, session)
        started = time.monotonic()
        await fleet.open(args.channels, args.concurrency)
        await settle(agent.url, args.channels)
        print(f"{args.channels} channels open in {time.monotonic() - started:.1f} s")
        beating = asyncio.create_task(fleet.heartbeats(args.heartbeat_s))
        await asyncio.sleep(args.hold_s)
        after = rss_kb(pid)
        connected = await asyncio.to_thread(metric, agent.url, "agent_channel_connected")
        beating.cancel()
        per = (after - before) / args.channels
        print(
            f"VmRSS after {args.hold_s:g} s with {connected:.0f} channels connected: "
            f"{after / 1024:.1f} MiB; heartbeats acknowledged {fleet.acks}, errors {fleet.errors}"
        )
        print(f"per connected channel: {per:.1f} KiB ((after - before) / {args.channels})")
        print(f"this client's own VmRSS: {rss_kb(os.getpid()) / 1024:.1f} MiB")
        await fleet.close()
        await settle(agent.url, 0)
        print(f"VmRSS after closing them all: {rss_kb(pid) / 1024:.1f} MiB")

        fleet = Fleet(agent.url, session)
        await fleet.open(args.channels, args.concurrency)
        await settle(agent.url, args.channels)
        started = time.monotonic()
        agent.proc.send_signal(signal.SIGTERM)
        await asyncio.gather(*fleet.readers)
        closed = time.monotonic() - started
        code = await asyncio.to_thread(agent.proc.wait, 60)
        print(
            f"drain with {args.channels} channels open: {fleet.going_away} closed with 1001 "
            f"in {closed:.2f} s; the agent exited {code} after "
            f"{time.monotonic() - started:.2f} s"
        )
        await fleet.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=5000, help="channels to open (5000)")
    parser.add_argument("--heartbeat-s", type=float, default=30.0, help="heartbeat period (30)")
    parser.add_argument("--hold-s", type=float, default=35.0, help="held before measuring (35)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes at once (100)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if args.channels + FD_MARGIN > limit:
        print(f"--channels {args.channels}: over the open-files limit {limit} less {FD_MARGIN}")
        return 2

    agent = AgentProcess(args=["--host", "127.0.0.1"])
    try:
        agent.wait_listening()
        asyncio.run(bench(agent, args))
    finally:
        code, _ = agent.stop()
        print(f"agent exit code after SIGTERM: {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
