"""The supervisor's handle on the load balancer: a pool of worker processes on one port.

One balancer process (:mod:`.balancer`) holds two descriptors per relayed connection (the
client's and the upstream's), and the descriptors a process may open are capped by its hard
``RLIMIT_NOFILE``, which an unprivileged process cannot raise (20,000 in many CI containers).
So :class:`BalancerProcess` starts as many workers as the connections it is sized for need,
``ceil(connections / per_worker)`` with ``per_worker = (hard limit - RESERVE_FDS) // 2`` (each
worker raises its soft limit to the hard one), one when it is not told (:func:`workers_for`).
The first worker binds the port (the kernel chooses one for 0), the others the same port with
``SO_REUSEPORT``, as production proxies run several workers; the kernel spreads new
connections over the workers, and each worker sends its own to the ready upstream with the
fewest of *its* connections, so the spread over the replicas is as even as the kernel's spread
over the workers.

Every membership change, toxic and reset is sent to every worker, in the same order. Each
worker says its open connections per upstream once a second (a thread per worker reads
them); :meth:`BalancerProcess.connections` is their sum, and :meth:`BalancerProcess.sync`
waits until every worker has applied every op sent so far (and answered with its counts).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

from ...errors import ConfigError, ProvisionError
from ...fleet.process import die_with_parent
from .balancer import STATS_S

__all__ = [
    "RESERVE_FDS",
    "BalancerProcess",
    "PortInUseError",
    "per_worker",
    "worker_sources",
    "workers_for",
]

#: Descriptors a worker keeps for itself (its listening sockets, stdio, Python's own files).
RESERVE_FDS = 200
#: How long closing waits for the workers to end after their stdin closed, before SIGKILL.
CLOSE_S = 3.0


def per_worker(limit: int | None = None) -> int:
    """The connections one worker carries: half the descriptors of ``limit`` (default: this
    process's hard RLIMIT_NOFILE, which a worker inherits and raises its soft limit to) left
    after :data:`RESERVE_FDS`."""
    if limit is None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = soft if hard == resource.RLIM_INFINITY else hard
    return max(1, (limit - RESERVE_FDS) // 2)


def workers_for(connections: int | None, per: int | None = None) -> int:
    """The workers ``connections`` concurrent connections need (``per`` each, default
    :func:`per_worker`); one when the count is not known (None or 0)."""
    if not connections:
        return 1
    return max(1, math.ceil(connections / (per or per_worker())))


def worker_sources(index: int) -> str | None:
    """The loopback addresses worker ``index`` connects to the replicas from, 254 of its own,
    ``127.255.<index % 256>.1-254`` (Linux routes all of 127.0.0.0/8 to loopback; a
    population's runners use 127.1-127.254): from 127.0.0.1 the workers would share 28,232
    ephemeral ports a replica with the stack's own probes. None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    block = f"127.255.{index % 256}"
    return f"{block}.1-{block}.254"


class _Worker:
    """One balancer process: its pipes, and what its stats lines said last."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl
        )
        self.connections: dict[str, int] = {}
        self.answered = 0  # the last "stats" op it answered
        self.nofile: int | None = None
        self.reader: threading.Thread | None = None

    @property
    def stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def hello(self, deadline: float) -> dict[str, Any]:
        """Its first line ({"event": "listening", ...} or an error), or {} by ``deadline``."""
        left = max(0.0, deadline - time.monotonic())
        ready = select.select([self.stdout], [], [], left)[0]
        line = self.stdout.readline() if ready else b""
        try:
            said = json.loads(line) if line.strip() else {}
        except ValueError:
            return {}
        return said if isinstance(said, dict) else {}


class BalancerProcess:
    """The balancer's workers on ``host:port`` (and on each of ``also``, the same port), sized
    for ``connections`` concurrent connections (None: one worker) unless ``workers`` says how
    many."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_s: float = 15.0,
        also: Sequence[str] = (),
        *,
        connections: int | None = None,
        workers: int | None = None,
        stats_s: float = STATS_S,
    ) -> None:
        if connections is not None and connections < 0:
            raise ConfigError("connections", connections, "a count of connections >= 0")
        if workers is not None and workers < 1:
            raise ConfigError("workers", workers, "at least 1")
        self.host = host
        #: Other addresses it listens on, at the same port (a container network's gateway).
        self.also = tuple(also)
        #: The concurrent connections it was sized for (None: not said).
        self.expected_connections = connections
        self.per_worker = per_worker()
        count = workers if workers is not None else workers_for(connections, self.per_worker)
        self._stats_s = stats_s
        self._send_lock = threading.Lock()  # one op at a time, in one order to every worker
        self._seen = threading.Condition()
        self._sent = 0  # the last "stats" op sent
        self.workers: list[_Worker] = []
        self.port = port
        deadline = time.monotonic() + timeout_s
        try:
            self.port = self._first(port, deadline)
            self._others(count - 1, deadline)
        except BaseException:
            self.close()
            raise
        for worker in self.workers:
            worker.reader = threading.Thread(
                target=self._read, args=(worker,), name="stressbed-balancer-stats", daemon=True
            )
            worker.reader.start()

    # -- starting ---------------------------------------------------------------------

    def _command(self, port: int, index: int) -> list[str]:
        command = [sys.executable, "-m", "stressbed.balancer", "--host", self.host]
        command += ["--port", str(port), "--stats-interval", f"{self._stats_s:g}"]
        for other in self.also:
            command += ["--also", other]
        sources = worker_sources(index)
        if sources is not None:
            command += ["--sources", sources]
        return command

    def _first(self, port: int, deadline: float) -> int:
        """The first worker, which binds the port (or chooses one for 0): its port. A port
        given is tried first without SO_REUSEPORT: a listener of this user's own that set it
        (another stressbed's balancer) would otherwise share it silently."""
        if port and any(_taken(host, port) for host in (self.host, *self.also)):
            raise PortInUseError(self.host, port)
        worker = _Worker(self._command(port, 0))
        self.workers.append(worker)
        said = worker.hello(deadline)
        if said.get("event") != "listening":
            if said.get("errno") == errno.EADDRINUSE:
                raise PortInUseError(self.host, port)
            if said.get("errno") == errno.EACCES:
                raise ConfigError(
                    "--port", port, "a port this user may bind (above 1023, or 0 for any)"
                )
            raise ProvisionError(
                f"the load balancer did not start: {said.get('error', 'no answer')}"
            )
        worker.nofile = _count(said.get("nofile"))
        return int(said["port"])

    def _others(self, count: int, deadline: float) -> None:
        """The other workers, started together, each on the first's port."""
        first = len(self.workers)
        started = [_Worker(self._command(self.port, first + i)) for i in range(count)]
        self.workers += started
        for i, worker in enumerate(started, start=2):
            said = worker.hello(deadline)
            if said.get("event") != "listening":
                raise ProvisionError(
                    f"the load balancer's worker {i} of {len(self.workers)} did not start on "
                    f"port {self.port}: {said.get('error', 'no answer')}"
                )
            worker.nofile = _count(said.get("nofile"))

    def _read(self, worker: _Worker) -> None:
        """Its stats lines, until it exits."""
        with contextlib.suppress(OSError, ValueError):
            for line in worker.stdout:
                try:
                    said = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(said, dict) or said.get("event") != "stats":
                    continue
                counts = said.get("connections")
                with self._seen:
                    if isinstance(counts, dict):
                        worker.connections = {str(k): int(v) for k, v in counts.items()}
                    seq = said.get("seq")
                    if isinstance(seq, int):
                        worker.answered = max(worker.answered, seq)
                    self._seen.notify_all()
        with self._seen:  # it exited: nobody waits for its answer any more
            self._seen.notify_all()

    # -- what it says -------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]

    @property
    def nofile(self) -> int | None:
        """The open-file limit its workers run with (the lowest; None: not read)."""
        seen = [w.nofile for w in self.workers if w.nofile is not None]
        return min(seen) if seen else None

    def report(self) -> dict[str, Any]:
        """How it is sized, for summary.json."""
        return {
            "workers": len(self.workers),
            "expected_connections": self.expected_connections,
            "connections_per_worker": self.per_worker,
            "nofile": self.nofile,
        }

    def failure(self) -> str | None:
        """Why it stopped serving (a worker exited), or None while every worker runs."""
        for i, worker in enumerate(self.workers, start=1):
            code = worker.proc.poll()
            if code is None:
                continue
            if len(self.workers) == 1:
                return f"the load balancer exited (code {code})"
            return f"the load balancer exited (worker {i} of {len(self.workers)}, code {code})"
        return None

    def connections(self) -> dict[str, int]:
        """Open connections per upstream, summed over the workers, as they said last (at most
        a stats interval ago; :meth:`sync` first for counts as of now)."""
        total: dict[str, int] = {}
        with self._seen:
            for worker in self.workers:
                for name, count in worker.connections.items():
                    total[name] = total.get(name, 0) + count
        return total

    def sync(self, timeout_s: float = 10.0) -> bool:
        """Wait until every worker has applied every op sent before this call and said its
        counts after them; False if one did not within ``timeout_s`` (or has exited)."""
        with self._send_lock:
            self._sent += 1
            seq = self._sent
        self._send(op="stats", seq=seq)
        deadline = time.monotonic() + timeout_s
        with self._seen:
            while any(w.answered < seq for w in self.workers):
                left = deadline - time.monotonic()
                if left <= 0 or self.failure() is not None:
                    return False
                self._seen.wait(min(left, 0.5))
        return True

    # -- what it is told ----------------------------------------------------------------

    def _send(self, **op: object) -> None:
        line = json.dumps(op).encode() + b"\n"
        with self._send_lock:
            for worker in self.workers:
                with contextlib.suppress(BrokenPipeError, ValueError):
                    worker.stdin.write(line)
                    worker.stdin.flush()

    def add(self, name: str, host: str, port: int) -> None:
        self._send(op="add", name=name, host=host, port=port)

    def set_ready(self, name: str, ready: bool) -> None:
        self._send(op="ready", name=name, ready=ready)

    def remove(self, name: str) -> None:
        self._send(op="remove", name=name)

    def add_toxic(
        self, name: str, kind: str, upstreams: Sequence[str] | None, **params: float
    ) -> None:
        """A fault on the path (see :class:`~.balancer.Toxic`), from now until
        :meth:`remove_toxic`."""
        scope = sorted(upstreams) if upstreams is not None else None
        self._send(op="toxic", name=name, kind=kind, upstreams=scope, **params)

    def remove_toxic(self, name: str) -> None:
        self._send(op="untoxic", name=name)

    def reset(self, upstreams: Sequence[str] | None = None) -> None:
        """Reset every open connection (to ``upstreams``), on every worker."""
        self._send(op="reset", upstreams=sorted(upstreams) if upstreams is not None else None)

    def close(self) -> None:
        """Every worker told to stop (its stdin closed), then killed if it has not within
        :data:`CLOSE_S`."""
        for worker in self.workers:
            with contextlib.suppress(OSError, ValueError):
                worker.stdin.close()
        deadline = time.monotonic() + CLOSE_S
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
        for worker in self.workers:
            if worker.reader is not None:
                worker.reader.join(timeout=2)
            with contextlib.suppress(OSError, ValueError):
                worker.stdout.close()


def _taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (a bind without SO_REUSEPORT fails)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PortInUseError(ConfigError):
    """The stack's port is taken: nothing was started."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            "--port",
            port,
            f"a free port on {host}: another process listens on it "
            "(stop it, or pass --port 0 to take any free port)",
        )
