"""Faults on the path, in the balancer itself (real sockets on loopback): latency on
connections already open, scoped to chosen upstreams, a loss that holds a chunk one
retransmission timeout, a reset that the client sees as one, a bandwidth limit that a stream
cannot beat, and a close held back."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from stressbed.backends.local.balancer import RETRANSMIT_S, Balancer, Toxic

ECHOED: list[asyncio.StreamWriter] = []  # the upstreams' sides, closed at each teardown


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    ECHOED.append(writer)
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    writer.close()


async def _round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> float:
    started = time.monotonic()
    writer.write(b"ping\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 10) == b"ping\n"
    return time.monotonic() - started


async def _setup(names: tuple[str, ...] = ("a",)) -> tuple[Balancer, list[asyncio.Server]]:
    servers = [await asyncio.start_server(_echo, "127.0.0.1", 0) for _ in names]
    balancer = Balancer("127.0.0.1", 0)
    await balancer.start()
    for name, server in zip(names, servers, strict=True):
        balancer.add(name, "127.0.0.1", server.sockets[0].getsockname()[1])
        balancer.set_ready(name, True)
    return balancer, servers


async def _teardown(balancer: Balancer, servers: list[asyncio.Server]) -> None:
    await balancer.close()
    for server in servers:
        server.close()
        await server.wait_closed()
    while ECHOED:
        writer = ECHOED.pop()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    await asyncio.sleep(0)  # the closed transports' callbacks run before the loop ends


def test_latency_holds_what_comes_back_on_a_connection_already_open():
    async def go() -> tuple[float, float, float]:
        balancer, servers = await _setup()
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        before = await _round_trip(reader, writer)
        balancer.add_toxic(Toxic("latency", "latency", latency_s=0.3))
        during = await _round_trip(reader, writer)  # the same connection
        balancer.remove_toxic("latency")
        after = await _round_trip(reader, writer)
        writer.close()
        await _teardown(balancer, servers)
        return before, during, after

    before, during, after = asyncio.run(go())
    assert during >= 0.3
    assert before < 0.3
    assert after < 0.3


def test_a_toxic_on_chosen_upstreams_leaves_the_others_alone():
    async def go() -> dict[str, float]:
        balancer, servers = await _setup(("a", "b"))
        balancer.add_toxic(Toxic("slow-b", "latency", latency_s=0.3, upstreams=frozenset({"b"})))
        seen: dict[str, float] = {}
        for _ in range(2):  # the fewest-connections pick alternates a, b
            reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
            await asyncio.sleep(0.05)
            chosen = next(
                p.chosen.name
                for p in balancer._pairs
                if p.chosen is not None and p.chosen.connections
            )
            seen[chosen] = await _round_trip(reader, writer)
            writer.close()
            await asyncio.sleep(0.05)
        await _teardown(balancer, servers)
        return seen

    seen = asyncio.run(go())
    assert seen["b"] >= 0.3
    assert seen["a"] < 0.3


def test_loss_holds_a_chunk_for_one_retransmission_timeout():
    toxic = Toxic("loss", "loss", loss=0.5, rng=random.Random(3))
    delays = [toxic.delay("a", 100)[0] for _ in range(400)]
    assert set(delays) == {0.0, RETRANSMIT_S}
    assert 0.4 < delays.count(RETRANSMIT_S) / len(delays) < 0.6

    async def go() -> float:
        balancer, servers = await _setup()
        balancer.add_toxic(Toxic("loss", "loss", loss=1.0))
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        took = await _round_trip(reader, writer)
        writer.close()
        await _teardown(balancer, servers)
        return took

    assert asyncio.run(go()) >= RETRANSMIT_S


def test_a_reset_is_a_connection_reset_for_the_client():
    async def go() -> tuple[int, BaseException | bytes]:
        balancer, servers = await _setup()
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        await _round_trip(reader, writer)
        count = balancer.reset()
        try:
            seen: BaseException | bytes = await asyncio.wait_for(reader.read(10), 5)
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            seen = exc
        writer.close()
        await _teardown(balancer, servers)
        return count, seen

    count, seen = asyncio.run(go())
    assert count == 1
    # A reset connection reads as reset (or, if the RST raced the read, as closed at once).
    assert isinstance(seen, ConnectionResetError) or seen == b""


def _run(loop: str, coro):
    """On the standard loop, or on uvloop as the balancer process runs where it is installed
    (its timers may fire a little early: nothing held must be left behind)."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run(coro)
    return asyncio.run(coro)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("size", [64 * 1024, 2 * 1024 * 1024])
def test_a_stream_through_latency_arrives_whole_and_in_order(size, loop):
    payload = random.Random(size).randbytes(size)

    async def go() -> bytes:
        balancer, servers = await _setup()
        balancer.add_toxic(Toxic("latency", "latency", latency_s=0.05, jitter_s=0.04))
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        got = b""
        while len(got) < size:
            chunk = await asyncio.wait_for(reader.read(65536), 10)
            if not chunk:
                break
            got += chunk
        writer.close()
        await _teardown(balancer, servers)
        return got

    assert _run(loop, go()) == payload


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_every_answer_held_by_a_toxic_comes_through(loop):
    # One chunk per answer, each held 10.5 ms: a timer that fires early must not strand it.
    async def go() -> list[float]:
        balancer, servers = await _setup()
        balancer.add_toxic(Toxic("latency", "latency", latency_s=0.0105))
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        took = [await _round_trip(reader, writer) for _ in range(60)]
        writer.close()
        await _teardown(balancer, servers)
        return took

    took = _run(loop, go())
    assert len(took) == 60
    assert min(took) >= 0.0105 - 0.002  # released up to 1 ms early, as a timer may fire


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_stream_through_a_bandwidth_limit_takes_its_size_over_the_rate(loop):
    size, rate = 400_000, 1_000_000.0  # 400 kB at 1 MB/s: 0.4 s at the least
    payload = random.Random(7).randbytes(size)

    async def go() -> tuple[bytes, float]:
        balancer, servers = await _setup()
        balancer.add_toxic(Toxic("bandwidth", "bandwidth", rate=rate))
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        started = time.monotonic()
        writer.write(payload)
        await writer.drain()
        writer.write_eof()
        got = b""
        while len(got) < size:
            chunk = await asyncio.wait_for(reader.read(65536), 20)
            if not chunk:
                break
            got += chunk
        took = time.monotonic() - started
        writer.close()
        await _teardown(balancer, servers)
        return got, took

    got, took = _run(loop, go())
    assert got == payload  # whole and in order
    assert took >= size / rate * 0.95  # however fast the machine: the rate holds it back


def test_a_slow_close_holds_the_upstreams_close_back():
    async def go() -> tuple[bytes, float]:
        balancer, servers = await _setup()
        balancer.add_toxic(Toxic("slow", "slow_close", close_s=0.5))
        reader, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        started = time.monotonic()  # before anything is sent: a bound no busy machine breaks
        writer.write(b"bye\n")
        await writer.drain()
        writer.write_eof()  # the echo upstream answers, then closes
        got = await asyncio.wait_for(reader.readline(), 10)
        end = await asyncio.wait_for(reader.read(10), 10)
        took = time.monotonic() - started
        writer.close()
        await _teardown(balancer, servers)
        return got + end, took

    seen, took = asyncio.run(go())
    assert seen == b"bye\n"  # the answer, then the close
    assert took >= 0.5  # the close came no sooner than half a second after it was sent
