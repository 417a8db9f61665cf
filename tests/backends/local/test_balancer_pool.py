"""The balancer's workers as real processes on one SO_REUSEPORT port, with real sockets: every
op reaches every worker, the connection counts add up, and idle long-lived connections stay
where they opened when a replica is added (an L4 balancer moves none of them).

The upstreams are plain asyncio echo servers, each a process of its own, so that the test
process holds only its client sockets (a process may open 20,000 descriptors on many CI
machines, and 5,000 held connections are 5,000 of the test's and 5,000 of the upstream's).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from stressbed.backends.local.balancer import address_range
from stressbed.backends.local.balancer_pool import (
    RESERVE_FDS,
    BalancerProcess,
    PortInUseError,
    per_worker,
    worker_sources,
    workers_for,
)
from stressbed.errors import ConfigError
from stressbed.fleet.process import nofile_of, raise_nofile

#: An echo server on loopback: says its port, raises its open-file limit, ends with its stdin.
ECHO = """
import asyncio, os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

async def echo(reader, writer):
    try:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        return  # the client reset it: nothing left to echo
    writer.close()

async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: done.done() or done.set_result(None))
    await done
    os._exit(0)  # its connections go with it, no task cancelled and logged

asyncio.run(main())
"""


@pytest.fixture
def upstreams() -> Iterator[Callable[[], int]]:
    """Start an echo upstream process; its port. Every one is stopped at the test's end."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        started.append(proc)
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 15)[0], "the echo upstream did not start"
        return int(proc.stdout.readline())

    yield start
    for proc in started:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
def balancers() -> Iterator[Callable[..., BalancerProcess]]:
    made: list[BalancerProcess] = []

    def make(**kwargs: Any) -> BalancerProcess:
        balancer = BalancerProcess(**kwargs)
        made.append(balancer)
        return balancer

    yield make
    for balancer in made:
        balancer.close()


@pytest.fixture
def clients() -> Iterator[list[socket.socket]]:
    """Client sockets the test holds open; all closed at its end."""
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def wait_for(what: Callable[[], Any], timeout: float = 30.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message or what}")


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, port), timeout=10)


def echoes(sock: socket.socket, data: bytes = b"ping") -> bool:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(len(data) - len(got))
        if not chunk:
            return False
        got += chunk
    return got == data


def was_reset(sock: socket.socket) -> bool:
    """The connection no longer echoes (the client saw it reset)."""
    try:
        return not (echoes(sock) and echoes(sock))  # a reset may show on the second write
    except OSError:
        return True


def settled(balancer: BalancerProcess) -> dict[str, int]:
    """The counts once every worker has applied every op sent before (and counted after)."""
    assert balancer.sync(), "a worker did not answer"
    return balancer.connections()


def per_worker_counts(balancer: BalancerProcess) -> list[dict[str, int]]:
    assert balancer.sync(), "a worker did not answer"
    return [dict(w.connections) for w in balancer.workers]


