"""A capacity search's answer, drawn up from its probes: capacity.json's document, the
binding cause (:mod:`stressbed.results.causes`), the exit code and the one-line answers."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..backends.base import Stack
from ..results.causes import binding_cause
from ..results.probe import Probe
from ..results.search import Search, conclude
from ..results.slo_seconds import RECOVERED_S
from ..scenario.capacity import slo_label
from .capacity_plan import CapacityPlan, latency_bound_s
from .compare import run_fingerprint
from .plan import redact
from .probing import GRACEFUL_STOP_S, MAX_VUS_PER_RUNNER

__all__ = ["CAPACITY_FORMAT", "CAPACITY_VERSION", "answer_line", "draw_up", "scale_out_line"]

CAPACITY_FORMAT = "stressbed.capacity"
CAPACITY_VERSION = 1


def draw_up(
    the_plan: CapacityPlan,
    root: Path,
    *,
    stack: Stack,
    probes: Sequence[Probe],
    search: Search,
    failure: tuple[str, int] | None,
    interrupted: bool,
    began: float,
    scale_out: dict[str, Any] | None = None,
    skipped: str | None = None,
) -> dict[str, Any]:
    report = stack.report()
    limits = {k: float(v) for k, v in (report.get("limits") or {}).items()}
    replicas = report.get("replicas") or {}
    max_replicas = replicas.get("max") if isinstance(replicas, dict) else None
    rows = report.get("timeseries") or []
    answer = conclude(probes, search)
    target = (report.get("target_metrics") or {}).get("series") or {}
    answer["cause"] = _cause(
        the_plan,
        probes,
        answer=answer,
        stack=stack,
        rows=rows,
        limits=limits,
        max_replicas=max_replicas,
        target=target,
    )
    population: dict[str, Any] = {}
    if the_plan.population is not None:
        population = {
            "variable": "agents",
            "max_sustainable_agents": answer["max_sustainable_rate"],
            "population": the_plan.population.to_dict(),
        }
        answer["knee"] = {
            "range": None,
            "confidence": None,
            "reason": "not read for a population: its probes offer agents, not a rate",
        }
    unit = the_plan.unit
    then: dict[str, Any] = {}
    if the_plan.scale_out is not None:
        code, message = _scale_out_verdict(scale_out, failure, interrupted)
        line = scale_out_line(the_plan, scale_out) if scale_out else message
    else:
        code, message = _verdict(the_plan, answer, failure, interrupted)
        line = answer_line(the_plan, answer)
        if scale_out is not None:  # the scale-out after the search
            then["scale_out_answer"] = scale_out_line(the_plan, scale_out)
            timed, said = _scale_out_verdict(scale_out, None, False)
            if code == 0 and timed:
                code, message = timed, said
        elif skipped is not None:
            then["scale_out_skipped"] = skipped
    plan = the_plan.plan
    return {
        "format": CAPACITY_FORMAT,
        "schema_version": CAPACITY_VERSION,
        "run_id": root.name,
        "scenario": plan.scenario.name,
        "workload": the_plan.workload.name,
        "converted_from": the_plan.converted_from,
        "unit": unit,
        "variable": "rate",
        "requests_per_iteration": the_plan.requests_per_iteration,
        "exit_code": code,
        "message": message,
        "answer": line,
        **answer,
        **population,
        "scale_out": scale_out,
        **then,
        "slos": [slo_label(t) for t in the_plan.capacity.slo_thresholds],
        "settings": {
            **the_plan.capacity.to_dict(),
            # A population's search has agent bounds, no rates.
            **({"min_rate": None, "max_rate": None} if the_plan.population else {}),
            "runners": plan.runners,
            "backend": plan.backend.name if plan.target_url is None else None,
            "target_url": redact(stack.url) if stack.url else None,
            "require": the_plan.require,
            "profile": plan.profile,
        },
        "elapsed_s": round(time.monotonic() - began, 3),
        "stack": {
            "limits": limits,
            "max_replicas": max_replicas,
            "enforcement": report.get("enforcement"),
        },
        "probes": [p.to_dict() for p in probes],
        # What each probe ran (the stack as searched: --per-replica pins its replicas), as a
        # run's summary.json says it: the search's series in the history.
        "fingerprint": run_fingerprint(
            plan.scenario,
            plan.runners,
            plan.backend.name if plan.stack is not None else None,
            plan.stack,
        ),
    }


def _cause(
    the_plan: CapacityPlan,
    probes: Sequence[Probe],
    *,
    answer: Mapping[str, Any],
    stack: Stack,
    rows: Sequence[Mapping[str, Any]],
    limits: Mapping[str, float],
    max_replicas: int | None,
    target: Mapping[str, Any],
) -> dict[str, Any] | None:
    limit = answer.get("generator_limit")
    if answer["limited_by"] == "generator" and limit is not None:
        return {
            "kind": "generator",
            "message": limit["reason"],
            "evidence": {
                key: limit[key]
                for key in (
                    "runner_cpu_share",
                    "dropped_share",
                    "vus_peak",
                    "max_vus",
                    "vus_needed",
                    "open_files_errors",
                )
            },
            "also": [],
        }
    rate = answer["first_failing_rate"]
    failed = next((p for p in probes if p.rate == rate and p.status == "failed"), None)
    if failed is None or failed.started_at is None:
        return None
    held = [p for p in probes if p.status == "held"]
    best = max(held, key=lambda p: p.rate) if held else None
    join_s = failed.figure("join_s") or 0.0  # a population's probe: its join, then the step
    begin = failed.started_at
    end = begin + join_s + failed.setup.step_s + GRACEFUL_STOP_S
    events = [e for e in stack.events if begin <= float(e.get("t", 0)) <= end]
    first, last = failed.steady or (begin, end)
    inside = [r for r in rows if first <= float(r.get("t", 0)) <= last + 1]
    return binding_cause(
        failed,
        best,
        events=events,
        rows=inside,
        limits=limits,
        max_replicas=max_replicas,
        has_stack=the_plan.plan.target_url is None,
        population=the_plan.population is not None,
        target=target,
    )


def _verdict(
    the_plan: CapacityPlan,
    answer: Mapping[str, Any],
    failure: tuple[str, int] | None,
    interrupted: bool,
) -> tuple[int, str]:
    if interrupted:
        return 130, "interrupted; the stack was torn down"
    if failure is not None:
        return failure[1], failure[0]
    sustained = answer["max_sustainable_rate"]
    unit = the_plan.unit
    limit = answer.get("generator_limit")
    low = the_plan.bounds[0]
    if sustained is None and answer["limited_by"] == "generator":
        return 3, (
            f"the load generator was the limit from the first probe "
            f"({low:,} {unit}): {_remedy(the_plan, limit)}"
        )
    if sustained is None:
        if answer["ended_by"] == "budget":
            return 1, "the budget ran out before any probe held"
        if the_plan.population is not None:
            return 1, (
                f"no count held: the stack does not hold --min-agents ({low:,} agents) "
                "within its SLOs"
            )
        return 1, (
            f"no rate held: the stack does not sustain --min-rate ({low:,} {unit}) within its SLOs"
        )
    require = the_plan.require
    if require is not None and sustained < require:
        # Under R is the target's verdict only if the target failed at or below R; if the
        # generator stopped the search first, R was never offered: an infrastructure verdict.
        troubled = [r for r in [answer["first_failing_rate"], *answer["disagreements"]] if r]
        if limit is not None and not any(r <= require for r in troubled):
            return 3, (
                f"--require {require:,} {unit} not measured: the load generator could not "
                f"offer {limit['rate']:,} {unit} ({_remedy(the_plan, limit)}); the target "
                f"held {sustained:,}"
            )
        return 1, f"sustained {sustained:,} {unit}, under the required {require:,}"
    return 0, "the search ended: " + str(answer["ended_by"])


def _remedy(the_plan: CapacityPlan, limit: Mapping[str, Any] | None) -> str:
    """What would let the generator offer more: runners, their CPU, or a pool sized right."""
    more = "add runners or give them more CPU"
    if limit is not None and limit.get("open_files_errors"):
        return "add runners: each agent's WebSocket is a file of its runner's"
    if limit is None or limit["cpu_bound"] or limit["vus_needed"] is None:
        return more
    needed, peak = limit["vus_needed"], limit["vus_peak"]
    if peak is None or peak < limit["max_vus"]:  # iterations dropped with VUs to spare
        return more
    if needed > MAX_VUS_PER_RUNNER * the_plan.plan.runners:
        return (
            f"it needed about {needed:,} VUs, at most {MAX_VUS_PER_RUNNER:,} per runner: "
            f"{math.ceil(needed / MAX_VUS_PER_RUNNER)} runners or more"
        )
    # The pool was under its cap: the iterations took longer than it was sized for.
    text = f"it needed about {needed:,} VUs, the pool had {limit['max_vus']:,}"
    if latency_bound_s(the_plan.capacity.slo_thresholds) is None:
        return text + ": a latency SLO sizes the pool by its bound"
    return text + ": the iterations took longer than the pool was sized for"


def _scale_out_verdict(
    found: Mapping[str, Any] | None, failure: tuple[str, int] | None, interrupted: bool
) -> tuple[int, str]:
    if interrupted:
        return 130, "interrupted; the stack was torn down"
    if failure is not None:
        return failure[1], failure[0]
    assert found is not None
    if not found.get("judged_s", 1):
        return 1, "nothing after the step could be judged against the SLOs"
    if not found["recovered"]:
        return 1, (
            f"the SLOs did not hold {RECOVERED_S} s running within {found['observe_s']:g} s "
            "of the step"
        )
    return 0, "the scale-out was timed"


def scale_out_line(the_plan: CapacityPlan, found: Mapping[str, Any]) -> str:
    """The scale-out's one line: each time since the step, and the seconds in violation."""
    unit = the_plan.unit
    text = f"scale-out {found['from']:,} -> {found['to']:,} {unit}: "
    replicas = found.get("replicas") or {}
    if found["t_desired_s"] is None:
        text += "the autoscaler never scaled up"
    else:
        text += f"the autoscaler decided after {found['t_desired_s']:.1f} s"
        if found["t_ready_s"] is not None:
            text += f", new replicas ready after {found['t_ready_s']:.1f} s"
        else:
            text += ", its new replicas never all ready"
    stalled = f", {found['stalled_s']} s stalled" if found.get("stalled_s") else ""
    if not found.get("judged_s", 1):
        text += "; not measured: no second after the step could be judged against the SLOs"
    elif found["t_recovered_s"] is None:
        text += f"; the SLOs never held again ({found['violation_s']} s in violation{stalled})"
    elif found["violation_s"] == 0:
        text += "; the SLOs held throughout"
    else:
        text += (
            f"; SLOs held again after {found['t_recovered_s']:.0f} s "
            f"({found['violation_s']} s in violation{stalled})"
        )
    if replicas.get("start") is not None and replicas.get("peak") is not None:
        text += f"; replicas {replicas['start']} -> {replicas['peak']}"
    return text


