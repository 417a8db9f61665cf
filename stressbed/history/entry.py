"""What the history keeps of one run: who it was and its headline figures, read from its
summary.json (the per-second windows stay in the run directory)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Entry", "entry_of"]

#: The latency statistics kept, overall and per request name (k6's names).
LATENCY = ("p(50)", "p(95)", "p(99)")
#: Request names whose latency is kept, the busiest first.
TOP_REQUESTS = 10


@dataclass(frozen=True)
class Entry:
    """One run in the history. ``figures``: headline metric -> value (None: not measured,
    never 0); ``thresholds``: (metric, expression, observed or None, outcome)."""

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
    duration_s: float | None = None
    figures: dict[str, float | None] = field(default_factory=dict)
    thresholds: tuple[tuple[str, str, float | None, str], ...] = ()


def entry_of(
    summary: Mapping[str, Any], run_dir: str | None = None, build: str | None = None
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
    fingerprint = summary.get("fingerprint") or {}
    return Entry(
        run_id=str(summary["run_id"]),
        kind="run",
        scenario=summary.get("scenario"),
        fingerprint=fingerprint.get("config") if isinstance(fingerprint, Mapping) else None,
        verdict=summary.get("verdict"),
        exit_code=summary.get("exit_code"),
        run_dir=run_dir,
        build=build,
        backend=fingerprint.get("backend") if isinstance(fingerprint, Mapping) else None,
        runners=fingerprint.get("runners") if isinstance(fingerprint, Mapping) else None,
        duration_s=_number(summary.get("duration_s")),
        figures=figures,
        thresholds=thresholds,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
