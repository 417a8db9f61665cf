"""Reading a target back after the load: what it stored of each writer (the scenario's
:class:`~stressbed.scenario.writes.Writes`), while the stack is still up.

One GET per writer (a few at a time, each with a timeout), then again for the writers that
are still short of what they were acknowledged, once a second, until none of them has
changed for ``quiet_s`` or ``settle_s`` has passed: a queue still draining is not a loss.
The bearer token comes from the environment and is never written anywhere.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..results.samples import OTHER_WRITERS
from ..scenario.writes import Writes

__all__ = ["StoredWrites", "read_back"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PARALLEL = 8
MAX_BODY = 1 << 20


@dataclass
class StoredWrites:
    """What the target answered: stored items per writer and per second of acceptance (when
    every answer said), or the problem that stopped the read-back."""

    stored: dict[str, int] = field(default_factory=dict)
    by_second: dict[int, int] | None = None
    problem: str | None = None
    rounds: int = 0


def read_back(
    writes: Writes,
    target: str,
    acked: Mapping[str, int],
    token: str | None,
    *,
    settle_s: float = 15.0,
    quiet_s: float = 3.0,
    timeout_s: float = 5.0,
) -> StoredWrites:
    if OTHER_WRITERS in acked:
        return StoredWrites(problem="more writers than can be counted apart (100000)")
    result = StoredWrites()
    answers: dict[str, tuple[int, dict[int, int] | None]] = {}
    short = sorted(acked)
    started = quiet_since = time.monotonic()
    with ThreadPoolExecutor(PARALLEL) as pool:
        while short:
            result.rounds += 1
            fresh = list(pool.map(lambda w: _get(writes, target, w, token, timeout_s), short))
            for answer in fresh:
                if isinstance(answer, str):
                    result.problem = answer
                    return result
            now = time.monotonic()
            for writer, answer in zip(short, fresh, strict=True):
                if answers.get(writer) != answer:
                    answers[writer] = answer  # type: ignore[assignment]  # str returned above
                    quiet_since = now
            short = [w for w in short if answers[w][0] < acked[w]]
            if now - quiet_since >= quiet_s or now - started + 1 > settle_s:
                break
            if short:
                time.sleep(1.0)
    result.stored = {w: n for w, (n, _) in answers.items()}
    if all(seconds is not None for _, seconds in answers.values()):
        total: dict[int, int] = {}
        for _, seconds in answers.values():
            for second, n in (seconds or {}).items():
                total[second] = total.get(second, 0) + n
        result.by_second = total
    return result


def _get(
    writes: Writes, target: str, writer: str, token: str | None, timeout_s: float
) -> tuple[int, dict[int, int] | None] | str:
    """(stored, by second) for one writer, or a one-line problem."""
    request = urllib.request.Request(writes.url(target, writer))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    where = f"read-back of writer {writer!r}"
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            body = json.loads(response.read(MAX_BODY))
    except urllib.error.HTTPError as exc:
        return f"{where}: HTTP {exc.code}{_said(exc)}"
    except (OSError, ValueError) as exc:
        return f"{where}: {type(exc).__name__}: {exc}"
    stored = body.get("stored") if isinstance(body, dict) else None
    if isinstance(stored, bool) or not isinstance(stored, int) or stored < 0:
        return f'{where}: expected {{"stored": N}}, got {str(body)[:120]}'
    seconds = body.get("by_second")
    if not isinstance(seconds, dict):
        return stored, None
    try:
        return stored, {int(s): int(n) for s, n in seconds.items()}
    except (TypeError, ValueError):
        return stored, None


def _said(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read(4096))
    except (OSError, ValueError):
        return ""
    message = body.get("error") if isinstance(body, dict) else None
    return f": {str(message)[:200]}" if message else ""
