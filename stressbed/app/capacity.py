"""``stressbed capacity``: the highest arrival rate the stack sustains within its SLOs (or, for a
population, the most connected agents it holds: :mod:`.capacity_agents`), and what limits it.
An experiment driving plans and fleets:

    plan (the run's plan + the search's declaration) -> provision the stack once
    -> probe after probe, as :class:`~stressbed.results.search.Search` asks:
         render (a ConstantArrivalRate of the scenario's flow) -> run the fleet -> merge
         -> judge the steady window (:mod:`stressbed.results.probe`) -> cool down
    -> on a stack with an autoscaler: a scale-out from the lowest rate that held to the highest
    finally, under one interrupt guard: a provisional capacity.json -> teardown
    -> conclude (:mod:`.capacity_answer`: the search's answer, the cause, the exit code)
    -> capacity.json, report.html, the table

Every probe is a run directory of its own under ``probes/`` (summary.json, junit.xml, each
runner's result). The stack is torn down before :func:`run_capacity` returns, on failure and
interruption too, and capacity.json is written for every search that started (a stressbed
killed during its teardown leaves the provisional one: exit code 130, the probes so far).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.base import Backend, FleetOutcome, Progress, Stack
from ..backends.existing import ExistingService
from ..errors import StressbedError
from ..fleet.process import uninterrupted
from ..results.probe import Probe
from ..results.search import Search, conclude
from ..scenario.render import render
from ..scenario.units import format_duration
from .capacity_answer import (
    CAPACITY_FORMAT,
    CAPACITY_VERSION,
    answer_line,
    draw_up,
    scale_out_line,
)
from .capacity_plan import (
    TEARDOWN_RESERVE_S,
    CapacityOptions,
    CapacityPlan,
    pinned,
    plan_capacity,
)
from .execute import (
    PROVISIONAL,
    before_teardown,
    keep_teardown_problem,
    make_stack,
    tear_down,
)
from .live_page import Ended, LivePage
from .probing import Prober
from .probing_agents import PopulationProber
from .recording import Recorder, capacity_entry
from .rundir import RunDirectory, point_latest

if TYPE_CHECKING:  # a type only (the live series needs prometheus-client)
    from ..results.live_series import LiveSeries

__all__ = [
    "CAPACITY_FORMAT",
    "CAPACITY_VERSION",
    "CapacityOptions",
    "CapacityPlan",
    "CapacityReport",
    "answer_line",
    "plan_capacity",
    "run_capacity",
    "scale_out_line",
]

#: --per-replica: N replicas sustaining less than this share of N times one is a finding.
SCALING_EFFICIENCY = 0.8


@dataclass
class CapacityReport:
    """What :func:`run_capacity` returns: capacity.json's document and the exit code."""

    path: Path
    document: dict[str, Any]
    exit_code: int
    report_error: str | None = None
    probes: list[Probe] = field(default_factory=list)


