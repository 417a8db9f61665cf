"""What the history keeps of one run: who it was and its headline figures, read from its
summary.json (the per-second windows stay in the run directory)."""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..results.compare import fingerprint_digest

__all__ = ["Entry", "entry_of"]

#: The latency statistics kept, overall and per request name (k6's names).
LATENCY = ("p(50)", "p(95)", "p(99)")
#: Request names whose latency is kept, the busiest first.
TOP_REQUESTS = 10


@dataclass(frozen=True)
class Entry:
    """One run in the history. ``fingerprint``: the digest of what ran (its scenario, config,
    duration, runners, backend and stack: runs that share it are like for like, one series of
    a trend), ``fingerprint_fields`` those fields; ``figures``: headline metric -> value
    (None: not measured, never 0); ``thresholds``: (metric, expression, observed or None,
    outcome); times in seconds since the epoch."""

    run_id: str
    kind: str
    scenario: str | None
    fingerprint: str | None
    verdict: str | None
    exit_code: int | None
    run_dir: str | None
    build: str | None = None
    backend: str | None = None
    runners: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    fingerprint_fields: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float | None] = field(default_factory=dict)
    thresholds: tuple[tuple[str, str, float | None, str], ...] = ()


def entry_of(
    summary: Mapping[str, Any],
    run_dir: str | None = None,
    build: str | None = None,
    *,
    kind: str = "run",
) -> Entry:
    """The entry of a run from its summary.json (a run's; a capacity search's later)."""
    metrics = summary.get("metrics") or {}
    figures: dict[str, float | None] = {}
    duration = metrics.get("http_req_duration") or {}
    for stat in LATENCY:
        figures[f"http_req_duration {stat}"] = _number(duration.get(stat))
    failed = metrics.get("http_req_failed") or {}
    figures["http_req_failed rate"] = _number(failed.get("rate"))
    reqs = metrics.get("http_reqs") or {}
    figures["http_reqs rate"] = _number(reqs.get("rate"))
    named = [
        (key, value)
        for key, value in metrics.items()
        if key.startswith("http_req_duration{name:") and isinstance(value, Mapping)
    ]
    named.sort(key=lambda kv: -(_number(kv[1].get("count")) or 0.0))
    for key, value in named[:TOP_REQUESTS]:
        for stat in LATENCY:
            figures[f"{key} {stat}"] = _number(value.get(stat))
    thresholds = tuple(
        (
            str(t.get("metric")),
            str(t.get("expression")),
            _number(t.get("observed")),
            str(t.get("outcome")),
        )
        for t in summary.get("thresholds") or ()
        if isinstance(t, Mapping)
    )
    fields = summary.get("fingerprint")
    fields = dict(fields) if isinstance(fields, Mapping) else {}
    events = [e.get("t") for e in summary.get("events") or () if isinstance(e, Mapping)]
    times = [t for t in map(_number, events) if t is not None]
    return Entry(
        run_id=str(summary["run_id"]),
        kind=kind,
        scenario=summary.get("scenario"),
        fingerprint=fingerprint_digest(fields) if fields else None,
        verdict=summary.get("verdict"),
        exit_code=summary.get("exit_code"),
        run_dir=run_dir,
        build=build,
        backend=fields.get("backend"),
        runners=fields.get("runners"),
        started_at=started_at(str(summary["run_id"])),
        ended_at=max(times) if times else None,
        duration_s=_number(summary.get("duration_s")),
        fingerprint_fields=fields,
        figures=figures,
        thresholds=thresholds,
    )


def started_at(run_id: str) -> float | None:
    """When a run started, from its id (``YYYYMMDD-HHMMSS`` in UTC, to the second)."""
    found = re.match(r"(\d{8}-\d{6})", run_id)
    if found is None:
        return None
    try:
        return float(calendar.timegm(time.strptime(found.group(1), "%Y%m%d-%H%M%S")))
    except ValueError:
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