def listeners(pid: int, port: int) -> int:
    """How many sockets process ``pid`` listens on at ``port`` (its fds against /proc/net)."""
    inodes = set()
    with open(f"/proc/{pid}/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    mine = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                mine.add(target[len("socket:[") : -1])
    return len(inodes & mine)


# -- sizing -----------------------------------------------------------------------------


def test_the_workers_are_as_many_as_the_connections_need():
    assert per_worker(20_000) == (20_000 - RESERVE_FDS) // 2 == 9_900
    assert workers_for(None) == workers_for(0) == 1  # not said: today's one worker
    assert workers_for(9_900, per=9_900) == 1
    assert workers_for(9_901, per=9_900) == 2
    assert workers_for(50_000, per=9_900) == 6
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        assert per_worker() == max(1, (hard - RESERVE_FDS) // 2)


def test_a_bad_size_is_refused_before_anything_starts():
    with pytest.raises(ConfigError, match="expected a count of connections >= 0"):
        BalancerProcess(connections=-1)
    with pytest.raises(ConfigError, match="workers: got 0; expected at least 1"):
        BalancerProcess(workers=0)


# -- the pool ---------------------------------------------------------------------------


def test_two_workers_serve_one_port_and_each_raised_its_open_file_limit(
    balancers, upstreams, clients
):
    port = upstreams()
    # Sized for one connection more than a worker carries: two workers.
    balancer = balancers(connections=per_worker() + 1, also=("127.0.0.2",))
    assert len(balancer.workers) == 2
    for pid in balancer.pids:  # each listens on the port itself, on both addresses
        assert listeners(pid, balancer.port) == 2
        assert nofile_of(pid) == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert balancer.report() == {
        "workers": 2,
        "expected_connections": per_worker() + 1,
        "connections_per_worker": per_worker(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
    }
    balancer.add("a", "127.0.0.1", port)
    balancer.set_ready("a", True)
    assert balancer.sync()
    clients += [connect(balancer.port) for _ in range(40)]
    clients += [connect(balancer.port, "127.0.0.2") for _ in range(10)]  # the other address
    assert all(echoes(c) for c in clients)
    # The kernel spread the 50 connections over both workers (each a 1 in 2**49 chance of
    # getting none), and every one is counted once.
    counts = per_worker_counts(balancer)
    assert all(c["a"] > 0 for c in counts), counts
    assert sum(c["a"] for c in counts) == 50


def peers_of(port: int) -> list[str]:
    """The addresses connected to a listener on 127.0.0.1:``port`` (/proc/net/tcp)."""
    found = []
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == f"0100007F:{port:04X}" and fields[3] == "01":  # 01: ESTABLISHED
                packed = bytes.fromhex(fields[2].split(":")[0])[::-1]
                found.append(socket.inet_ntoa(packed))
    return found


def test_each_worker_connects_to_the_replicas_from_addresses_of_its_own(
    balancers, upstreams, clients
):
    # From 127.0.0.1 the workers would share one address's ephemeral ports to a replica
    # (28,232 by default) with the stack's probes: a storm of 30,000 agents used them up.
    port = upstreams()
    balancer = balancers(workers=2)
    balancer.add("a", "127.0.0.1", port)
    balancer.set_ready("a", True)
    assert balancer.sync()
    clients += [connect(balancer.port) for _ in range(40)]
    assert all(echoes(c) for c in clients)
    peers = peers_of(port)
    assert len(peers) == 40
    blocks = {p.rsplit(".", 1)[0] for p in peers}
    assert blocks == {"127.255.0", "127.255.1"}, peers  # both workers took some
    assert worker_sources(1) == "127.255.1.1-127.255.1.254"


def test_a_workers_sources_are_a_range_of_addresses():
    assert address_range("127.255.0.1-127.255.0.3") == ("127.255.0.1", "127.255.0.2", "127.255.0.3")
    assert address_range("127.0.0.9") == ("127.0.0.9",)
    for bad in ("127.0.0.3-127.0.0.1", "::1-::2", "nope", "10.0.0.0-10.1.0.0"):
        with pytest.raises(argparse.ArgumentTypeError):
            address_range(bad)


def test_an_op_reaches_every_worker(balancers, upstreams, clients):
    a, b = upstreams(), upstreams()
    balancer = balancers(workers=2)
    for name, port in (("a", a), ("b", b)):
        balancer.add(name, "127.0.0.1", port)
        balancer.set_ready(name, True)
    balancer.set_ready("a", False)
    assert settled(balancer) == {"a": 0, "b": 0}
    clients += [connect(balancer.port) for _ in range(40)]
    assert all(echoes(c) for c in clients)
    counts = per_worker_counts(balancer)
    # Both workers took connections, and neither sent one to the unready upstream.
    assert all(c["b"] > 0 and c["a"] == 0 for c in counts), counts
    # A reset goes to every worker too: every connection, whichever worker holds it, is reset.
    balancer.reset()
    assert settled(balancer) == {"a": 0, "b": 0}
    assert all(was_reset(c) for c in clients)


def test_connections_are_the_sum_over_the_workers(balancers, upstreams, clients):
    a, b = upstreams(), upstreams()
    balancer = balancers(workers=2, stats_s=0.2)
    for name, port in (("a", a), ("b", b)):
        balancer.add(name, "127.0.0.1", port)
        balancer.set_ready(name, True)
    assert balancer.sync()  # every worker has both upstreams ready
    clients += [connect(balancer.port) for _ in range(30)]
    assert all(echoes(c) for c in clients)
    counts = per_worker_counts(balancer)
    total = balancer.connections()
    assert total == {name: sum(c.get(name, 0) for c in counts) for name in ("a", "b")}, counts
    assert total["a"] + total["b"] == 30
    # Removed, "b" still counts its open connections until they close; the periodic stats
    # lines (no sync) say when they have.
    balancer.remove("b")
    assert settled(balancer) == total
    for client in clients:
        client.close()
    wait_for(lambda: balancer.connections() == {"a": 0}, message="the counts to fall to none")


def test_idle_connections_stay_where_they_opened_when_a_replica_is_added(
    balancers, upstreams, clients
):
    held = 5_000
    soft = raise_nofile()  # the test holds the client sides: 5,000 of its own descriptors
    if soft is None or soft < held + 500:
        pytest.skip(f"this process may open {soft} files; the test holds {held} connections")
    old, new = upstreams(), upstreams()
    balancer = balancers(workers=2)
    balancer.add("old", "127.0.0.1", old)
    balancer.set_ready("old", True)
    assert balancer.sync()  # ready on every worker before the first connection
    for _ in range(held):
        clients.append(connect(balancer.port))
    wait_for(lambda: settled(balancer) == {"old": held}, timeout=60, message="5,000 relayed")
    # A scale-out: a new replica, ready. Not one of the 5,000 moves to it...
    balancer.add("new", "127.0.0.1", new)
    balancer.set_ready("new", True)
    assert settled(balancer) == {"old": held, "new": 0}
    assert all(echoes(c) for c in clients[::100])  # ...and they still work where they are
    time.sleep(0.5)  # a few stats lines later, idle connections have not moved either
    assert settled(balancer) == {"old": held, "new": 0}
    # New connections go to the new replica: on each worker it has the fewest.
    fresh = [connect(balancer.port) for _ in range(20)]
    clients += fresh
    assert all(echoes(c) for c in fresh)
    assert settled(balancer) == {"old": held, "new": 20}


def test_a_port_another_balancer_holds_is_taken_though_both_would_reuse_it(balancers):
    # Every worker sets SO_REUSEPORT, so the kernel would let a second stack's balancer share
    # the first's port (and split its connections): a port given is checked first.
    first = balancers(workers=2)
    with pytest.raises(PortInUseError, match=f"--port: got {first.port}; expected a free port"):
        balancers(port=first.port)
    assert first.failure() is None


def test_a_population_sizes_the_local_balancer_for_its_agents():
    from stressbed.backends.local import LocalBackend  # noqa: PLC0415
    from stressbed.scenario import catalog  # noqa: PLC0415

    backend = LocalBackend()
    backend.preflight(None, catalog.load("agent_population"))
    assert backend.options.connections == 2000
    requests_only = LocalBackend()
    requests_only.preflight(None, catalog.load("ingest_mix"))
    assert requests_only.options.connections is None  # one worker, as before
