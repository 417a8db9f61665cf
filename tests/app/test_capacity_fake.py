"""The capacity search's orchestration against FakeBackend, whose fleet plays a target of a
capacity set per replica: --per-replica's two searches and their comparison, a failing
provisioning, a fleet that breaks mid-search. No process runs: the real runs are in
test_capacity.py."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stressbed.app.capacity import run_capacity
from stressbed.app.capacity_plan import CapacityOptions, plan_capacity
from stressbed.app.plan import RunOptions
from stressbed.backends.base import FleetOutcome, FleetSpec
from stressbed.errors import ProvisionError
from stressbed.results.aggregates import Window
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.table import capacity_table
from stressbed.scenario.units import parse_duration_ms
from stressbed.stack.spec import StackSpec
from stressbed.testing import FakeBackend, _CannedFleet

SCENARIO = """
from stressbed import *
scenario = Scenario("fake", description="one GET", workloads=[
    Workload("work", get("/work"), ConstantArrivalRate(rate=5, duration="5s", pre_allocated_vus=2))
])
"""


class ModelledTarget(FakeBackend):
    """Serves ``per_replica(replicas)`` iterations/s at 20 ms; beyond it, latency grows by
    10 ms a second (a queue) and the achieved rate stays at the capacity."""

    def __init__(self, per_replica, **kw: Any) -> None:
        super().__init__(**kw)
        self.per_replica = per_replica
        self.replicas = 0
        self.specs: list[StackSpec] = []
        self.workloads: list[dict[str, Any]] = []  # each fleet's k6 scenario

    def stack(self, spec: StackSpec, work_dir: Path, on_event=None, secrets=None):
        self.specs.append(spec)
        self.replicas = spec.replicas
        return super().stack(spec, work_dir, on_event, secrets)

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]):
        config = json.loads((bundle / "config.json").read_text())
        (workload,) = config["options"]["scenarios"].values()
        self.workloads.append(workload)
        capacity = self.per_replica(self.replicas)
        if "stages" in workload:  # the scale-out: its highest rate from the start (a model)
            rate = max(stage["target"] for stage in workload["stages"])
            seconds = sum(
                parse_duration_ms(stage["duration"], "duration") for stage in workload["stages"]
            )
            return _CannedFleet(lambda: self._outcome_at(rate, capacity, int(seconds / 1000)))
        rate = workload["rate"]
        return _CannedFleet(lambda: self._outcome_at(rate, capacity))

    def _outcome_at(self, rate: int, capacity: float, seconds: int = 12) -> FleetOutcome:
        started = time.time() - seconds - 8
        windows = {}
        for i in range(seconds):
            served = min(rate, capacity)
            ms = 20.0 if rate <= capacity else 20.0 + 10 * i
            w = Window(requests=int(served), iterations=int(served), vus=served * ms / 1000)
            w.duration.extend([ms] * int(served))
            windows[int(started) + i] = w
        result = RunnerResult(
            index=0,
            count=1,
            segment="0:1",
            status=RunnerStatus.OK,
            exit_code=0,
            started_at=started,
            ended_at=started + seconds,
            windows=windows,
        )
        return FleetOutcome(results=[result], started_at=started, start_skew_ms=0.0)


def plan_for(tmp_path: Path, **kw: Any):
    path = tmp_path / "fake.py"
    path.write_text(SCENARIO)
    options = RunOptions(scenario=str(path), results=tmp_path / "results")
    settings: dict[str, Any] = {
        "slos": ("p(95)<100ms",),
        "min_rate": 50,
        "max_rate": 5000,
        "step_duration": "10s",
        "warmup": "3s",
        "cooldown": "0s",
        "budget": "10m",
        **kw,
    }
    return plan_capacity(CapacityOptions(options, **settings))


def test_per_replica_searches_one_replica_then_the_maximum_and_compares_them(tmp_path):
    backend = ModelledTarget(lambda replicas: 150 * replicas)
    report = run_capacity(plan_for(tmp_path, per_replica=True), backend=backend, on_line=print)
    document = report.document
    assert report.exit_code == 0, document["message"]
    assert [s.replicas for s in backend.specs] == [1, 4]
    assert all(s.autoscaler is None for s in backend.specs)
    assert all(stack.torn_down for stack in backend.stacks)
    summary = document["per_replica"]
    one, most = summary["one"]["max_sustainable_rate"], summary["max"]["max_sustainable_rate"]
    assert 140 <= one <= 150
    assert 570 <= most <= 600
    assert 0.9 <= summary["efficiency"] <= 1.1
    assert summary["finding"] is None
    assert document["answer"].startswith(f"per replica: {one:,} req/s; at 4 replicas: {most:,}")
    written = json.loads(report.path.read_text())
    assert written["per_replica"]["replicas"] == 4
    assert (report.path.parent / "report.html").is_file()


def test_replicas_that_do_not_add_up_are_a_finding(tmp_path):
    # Past two replicas nothing more comes: something outside them is the limit.
    backend = ModelledTarget(lambda replicas: 150 * min(replicas, 2))
    document = run_capacity(plan_for(tmp_path, per_replica=True), backend=backend).document
    summary = document["per_replica"]
    assert summary["efficiency"] < 0.6
    assert "contention outside the replicas" in summary["finding"]
    assert summary["finding"] in document["answer"]


def test_a_stack_that_cannot_be_provisioned_is_exit_3_with_capacity_json(tmp_path):
    backend = ModelledTarget(lambda r: 100, provision_error=ProvisionError("no replica ready"))
    report = run_capacity(plan_for(tmp_path), backend=backend)
    assert report.exit_code == 3
    assert "no replica ready" in report.document["message"]
    assert report.document["probes"] == []
    assert backend.stacks[0].torn_down
    assert report.path.is_file()


def test_a_fleet_that_fails_mid_search_ends_it_as_an_infrastructure_failure(tmp_path):
    calls = []

    def outcome() -> FleetOutcome:
        calls.append(1)
        if len(calls) == 2:
            return FleetOutcome(results=[], failure="runner 0: k6 crashed")
        return backend._outcome_at(50, 1000)

    backend = ModelledTarget(lambda r: 1000, outcome=outcome)
    backend.fleet = lambda *a, **k: _CannedFleet(outcome)  # type: ignore[method-assign]
    report = run_capacity(plan_for(tmp_path), backend=backend)
    assert report.exit_code == 3
    assert "k6 crashed" in report.document["message"]
    assert report.document["ended_by"] == "error"
    assert [p["status"] for p in report.document["probes"]] == ["held", "error"]
    assert backend.stacks[0].torn_down


def test_per_replica_needs_a_stack_of_more_than_one_replica(tmp_path):
    from stressbed.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, per_replica=True, scale_out="10:20")
    assert caught.value.field == "--per-replica"


def test_a_bug_drawing_up_the_answer_still_leaves_capacity_json_with_the_probes(
    tmp_path, monkeypatch
):
    from stressbed.app import capacity  # noqa: PLC0415

    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(capacity, "draw_up", broken)
    backend = ModelledTarget(lambda r: 100)
    report = run_capacity(plan_for(tmp_path, max_rate=100), backend=backend)
    written = json.loads(report.path.read_text())
    assert written["exit_code"] == 3
    assert "ZeroDivisionError: a bug" in written["message"]
    assert [p["status"] for p in written["probes"]] == ["held", "held"]
    assert backend.stacks[0].torn_down


def test_a_stack_that_has_not_settled_by_the_next_probe_flags_it_contaminated(tmp_path):
    # The stack starts at 2 replicas and stays scaled out at 3 after the first probe: the
    # cool-down waits its full length, then the next probe is flagged.
    backend = ModelledTarget(lambda r: 1000)
    made = []

    def stack(spec, work_dir, on_event=None, secrets=None):
        found = FakeBackend.stack(backend, spec, work_dir, on_event, secrets)
        rows = [{"t": time.time(), "replicas": 2, "desired": 2, "ready": 2}]
        found.report = lambda: {"backend": "fake", "timeseries": rows}  # type: ignore[method-assign]
        made.append(rows)
        return found

    backend.stack = stack  # type: ignore[method-assign]
    the_plan = plan_for(tmp_path, max_rate=100, cooldown="1s")
    original = backend._outcome_at

    def scaled_out(rate: int, capacity: float) -> FleetOutcome:
        made[0].append({"t": time.time(), "replicas": 3, "desired": 3, "ready": 3})
        return original(rate, capacity)

    backend._outcome_at = scaled_out  # type: ignore[method-assign]
    probes = run_capacity(the_plan, backend=backend).document["probes"]
    assert [p["contaminated"] for p in probes] == [False, True]


class _Clock:
    """The time module, with a monotonic clock that can be moved on (a slow provisioning
    without the wait)."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped


