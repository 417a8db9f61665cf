"""A Kubernetes fleet's deadlines: the run's counts from the coordinator's release of the
runners, the time before it (scheduling, image pulls, k6 starting, setup()) is bounded apart,
and the Jobs' activeDeadlineSeconds covers both. Against the fake engine and cluster."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("kubernetes")

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.kubernetes import KubernetesBackend, KubernetesOptions, PodState
from stressbed.backends.kubernetes import backend as kube_backend
from stressbed.backends.kubernetes.fleet_manifests import coordinator_job
from stressbed.backends.kubernetes.manifests import Cluster, ClusterFleet

from ...conftest import needs_k6
from .fakes import SCENARIO, FakeCluster, FakeEngine
from .test_backend import run_kube

pytestmark = needs_k6  # plan() checks that k6 is there

SHORT = SCENARIO.replace(
    "SharedIterations(vus=2, iterations=10)",
    "ConstantVUs(vus=1, duration='1s'), graceful_stop='1s'",
)


class SlowStart(FakeCluster):
    """A node pulling the runner image: the coordinator releases the runners ``pull_s`` after
    they are first listed (its log says nothing until then), and they run 0.5 s after that.
    ``pull_s=None``: never released."""

    def __init__(self, pull_s: float | None) -> None:
        super().__init__(1, [{}])
        self.pull_s = pull_s
        self.release_at: float | None = None
        self.coordinator = PodState("coordinator", -1, "Running", time.time())

    def _released(self) -> bool:
        return self.release_at is not None and time.time() >= self.release_at

    def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
        found = super().pods(namespace, component, name)
        if component != "runner":
            return found
        if self.release_at is None:
            self.release_at = time.time() + (self.pull_s if self.pull_s is not None else 1e9)
        assert self.release_at is not None
        if time.time() < self.release_at + 0.5:
            return [replace(p, phase="Running") for p in found]
        return found

    def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
        if pod == self.coordinator.name and not self._released():
            return json.dumps({"event": "ready", "index": 0}) + "\n"
        return super().log(namespace, pod, tail_lines)


def fleets_seen(seen: list[ClusterFleet]) -> Callable[[str, Any, Any], FakeEngine]:
    class Recording(FakeEngine):
        def up(self, program: Callable[[], None]) -> None:
            state = program.__self__  # type: ignore[attr-defined]
            if state.fleet is not None:
                seen.append(state.fleet)
            super().up(program)

    return lambda name, work, target: Recording([])


def test_a_slow_image_pull_does_not_eat_the_runs_deadline(tmp_path, cluster_env, monkeypatch):
    # 1 s of load and 1 s of graceful stop: a deadline of 2.2 s with no margin; the runner
    # image takes 3 s to pull. Counted from the Job's creation, the run would time out.
    monkeypatch.setattr("stressbed.app.execute.DEADLINE_MARGIN_S", 0.0)
    cluster = SlowStart(pull_s=3.0)
    report, calls = run_kube(tmp_path, cluster_env, cluster, runners=1, scenario=SHORT)
    assert report.exit_code == 0, report.message
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]


def test_a_fleet_never_released_fails_at_its_start_budget(tmp_path, cluster_env, monkeypatch):
    monkeypatch.setattr(kube_backend, "start_budget_s", lambda options, spec: 0.5)
    began = time.monotonic()
    report, calls = run_kube(
        tmp_path, cluster_env, SlowStart(pull_s=None), runners=1, scenario=SHORT
    )
    assert time.monotonic() - began < 30
    assert report.exit_code == 3
    assert report.message.startswith(
        "the runners were not released within 0.5 s of the fleet's creation (see `kubectl -n "
    )
    assert report.message.endswith(" logs job/stressbed-runners-coordinator`)")
    assert calls[-2:] == ["destroy", "remove"]


def test_the_jobs_deadline_covers_the_wait_before_the_release_and_the_run(tmp_path, cluster_env):
    seen: list[ClusterFleet] = []
    backend_options = {"pending_deadline_s": 40.0, "ready_timeout_s": 50.0}
    report = run_kube_with(tmp_path, cluster_env, seen, backend_options)
    assert report.exit_code == 0, report.message
    (fleet,) = seen
    # The run's deadline: SCENARIO's 10 iterations have k6's default 10 m maximum (+30 s
    # graceful stop), +10% and the 30 s margin; before it 40 + 50 + 120 (setup()) + 30.
    run_s = (600 + 30) * 1.1 + 30
    assert fleet.deadline_s == math.ceil(40 + 50 + 120 + 30 + run_s) + 60
    assert (fleet.ready_timeout_s, fleet.setup_timeout_s) == (50, 120)
    args = coordinator_job(fleet, Cluster())["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--ready-timeout") + 1] == "50"
    assert args[args.index("--setup-timeout") + 1] == "120"
    # From the coordinator's own start: it ends by itself before the Jobs' deadline does.
    assert int(args[args.index("--watch-timeout") + 1]) == fleet.deadline_s - 30


def run_kube_with(
    tmp_path: Any, config: Any, seen: list[ClusterFleet], options: dict[str, float]
) -> Any:
    (tmp_path / "k.py").write_text(SCENARIO)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=config, **options),  # type: ignore[arg-type]
        engine=fleets_seen(seen),
        cluster_api=lambda target: FakeCluster(1, [{}]),
    )
    run_options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": config},
        runners=1,
        results=tmp_path / "r",
    )
    return execute(plan(run_options), backend=backend)
