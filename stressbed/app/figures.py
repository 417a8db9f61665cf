"""The run's figures of faults and writes, for summary.json: each fault's instants as the
stack recorded them, what users saw, how fast the stack recovered, what it lost of the writes
it acknowledged (:mod:`stressbed.results.resilience`, :mod:`stressbed.results.writes`), and
the resilience thresholds judged on every fault."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..results.isolation import isolation_verdict
from ..results.merge import FleetResult
from ..results.resilience import judge_resilience, resilience
from ..results.storm import storms
from ..results.writes import lost_writes
from ..scenario.capacity import slo_label, window_judgeable
from ..scenario.flow import think_time_s
from ..scenario.model import Scenario
from ..scenario.population import Agent
from .readback import StoredWrites

__all__ = ["WHOLE_RUN", "fault_figures", "write_figures"]

#: What a verdict on the whole run is on, beside the faults' names.
WHOLE_RUN = "the whole run"


def fault_figures(
    scenario: Scenario,
    fleet: FleetResult,
    events: Sequence[Mapping[str, Any]],
    stored: StoredWrites | None = None,
) -> dict[str, Any]:
    """summary.json ``resilience``: every fault, applied or not, in the scenario's order."""
    applied = {e.get("fault"): e for e in events if e.get("event") == "fault-applied"}
    ended = {e.get("fault"): e for e in events if e.get("event") == "fault-ended"}
    skipped = {e.get("fault"): e for e in events if e.get("event") == "fault-skipped"}
    happened, missing = [], []
    for item in scenario.faults:
        seen = applied.get(item.name)
        if seen is None:
            why = skipped.get(item.name, {}).get("reason") or "the load ended before it"
            missing.append({**item.to_dict(), "applied": False, "reason": why})
            continue
        end = ended.get(item.name)
        happened.append(
            {
                **item.to_dict(),
                "at": float(seen["t"]),
                "end": float(end["t"]) if end is not None else None,
                "replicas": list(seen.get("replicas") or []),
                "how": seen.get("how"),
            }
        )
    _place_lost_writes(happened, fleet, stored)
    slos = [t for t in scenario.thresholds if window_judgeable(t)]
    pause = max(
        (think_time_s(w.flow)[1] for w in scenario.workloads if not isinstance(w.flow, Agent)),
        default=0.0,
    )
    found = [
        {**f, "applied": True}
        for f in resilience(
            happened, fleet.windows, slos, events=[dict(e) for e in events], pause_s=pause
        )
    ]
    for name, figures in storms(found, fleet.windows, events).items():
        by_fault = next(f for f in found if f["name"] == name)
        by_fault["population"] = figures
    for neighbour in (f for f in found if f["kind"] == "neighbour"):
        neighbour["isolation"] = isolation_verdict(fleet.windows, neighbour["at"], neighbour["end"])
    by_name = {f["name"]: f for f in [*found, *missing]}
    every = [by_name[item.name] for item in scenario.faults]  # in the scenario's order
    return {
        "slos": [slo_label(t) for t in slos],
        "faults": every,
        "verdicts": [
            *judge_resilience(every, scenario.resilience),
            *_whole_run(scenario, fleet, stored),
        ],
    }


def _whole_run(
    scenario: Scenario, fleet: FleetResult, stored: StoredWrites | None
) -> list[dict[str, Any]]:
    """``lost_writes`` judged on the whole run too: a loss no fault's span holds (after the
    last one, or one the per-second counts could not place) still fails the threshold."""
    lost = None
    if stored is not None and stored.problem is None:
        lost = lost_writes(fleet.writes, stored.stored, [])[0]["lost"]
    return [
        {
            "threshold": t.label,
            "fault": WHOLE_RUN,
            "observed": lost,
            "passed": t.holds(lost),
        }
        for t in scenario.resilience
        if t.metric == "lost_writes"
    ]


def write_figures(fleet: FleetResult, stored: StoredWrites | None) -> dict[str, Any]:
    """summary.json ``writes``: acknowledged, stored and lost over the run, or why unknown."""
    if stored is None or stored.problem is not None:
        why = stored.problem if stored is not None else "not read back"
        return {"acknowledged": sum(fleet.writes.values()), "lost": None, "problem": why}
    figures, _ = lost_writes(fleet.writes, stored.stored, [])
    figures.pop("lost_outside_faults", None)
    return {**figures, "read_back_rounds": stored.rounds, "problem": None}


def _place_lost_writes(
    happened: list[dict[str, Any]], fleet: FleetResult, stored: StoredWrites | None
) -> None:
    """Each applied fault's ``lost_writes``: None without a read-back."""
    if stored is None or stored.problem is not None:
        return
    ordered = sorted(happened, key=lambda f: float(f["at"]))
    acked_by_second = {s: w.acked for s, w in fleet.windows.items() if w.acked}
    _, per_fault = lost_writes(
        fleet.writes,
        stored.stored,
        ordered,
        acked_by_second=acked_by_second,
        stored_by_second=stored.by_second,
    )
    for item, lost in zip(ordered, per_fault, strict=True):
        item["lost_writes"] = lost
