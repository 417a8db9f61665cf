"""The capacity search along a population, against FakeBackend, whose fleet plays a target that
holds at most so many channels (past them it refuses every upgrade, and counts it) and a load
generator that may run out of open files: the search's variable is the agent count, the
answer and the cause say agents. And the plan: bounds, SLOs, the runners' open files, what a
population refuses. No process runs: the real run is in test_capacity.py."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stressbed.app.capacity import run_capacity
from stressbed.app.capacity_agents import agents_per_runner, files_reserve, per_vu_for
from stressbed.app.capacity_plan import CapacityOptions, CapacityPlan, plan_capacity
from stressbed.app.cli import main
from stressbed.app.plan import RunOptions
from stressbed.backends.base import FleetOutcome, FleetSpec
from stressbed.backends.local import LocalBackend
from stressbed.errors import ConfigError
from stressbed.results.agents import AgentWindow
from stressbed.results.aggregates import Window
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.table import capacity_table
from stressbed.stack.spec import StackSpec
from stressbed.testing import FakeBackend, _CannedFleet

POPULATION = """
from stressbed import Scenario
from stressbed.population import Agent, WebSocket, every, population, send
from stressbed.thresholds import checkin_lateness, connected

agent = Agent(
    channel=WebSocket("/v1/channel", hello={"type": "hello", "agent_id": "{{agent_id}}"}),
    activities=[every("10s", send({"type": "heartbeat", "seq": "{{seq}}"}))],
)
scenario = Scenario("fleet", description="agents holding a channel each", workloads=[
    population("agents", agent, agents=1000, join="20s", lasting="1m", per_vu=250)
], thresholds=[connected("> 99%"), checkin_lateness("p(99) < 2s")])
"""
RATE = """
from stressbed import *
scenario = Scenario("rate", description="one GET", workloads=[
    Workload("work", get("/work"), ConstantArrivalRate(rate=5, duration="5s", pre_allocated_vus=2))
])
"""
REFUSED = 'agent_channel_refused{reason="limit"} /s'


class ChannelTarget(FakeBackend):
    """A target holding at most ``limit`` channels: the agents past it are refused every
    second (k6's reason 'handshake', the target's agent_channel_refused{reason="limit"});
    its runners run out of open files past ``files`` agents (k6 logs "too many open files")."""

    def __init__(self, limit: int, files: int = 10**9, **kw: Any) -> None:
        super().__init__(**kw)
        self.limit, self.files = limit, files
        self.offered: list[dict[str, Any]] = []  # each probe's population as rendered
        self.rows: list[dict[str, Any]] = []
        self.series: dict[str, list[list[float]]] = {REFUSED: [], "agent_channel_connected": []}
        self.clock = time.time() - 10_000  # each probe in seconds of its own, one after another

    def stack(self, spec: StackSpec, work_dir: Path, on_event=None, secrets=None):
        made = super().stack(spec, work_dir, on_event, secrets)
        made.report = lambda: {  # type: ignore[method-assign]
            "backend": "fake",
            "url": made.url,
            "limits": {"cpu_m": 1000.0, "memory_mib": 256.0},
            "timeseries": list(self.rows),
            "target_metrics": {"series": {k: list(v) for k, v in self.series.items()}},
        }
        return made

    def fleet(self, bundle: Path, out_dir: Path, spec: FleetSpec, env: Mapping[str, str]):
        config = json.loads((bundle / "config.json").read_text())
        (workload,) = config["workloads"].values()
        population = workload["population"]
        self.offered.append(population)
        return _CannedFleet(lambda: self._play(population))

    def _play(self, population: Mapping[str, Any]) -> FleetOutcome:
        count = population["agents"]
        seconds = math.ceil((population["join_ms"] + population["lasting_ms"]) / 1000) + 1
        started = self.clock
        self.clock += seconds + 5
        held = min(count, self.limit)
        windows = {}
        for i in range(seconds):
            t = int(started) + i
            agents = AgentWindow()
            if i == 0:
                agents.joined, agents.connects = count, held
                agents.connect_attempts = count
                agents.connect_time.extend([20.0] * held)
            else:
                agents.checkin_lateness.extend([3.0] * (held // 10))
            if count > held:
                agents.connect_attempts += count - held
                agents.connect_failures = {"handshake": count - held}
                self.series[REFUSED].append([t, float(count - held)])
            self.series["agent_channel_connected"].append([t, float(held)])
            self.rows.append(
                {"t": t, "replicas": 1, "pods": {"agent-0": {"cpu_m": 50.0, "memory_mib": 40.0}}}
            )
            windows[t] = Window(agents=agents)
        tail = ['msg="Request Failed" error="socket: too many open files"'] * (count > self.files)
        result = RunnerResult(
            index=0,
            count=1,
            segment="0:1",
            status=RunnerStatus.OK,
            exit_code=0,
            started_at=started,
            ended_at=started + seconds,
            windows=windows,
            stderr_tail=tail,
        )
        return FleetOutcome(results=[result], started_at=started, start_skew_ms=0.0)


def plan_for(tmp_path: Path, text: str = POPULATION, **kw: Any) -> CapacityPlan:
    path = tmp_path / "fleet.py"
    path.write_text(text)
    runners = kw.pop("runners", 1)
    options = RunOptions(scenario=str(path), results=tmp_path / "results", runners=runners)
    settings: dict[str, Any] = {
        "step_duration": "10s",
        "warmup": "3s",
        "cooldown": "0s",
        "budget": "10m",
        **kw,
    }
    return plan_capacity(CapacityOptions(options, **settings))


def test_the_search_along_agents_brackets_the_target_s_connection_limit(tmp_path):
    backend = ChannelTarget(limit=300)
    the_plan = plan_for(tmp_path, min_agents=100, max_agents=800)
    lines: list[str] = []
    report = run_capacity(the_plan, backend=backend, on_line=lines.append)
    document = report.document
    assert report.exit_code == 0, document["message"]
    probes = document["probes"]
    assert [p["rate"] for p in probes] == [100, 200, 400, 300, 350, 325, 312, 300, 312]
    assert [p["status"] for p in probes] == ["held", "held", "failed", "held"] + ["failed"] * 3 + [
        "held",
        "failed",
    ]
    # Each probe: its agents joining over a tenth of the step (the declared 20 s is longer),
    # then staying for the step.
    assert [o["agents"] for o in backend.offered] == [p["rate"] for p in probes]
    assert {(o["join_ms"], o["lasting_ms"]) for o in backend.offered} == {(1000.0, 10000.0)}
    assert [o["per_vu"] for o in backend.offered[:3]] == [100, 200, 250]
    assert document["unit"] == document["variable"] == "agents"
    assert document["max_sustainable_agents"] == document["max_sustainable_rate"] == 300
    assert document["interval"] == [300, 312]
    assert document["limited_by"] == "target"
    assert document["settings"]["min_agents"] == 100
    assert document["settings"]["max_rate"] is None
    assert document["population"]["join_s"] == 1.0
    assert document["knee"]["range"] is None
    cause = document["cause"]
    assert cause["kind"] == "connection-limit"
    assert cause["evidence"]["target_connected_peak"] == 300
    assert cause["evidence"]["handshake_failures"] == 12 * 12
    assert document["answer"] == (
        "capacity: 300 agents (300-312) within connected>99%, checkin_lateness p(99)<2000ms; "
        "first failure 312 agents: connected>99% broken (96.15%); cause: the target's own "
        "connection limit: it refused 144 channel upgrades past it (HTTP 503, "
        'agent_channel_refused{reason="limit"}) with 300 channels open at most '
        "(agent_channel_connected); k6 counted 144 connect failures 'handshake' (an answer "
        "other than 101)"
    )
    assert any(
        line.startswith("probe 3: 400 agents failed (connected 75.0%, peak 300): connected>99%")
        for line in lines
    )
    table = capacity_table(document)
    assert "agents  conn %" in table
    assert "   3      400    75.0" in table
    html = (report.path.parent / "report.html").read_text()
    assert "agents connected against agents offered" in html
    assert backend.stacks[0].torn_down


def test_runners_out_of_open_files_stop_the_search_at_the_generator(tmp_path):
    backend = ChannelTarget(limit=10**6, files=1000)
    report = run_capacity(plan_for(tmp_path, min_agents=200, max_agents=5000), backend=backend)
    document = report.document
    assert report.exit_code == 0, document["message"]
    assert [p["status"] for p in document["probes"]] == ["held"] * 3 + ["invalid"]
    assert document["limited_by"] == "generator"
    assert document["generator_limit"]["open_files_errors"] == 1
    assert document["cause"]["kind"] == "generator"
    assert document["answer"] == (
        "capacity: at least 800 agents within connected>99%, checkin_lateness p(99)<2000ms "
        "(limited by the load generator at 1,600 agents: add runners: each agent's WebSocket "
        "is a file of its runner's)"
    )


def test_a_population_that_never_holds_says_so_in_agents(tmp_path):
    report = run_capacity(plan_for(tmp_path, min_agents=100), backend=ChannelTarget(limit=50))
    assert report.exit_code == 1
    assert report.document["message"] == (
        "no count held: the stack does not hold --min-agents (100 agents) within its SLOs"
    )
    assert report.document["answer"].startswith("capacity: below 100 agents within")


class PerReplica(ChannelTarget):
    """ChannelTarget holding ``per`` channels per replica of the stack it was given."""

    def __init__(self, per: int) -> None:
        super().__init__(limit=per)
        self.per = per

    def stack(self, spec: StackSpec, work_dir: Path, on_event=None, secrets=None):
        self.limit = self.per * spec.replicas
        return super().stack(spec, work_dir, on_event, secrets)


def test_per_replica_compares_the_agents_one_replica_and_the_most_hold(tmp_path):
    the_plan = plan_for(tmp_path, min_agents=100, max_agents=2000, per_replica=True, confirm=False)
    report = run_capacity(the_plan, backend=PerReplica(150))
    summary = report.document["per_replica"]
    assert (summary["one"]["max_sustainable_rate"], summary["max"]["max_sustainable_rate"]) == (
        150,
        600,
    )
    assert summary["efficiency"] == 1.0
    assert report.document["answer"].startswith(
        "per replica: 150 agents; at 4 replicas: 600 agents (100% of 4 x 150)"
    )


# -- the plan ----------------------------------------------------------------------------


def test_a_population_is_searched_by_its_agent_count_within_its_slos(tmp_path):
    the_plan = plan_for(tmp_path)
    assert the_plan.population is not None
    assert the_plan.unit == "agents"
    assert the_plan.bounds == (100, 10_000)  # a tenth and ten times the declared 1,000
    assert not the_plan.then_scale_out
    assert [t.label for t in the_plan.capacity.slo_thresholds] == ["> 99%", "p(99) < 2s"]
    assert the_plan.population.agents_per_runner_max == 10_000
    # --slo replaces the SLOs; a connected share is always judged (the scenario's).
    chosen = plan_for(tmp_path, slos=("connect_time p(99)<1s",)).capacity.slo_thresholds
    assert [t.metric for t in chosen] == ["agents_connected", "agent_connect_time"]


def test_a_population_without_a_connected_threshold_is_held_to_99_percent(tmp_path):
    text = POPULATION.replace('connected("> 99%"), ', "")
    (connected,) = [t for t in plan_for(tmp_path, text).capacity.slo_thresholds[:1]]
    assert (connected.metric, connected.operator, connected.value) == (
        "agents_connected",
        ">=",
        0.99,
    )


def test_rates_are_refused_for_a_population_and_agents_for_a_rate(tmp_path):
    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, min_rate=10)
    assert str(caught.value) == (
        "--min-rate: got 10; expected --min-agents: workload 'agents' is a population, "
        "searched by its agent count, not a rate"
    )
    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, RATE, max_agents=100, slos=("p(95)<100ms",))
    assert caught.value.field == "--max-agents"
    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, RATE, slos=("connected>=99%",))
    assert caught.value.field == "--slo"
    assert "a population's SLOs need a population workload" in str(caught.value)
    for option, value in (("scale_out", "100:400"), ("scale_out_for", "30s")):
        with pytest.raises(ConfigError) as caught:
            plan_for(tmp_path, **{option: value})
        assert caught.value.field == "--" + option.replace("_", "-")


def test_request_slos_need_agents_that_make_requests(tmp_path):
    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, slos=("p(95)<100ms",))
    assert caught.value.field == "capacity.slos[1]"
    assert "of requests its agents make (they make none)" in str(caught.value)


def test_a_maximum_that_does_not_fit_the_runners_open_files_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(LocalBackend, "runner_open_files", lambda self: 20_000)
    with pytest.raises(ConfigError) as caught:
        plan_for(tmp_path, max_agents=40_000)
    assert str(caught.value) == (
        "--max-agents: got 40000; expected at most 18,000 agents with 1 runner(s): each agent "
        "holds a WebSocket, a file of its runner's, and a runner may open 20,000 files "
        "(RLIMIT_NOFILE) of which 2,000 are kept for k6's own; add runners (--runners 3 or "
        "more) for 40,000 agents"
    )
    assert plan_for(tmp_path, max_agents=40_000, runners=3).population is not None
    # From the command line: one line, exit 2, nothing started.
    code = main(
        [
            "capacity", "--scenario", str(tmp_path / "fleet.py"), "--max-agents", "40000",
            "--results", str(tmp_path / "cli"),
        ]
    )  # fmt: skip
    assert code == 2
    assert not (tmp_path / "cli").exists()


def test_the_local_backend_s_runners_have_its_hard_limit_of_open_files():
    import resource  # noqa: PLC0415

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = None if hard == resource.RLIM_INFINITY else hard
    assert LocalBackend().runner_open_files() == expected


def test_agents_are_spread_over_every_runner_in_whole_vus():
    assert per_vu_for(100, 2, 250) == 50  # both runners get a VU
    assert agents_per_runner(100, 2, 250) == 50
    assert agents_per_runner(1000, 2, 250) == 500
    assert agents_per_runner(1100, 2, 250) == 750  # five VUs: three on one runner
    assert files_reserve(20_000) == 2000
    assert files_reserve(500) == 100
