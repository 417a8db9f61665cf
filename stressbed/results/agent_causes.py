"""What limits a population at the boundary: the target's own connection limit, or its open
files; read from the failing probe's client figures, the stack's samples and the target's
metrics. The causes :func:`stressbed.results.causes.binding_cause` adds for a population:

- ``connection-limit``: the target refused channel upgrades past its own limit. The reference
  agent answers an upgrade past ``max_connections`` with HTTP 503 before the handshake and
  counts it in ``agent_channel_refused{reason="limit"}``; k6 only sees a failed handshake
  (the runtime's reason ``handshake``). Named from the target's counter when it is scraped
  (with its open channels at their most, ``agent_channel_connected``), else, more warily,
  from the client's handshake failures alone when they are most of the failures;
- ``open-files``: a replica or the stack's load balancer (two files per connection) held 90%
  or more of its ``RLIMIT_NOFILE``: past it ``accept`` fails with EMFILE and connections are
  refused or reset (the local stack samples both once a second).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .probe import Probe

__all__ = ["REFUSED_SERIES", "connection_limit", "open_files"]

#: The target's counter of upgrades refused past its limit (a rate per second, scraped).
REFUSED_SERIES = 'agent_channel_refused{reason="limit"} /s'
CONNECTED_SERIES = "agent_channel_connected"
HANDSHAKE = "handshake"
OPEN_FILES_SHARE = 0.9
#: Client-side only, handshake failures must be at least this share of the failures.
HANDSHAKE_SHARE = 0.5

Series = Mapping[str, Sequence[Sequence[float]]]


def connection_limit(
    failed: Probe, target: Series, begin: float, end: float
) -> dict[str, Any] | None:
    """The target refused channels past its own limit during ``failed`` (``target``: its
    scraped series; ``begin``..``end``: the probe, unix seconds)."""
    reasons: Mapping[str, int] = failed.figures.get("connect_failures_by_reason") or {}
    failures = sum(reasons.values())
    handshake = int(reasons.get(HANDSHAKE, 0))
    refused = _sum(target.get(REFUSED_SERIES), begin, end)
    peak = _peak(target.get(CONNECTED_SERIES), begin, end)
    held = f" with {peak:,.0f} channels open at most (agent_channel_connected)" if peak else ""
    client = (
        f"; k6 counted {handshake:,} connect failures '{HANDSHAKE}' (an answer other than 101)"
        if handshake
        else ""
    )
    evidence = {
        "refused_at_limit": refused,
        "target_connected_peak": peak,
        "handshake_failures": handshake,
        "connect_failures_by_reason": dict(reasons),
        "peak_connected": failed.figure("peak_connected"),
    }
    if refused:
        return _cause(
            "connection-limit",
            f"the target's own connection limit: it refused {refused:,.0f} channel upgrades "
            f'past it (HTTP 503, agent_channel_refused{{reason="limit"}}){held}{client}',
            evidence,
        )
    if handshake and handshake >= HANDSHAKE_SHARE * failures:
        return _cause(
            "connection-limit",
            f"the target refused channel upgrades: {handshake:,} of {failures:,} connect "
            f"failures were '{HANDSHAKE}' (an answer other than 101, such as the 503 of a "
            "connection limit; the target's own metrics would say which)",
            evidence,
        )
    return None


def open_files(failed: Probe) -> dict[str, Any] | None:
    """A replica or the load balancer near its limit of open files during ``failed``."""
    near: dict[str, dict[str, float]] = {}
    pods: Mapping[str, Mapping[str, Any]] = failed.figures.get("pods") or {}
    balancer = failed.figures.get("balancer")
    for name, usage in [*pods.items(), *([("load balancer", balancer)] if balancer else [])]:
        held, limit = usage.get("open_files"), usage.get("nofile_limit")
        if held is not None and limit and held >= OPEN_FILES_SHARE * limit:
            near[name] = {"open_files": held, "nofile_limit": limit}
    if not near:
        return None
    name, worst = max(
        near.items(), key=lambda item: item[1]["open_files"] / item[1]["nofile_limit"]
    )
    who = "the load balancer" if name == "load balancer" else f"replica {name}"
    reasons: Mapping[str, int] = failed.figures.get("connect_failures_by_reason") or {}
    lost = ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    client = f" (k6's connect failures: {lost})" if lost else ""
    return _cause(
        "open-files",
        f"file descriptors: {who} held {worst['open_files']:,.0f} of its "
        f"{worst['nofile_limit']:,.0f} open files (RLIMIT_NOFILE); past it accept() fails "
        f"with EMFILE and connections are refused or reset{client}",
        {"near_limit": near, "connect_failures_by_reason": dict(reasons)},
    )


def _cause(kind: str, message: str, evidence: Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "message": message, "evidence": dict(evidence)}


def _inside(points: Sequence[Sequence[float]] | None, begin: float, end: float) -> list[float]:
    return [float(v) for t, v in points or () if begin <= t <= end]


def _sum(points: Sequence[Sequence[float]] | None, begin: float, end: float) -> float:
    return sum(_inside(points, begin, end))


def _peak(points: Sequence[Sequence[float]] | None, begin: float, end: float) -> float | None:
    found = _inside(points, begin, end)
    return max(found) if found else None