def test_the_budget_keeps_back_what_bringing_the_stack_up_took_for_its_teardown(
    tmp_path, monkeypatch
):
    # A stack that took 100 s to come up (a namespace on a cluster) will take about that to
    # go: in a 3-minute budget, 80 s are left after it, and no 18 s probe fits beside a
    # 100 s teardown.
    from stressbed.app import capacity, probing  # noqa: PLC0415

    clock = _Clock()
    monkeypatch.setattr(capacity, "time", clock)
    monkeypatch.setattr(probing, "time", clock)
    backend = ModelledTarget(lambda r: 1000)

    def stack(spec, work_dir, on_event=None, secrets=None):
        found = FakeBackend.stack(backend, spec, work_dir, on_event, secrets)
        provision = found.provision

        def slow() -> str:
            clock.skipped += 100
            return provision()

        found.provision = slow  # type: ignore[method-assign]
        return found

    backend.stack = stack  # type: ignore[method-assign]
    lines: list[str] = []
    report = run_capacity(plan_for(tmp_path, budget="3m"), backend=backend, on_line=lines.append)
    assert report.document["ended_by"] == "budget"
    assert report.document["probes"] == []
    assert any(line.startswith("the budget is spent") for line in lines)
    assert backend.stacks[0].torn_down


def test_a_search_on_a_stack_with_an_autoscaler_is_followed_by_a_scale_out(tmp_path):
    # The reference agent's stack has an autoscaler: after the search, one probe holds the
    # lowest rate that held and steps to the highest.
    backend = ModelledTarget(lambda r: 400)
    lines: list[str] = []
    the_plan = plan_for(tmp_path, scale_out_for="15s")
    assert the_plan.then_scale_out
    report = run_capacity(the_plan, backend=backend, on_line=lines.append)
    document = report.document
    assert report.exit_code == 0, document["message"]
    sustained = document["max_sustainable_rate"]
    assert 360 <= sustained <= 400
    found = document["scale_out"]
    assert (found["from"], found["to"]) == (50, sustained)
    assert found["observe_s"] == 15
    # The last fleet was the step: hold 50 for the step, 1 s up to the capacity, hold it.
    stages = backend.workloads[-1]["stages"]
    assert [s["target"] for s in stages] == [50, sustained, sustained]
    assert [s["duration"] for s in stages] == ["10s", "1s", "15s"]
    assert "rate" in backend.workloads[-2]  # the probes before it were the search's
    assert document["answer"].startswith("capacity: ")
    assert document["scale_out_answer"].startswith(f"scale-out 50 -> {sustained:,} req/s: ")
    assert document["scale_out_answer"] in capacity_table(document)
    assert any(
        line.startswith(f"scale-out: 50 req/s for 10s, then {sustained:,}") for line in lines
    )
    assert (report.path.parent / "scale-out" / "summary.json").is_file()
    html = (report.path.parent / "report.html").read_text()
    assert 'id="scale-out-answer"' in html
    assert backend.stacks[0].torn_down


