"""What the history keeps of one run: who it was and its headline figures, read from its
summary.json (the per-second windows stay in the run directory)."""

from __future__ import annotations

import calendar
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..results.compare import fingerprint_digest

__all__ = [
    "Entry",
    "capacity_entry_of",
    "entry_of",
    "shown_change",
    "shown_time",
    "started_at",
]

#: The latency statistics kept, overall and per request name (k6's names).
LATENCY = ("p(50)", "p(95)", "p(99)")
#: Request names whose latency is kept, the busiest first.
TOP_REQUESTS = 10
#: What a fault's users saw, kept per fault of a run's resilience figures.
FAULT_FIGURES = ("time_to_detect_s", "time_to_recover_s", "errors_during_fault")
#: A population's figures kept.
POPULATION_FIGURES = ("connected_share", "peak_connected")


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
    figures.update(_rates(metrics))
    named = [
        (key, value)
        for key, value in metrics.items()
        if key.startswith("http_req_duration{name:") and isinstance(value, Mapping)
    ]
    named.sort(key=lambda kv: -(_number(kv[1].get("count")) or 0.0))
    for key, value in named[:TOP_REQUESTS]:
        for stat in LATENCY:
            figures[f"{key} {stat}"] = _number(value.get(stat))
    figures.update(_resilience(summary.get("resilience")))
    figures.update(_population(summary.get("population")))
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


def capacity_entry_of(
    document: Mapping[str, Any], run_dir: str | None = None, build: str | None = None
) -> Entry:
    """The entry of a capacity search from its capacity.json: the answer's figures (the
    highest rate that held, the first that failed, a scale-out's timings). Its series: the
    scenario, workload, search settings and stack limits (a search's own fingerprint)."""
    settings = dict(document.get("settings") or {})
    settings.pop("target_url", None)  # a free port: not what the search searched
    stack = document.get("stack") or {}
    fields = {
        "kind": "capacity",
        "run": document.get("fingerprint"),  # what each probe ran
        "scenario": document.get("scenario"),
        "workload": document.get("workload"),
        "unit": document.get("unit"),
        "slos": document.get("slos"),
        "settings": settings,
        "limits": stack.get("limits") if isinstance(stack, Mapping) else None,
        "max_replicas": stack.get("max_replicas") if isinstance(stack, Mapping) else None,
    }
    figures = {
        f"capacity {name}": _number(document.get(name))
        for name in ("max_sustainable_rate", "first_failing_rate")
    }
    if document.get("variable") == "agents" or "max_sustainable_agents" in document:
        figures["capacity max_sustainable_agents"] = _number(document.get("max_sustainable_agents"))
    scale_out = document.get("scale_out")
    if isinstance(scale_out, Mapping):
        for name in ("t_desired_s", "t_ready_s", "t_recovered_s", "violation_s"):
            figures[f"scale_out {name}"] = _number(scale_out.get(name))
    code = document.get("exit_code")
    run_id = str(document["run_id"])
    return Entry(
        run_id=run_id,
        kind="capacity",
        scenario=document.get("scenario"),
        fingerprint=fingerprint_digest(fields),
        verdict={0: "pass", 1: "fail"}.get(code, "error") if isinstance(code, int) else None,
        exit_code=code if isinstance(code, int) else None,
        run_dir=run_dir,
        build=build,
        backend=settings.get("backend"),
        runners=settings.get("runners"),
        started_at=started_at(run_id),
        duration_s=_number(document.get("elapsed_s")),
        fingerprint_fields=fields,
        figures=figures,
        thresholds=(),
    )


def _rates(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The iteration rate achieved, and the one offered: achieved plus what k6 dropped (an
    arrival-rate executor drops an iteration it has no VU for; k6 leaves the metric out when
    none was dropped, so its absence is a measured zero)."""
    iterations = metrics.get("iterations")
    if not isinstance(iterations, Mapping):
        return {"iterations rate": None, "offered iterations rate": None}
    achieved = _number(iterations.get("rate"))
    dropped = metrics.get("dropped_iterations")
    lost = _number(dropped.get("rate")) if isinstance(dropped, Mapping) else 0.0
    offered = None if achieved is None or lost is None else achieved + lost
    return {"iterations rate": achieved, "offered iterations rate": offered}


def _resilience(found: object) -> dict[str, float | None]:
    """Per fault: how long users saw it (detection, recovery) and the errors while it lasted."""
    if not isinstance(found, Mapping):
        return {}
    out: dict[str, float | None] = {}
    for fault in found.get("faults") or ():
        if not isinstance(fault, Mapping) or not fault.get("name"):
            continue
        for name in FAULT_FIGURES:
            out[f"fault {fault['name']} {name}"] = _number(fault.get(name))
    return out


def _population(found: object) -> dict[str, float | None]:
    if not isinstance(found, Mapping):
        return {}
    return {f"population {name}": _number(found.get(name)) for name in POPULATION_FIGURES}


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


def shown_time(t: float | None, *, seconds: bool = False) -> str:
    """When, in UTC, as the history's tables and pages show it; "-" when not known."""
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def shown_change(relative: float | None) -> str:
    """A change point's size as a share of the level before ("(from 0)" from a level of 0)."""
    return "(from 0)" if relative is None else f"{relative:+.1%}"
