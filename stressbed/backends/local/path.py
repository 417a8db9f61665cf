"""The path to a service stressbed does not run (``--target-url``), with faults on it: the
local balancer in front of the target, the fleet sent through it, and the path's faults
(``latency``, ``loss``, ``reset``) applied there as on a local stack's balancer, on a thread
ticking as the stack's controller does. Only for plain-HTTP targets: the balancer forwards
bytes, and the fleet's requests then carry the balancer's address as their Host.
"""

from __future__ import annotations

import threading
import urllib.parse
from collections.abc import Callable, Sequence

from ...scenario.faults import Fault
from ._faults import LocalFaults
from .balancer_pool import BalancerProcess

__all__ = ["FaultyPath"]

TICK_S = 0.05
UPSTREAM = "target"


class FaultyPath:
    """A balancer with one upstream (the target), and the faults scheduled on it."""

    def __init__(self, target_url: str, event: Callable[..., None]) -> None:
        self.target_url = target_url
        self._balancer: BalancerProcess | None = None
        self._faults = LocalFaults(event, lambda: self._balancer)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """The balancer up; the URL the fleet loads instead of the target's."""
        parts = urllib.parse.urlsplit(self.target_url)
        port = parts.port or 80
        self._balancer = BalancerProcess("127.0.0.1", 0)
        self._balancer.add(UPSTREAM, parts.hostname or "127.0.0.1", port)
        self._balancer.set_ready(UPSTREAM, True)
        return urllib.parse.urlunsplit(
            ("http", f"127.0.0.1:{self._balancer.port}", parts.path, parts.query, "")
        )

    def schedule(self, faults: Sequence[Fault], started_at: float) -> None:
        self._faults.arm(faults, started_at)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="path-faults", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            self._faults.tick([])

    def failure(self) -> str | None:
        balancer = self._balancer
        failed = balancer.failure() if balancer is not None else None
        if failed is not None:
            return failed.replace("the load balancer", "the balancer in front of the target", 1)
        return None

    def close(self) -> None:
        """Every fault undone, then the balancer stopped (bounded)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._faults.undo_all()
        if self._balancer is not None:
            self._balancer.close()
            self._balancer = None
