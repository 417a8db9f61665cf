"""The capacity search's orchestration against FakeBackend, whose fleet plays a target of a
capacity set per replica: --per-replica's two searches and their comparison, a failing
provisioning, a fleet that breaks mid-search. No process runs: the real runs are in
test_capacity.py."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed.app.capacity import run_capacity
from stressbed.app.capacity_plan import CapacityOptions, plan_capacity
from stressbed.app.plan import RunOptions
from stressbed.backends.base import FleetOutcome, FleetSpec
from stressbed.errors import ProvisionError
from stressbed.history.store import Store
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


JOURNEY = """
from stressbed import *
scenario = Scenario("journey", description="two GETs, 3 s apart", workloads=[
    Workload(
        "visit",
        journey(get("/a"), get("/b"), think=think_constant("3s")),
        ConstantArrivalRate(rate=5, duration="5s", pre_allocated_vus=2),
    )
])
"""


class PooledTarget(ModelledTarget):
    """ModelledTarget whose iterations also pause ``think_s`` between their two requests, run
    by at most the pool's maxVUs: a pool short of rate x iteration time keeps every VU busy
    and completes only maxVUs / iteration time a second, as k6 does."""

    def __init__(self, per_replica, think_s: float, **kw: Any) -> None:
        super().__init__(per_replica, **kw)
        self.think_s = think_s
        self.pools: list[int] = []

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]):
        config = json.loads((bundle / "config.json").read_text())
        (workload,) = config["options"]["scenarios"].values()
        self.workloads.append(workload)
        pool, rate = workload["maxVUs"], workload["rate"]
        self.pools.append(pool)
        capacity = self.per_replica(self.replicas)
        iteration_s = self.think_s + 2 * 0.02

        def outcome() -> FleetOutcome:
            found = self._outcome_at(rate, capacity)
            for w in found.results[0].windows.values():
                busy = min(pool, rate * iteration_s)
                done = min(rate, capacity, busy / iteration_s)
                w.iterations, w.vus = int(done), busy
                w.dropped = rate - int(done)
            return found

        return _CannedFleet(outcome)


def test_a_journey_longer_than_the_latency_headroom_is_not_blamed_on_the_generator(tmp_path):
    # Two requests 3 s apart: each iteration lasts about 3 s whatever the load, so 50/s keeps
    # about 150 VUs busy. A pool sized from latency alone (p95<100ms: 41 VUs) ran out on the
    # first probe and the search ended "limited by the load generator" (exit 3).
    (tmp_path / "fake.py").write_text(JOURNEY)
    the_plan = plan_capacity(
        CapacityOptions(
            RunOptions(scenario=str(tmp_path / "fake.py"), results=tmp_path / "results"),
            slos=("p(95)<100ms",),
            min_rate=50,
            max_rate=200,
            step_duration="10s",
            warmup="3s",
            cooldown="0s",
            budget="10m",
            then_scale_out=False,
        )
    )
    assert the_plan.think_s == 3.0
    backend = PooledTarget(lambda r: 1000, think_s=3.0)
    report = run_capacity(the_plan, backend=backend)
    document = report.document
    assert report.exit_code == 0, document["message"]
    assert [p["status"] for p in document["probes"]] == ["held", "held", "held"]
    assert document["limited_by"] == "max_rate"
    # Each pool covers its rate's 3 s iterations, with headroom.
    for probe, pool in zip(document["probes"], backend.pools, strict=True):
        assert pool >= probe["rate"] * 3.04
        assert probe["vus_needed"] <= pool


def test_the_warm_up_lasts_the_flow_s_longest_iteration(tmp_path):
    # 3 s of think time and two requests at the SLO's 100 ms: until 3.2 s have passed nothing
    # has completed and the VUs busy still grow. The warm-up asked for (3 s) becomes 5 s.
    (tmp_path / "fake.py").write_text(JOURNEY)
    options = RunOptions(scenario=str(tmp_path / "fake.py"), results=tmp_path / "results")
    settings: dict[str, Any] = {"slos": ("p(95)<100ms",), "warmup": "3s", "budget": "10m"}
    the_plan = plan_capacity(CapacityOptions(options, step_duration="10s", **settings))
    assert the_plan.capacity.warmup_s == 5
    assert the_plan.notes[0] == (
        "the warm-up is 5 s: one iteration of workload 'visit' takes up to about 3.2 s "
        "(3 s of it think time)"
    )
    from stressbed.errors import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError) as caught:
        plan_capacity(CapacityOptions(options, step_duration="7s", **settings))
    assert caught.value.field == "--step-duration"
    assert "at least 8s" in str(caught.value)


class LimitedGenerator(ModelledTarget):
    """ModelledTarget whose runner is pinned at its CPU limit at the rates ``limited(rate)``
    names: the load generator, not the target, is the limit there."""

    def __init__(self, per_replica, limited, **kw: Any) -> None:
        super().__init__(per_replica, **kw)
        self.limited = limited

    def _outcome_at(self, rate: int, capacity: float, seconds: int = 12) -> FleetOutcome:
        found = super()._outcome_at(rate, capacity, seconds)
        if self.limited(rate):
            runner = found.results[0]
            start = int(runner.started_at or 0)
            runner.cpu = {start + i: 1.0 for i in range(seconds + 2)}
            runner.cpu_capacity = 1.0
        return found


def test_a_generator_limit_after_the_target_failed_is_said_beside_the_failure(tmp_path):
    # 50, 100, 200 held; 400 failed (the target serves 300); during the bisection's 300 the
    # runner had no CPU to spare (a busy neighbour, say). The capacity is 200 (200-400) with
    # the target's failure, and the generator's limit at 300 is said after it, not instead.
    backend = LimitedGenerator(lambda r: 300, limited=lambda rate: rate == 300)
    report = run_capacity(plan_for(tmp_path, then_scale_out=False), backend=backend)
    document = report.document
    assert [p["rate"] for p in document["probes"]] == [50, 100, 200, 400, 300]
    assert report.exit_code == 0, document["message"]
    assert document["limited_by"] == "target"
    assert document["ended_by"] == "generator"
    assert document["generator_limit"]["rate"] == 300
    assert document["cause"]["kind"] != "generator"
    answer = document["answer"]
    assert answer.startswith("capacity: 200 req/s (200-400) within p(95)<100ms; first failure 400")
    assert answer.endswith(
        "; the load generator was the limit at 300 req/s, so the bracket did not close (add "
        "runners or give them more CPU)"
    )


def test_require_unmet_because_the_generator_could_not_offer_it_is_exit_3(tmp_path):
    # Under the bracket above, --require 250 was never offered: the generator stopped at 300
    # before the target failed (at 400). That is an infrastructure verdict, not the target's.
    backend = LimitedGenerator(lambda r: 300, limited=lambda rate: rate == 300)
    the_plan = plan_for(tmp_path, then_scale_out=False, require=250)
    report = run_capacity(the_plan, backend=backend)
    assert report.exit_code == 3
    assert report.document["message"] == (
        "--require 250 req/s not measured: the load generator could not offer 300 req/s (add "
        "runners or give them more CPU); the target held 200"
    )
    # A requirement at or above the target's failure is the target's verdict: exit 1.
    report = run_capacity(
        plan_for(tmp_path, then_scale_out=False, require=400),
        backend=LimitedGenerator(lambda r: 300, limited=lambda rate: rate == 300),
    )
    assert report.exit_code == 1
    assert report.document["message"] == "sustained 200 req/s, under the required 400"


def test_require_over_an_at_least_answer_of_the_generator_is_exit_3(tmp_path):
    # Nothing failed: the generator stopped the search at 400 (at least 200). --require 300
    # was never offered.
    backend = LimitedGenerator(lambda r: 10_000, limited=lambda rate: rate > 250)
    report = run_capacity(plan_for(tmp_path, then_scale_out=False, require=300), backend=backend)
    document = report.document
    assert document["limited_by"] == "generator"
    assert report.exit_code == 3
    assert document["message"].startswith("--require 300 req/s not measured: the load generator")
    assert document["answer"] == (
        "capacity: at least 200 req/s within p(95)<100ms (limited by the load generator at "
        "400 req/s: add runners or give them more CPU)"
    )


def test_a_pool_at_its_cap_says_how_many_vus_and_runners_the_rate_needed(tmp_path):
    # 1,000 iterations/s of a 3 s journey need about 3,040 VUs busy; one runner may start
    # 2,000. The generator is the limit, and the answer says what would lift it.
    (tmp_path / "fake.py").write_text(JOURNEY)
    the_plan = plan_capacity(
        CapacityOptions(
            RunOptions(scenario=str(tmp_path / "fake.py"), results=tmp_path / "results"),
            slos=("p(95)<100ms",),
            min_rate=1000,
            step_duration="10s",
            cooldown="0s",
            budget="10m",
            then_scale_out=False,
        )
    )
    backend = PooledTarget(lambda r: 100_000, think_s=3.0)
    report = run_capacity(the_plan, backend=backend)
    document = report.document
    assert report.exit_code == 3
    assert backend.pools == [2000]
    (probe,) = document["probes"]
    assert probe["status"] == "invalid"
    assert 3000 <= probe["vus_needed"] <= 3100
    assert f"needs about {probe['vus_needed']:,} VUs" in probe["reasons"][0]
    assert document["generator_limit"]["vus_needed"] == probe["vus_needed"]
    assert document["cause"]["evidence"]["vus_needed"] == probe["vus_needed"]
    assert document["answer"] == (
        "capacity: not measured: the load generator was the limit at 1,000 iterations/s (it "
        f"needed about {probe['vus_needed']:,} VUs, at most 2,000 per runner: 2 runners or more)"
    )


def test_a_credential_in_the_target_urls_is_written_nowhere_by_capacity(tmp_path):
    password, token = "pw-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8)
    path = tmp_path / "fake.py"
    path.write_text(SCENARIO)
    options = RunOptions(
        scenario=str(path),
        results=tmp_path / "results",
        target_url=f"http://load:{password}@127.0.0.1:9",
        target_metrics_url=f"http://127.0.0.1:9/metrics?token={token}",
    )
    the_plan = plan_capacity(
        CapacityOptions(
            options,
            slos=("p(95)<100ms",),
            min_rate=50,
            max_rate=400,
            step_duration="10s",
            warmup="3s",
            cooldown="0s",
            budget="10m",
        )
    )
    report = run_capacity(the_plan, backend=ModelledTarget(lambda replicas: 150))
    assert report.document["settings"]["target_url"] == "http://127.0.0.1:9"
    assert (report.path.parent / "report.html").is_file()
    written = [
        path
        for path in (tmp_path / "results").rglob("*")
        if path.is_file()
        and (password.encode() in path.read_bytes() or token.encode() in path.read_bytes())
    ]
    assert written == []


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


def test_each_search_is_recorded_in_the_history_as_a_series_of_its_own(tmp_path):
    the_plan = plan_for(tmp_path, per_replica=True)
    the_plan = replace(the_plan, plan=replace(the_plan.plan, build="b7"))
    report = run_capacity(the_plan, backend=ModelledTarget(lambda r: 150 * r), on_line=print)
    with Store(tmp_path / "results" / "history.db") as store:
        entries = store.entries()
    # --per-replica's two searches, at one replica and at four: not like for like.
    assert [(e.kind, e.build, e.verdict) for e in entries] == [("capacity", "b7", "pass")] * 2
    assert entries[0].fingerprint != entries[1].fingerprint
    per_replica = report.document["per_replica"]
    assert [e.figures["capacity max_sustainable_rate"] for e in entries] == [
        per_replica["one"]["max_sustainable_rate"],
        per_replica["max"]["max_sustainable_rate"],
    ]
    assert all(Path(e.run_dir, "capacity.json").is_file() for e in entries)
