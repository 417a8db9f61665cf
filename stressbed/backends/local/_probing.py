"""Running probes against replicas, as the kubelet does: HTTP GET, TCP connect or exec.

Every probe is bounded by its ``timeout_s``; a timeout is a failure. HTTP passes on a status
from 200 to 399, TCP when the connection opens, exec when the command exits 0.
:class:`ProbePool` runs them off the controller thread, a few at a time, one of each kind per
process at once, and hands their results back to the controller.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import queue
import socket
from collections.abc import Iterator, Sequence
from typing import Generic, Protocol, TypeVar

from ...stack.spec import Probe

__all__ = ["Executes", "ProbePool", "run_probe"]


class Executes(Protocol):
    """What a probe is about: the controller's handle on one replica, which runs an exec
    probe's command beside the replica (locally a process; in a container, ``docker exec``)."""

    def exec_probe(self, command: Sequence[str], timeout_s: float) -> tuple[bool, str]: ...


P = TypeVar("P", bound=Executes)


class ProbePool(Generic[P]):
    def __init__(self, workers: int = 8) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="probe")
        self._results: queue.Queue[tuple[P, str, bool, str]] = queue.Queue()
        self._in_flight: set[tuple[int, str]] = set()

    def submit(self, about: P, kind: str, probe: Probe, host: str, port: int) -> None:
        """Run ``probe`` (a ``kind`` probe) against ``host:port``, unless one is still running."""
        key = (id(about), kind)
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        self._pool.submit(self._run, about, kind, probe, host, port)

    def _run(self, about: P, kind: str, probe: Probe, host: str, port: int) -> None:
        try:
            ok, seen = run_probe(probe, host, port, about)
        except Exception as exc:  # whatever happened, the probe failed and is run again
            ok, seen = False, f"{type(exc).__name__}: {exc}"
        self._results.put((about, kind, ok, seen))

    def results(self) -> Iterator[tuple[P, str, bool, str]]:
        """The results in so far: (what it was about, kind, passed, what was seen)."""
        while True:
            try:
                about, kind, ok, seen = self._results.get_nowait()
            except queue.Empty:
                return
            self._in_flight.discard((id(about), kind))
            yield about, kind, ok, seen

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def run_probe(probe: Probe, host: str, port: int, about: Executes) -> tuple[bool, str]:
    """(passed, what was seen) for one attempt of ``probe``."""
    try:
        if probe.kind == "http":
            return _http(probe, host, port)
        if probe.kind == "tcp":
            with socket.create_connection((host, port), timeout=probe.timeout_s):
                return True, "connected"
        return about.exec_probe(probe.command, probe.timeout_s)
    except TimeoutError:
        return False, f"timed out after {probe.timeout_s:g} s"
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{type(exc).__name__}: {exc}"


def _http(probe: Probe, host: str, port: int) -> tuple[bool, str]:
    conn = http.client.HTTPConnection(host, port, timeout=probe.timeout_s)
    try:
        conn.request("GET", probe.path, headers={"User-Agent": "stressbed-probe"})
        response = conn.getresponse()
        response.read(4096)
        ok = 200 <= response.status < 400
        return ok, f"HTTP {response.status}"
    finally:
        conn.close()
