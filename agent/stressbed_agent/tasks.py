"""Allow-listed tasks run by the agent, each under a timeout. No shell, ever."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .ingest import BadRequest


async def _checksum(args: dict[str, Any]) -> dict[str, Any]:
    data = args.get("data", "")
    algorithm = args.get("algorithm", "sha256")
    if not isinstance(data, str) or len(data) > 1 << 16:
        raise BadRequest("args.data: expected a string of at most 65536 characters")
    if algorithm not in ("sha256", "sha1", "md5"):
        raise BadRequest("args.algorithm: expected sha256, sha1 or md5")
    return {"digest": hashlib.new(algorithm, data.encode()).hexdigest()}


async def _sleep(args: dict[str, Any]) -> dict[str, Any]:
    seconds = args.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise BadRequest("args.seconds: expected a number >= 0")
    await asyncio.sleep(seconds)
    return {"slept": seconds}


async def _echo(args: dict[str, Any]) -> dict[str, Any]:
    return {"echo": args}


TASKS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "checksum": _checksum,
    "echo": _echo,
    "sleep": _sleep,
}


class Tasks:
    """Task states by id, the oldest forgotten beyond ``limit``."""

    def __init__(self, limit: int, max_timeout_s: float) -> None:
        self.limit = limit
        self.max_timeout_s = max_timeout_s
        self.states: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.running: set[asyncio.Task[None]] = set()

    def submit(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        kind = body.get("type")
        if kind not in TASKS:
            raise BadRequest(f"type: expected one of {', '.join(sorted(TASKS))}")
        args = body.get("args", {})
        if not isinstance(args, dict):
            raise BadRequest("args: expected an object")
        timeout = body.get("timeout_s", 5)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= self.max_timeout_s
        ):
            raise BadRequest(f"timeout_s: expected a number in (0, {self.max_timeout_s:g}]")
        task_id = uuid.uuid4().hex
        state = {"id": task_id, "type": kind, "state": "queued", "created": time.time()}
        self.states[task_id] = state
        while len(self.states) > self.limit:
            self.states.popitem(last=False)
        job = asyncio.get_running_loop().create_task(self._run(state, kind, args, timeout))
        self.running.add(job)
        job.add_done_callback(self.running.discard)
        return {"id": task_id, "state": "queued"}

    async def _run(
        self, state: dict[str, Any], kind: str, args: dict[str, Any], timeout: float
    ) -> None:
        state["state"] = "running"
        try:
            state["result"] = await asyncio.wait_for(TASKS[kind](args), timeout)
            state["state"] = "done"
        except TimeoutError:
            state["state"], state["error"] = "timed_out", f"exceeded {timeout:g} s"
        except BadRequest as exc:
            state["state"], state["error"] = "failed", str(exc)

    def get(self, task_id: str) -> dict[str, Any] | None:
        return self.states.get(task_id)
