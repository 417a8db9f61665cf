"""A TCP load balancer on loopback: one stable URL in front of the ready replicas.

Layer 4, as kube-proxy is: each *new* connection goes to a ready upstream (the one with the
fewest open connections, ties taken in turn); bytes are then relayed both ways until either
side closes. An upstream that turns unready or is removed gets no new connections, but the
connections it already has run on, so in-flight requests are never cut by routing. With no
ready upstream a new connection is closed at once, as a Service without endpoints refuses it.

It runs on an asyncio loop that the caller owns (the local backend's controller thread) and
uses flow control on both sides, so a slow reader never makes it buffer without bound.

Faults on the path are *toxics* (Toxiproxy's model), applied to connections already open as
well as new ones, to every upstream or to chosen ones: ``latency`` holds each chunk on its way
to the client for its delay (plus or minus its jitter, never reordering the stream); ``loss``
holds a chunk, with its probability, for one retransmission timeout (what TCP's recovery of a
lost segment does to what follows it); and :meth:`Balancer.reset` resets every open connection
(the client sees a connection reset).

It runs as a process of its own (:func:`main`, ``python -m stressbed.balancer``), and as many
of them as one machine's descriptor limit asks for, all listening on the same port with
``SO_REUSEPORT`` (the kernel spreads new connections over them), as production proxies run
several workers: :class:`~.balancer_pool.BalancerProcess` supervises them. Each worker counts
its open connections per upstream and says them on its stdout.

A worker given source addresses (``--sources 127.255.0.1-127.255.0.254``) connects to an
upstream on IPv4 loopback from them in turn, not from 127.0.0.1: each connection takes a port
of its source address, and the replicas' health probes and the other workers share
127.0.0.1's 28,232 ephemeral ports (a reconnect storm of 30,000 agents used them up).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import itertools
import json
import os
import random
import socket
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from ...fleet.process import raise_nofile

__all__ = ["STATS_S", "Balancer", "Toxic", "Upstream", "address_range", "main"]

# Relay buffers: pause the sending side once this much is queued for a slow receiver.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
#: What a lost segment costs the stream: Linux's minimum TCP retransmission timeout.
RETRANSMIT_S = 0.2
#: How often a worker process says its open connections per upstream.
STATS_S = 1.0


@dataclass
class Toxic:
    """A fault on the path to ``upstreams`` (None: every one)."""

    name: str
    kind: str  # latency, loss, bandwidth, slow_close
    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    rate: float = 0.0  # bandwidth: bytes per second, per connection
    close_s: float = 0.0  # slow_close: how long a close is held
    upstreams: frozenset[str] | None = None
    rng: random.Random = field(default_factory=random.Random)

    def applies(self, upstream: str) -> bool:
        return self.upstreams is None or upstream in self.upstreams

    def delay(self, upstream: str, size: int) -> tuple[float, float]:
        """How long this toxic holds one chunk of ``size`` bytes to the client from
        ``upstream``: (a delay of its own, the time the chunk takes to go through: chunks
        held for the latter queue behind each other, as on a slow link)."""
        if not self.applies(upstream):
            return 0.0, 0.0
        if self.kind == "latency":
            return max(0.0, self.latency_s + self.rng.uniform(-self.jitter_s, self.jitter_s)), 0.0
        if self.kind == "bandwidth":
            return 0.0, size / self.rate if self.rate > 0 else 0.0
        if self.kind == "loss":
            return (RETRANSMIT_S if self.rng.random() < self.loss else 0.0), 0.0
        return 0.0, 0.0


@dataclass
class Upstream:
    name: str
    host: str
    port: int
    ready: bool = False
    connections: int = 0  # open now: the balancer picks the upstream with the fewest


class _Half(asyncio.Protocol):
    """One side of a relayed connection; ``peer`` is the other side's half."""

    def __init__(self, pair: _Pair, *, client: bool) -> None:
        self.pair = pair
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.pending: list[bytes] = []
        self.eof = False
        #: Chunks held by a toxic on their way to the client: (when to write, the bytes).
        self.held: deque[tuple[float, bytes]] = deque()
        self.held_bytes = 0
        self.eof_held = False
        self.lost_held = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        with contextlib.suppress(OSError):
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.client:
            self.pair.accepted()

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            delay, transmit = (0.0, 0.0) if self.client else self.pair.delay(len(data))
            if delay > 0 or transmit > 0 or self.held:
                self._hold(data, delay, transmit)
                return
            peer.transport.write(data)
            return
        # The client spoke before the upstream connection was up: hold its first bytes (the
        # client's reading is paused meanwhile, so this stays small).
        self.pending.append(data)
        if self.transport is not None:
            self.transport.pause_reading()

    def _hold(self, data: bytes, delay: float, transmit: float = 0.0) -> None:
        """Write ``data`` to the client ``delay`` seconds from now, after what is held before
        it (the stream's order is kept; ``transmit`` queues behind the chunk before); the
        upstream's reading pauses while much is held."""
        loop = asyncio.get_running_loop()
        last = self.held[-1][0] if self.held else 0.0
        due = max(last + transmit, time.monotonic() + delay + transmit)
        self.held.append((due, data))
        self.held_bytes += len(data)
        if self.held_bytes > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        loop.call_later(max(0.0, due - time.monotonic()), self._release)

    def _release(self) -> None:
        peer = self.peer
        now = time.monotonic()
        while self.held and self.held[0][0] <= now + 0.001:
            _, data = self.held.popleft()
            self.held_bytes -= len(data)
            if peer is not None and peer.transport is not None and not peer.transport.is_closing():
                peer.transport.write(data)
        if self.held_bytes <= LOW_WATER and self.transport is not None and not self.lost_held:
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()
        if self.held:
            # A timer may fire a little early (uvloop's clock is cached per iteration): the
            # next chunk always has one of its own.
            asyncio.get_running_loop().call_later(
                max(0.0, self.held[0][0] - time.monotonic()), self._release
            )
        if not self.held and self.eof_held:
            self.eof_held = False
            if not self._pass_eof() and self.transport is not None:
                self.transport.close()  # both directions done, as eof_received would have
        if not self.held and self.lost_held:
            self.lost_held = False
            self.pair.lost()

    def eof_received(self) -> bool:
        self._slow_close()
        if self.held:  # what is held goes first
            self.eof = True
            self.eof_held = True
            return True
        return self._pass_eof()

    def _slow_close(self) -> None:
        """A close from the upstream held for a slow_close toxic (after what is held)."""
        hold = 0.0 if self.client else self.pair.close_delay()
        if hold > 0:
            self._hold(b"", hold)

    def _pass_eof(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None:
            return True  # written on when the upstream connects
        if peer.eof:
            return False  # both directions are done: close
        if peer.transport.can_write_eof():
            peer.transport.write_eof()
        return True  # keep the other direction open (half-close)

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and not self.eof:
            self._slow_close()
        if self.held:  # what a toxic holds is still delivered, then the pair closes
            self.lost_held = True
            return
        self.pair.lost()


class _Pair:
    """A client connection and its upstream connection; closed together."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.client = _Half(self, client=True)
        self.upstream = _Half(self, client=False)
        self.client.peer = self.upstream
        self.upstream.peer = self.client
        self.chosen: Upstream | None = None
        self.closed = False

    def accepted(self) -> None:
        """The client is connected: refuse it, or connect it to its upstream."""
        client = self.client.transport
        assert client is not None
        if self.chosen is None:
            client.abort()  # no ready upstream: refused, as a Service without endpoints does
            return
        client.pause_reading()
        asyncio.get_running_loop().create_task(self._connect(self.chosen))

    async def _connect(self, target: Upstream) -> None:
        loop = asyncio.get_running_loop()
        source = self.balancer.source_for(target.host)
        try:
            await loop.create_connection(
                lambda: self.upstream,
                target.host,
                target.port,
                local_addr=(source, 0) if source is not None else None,
            )
        except OSError:
            self.lost()
            return
        if self.closed:  # the client left while we connected
            if self.upstream.transport is not None:
                self.upstream.transport.close()
            return
        client, upstream = self.client, self.upstream.transport
        assert client.transport is not None
        assert upstream is not None
        for chunk in client.pending:
            upstream.write(chunk)
        client.pending.clear()
        if client.eof and upstream.can_write_eof():
            upstream.write_eof()
        client.transport.resume_reading()

    def delay(self, size: int) -> tuple[float, float]:
        """What the balancer's toxics hold the next chunk to the client for, and how long it
        takes to go through (see :meth:`Toxic.delay`)."""
        if self.chosen is None or not self.balancer.toxics:
            return 0.0, 0.0
        held = [t.delay(self.chosen.name, size) for t in self.balancer.toxics.values()]
        return sum(d for d, _ in held), sum(t for _, t in held)

    def close_delay(self) -> float:
        """How long a slow_close toxic holds the upstream's close."""
        if self.chosen is None:
            return 0.0
        return max(
            (
                t.close_s
                for t in self.balancer.toxics.values()
                if t.kind == "slow_close" and t.applies(self.chosen.name)
            ),
            default=0.0,
        )

    def reset(self) -> None:
        """Both connections reset (RST), as a peer that went away does."""
        for half in (self.client, self.upstream):
            if half.transport is not None:
                half.transport.abort()
        self.lost()

    def lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        for half in (self.client, self.upstream):
            if half.transport is not None and not half.transport.is_closing():
                half.transport.close()
        if self.chosen is not None:
            self.chosen.connections -= 1
            self.balancer._closed(self.chosen.name)
        self.balancer._pairs.discard(self)


class Balancer:
    """Route new connections on ``host:port`` (and on each of ``also``, the same port) to
    ready upstreams."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        also: Sequence[str] = (),
        sources: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.also = tuple(also)
        #: The addresses it connects to loopback upstreams from, in turn (none: the system's).
        self.sources = tuple(sources)
        self._source = itertools.cycle(self.sources)
        self.upstreams: dict[str, Upstream] = {}
        self._servers: list[asyncio.Server] = []
        self._pairs: set[_Pair] = set()
        self._turn = itertools.count()
        self.toxics: dict[str, Toxic] = {}
        #: Open connections by upstream name (an upstream removed or added again included).
        self._open: dict[str, int] = {}

    def source_for(self, host: str) -> str | None:
        """The address to connect to ``host`` from: the next of :attr:`sources` for an IPv4
        loopback upstream (a loopback source reaches only loopback), else the system's."""
        if not self.sources:
            return None
        try:
            loopback = ipaddress.ip_address(host).is_loopback and ":" not in host
        except ValueError:
            return None
        return next(self._source) if loopback else None

    # -- membership (called on the loop's thread) -------------------------------------

    def add(self, name: str, host: str, port: int) -> None:
        """An upstream that gets connections once :meth:`set_ready` says so."""
        self.upstreams[name] = Upstream(name, host, port)

    def set_ready(self, name: str, ready: bool) -> None:
        upstream = self.upstreams.get(name)
        if upstream is not None:
            upstream.ready = ready

    def remove(self, name: str) -> None:
        """No new connections to ``name``; its open connections run on until they close."""
        self.upstreams.pop(name, None)

    # -- faults on the path (called on the loop's thread) --------------------------------

    def add_toxic(self, toxic: Toxic) -> None:
        self.toxics[toxic.name] = toxic

    def remove_toxic(self, name: str) -> None:
        self.toxics.pop(name, None)

    def reset(self, upstreams: frozenset[str] | None = None) -> int:
        """Reset every open connection (to ``upstreams``); how many were."""
        hit = [
            p
            for p in list(self._pairs)
            if upstreams is None or (p.chosen is not None and p.chosen.name in upstreams)
        ]
        for pair in hit:
            pair.reset()
        return len(hit)

    def connections(self) -> dict[str, int]:
        """Open connections per upstream: every upstream known (0 for one with none), and any
        other that still has some (removed, its connections running on)."""
        counts = dict.fromkeys(self.upstreams, 0)
        counts.update((name, n) for name, n in self._open.items() if n > 0)
        return counts

    def _closed(self, name: str) -> None:
        left = self._open.get(name, 0) - 1
        if left > 0:
            self._open[name] = left
        else:
            self._open.pop(name, None)

    # -- serving ----------------------------------------------------------------------

    async def start(self, *, reuse_port: bool = False) -> int:
        """Listen; returns the port (the one asked for, or the one the kernel chose for 0).
        ``reuse_port``: with SO_REUSEPORT, so that other workers listen on the same port."""
        loop = asyncio.get_running_loop()
        for host in (self.host, *self.also):  # the first chooses the port, the others take it
            server = await loop.create_server(
                self._accept,
                host,
                self.port,
                reuse_address=True,
                reuse_port=reuse_port or None,
                backlog=1024,
            )
            self._servers.append(server)
            self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for pair in list(self._pairs):
            pair.lost()

    def _pick(self) -> Upstream | None:
        ready = [b for b in self.upstreams.values() if b.ready]
        if not ready:
            return None
        fewest = min(b.connections for b in ready)
        candidates = [b for b in ready if b.connections == fewest]
        return candidates[next(self._turn) % len(candidates)]

    def _accept(self) -> asyncio.Protocol:
        pair = _Pair(self)
        self._pairs.add(pair)
        upstream = self._pick()
        if upstream is not None:  # None: refused once connected (see _Pair.accepted)
            pair.chosen = upstream
            upstream.connections += 1
            self._open[upstream.name] = self._open.get(upstream.name, 0) + 1
        return pair.client


# -- the balancer as a process of its own -------------------------------------------------
#
# The local backend runs the balancer in child processes (its workers), so relaying bytes
# never waits for the GIL of the process that supervises replicas, probes them and merges
# runner results. A worker takes membership changes as JSON lines on stdin ({"op": "add" |
# "ready" | "remove" | "toxic" | "untoxic" | "reset" | "stats", ...}), says {"event":
# "listening", "port": N, "nofile": N} (or {"event": "error", ...}) on stdout, then {"event":
# "stats", "connections": {upstream: open}} every STATS_S and at once for a "stats" op (with
# its "seq": every op sent before it has been applied), and exits when its stdin closes: the
# supervisor's end, however it ended.


def _say(event: dict[str, object]) -> None:
    # A supervisor that stopped reading has gone: the worker ends with its stdin, not here.
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


async def _stats_every(balancer: Balancer, period_s: float) -> None:
    while True:
        await asyncio.sleep(period_s)
        _say({"event": "stats", "connections": balancer.connections()})


def _apply(balancer: Balancer, op: dict[str, object]) -> None:
    kind = op["op"]
    if kind == "add":
        balancer.add(str(op["name"]), str(op["host"]), int(cast(int, op["port"])))
    elif kind == "ready":
        balancer.set_ready(str(op["name"]), bool(op["ready"]))
    elif kind == "remove":
        balancer.remove(str(op["name"]))
    elif kind == "toxic":
        balancer.add_toxic(_toxic(op))
    elif kind == "untoxic":
        balancer.remove_toxic(str(op["name"]))
    elif kind == "reset":
        scope = cast(list[str] | None, op.get("upstreams"))
        balancer.reset(frozenset(scope) if scope is not None else None)
    elif kind == "stats":
        _say({"event": "stats", "seq": op.get("seq"), "connections": balancer.connections()})


async def _serve(
    host: str,
    port: int,
    also: Sequence[str] = (),
    stats_s: float = STATS_S,
    sources: Sequence[str] = (),
) -> int:
    nofile = raise_nofile()  # two descriptors per relayed connection
    balancer = Balancer(host, port, also, sources)
    try:
        bound = await balancer.start(reuse_port=True)
    except OSError as exc:
        await balancer.close()
        _say({"event": "error", "errno": exc.errno, "error": str(exc)})
        return 2
    _say({"event": "listening", "port": bound, "nofile": nofile})
    loop = asyncio.get_running_loop()
    stats = loop.create_task(_stats_every(balancer, stats_s))
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        _apply(balancer, json.loads(line))
    stats.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stats
    await balancer.close()
    return 0


def _toxic(op: dict[str, object]) -> Toxic:
    scope = op.get("upstreams")
    return Toxic(
        name=str(op["name"]),
        kind=str(op["kind"]),
        latency_s=float(cast(float, op.get("latency_s") or 0.0)),
        jitter_s=float(cast(float, op.get("jitter_s") or 0.0)),
        loss=float(cast(float, op.get("loss") or 0.0)),
        rate=float(cast(float, op.get("rate") or 0.0)),
        close_s=float(cast(float, op.get("close_s") or 0.0)),
        upstreams=frozenset(cast(list[str], scope)) if scope is not None else None,
        rng=random.Random(int(cast(int, op.get("seed") or 0))),
    )


def address_range(text: str) -> tuple[str, ...]:
    """``FIRST-LAST`` (or one address): every IPv4 address from FIRST to LAST."""
    first, _, last = text.partition("-")
    try:
        low = ipaddress.IPv4Address(first.strip())
        high = ipaddress.IPv4Address((last or first).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IPv4 range FIRST-LAST: {text!r}") from None
    if not low <= high or int(high) - int(low) >= 65536:
        raise argparse.ArgumentTypeError(f"not a range of at most 65,536 addresses: {text!r}")
    return tuple(str(ipaddress.IPv4Address(n)) for n in range(int(low), int(high) + 1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stressbed.balancer")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--also", action="append", default=[], help="another address to listen on, same port"
    )
    parser.add_argument(
        "--stats-interval", type=float, default=STATS_S, help="seconds between stats lines"
    )
    parser.add_argument(
        "--sources",
        type=address_range,
        default=(),
        help="FIRST-LAST: IPv4 addresses to connect to loopback upstreams from, in turn",
    )
    args = parser.parse_args(argv)
    serve = _serve(args.host, args.port, args.also, args.stats_interval, args.sources)
    # STRESSBED_BALANCER_LOOP=asyncio: the standard loop even where uvloop is installed (the
    # benchmark compares both).
    if os.environ.get("STRESSBED_BALANCER_LOOP") != "asyncio":
        with contextlib.suppress(ImportError):
            import uvloop  # noqa: PLC0415 - optional: a faster relay where it is installed

            return uvloop.run(serve)
    return asyncio.run(serve)


if __name__ == "__main__":
    sys.exit(main())
