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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer, not a hop: the token is never sent on to another address."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
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
    problems: dict[str, str] = {}  # the last a writer's read-back said, until it answers
    pending = sorted(acked)  # short of what was acknowledged, or not answered yet
    started = quiet_since = time.monotonic()
    deadline = started + settle_s

    def get(writer: str) -> tuple[int, dict[int, int] | None] | str | _Refused:
        left = deadline - time.monotonic()
        if left <= 0:  # a target that hangs costs settle_s, not writers x timeout
            return f"read-back of writer {writer!r}: no answer within {settle_s:g} s"
        return _get(writes, target, writer, token, min(timeout_s, left))

    with ThreadPoolExecutor(PARALLEL) as pool:
        while pending:
            result.rounds += 1
            fresh = list(pool.map(get, pending))
            now = time.monotonic()
            for writer, answer in zip(pending, fresh, strict=True):
                if isinstance(answer, _Refused):  # the target says no: asking again won't help
                    result.problem = answer.text
                    return result
                if isinstance(answer, str):
                    problems[writer] = answer  # asked again next round: a blip is not a loss
                elif answers.get(writer) != answer:
                    problems.pop(writer, None)
                    answers[writer] = answer
                    quiet_since = now
            pending = [w for w in pending if w in problems or answers[w][0] < acked[w]]
            quiet = now - quiet_since >= quiet_s and not any(w in problems for w in pending)
            if quiet or now + 1 > deadline:
                break
            if pending:
                time.sleep(1.0)
    unanswered = [w for w in sorted(acked) if w not in answers]
    if unanswered:
        result.problem = problems.get(unanswered[0]) or f"no answer for {unanswered[0]!r}"
        return result
    result.stored = {w: n for w, (n, _) in answers.items()}
    if all(seconds is not None for _, seconds in answers.values()):
        total: dict[int, int] = {}
        for _, seconds in answers.values():
            for second, n in (seconds or {}).items():
                total[second] = total.get(second, 0) + n
        result.by_second = total
    return result


@dataclass(frozen=True)
class _Refused:
    """A 4xx: the target will not answer this read-back however often it is asked."""

    text: str


def _get(
    writes: Writes, target: str, writer: str, token: str | None, timeout_s: float
) -> tuple[int, dict[int, int] | None] | str | _Refused:
    """(stored, by second) for one writer, or a one-line problem (a 4xx: a refusal)."""
    request = urllib.request.Request(writes.url(target, writer))
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    where = f"read-back of writer {writer!r}"
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            body = json.loads(response.read(MAX_BODY))
    except urllib.error.HTTPError as exc:
        with exc:
            said = f"{where}: HTTP {exc.code}{_said(exc)}"
        return _Refused(said) if 300 <= exc.code < 500 else said
    except Exception as exc:  # refused, reset, cut short, a bad status line: a problem said
        return f"{where}: {type(exc).__name__}: {exc}"[:300]
    stored = body.get("stored") if isinstance(body, dict) else None
    if isinstance(stored, bool) or not isinstance(stored, int) or stored < 0:
        return _Refused(f'{where}: expected {{"stored": N}}, got {str(body)[:120]}')
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