def answer_line(the_plan: CapacityPlan, answer: Mapping[str, Any]) -> str:
    """The one line a person reads first."""
    unit = the_plan.unit
    slos = ", ".join(slo_label(t) for t in the_plan.capacity.slo_thresholds)
    sustained = answer["max_sustainable_rate"]
    limit = answer.get("generator_limit")
    low = the_plan.bounds[0]
    if sustained is None and answer["limited_by"] == "generator":
        return (
            f"capacity: not measured: the load generator was the limit at "
            f"{low:,} {unit} ({_remedy(the_plan, limit)})"
        )
    if sustained is None:
        return f"capacity: below {low:,} {unit} within {slos}"
    if answer["limited_by"] == "generator":
        at = f" at {limit['rate']:,} {unit}" if limit else ""
        return (
            f"capacity: at least {sustained:,} {unit} within {slos} (limited by the load "
            f"generator{at}: {_remedy(the_plan, limit)})"
        )
    if answer["limited_by"] == "max_rate":
        return f"capacity: at least {sustained:,} {unit} within {slos} (every probe held)"
    high = answer["first_failing_rate"]
    text = f"capacity: {sustained:,} {unit}"
    if high is not None:
        text += f" ({sustained:,}-{high:,})"
    text += f" within {slos}"
    if high is None and answer["disagreements"]:
        shown = ", ".join(f"{r:,}" for r in answer["disagreements"])
        text += f" (trials disagreed at {shown} {unit}; no higher rate failed every trial)"
    failure = answer.get("failure")
    if failure:
        broke = (
            f"{failure['slo']} broken ({_shown(failure['observed'], failure['slo'])})"
            if failure.get("slo")
            else (failure["reasons"][0] if failure["reasons"] else "failed")
        )
        text += f"; first failure {failure['rate']:,} {unit}: {broke}"
    cause = answer.get("cause")
    if cause:
        text += f"; cause: {cause['message']}"
    if limit is not None:  # a target failure brackets the capacity; the generator kept it open
        text += (
            f"; the load generator was the limit at {limit['rate']:,} {unit}, so the bracket "
            f"did not close ({_remedy(the_plan, limit)})"
        )
    if answer["ended_by"] == "budget":
        text += " (the budget ran out before the bracket closed)"
    return text


def _shown(observed: float | None, slo: str) -> str:
    if observed is None:
        return "no data"
    if slo.startswith(("error_rate", "connected")):
        return f"{observed:.2%}"
    return f"{observed:,.0f} ms"
