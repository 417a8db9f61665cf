"""Fault hooks for stability experiments, behind their own token and off by default.

POST /admin/faults {"kind": "latency", "duration_s": 30, "ms": 200}; DELETE /admin/faults/latency
ends it early. kinds: latency (ms), errors (rate 0..1, status), cpu (share 0..1), memory (mb),
       flap_readiness (period_s), sink_failure, crash
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from typing import Any

from .ingest import BadRequest

KINDS = ("latency", "errors", "cpu", "memory", "flap_readiness", "sink_failure", "crash")
MAX_DURATION_S = 3600
MAX_MEMORY_MB = 4096


class Faults:
    def __init__(self) -> None:
        self.active: dict[str, tuple[float, dict[str, Any]]] = {}
        self.ballast: list[bytearray] = []
        self.burner: asyncio.Task[None] | None = None

    def get(self, kind: str) -> dict[str, Any] | None:
        entry = self.active.get(kind)
        if entry is None:
            return None
        until, params = entry
        if time.monotonic() >= until:
            del self.active[kind]
            if kind == "memory":
                self.ballast.clear()
            return None
        return params

    def start(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        kind = body.get("kind")
        if kind not in KINDS:
            raise BadRequest(f"kind: expected one of {', '.join(KINDS)}")
        duration = body.get("duration_s", 10)
        if (
            isinstance(duration, bool)
            or not isinstance(duration, int | float)
            or not (0 < duration <= MAX_DURATION_S)
        ):
            raise BadRequest(f"duration_s: expected a number in (0, {MAX_DURATION_S}]")
        params = {k: v for k, v in body.items() if k not in ("kind", "duration_s")}
        _validate(kind, params)
        self.active[kind] = (time.monotonic() + duration, params)
        loop = asyncio.get_running_loop()
        # Every fault ends by itself: get() forgets it, and this releases what it holds.
        loop.call_later(duration, self.get, kind)
        if kind == "memory":
            # Filled, not zeroed: zero pages are not resident until written.
            self.ballast = [
                bytearray(b"\xa5" * (1 << 20)) for _ in range(int(params.get("mb", 64)))
            ]
        elif kind == "cpu":
            if self.burner is not None:
                self.burner.cancel()
            self.burner = loop.create_task(self._burn(float(params.get("share", 0.5))))
        elif kind == "crash":
            loop.call_later(0.05, os.kill, os.getpid(), signal.SIGKILL)
        return {"kind": kind, "duration_s": duration, **params}

    def stop(self, kind: str) -> bool:
        """End ``kind`` now; False when it was not active."""
        if kind not in KINDS:
            raise BadRequest(f"kind: expected one of {', '.join(KINDS)}", 404)
        active = self.get(kind) is not None
        self.active.pop(kind, None)
        if kind == "memory":
            self.ballast.clear()
        elif kind == "cpu" and self.burner is not None:
            self.burner.cancel()
            self.burner = None
        return active

    async def _burn(self, share: float) -> None:
        # Busy the event loop `share` of every 100 ms, as a CPU-bound handler would.
        while self.get("cpu") is not None:
            end = time.monotonic() + 0.1 * share
            while time.monotonic() < end:
                pass  # spinning is the point: this burns CPU
            await asyncio.sleep(0.1 * (1 - share))

    def error_status(self) -> int | None:
        params = self.get("errors")
        if params is not None and random.random() < float(params.get("rate", 1.0)):
            return int(params.get("status", 503))
        return None

    def unready(self) -> bool:
        params = self.get("flap_readiness")
        if params is None:
            return False
        period = float(params.get("period_s", 2))
        return int(time.monotonic() / period) % 2 == 1


def _validate(kind: str, params: dict[str, Any]) -> None:
    def number(key: str, low: float, high: float) -> None:
        value = params.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise BadRequest(f"{key}: expected a number in [{low:g}, {high:g}]")

    number("ms", 0, 60_000)
    number("rate", 0, 1)
    number("status", 400, 599)
    number("share", 0, 1)
    number("mb", 1, MAX_MEMORY_MB)
    number("period_s", 0.1, 600)
