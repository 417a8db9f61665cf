"""Running probes against replicas, as the kubelet does: HTTP GET, TCP connect or exec.

Every probe is bounded by its ``timeout_s``; a timeout is a failure. HTTP passes on a status
from 200 to 399, TCP when the connection opens, exec when the command exits 0.
:class:`ProbePool` runs them off the controller thread, a few at a time, one of each kind per
process at once, and hands their results back to the controller.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import os
import queue
import signal
import socket
import subprocess
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from ...stack.spec import Probe

__all__ = ["ProbePool", "run_probe"]

P = TypeVar("P")  # what a probe is about: the controller's handle on one replica process


class ProbePool(Generic[P]):
    def __init__(self, host: str, workers: int = 8) -> None:
        self.host = host
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="probe")
        self._results: queue.Queue[tuple[P, str, bool, str]] = queue.Queue()
        self._in_flight: set[tuple[int, str]] = set()

    def submit(self, about: P, kind: str, probe: Probe, port: int, env: Mapping[str, str]) -> None:
        """Run ``probe`` (a ``kind`` probe) against ``port``, unless one is still running."""
        key = (id(about), kind)
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        self._pool.submit(self._run, about, kind, probe, port, env)

    def _run(self, about: P, kind: str, probe: Probe, port: int, env: Mapping[str, str]) -> None:
        try:
            ok, seen = run_probe(probe, self.host, port, env)
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


def run_probe(probe: Probe, host: str, port: int, env: Mapping[str, str]) -> tuple[bool, str]:
    """(passed, what was seen) for one attempt of ``probe``."""
    try:
        if probe.kind == "http":
            return _http(probe, host, port)
        if probe.kind == "tcp":
            with socket.create_connection((host, port), timeout=probe.timeout_s):
                return True, "connected"
        return _exec(probe, env)
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


def _exec(probe: Probe, env: Mapping[str, str]) -> tuple[bool, str]:
    # Its own process group, killed whole when it is done: a probe such as `sh -c "curl ..."`
    # that times out (or leaves a child behind) leaves nothing running.
    proc = subprocess.Popen(
        probe.command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(env),
        start_new_session=True,
    )
    try:
        code = proc.wait(timeout=probe.timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {probe.timeout_s:g} s"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return code == 0, f"exit code {code}"