def test_no_scale_out_searches_only(tmp_path):
    backend = ModelledTarget(lambda r: 400)
    the_plan = plan_for(tmp_path, then_scale_out=False)
    assert not the_plan.then_scale_out
    document = run_capacity(the_plan, backend=backend).document
    assert document["scale_out"] is None
    assert all("rate" in w for w in backend.workloads)


def test_a_budget_without_room_for_the_scale_out_says_so_and_searches_only(tmp_path):
    the_plan = plan_for(tmp_path, budget="1m")
    assert not the_plan.then_scale_out
    (note,) = the_plan.notes
    assert note.startswith("no scale-out after the search: the budget leaves no room for it")
    assert "--budget" in note
    assert "--no-scale-out" in note


def test_the_scale_out_is_skipped_when_the_search_found_no_range_to_step_across(tmp_path):
    # Nothing near twice the first rate held: there is no step to time.
    backend = ModelledTarget(lambda r: 60)
    document = run_capacity(plan_for(tmp_path), backend=backend).document
    assert document["max_sustainable_rate"] < 100
    assert document["scale_out"] is None
    assert document["scale_out_skipped"].startswith("no range to step across")
    assert "no scale-out: no range to step across" in capacity_table(document)


def test_scale_out_for_needs_a_scale_out_to_hold(tmp_path):
    from stressbed.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, then_scale_out=False, scale_out_for="30s")
    assert caught.value.field == "--scale-out-for"
    assert "only with --scale-out, or a search on a stack with an autoscaler" in str(caught.value)


def test_capacity_json_is_written_before_the_teardown_with_the_probes_so_far(tmp_path):
    seen: list[dict[str, Any]] = []

    def look() -> None:  # what a kill during the teardown would leave
        seen.append(json.loads((tmp_path / "results" / "latest" / "capacity.json").read_text()))

    backend = ModelledTarget(lambda r: 150, on_teardown=look)
    report = run_capacity(plan_for(tmp_path), backend=backend)
    (provisional,) = seen
    assert provisional["exit_code"] == 130
    assert provisional["message"].startswith("interrupted, tearing down; the search had ended: ")
    assert len(provisional["probes"]) == len(report.document["probes"]) > 1
    assert provisional["max_sustainable_rate"] == report.document["max_sustainable_rate"]
    assert report.exit_code == 0
    assert json.loads(report.path.read_text())["exit_code"] == 0