def run_capacity(
    the_plan: CapacityPlan,
    *,
    on_line: Callable[[str], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    backend: Backend | None = None,
    live: LiveSeries | None = None,
    page: LivePage | None = None,
) -> CapacityReport:
    """Provision once, probe until the search ends, tear down, write capacity.json. With
    --per-replica: that twice, at one replica and at the autoscaler's maximum. ``live`` and
    ``page``: where each probe's seconds go while it runs, and the page drawing them (the
    probes so far above the charts, the answer at the end)."""
    if the_plan.per_replica is not None:
        return _per_replica(
            the_plan, on_line=on_line, on_progress=on_progress, on_event=on_event, backend=backend
        )
    said = on_line or (lambda text: print(f"stressbed: {text}", file=sys.stderr))

    def say(text: str) -> None:
        said(text)
        if page is not None and text.startswith("probe "):
            page.notes.append(text)  # the probes so far, on the live page

    backend = backend or the_plan.plan.backend
    capacity = the_plan.capacity
    state = _Searching(
        the_plan,
        _new_dir(the_plan.plan.results),
        Search(*the_plan.bounds, capacity.resolution, capacity.confirm),
        time.monotonic(),
    )
    # From the teardown (the guard is entered there) to the last file written, an interrupt
    # (a CI cancel) neither stops the teardown nor costs the search its capacity.json.
    state.live, state.page = live, page
    with contextlib.ExitStack() as guard:
        stack, failure, interrupted, teardown_note = _search_on_a_stack(
            state, backend, say=say, on_progress=on_progress, on_event=on_event, guard=guard
        )
        report = state.finish(stack, failure, interrupted, teardown_note)
        # In the history: each search its own series (a --per-replica's two, each pinned).
        plan = the_plan.plan
        Recorder(plan.history, plan.build).record(capacity_entry(report.path))
        if page is not None:
            html = report.path.parent / "report.html"
            page.finish(
                Ended(
                    {0: "pass", 1: "fail"}.get(report.exit_code, "error"),
                    str(report.document.get("answer") or ""),
                    html if report.report_error is None and html.is_file() else None,
                )
            )
        return report


@dataclass
class _Searching:
    """One search's state, from its first probe to capacity.json: the probes so far, the
    search's own, and what a scale-out found (its timings, or why it was skipped)."""

    plan: CapacityPlan
    root: Path
    search: Search
    began: float  # time.monotonic()
    probes: list[Probe] = field(default_factory=list)
    found: dict[str, Any] = field(default_factory=dict)
    live: LiveSeries | None = None
    page: LivePage | None = None

    def finish(
        self,
        stack: Stack,
        failure: tuple[str, int] | None,
        interrupted: bool,
        teardown_note: str | None,
    ) -> CapacityReport:
        """Once the stack is torn down: the answer, capacity.json, then report.html."""
        document = self.document(stack, failure, interrupted)
        if teardown_note:
            document["teardown"] = teardown_note
        report = CapacityReport(self.root / "capacity.json", document, int(document["exit_code"]))
        report.probes = self.probes
        _write_json(report.path, document)
        try:
            from ..results.capacity_html import write_capacity_html  # noqa: PLC0415 - Bokeh

            write_capacity_html(self.root / "report.html", document)
        except Exception as exc:  # a bug in drawing must not cost the search its answer
            report.report_error = f"{type(exc).__name__}: {exc}"
            document["report_error"] = report.report_error
            _write_json(report.path, document)
        return report

    def document(
        self,
        stack: Stack,
        failure: tuple[str, int] | None,
        interrupted: bool,
        search: Search | None = None,
    ) -> dict[str, Any]:
        """capacity.json's document: the search's answer, or why there is none (``search``:
        a copy of the search's own to conclude, which is then left as it was)."""
        search = search or self.search
        if interrupted:
            search.stop("interrupted")
        elif failure is not None:
            search.stop("error")
        elif self.plan.scale_out is not None:
            search.stop("scale_out")
        try:
            return draw_up(
                self.plan,
                self.root,
                stack=stack,
                probes=self.probes,
                search=search,
                failure=failure,
                interrupted=interrupted,
                began=self.began,
                scale_out=self.found.get("scale_out"),
                skipped=self.found.get("scale_out_skipped"),
            )
        except Exception as exc:  # a bug in drawing up the answer: the probes are still kept
            return {
                "format": CAPACITY_FORMAT,
                "schema_version": CAPACITY_VERSION,
                "run_id": self.root.name,
                "exit_code": 130 if interrupted else 3,
                "message": f"the answer could not be drawn up: {type(exc).__name__}: {exc}",
                "answer": "capacity: not concluded (see message)",
                "probes": [p.to_dict() for p in self.probes],
            }

    def write_provisional(
        self, stack: Stack, failure: tuple[str, int] | None, interrupted: bool
    ) -> None:
        """capacity.json before the teardown: exit 130 and the probes so far, with the answer
        they give. Left if stressbed is killed while tearing down; replaced after. Never
        raises."""

        def write() -> None:
            # A copy: the search's own state is concluded once, after the teardown.
            document = self.document(stack, failure, interrupted, copy.deepcopy(self.search))
            ended = "" if interrupted else f"; the search had ended: {document.get('message')}"
            document["exit_code"] = 130
            document["message"] = PROVISIONAL + ended
            _write_json(self.root / "capacity.json", document)

        before_teardown("capacity.json", write)


def _per_replica(
    the_plan: CapacityPlan,
    *,
    on_line: Callable[[str], None] | None,
    on_progress: Callable[[Progress], None] | None,
    on_event: Callable[[dict[str, Any]], None] | None,
    backend: Backend | None,
) -> CapacityReport:
    """One search at one replica, one at max_replicas (each stack provisioned and torn down
    in turn, half the budget each), and how close the second comes to N times the first."""
    say = on_line or (lambda text: print(f"stressbed: {text}", file=sys.stderr))
    began = time.monotonic()
    root = _new_dir(the_plan.plan.results)
    spec = the_plan.plan.stack
    most = the_plan.per_replica
    assert spec is not None
    assert most is not None
    half = format_duration(the_plan.capacity.budget_s * 500)
    reports = []
    for count in (1, most):
        say(f"per replica: the search at {count} replica(s)")
        one = replace(
            the_plan,
            plan=replace(the_plan.plan, stack=pinned(spec, count), results=root),
            capacity=the_plan.capacity.with_changes(budget=half),
            per_replica=None,
        )
        report = run_capacity(
            one, on_line=on_line, on_progress=on_progress, on_event=on_event, backend=backend
        )
        reports.append(report)
        if report.exit_code in (2, 3, 130):
            break  # the second search would meet the same trouble
    document = _per_replica_document(the_plan, root, reports, most, began)
    path = root / "capacity.json"
    _write_json(path, document)
    report = CapacityReport(path, document, int(document["exit_code"]))
    try:
        from ..results.capacity_html import write_capacity_html  # noqa: PLC0415 - Bokeh

        write_capacity_html(root / "report.html", document)
    except Exception as exc:  # a bug in drawing must not cost the search its answer
        report.report_error = f"{type(exc).__name__}: {exc}"
    return report


def _per_replica_document(
    the_plan: CapacityPlan,
    root: Path,
    reports: Sequence[CapacityReport],
    most: int,
    began: float,
) -> dict[str, Any]:
    unit = the_plan.unit
    parts = [r.document for r in reports]
    last = parts[-1]
    code = next((r.exit_code for r in reports if r.exit_code), 0)
    one = parts[0]
    summary: dict[str, Any] = {"replicas": most, "efficiency": None, "finding": None}
    for name, doc in zip(("one", "max"), parts, strict=False):
        summary[name] = {
            "run_id": doc["run_id"],
            "replicas": 1 if name == "one" else most,
            "max_sustainable_rate": doc.get("max_sustainable_rate"),
            "interval": doc.get("interval"),
            "limited_by": doc.get("limited_by"),
            "cause": doc.get("cause"),
            "answer": doc.get("answer"),
        }
    line = f"per replica: {_rate_text(one, unit)}"
    if len(parts) == 2:
        single, many = one.get("max_sustainable_rate"), last.get("max_sustainable_rate")
        line += f"; at {most} replicas: {_rate_text(last, unit)}"
        targets = one.get("limited_by") == "target" == last.get("limited_by")
        if isinstance(single, int) and isinstance(many, int) and single and targets:
            efficiency = many / (single * most)
            summary["efficiency"] = efficiency
            line += f" ({efficiency:.0%} of {most} x {single:,})"
            if efficiency < SCALING_EFFICIENCY:
                summary["finding"] = (
                    f"{most} replicas sustain {efficiency:.0%} of {most} times one: contention "
                    "outside the replicas (the balancer, CPU they share, a common dependency, "
                    "or the load generator)"
                )
                line += f"; {summary['finding']}"
        else:
            summary["finding"] = "not compared: a search was not limited by the target"
    document = {
        **last,
        "run_id": root.name,
        "exit_code": code,
        "message": next((d["message"] for d in parts if d["exit_code"]), last["message"]),
        "answer": line,
        "per_replica": summary,
        "elapsed_s": round(time.monotonic() - began, 3),
    }
    return document


def _rate_text(document: Mapping[str, Any], unit: str) -> str:
    rate = document.get("max_sustainable_rate")
    if rate is None:
        return "none held"
    prefix = "at least " if document.get("at_least") else ""
    return f"{prefix}{rate:,} {unit}"


def _search_on_a_stack(
    state: _Searching,
    backend: Backend,
    *,
    say: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None,
    on_event: Callable[[dict[str, Any]], None] | None,
    guard: contextlib.ExitStack,
) -> tuple[Stack, tuple[str, int] | None, bool, str | None]:
    """Provision, search, tear down whatever happened: (the stack, the failure that ended
    the search, whether it was interrupted, what the teardown could not do). The teardown
    enters the interrupt guard on ``guard`` (held until the caller has written its files),
    after the provisional capacity.json is written with what is known so far."""
    the_plan, root = state.plan, state.root
    failure: tuple[str, int] | None = None
    interrupted = False
    stack: Stack = ExistingService("")  # until the backend's stack exists: nothing to remove
    try:
        try:
            holder = RunDirectory(root.name, root, render(the_plan.plan.scenario, root / "bundle"))
            stack, secret_env = make_stack(the_plan.plan, backend, holder, on_event)
            provisioning = time.monotonic()
            url = stack.provision()
            # Tearing down takes about what bringing up took (a namespace on a cluster: a
            # minute, say); the budget keeps that much back.
            reserve = max(TEARDOWN_RESERVE_S, time.monotonic() - provisioning)
        except StressbedError as exc:
            failure = (f"provisioning failed: {exc}", exc.exit_code)
        except KeyboardInterrupt:
            interrupted = True
        except Exception as exc:  # an OS error or a bug: still a search that ends with its file
            failure = (f"provisioning failed: {type(exc).__name__}: {exc}", 3)
        else:
            if state.live is not None:
                state.live.identity = {"run_id": root.name, "scenario": the_plan.plan.scenario.name}
                state.live.stack = stack.report
            if state.page is not None:
                state.page.total_s = the_plan.capacity.budget_s
                state.page.events = lambda: stack.events
            kind = Prober if the_plan.population is None else PopulationProber
            driver = kind(
                the_plan,
                backend,
                stack,
                root,
                {**secret_env, "TARGET_URL": url},
                teardown_s=reserve,
                live=state.live,
            )
            try:
                if the_plan.scale_out is not None:
                    low, high = the_plan.scale_out
                    state.found["scale_out"], failure = driver.scale_out(
                        low, high, say, on_progress
                    )
                else:
                    failure = driver.search(
                        state.search, state.probes, state.began, say, on_progress
                    )
                    if failure is None and not driver.interrupted and the_plan.then_scale_out:
                        failure = _then_scale_out(state, driver, reserve, say, on_progress)
            except KeyboardInterrupt:
                interrupted = True
            interrupted = interrupted or driver.interrupted
    finally:
        guard.enter_context(uninterrupted())
        state.write_provisional(stack, failure, interrupted)
        problem, abandoned = tear_down(stack)
    if problem is None:
        return stack, failure, interrupted, None
    holder_outcome = FleetOutcome(results=[], interrupted=interrupted)
    keep_teardown_problem(holder_outcome, problem, abandoned=abandoned)
    return stack, failure, holder_outcome.interrupted, problem


def _then_scale_out(
    state: _Searching,
    driver: Prober,
    reserve: float,
    say: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None,
) -> tuple[str, int] | None:
    """After a search on a stack with an autoscaler: from the lowest rate that held to the
    highest, timed (``found["scale_out"]``), or why not (``found["scale_out_skipped"]``)."""
    the_plan, probes, found = state.plan, state.probes, state.found
    answer = conclude(probes, state.search)
    held = [p.rate for p in probes if p.status == "held"]
    high = answer["max_sustainable_rate"]
    low = min(held) if held else None
    left = the_plan.capacity.budget_s - (time.monotonic() - state.began) - reserve
    why = None
    if high is None or low is None or high < 2 * low:
        why = "no range to step across: the highest rate that held is not twice the lowest"
    elif left < the_plan.scale_out_cost_s:
        why = (
            f"the budget is spent ({format_duration(max(0.0, left) * 1000)} left, it takes "
            f"{format_duration(the_plan.scale_out_cost_s * 1000)})"
        )
    elif not driver.settle(probes):
        why = (
            "the replicas had not returned to their starting count within the cool-down "
            "(--cooldown; the autoscaler's scale-down stabilization may be longer)"
        )
    if why is not None:
        found["scale_out_skipped"] = why
        say(f"no scale-out: {why}")
        return None
    assert low is not None
    assert high is not None
    found["scale_out"], failure = driver.scale_out(low, high, say, on_progress)
    return failure


def _new_dir(results: Path) -> Path:
    """results/<id>/ for the search, with results/latest on it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    root = results / f"{stamp}-capacity-{os.urandom(3).hex()}"
    root.mkdir(parents=True)
    point_latest(results, root.name)
    return root


def _write_json(path: Path, document: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
