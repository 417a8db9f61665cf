"""A capacity search through the Kubernetes backend: one stack, a runner fleet per probe, each
replacing the last in the run's Pulumi program, each followed and collected by its own name.

No engine or cluster can run here: :class:`ProbedEngine` records each ``up`` and hands the
fleet it brings up to :class:`ProbedCluster`, whose runner pods then log results modelled at
that fleet's rate against a target of known capacity. What is real: the plan, the backend's
orchestration of every probe, the merge, the judging, the search and capacity.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("kubernetes")

from stressbed.app.capacity import run_capacity
from stressbed.app.capacity_plan import CapacityOptions, plan_capacity
from stressbed.app.plan import RunOptions
from stressbed.backends.kubernetes import KubernetesBackend, PodState, ScaleState, _watch
from stressbed.backends.kubernetes.manifests import ClusterFleet
from stressbed.fleet.segments import segment
from stressbed.results.aggregates import Window
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.transport import result_lines
from stressbed.scenario.units import parse_duration_ms

from ...conftest import needs_k6
from .fakes import FakeCluster, FakeEngine

pytestmark = needs_k6  # plan() checks that k6 is there

SCENARIO = """from stressbed import *
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/work"), ConstantArrivalRate(rate=5, duration="5s", pre_allocated_vus=2))])
"""
STEP_S = 10


class ProbedCluster(FakeCluster):
    """Serves ``capacity`` iterations/s at 20 ms; beyond it, the achieved rate stays at the
    capacity and latency grows 10 ms a second (a queue). Only the fleet last brought up has
    pods: the one before was deleted by that ``up``."""

    def __init__(self, capacity: float, runners: int, *, realtime: bool = False) -> None:
        super().__init__(runners, [{}])
        self.capacity = capacity
        #: True: each fleet runs from its up for STEP_S (its pods Running until then), so
        #: that the stack's samples fall in its window; False: it has just ended.
        self.realtime = realtime
        self.ends = 0.0
        #: Set: the capacity is this many iterations/s per replica of the stack brought up.
        self.per_replica: float | None = None
        self.namespaces: list[str] = []  # of each up
        self.workloads: list[dict[str, Any]] = []  # each fleet's k6 scenario
        self.current: ClusterFleet | None = None
        self.logs: dict[str, str] = {}
        self.created = time.time()
        self.scales = [ScaleState(2, 2, 2)]

    def bring_up(self, fleet: ClusterFleet) -> None:
        config = json.loads(fleet.bundle["config.json"])
        (workload,) = config["options"]["scenarios"].values()
        seconds = STEP_S
        if "stages" in workload:  # the scale-out: its highest rate from the start (a model)
            stages = workload["stages"]
            rate = max(stage["target"] for stage in stages)
            seconds = int(sum(parse_duration_ms(x["duration"], "duration") for x in stages) / 1000)
        else:
            rate = workload["rate"]
        self.workloads.append(workload)
        # The fleet's run, as if it had just ended (released seconds + 3 s ago), or from now.
        started = time.time() + 0.5 if self.realtime else time.time() - seconds - 3
        self.ends = started + seconds + 1
        self.current, self.created = fleet, time.time()
        self.logs = {
            f"{fleet.name}-coordinator-q7": json.dumps(
                {"event": "started", "t": started, "skew_ms": 1.5}
            )
            + "\n"
        }
        for index in range(fleet.runners):
            document = self._result(index, fleet.runners, rate, started, seconds).to_dict()
            lines = [{"event": "ready", "index": index}, *result_lines(index, document)]
            self.logs[f"{fleet.name}-{index}-x{index}"] = "".join(
                json.dumps(line) + "\n" for line in lines
            )

    def _result(
        self, index: int, count: int, rate: int, started: float, seconds: int
    ) -> RunnerResult:
        windows = {}
        for second in range(seconds + 2):
            served = min(rate, self.capacity) / count
            ms = 20.0 if rate <= self.capacity else 20.0 + 10 * second
            window = Window(requests=round(served), iterations=round(served))
            window.vus = served * ms / 1000
            window.duration.extend([ms] * round(served))
            windows[int(started) + second] = window
        return RunnerResult(
            index=index,
            count=count,
            segment=segment(index, count),
            status=RunnerStatus.OK,
            exit_code=0,
            started_at=started,
            ended_at=started + seconds,
            windows=windows,
        )

    def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
        self.asked.append((component, name))
        if component == "agent":
            return list(self.agents)
        fleet = self.current
        if fleet is None or name != fleet.name:
            return []
        if component == "coordinator":
            return [PodState(f"{fleet.name}-coordinator-q7", -1, "Succeeded", self.created)]
        phase = "Succeeded" if time.time() >= self.ends else "Running"
        return [
            PodState(f"{fleet.name}-{i}-x{i}", i, phase, self.created) for i in range(fleet.runners)
        ]

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        lines = self.logs[pod].splitlines(keepends=True)
        return "".join(lines[-tail_lines:] if tail_lines else lines)


class ProbedEngine(FakeEngine):
    def __init__(self, calls: list[str], cluster: ProbedCluster, fleets: list[str]) -> None:
        super().__init__(calls)
        self.cluster = cluster
        self.fleets = fleets

    def up(self, program: Callable[[], None]) -> None:
        super().up(program)
        state = program.__self__  # type: ignore[attr-defined]
        fleet = state.fleet
        self.cluster.namespaces.append(state.cluster.namespace)
        if self.cluster.per_replica is not None:
            self.cluster.capacity = self.cluster.per_replica * state.spec.replicas
        if fleet is not None:
            self.fleets.append(fleet.name)
            self.cluster.bring_up(fleet)


def search_on_a_cluster(
    tmp_path: Path,
    config: Path,
    cluster: ProbedCluster,
    before: Callable[[Any], None] = lambda the_plan: None,
    engine: type[ProbedEngine] | None = None,
    **settings: Any,
) -> tuple[Any, list[str], list[str]]:
    (tmp_path / "k.py").write_text(SCENARIO)
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": config},
        runners=2,
        results=tmp_path / "r",
    )
    the_plan = plan_capacity(
        CapacityOptions(
            options,
            slos=("p(95)<100ms",),
            **{
                "min_rate": 50,
                "max_rate": 5000,
                "step_duration": f"{STEP_S}s",
                "warmup": "3s",
                "cooldown": "0s",
                "budget": "30m",
                **settings,
            },
        )
    )
    backend = the_plan.plan.backend
    assert isinstance(backend, KubernetesBackend)
    before(the_plan)
    calls: list[str] = []
    fleets: list[str] = []
    made = engine or ProbedEngine
    backend._engine = lambda name, work, target: made(calls, cluster, fleets)
    backend._cluster_api = lambda target: cluster
    return run_capacity(the_plan, backend=backend, on_line=print), calls, fleets


def test_a_search_on_a_cluster_runs_a_fleet_per_probe_against_one_stack(tmp_path, cluster_env):
    cluster = ProbedCluster(capacity=400, runners=2)
    report, calls, fleets = search_on_a_cluster(tmp_path, cluster_env, cluster)
    document = report.document
    assert report.exit_code == 0, document["message"]
    assert 360 <= document["max_sustainable_rate"] <= 440
    assert document["limited_by"] == "target"
    probes = document["probes"]
    assert len(probes) >= 5
    # The stack has an autoscaler: a scale-out follows the search, with a fleet of its own.
    assert document["scale_out"]["to"] == document["max_sustainable_rate"]
    assert "stages" in cluster.workloads[-1]
    count = len(probes) + 1
    # One stack: brought up once, a fleet up per probe, destroyed once at the end.
    assert calls == ["up:agent", *["up:fleet"] * count, "destroy", "remove"]
    # Each fleet has a name of its own, and only its pods were read.
    assert fleets == ["stressbed-runners", *(f"stressbed-runners-{n}" for n in range(2, count + 1))]
    read = {name for component, name in cluster.asked if component in ("runner", "coordinator")}
    assert read == set(fleets)
    # Each probe is a run directory with every runner's pod log and result.
    for probe in probes:
        run_dir = report.path.parent / "probes" / f"{probe['index']:02d}-{probe['rate']}"
        for index in (0, 1):
            assert (run_dir / "runners" / str(index) / "pod.log").is_file()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stack"]["backend"] == "kubernetes"
    # The stack's own record of the run reached capacity.json's report.
    assert json.loads(report.path.read_text())["answer"].startswith("capacity: ")


def test_a_probe_whose_fleet_cannot_be_brought_up_ends_the_search_and_destroys_the_stack(
    tmp_path, cluster_env
):
    cluster = ProbedCluster(capacity=400, runners=2)

    class Failing(ProbedEngine):
        ups = 0

        def up(self, program: Callable[[], None]) -> None:
            if program.__self__.fleet is not None:  # type: ignore[attr-defined]
                Failing.ups += 1
                if Failing.ups == 3:
                    self.calls.append("up:fleet")
                    raise RuntimeError("error: resource quota exceeded\n")
            super().up(program)

    report, calls, _ = search_on_a_cluster(tmp_path, cluster_env, cluster, engine=Failing)
    assert report.exit_code == 3
    assert (
        "pulumi up of the fleet failed: error: resource quota exceeded"
        in (report.document["message"])
    )
    assert calls[-2:] == ["destroy", "remove"]
    assert [p["status"] for p in report.document["probes"]] == ["held", "held", "error"]


def test_the_cause_is_read_from_the_clusters_own_record_of_the_agent(
    tmp_path, cluster_env, monkeypatch
):
    # One probe in real time (10 s): the stack's samples, from the Deployment and
    # metrics.k8s.io, fall in its window and show the replicas at their CPU limit.
    monkeypatch.setattr(_watch, "WATCH_S", 0.2)
    cluster = ProbedCluster(capacity=400, runners=2, realtime=True)
    cluster.agents = [
        PodState(f"agent-5d8-{x}", -1, "Running", time.time(), ready=True) for x in "ab"
    ]

    def at_the_limit(the_plan: Any) -> None:
        limit = the_plan.plan.stack.limits.cpu_m
        cluster.usage = {pod.name: (float(limit), 60.0) for pod in cluster.agents}

    report, calls, _ = search_on_a_cluster(
        tmp_path, cluster_env, cluster, at_the_limit, min_rate=800, max_rate=1600, confirm=False
    )
    document = report.document
    assert report.exit_code == 1, document["message"]  # no rate held
    (probe,) = document["probes"]
    assert probe["status"] == "failed"
    assert probe["replicas"] == 2
    assert set(probe["pods"]) == {"agent-5d8-a", "agent-5d8-b"}
    assert document["cause"]["kind"] == "cpu-limit"
    assert "at their CPU limit" in document["cause"]["message"]
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]


def test_per_replica_on_a_cluster_searches_two_stacks_in_namespaces_of_their_own(
    tmp_path, cluster_env
):
    cluster = ProbedCluster(capacity=0, runners=2)
    cluster.per_replica = 150
    report, calls, _ = search_on_a_cluster(tmp_path, cluster_env, cluster, per_replica=True)
    document = report.document
    assert report.exit_code == 0, document["message"]
    summary = document["per_replica"]
    most = summary["replicas"]
    assert most > 1
    assert 135 <= summary["one"]["max_sustainable_rate"] <= 150
    assert 0.9 <= summary["efficiency"] <= 1.1
    # Two stacks, each destroyed before the next: two namespaces, never one shared.
    assert calls.count("up:agent") == 2
    assert calls.count("destroy") == 2
    assert calls.index("destroy") < calls.index("up:agent", 1)
    first, second = dict.fromkeys(cluster.namespaces)
    assert first != second
