"""Running one probe against a replica, as the kubelet does: HTTP GET, TCP connect or exec.

Every probe is bounded by its ``timeout_s``; a timeout is a failure. HTTP passes on a status
from 200 to 399, TCP when the connection opens, exec when the command exits 0.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
from collections.abc import Mapping

from ...stack.spec import Probe

__all__ = ["run_probe"]


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
    try:
        done = subprocess.run(
            probe.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(env),
            timeout=probe.timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {probe.timeout_s:g} s"
    return done.returncode == 0, f"exit code {done.returncode}"
