"""The Kubernetes backend's orchestration against a fake engine and a fake cluster.

No Pulumi CLI, provider or cluster can run here: :class:`FakeEngine` stands in for the
Automation API (it records up/destroy/remove) and :class:`FakeCluster` for the Kubernetes API
(pods and their logs). What is real: preflight, the run pipeline, the merge and the results.
The engine test at the end runs only where `pulumi` is on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pulumi")
pytest.importorskip("kubernetes")

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.base import Progress
from stressbed.backends.kubernetes import (
    KubernetesBackend,
    KubernetesOptions,
    PodState,
)
from stressbed.backends.kubernetes import backend as kube_backend
from stressbed.backends.kubernetes._news import COORDINATOR_TAIL
from stressbed.errors import ConfigError
from stressbed.fleet.control import TOKEN_ENV
from stressbed.results.aggregates import Window
from stressbed.results.live_series import LiveSeries
from stressbed.results.runner_result import RunnerResult

from ...conftest import needs_k6
from .fakes import SCENARIO, FakeCluster, FakeEngine, result_log

ABORTING = """from stressbed import *
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/healthz"), ConstantVUs(vus=4, duration="10m"))],
    thresholds=[error_rate("< 5%", abort_on_fail=True), latency("p(95) < 1s")])
"""


def run_kube(
    tmp_path: Path,
    config: Path,
    cluster: FakeCluster,
    fail: dict[str, Exception] | None = None,
    runners: int = 2,
    *,
    scenario: str = SCENARIO,
    pending_deadline_s: float = 60,
    on_progress: Callable[[Progress], None] | None = None,
    live: LiveSeries | None = None,
) -> tuple[Any, list[str]]:
    calls: list[str] = []
    (tmp_path / "k.py").write_text(scenario)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=config, pending_deadline_s=pending_deadline_s),
        engine=lambda name, work, target: FakeEngine(calls, fail),
        cluster_api=lambda target: cluster,
    )
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": config},
        runners=runners,
        results=tmp_path / "r",
    )
    return execute(plan(options), on_progress, backend=backend, live=live), calls


pytestmark = needs_k6  # plan() checks that k6 is there


def test_a_run_goes_up_starts_follows_collects_and_always_destroys(tmp_path, cluster_env):
    cluster = FakeCluster(2, [{0: {"phase": "Running"}, 1: {"phase": "Pending"}}, {}])
    report, calls = run_kube(tmp_path, cluster_env, cluster)
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]
    assert report.exit_code == 0, report.message
    assert [r.index for r in report.runners] == [0, 1]
    run_dir = tmp_path / "r" / "latest"
    for i in (0, 1):
        assert RunnerResult.read(run_dir / "runners" / str(i) / "result.json").index == i
        assert (run_dir / "runners" / str(i) / "pod.log").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stack"]["backend"] == "kubernetes"
    assert summary["stack"]["context"] == "kind-stressbed"
    namespace = summary["stack"]["namespace"]
    assert namespace.startswith("stressbed-")
    assert summary["stack"]["url"] == f"http://agent.{namespace}.svc:8080"
    kinds = [e["event"] for e in summary["events"]]
    assert kinds.index("stack-ready") < kinds.index("fleet-created") < kinds.index("fleet-finished")
    assert kinds[-2:] == ["stack-destroyed", "stack-removed"]
    # Destroyed: its state and passphrase are gone too.
    assert not (tmp_path / "xdg" / "stressbed" / "pulumi" / namespace).exists()
    assert (tmp_path / "xdg" / "stressbed" / "pulumi").is_dir()


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (
            {"phase": "Failed", "terminated": "OOMKilled", "exit_code": 137},
            "runner 1: OOMKilled (raise --runner-memory, now 1024Mi, or lower the VUs per runner)",
        ),
        (
            {"phase": "Failed", "reason": "Evicted", "message": "The node was low on memory."},
            "runner 1: evicted (The node was low on memory.)",
        ),
        (
            {"phase": "Pending", "waiting": "ImagePullBackOff", "message": "not found"},
            "runner 1: image pull failed (ImagePullBackOff: not found)",
        ),
        (
            {"phase": "Pending", "created": 0.0, "unschedulable": "0/3 nodes: Insufficient cpu"},
            "runner 1: still Pending after 60 s: 0/3 nodes: Insufficient cpu",
        ),
        (
            {"phase": "Failed", "terminated": "Error", "exit_code": 2},
            "runner 1: failed with exit code 2 (Error)",
        ),
    ],
)
def test_a_failing_runner_ends_the_run_with_exit_3_naming_it(tmp_path, cluster_env, pod, message):
    cluster = FakeCluster(2, [{1: {"phase": "Running"}}, {1: pod}])
    report, calls = run_kube(tmp_path, cluster_env, cluster)
    assert report.exit_code == 3
    assert report.message == message
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]


def test_a_coordinator_that_cannot_start_the_fleet_says_why(tmp_path, cluster_env):
    cluster = FakeCluster(2, [{0: {"phase": "Running"}, 1: {"phase": "Running"}}])
    cluster.coordinator = PodState(
        "coordinator", -1, "Failed", time.time(), terminated="Error", exit_code=3
    )
    cluster.coordinator_log = (
        json.dumps({"event": "ready", "index": 0})
        + "\n"
        + json.dumps({"event": "failed", "reason": "runner 1 was not ready within 300 s"})
        + "\n"
    )
    report, calls = run_kube(tmp_path, cluster_env, cluster)
    assert report.exit_code == 3
    assert report.message == (
        "coordinator: failed with exit code 3 (Error): runner 1 was not ready within 300 s"
    )
    assert calls[-2:] == ["destroy", "remove"]


def second(t: int, requests: int) -> dict[str, Any]:
    """A second the coordinator merged, as it prints it."""
    window = Window(requests=requests, vus=4.0)
    window.duration.extend([5.0] * requests)
    return {"event": "second", "t": t, "window": window.to_dict()}


def test_the_seconds_the_coordinator_merged_reach_the_runs_live_series(tmp_path, cluster_env):
    """The live page and endpoint of a run on a cluster: each second the coordinator merged
    (its log's ``second`` lines) is sealed into the command's series once, in order; a line
    cut short is skipped (that second comes from the runners' results at the end)."""
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running, running, running, running, {}])
    cluster.coordinator = PodState("coordinator", -1, "Running", time.time())
    t0 = int(time.time()) - 600  # before any second of the runners' results
    cluster.coordinator_news = [
        (1, second(t0, 40)),
        (1, second(t0 + 1, 38)),
        (2, second(t0 + 1, 999)),  # said again: sealed once
        (2, {"event": "second", "t": t0 + 2, "window": {"requests": 3}}),  # cut short
        (2, second(t0 + 3, 41)),
        (3, {"event": "finished", "runners": 2}),
    ]
    series = LiveSeries(lock=threading.Lock())
    sealed: list[int] = []
    seal = series.seal
    series.seal = lambda t, w: sealed.append(t) or seal(t, w)  # type: ignore[method-assign]
    report, _ = run_kube(tmp_path, cluster_env, cluster, live=series)
    assert report.exit_code == 0, report.message
    assert sealed[:3] == [t0, t0 + 1, t0 + 3]
    assert [series.windows[t].requests for t in (t0, t0 + 1, t0 + 3)] == [40, 38, 41]
    assert t0 + 2 not in series.windows


def progress(elapsed: float, **values: float) -> dict[str, Any]:
    """A progress line as the coordinator prints it."""
    line = {"event": "progress", "elapsed_s": elapsed, "total_s": 0.0, "requests_per_s": 0.0}
    return {**line, "error_rate": 0.0, "p95_ms": 0.0, "vus": 0.0, "vus_max": 0.0, **values}


def test_the_live_line_and_a_fleet_wide_abort_come_from_the_coordinator(tmp_path, cluster_env):
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running, running, running, running, {}])
    cluster.coordinator = PodState("coordinator", -1, "Running", time.time())
    cluster.coordinator_news = [
        (1, progress(1.0, requests_per_s=40, p95_ms=12.5, vus=4, vus_max=4)),
        (2, progress(2.0, requests_per_s=38, error_rate=0.25, vus=4, vus_max=4)),
        (2, {"event": "aborted", "threshold": "http_req_failed", "expression": "rate<0.05"}),
        (3, progress(3.0, requests_per_s=0, vus=0, vus_max=4)),
        (3, {"event": "finished", "runners": 2}),
    ]
    seen: list[Progress] = []
    report, calls = run_kube(
        tmp_path, cluster_env, cluster, scenario=ABORTING, on_progress=seen.append
    )
    assert report.exit_code == 1
    assert report.message.startswith(
        "aborted: threshold failed fleet-wide: http_req_failed rate<0.05"
    )
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]
    # Each second the coordinator merged, handed on once, in order, with the run's length.
    assert [(p.elapsed_s, p.requests_per_s, p.vus) for p in seen] == [
        (1.0, 40, 4),
        (2.0, 38, 4),
        (3.0, 0, 0),
    ]
    assert seen[1].error_rate == 0.25
    assert (seen[0].p95_ms, seen[0].vus_max) == (12.5, 4)
    assert all(p.total_s > 600 for p in seen)  # the run's deadline, not the coordinator's 0
    fleet_events = [e for e in report.events if e["source"] == "fleet"]
    aborted = [e for e in fleet_events if e["event"] == "aborted"]
    assert [(e["threshold"], e["expression"]) for e in aborted] == [
        ("http_req_failed", "rate<0.05")
    ]
    kinds = [e["event"] for e in fleet_events]
    assert kinds.index("aborted") < kinds.index("fleet-finished")
    # The log is read by its tail: a long run's coordinator log is never read whole per poll.
    assert set(cluster.tails) == {COORDINATOR_TAIL}
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "fail"


def test_an_abort_that_left_the_log_tail_between_two_polls_is_still_seen(tmp_path, cluster_env):
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running, running, {}])
    cluster.coordinator = PodState("coordinator", -1, "Running", time.time())
    aborted = {"event": "aborted", "threshold": "http_req_failed", "expression": "rate<0.05"}
    # By the first read, the abort is already more than a tail's length back.
    tail = COORDINATOR_TAIL
    cluster.coordinator_news = [(1, aborted)] + [
        (1, progress(float(i))) for i in range(1, tail + 10)
    ]
    report, _ = run_kube(tmp_path, cluster_env, cluster, scenario=ABORTING)
    assert report.exit_code == 1
    assert report.message.startswith("aborted: threshold failed fleet-wide: http_req_failed")
    assert None in cluster.tails  # the whole log, read once at the end


def test_runners_that_do_not_stop_after_an_abort_are_left_to_the_teardown(
    tmp_path, cluster_env, monkeypatch
):
    monkeypatch.setattr(kube_backend, "ABORT_GRACE_S", 0.05)
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running])  # they never finish
    cluster.coordinator = PodState("coordinator", -1, "Running", time.time())
    cluster.coordinator_news = [
        (1, {"event": "aborted", "threshold": "http_req_failed", "expression": "rate<0.05"})
    ]
    report, calls = run_kube(tmp_path, cluster_env, cluster, scenario=ABORTING)
    assert report.exit_code == 1
    assert report.message.startswith("aborted: ")
    assert calls[-2:] == ["destroy", "remove"]
    kinds = [e["event"] for e in report.events if e["source"] == "fleet"]
    assert kinds.index("aborted") < kinds.index("abort-grace-over")


def test_a_coordinator_lost_after_the_start_costs_the_live_view_not_the_run(tmp_path, cluster_env):
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running, running, running, {}])
    cluster.coordinator = PodState(
        "coordinator", -1, "Failed", time.time(), terminated="OOMKilled", exit_code=137
    )
    cluster.coordinator_news = [(1, progress(1.0, requests_per_s=10))]
    report, _ = run_kube(tmp_path, cluster_env, cluster)
    assert report.exit_code == 0, report.message
    lost = [e for e in report.events if e["event"] == "coordinator-lost"]
    assert [e["reason"] for e in lost] == ["coordinator: OOMKilled"]


def test_the_agent_pods_own_metrics_are_scraped_through_the_pod_proxy(tmp_path, cluster_env):
    running = {0: {"phase": "Running"}, 1: {"phase": "Running"}}
    cluster = FakeCluster(2, [running] * 3 + [{}])
    report, _ = run_kube(tmp_path, cluster_env, cluster)
    assert report.exit_code == 0, report.message
    assert cluster.proxied[0] == ("agent-7d9-x", 8080, "/metrics")
    points = report.stack["target_metrics"]["series"]["agent_queue_points"]
    assert points[0][1] == 3


def test_the_coordinator_is_handed_the_abort_thresholds_to_judge(tmp_path, cluster_env):
    shipped: list[Any] = []

    class Recording(FakeEngine):
        def up(self, program: Callable[[], None]) -> None:
            state = program.__self__  # type: ignore[attr-defined]
            if state.fleet is not None:
                shipped.extend(state.fleet.abort_thresholds)
            super().up(program)

    (tmp_path / "k.py").write_text(ABORTING)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=cluster_env),
        engine=lambda name, work, target: Recording([]),
        cluster_api=lambda target: FakeCluster(2, [{}]),
    )
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": cluster_env},
        runners=2,
        results=tmp_path / "r",
    )
    the_plan = plan(options)
    execute(the_plan, backend=backend)
    # The abort_on_fail ones, and only those: the others are judged once, at the end.
    assert shipped == [t for t in the_plan.scenario.thresholds if t.abort_on_fail]
    assert [t.key for t in shipped] == ["http_req_failed"]


def test_a_failed_up_still_destroys_and_removes_the_stack(tmp_path, cluster_env):
    error = RuntimeError("stdout: ...\nerror: the server could not find the requested resource")
    report, calls = run_kube(tmp_path, cluster_env, FakeCluster(2, [{}]), {"up:agent": error})
    assert report.exit_code == 3
    assert report.message == (
        "provisioning failed: pulumi up failed: error: the server could not find the "
        "requested resource"
    )
    assert calls == ["up:agent", "destroy", "remove"]


def test_a_failed_fleet_up_destroys_too(tmp_path, cluster_env):
    error = RuntimeError("quota exceeded")
    report, calls = run_kube(tmp_path, cluster_env, FakeCluster(2, [{}]), {"up:fleet": error})
    assert report.exit_code == 3
    assert report.message == "pulumi up of the fleet failed: quota exceeded"
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]


def test_an_interrupt_while_following_destroys_and_exits_130(tmp_path, cluster_env):
    cluster = FakeCluster(2, [{0: {"phase": "Running"}}])
    cluster.interrupt_at = 3
    report, calls = run_kube(tmp_path, cluster_env, cluster)
    assert report.exit_code == 130
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]


def test_a_failed_destroy_keeps_the_stack_and_says_how_to_finish(tmp_path, cluster_env):
    report, calls = run_kube(
        tmp_path, cluster_env, FakeCluster(2, [{}]), {"destroy": RuntimeError("timeout")}
    )
    assert calls == ["up:agent", "up:fleet", "destroy"]  # not removed: its state is needed
    assert report.exit_code == 3
    assert report.message.startswith("pulumi destroy failed: timeout; the stack 'stressbed-")
    stack = report.message.split("'")[1]
    state = (tmp_path / "xdg" / "stressbed" / "pulumi" / stack).resolve()
    env = (
        f"PULUMI_BACKEND_URL=file://{state / 'state'} "
        f"PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase'} KUBECONFIG={cluster_env.resolve()}"
    )
    # From any directory: the project's by --cwd, the stack's full name.
    where = f"--cwd {state / 'project'} --stack organization/stressbed/{stack}"
    assert (
        f"finish with `{env} pulumi destroy {where} --yes`, then `{env} pulumi stack rm {where} "
        "--yes`"
    ) in report.message
    # Kept, for that command, and only for its owner: not among the results CI uploads.
    assert (state / "passphrase").stat().st_mode & 0o777 == 0o600
    assert state.stat().st_mode & 0o777 == 0o700
    assert not [p for p in (tmp_path / "r").rglob("*passphrase*")]


def test_runner_pods_that_never_appear_fail_the_run(tmp_path, cluster_env, monkeypatch):
    class NoPods(FakeCluster):
        def pods(self, namespace: str, component: str, name: str | None = None) -> list[PodState]:
            return []

    report, calls = run_kube(tmp_path, cluster_env, NoPods(2, [{}]), pending_deadline_s=0.2)
    assert report.exit_code == 3
    assert report.message.startswith("no runner pod was created within 0.2 s (see `kubectl -n")
    assert calls[-2:] == ["destroy", "remove"]


def test_a_blip_of_the_api_is_retried_but_a_dead_api_fails_the_run(tmp_path, cluster_env):
    blip = FakeCluster(2, [{}])
    blip.api_failures = {1, 2}
    (tmp_path / "a").mkdir()
    report, _ = run_kube(tmp_path / "a", cluster_env, blip)
    assert report.exit_code == 0, report.message
    dead = FakeCluster(2, [{}])
    dead.api_failures = set(range(1, 100))
    (tmp_path / "b").mkdir()
    report, calls = run_kube(tmp_path / "b", cluster_env, dead)
    assert report.exit_code == 3
    assert report.message == "the Kubernetes API did not answer: connection reset"
    assert calls[-2:] == ["destroy", "remove"]


def test_nothing_waits_past_the_deadline(tmp_path, cluster_env, monkeypatch):
    monkeypatch.setattr("stressbed.app.execute.DEADLINE_MARGIN_S", 0.0)
    cluster = FakeCluster(1, [{0: {"phase": "Running"}}])
    short = SCENARIO.replace(
        "SharedIterations(vus=2, iterations=10)",
        "ConstantVUs(vus=1, duration='1s'), graceful_stop='1s'",
    )
    started = time.monotonic()
    report, calls = run_kube(tmp_path, cluster_env, cluster, runners=1, scenario=short)
    assert time.monotonic() - started < 10
    assert report.exit_code == 3
    assert report.message == "the run passed its deadline; runners stopped"
    assert calls[-2:] == ["destroy", "remove"]


def test_the_images_given_are_the_images_the_pods_run(tmp_path, cluster_env):
    seen: dict[str, Any] = {}

    class Recording(FakeEngine):
        def up(self, program: Callable[[], None]) -> None:
            state = program.__self__  # type: ignore[attr-defined]
            seen["agent"] = state.spec.target.image
            seen["policy"] = state.cluster.image_pull_policy
            if state.fleet is not None:
                seen["runner"] = state.fleet.image
            super().up(program)

    (tmp_path / "k.py").write_text(SCENARIO)
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={
            "kubeconfig": cluster_env,
            "agent_image": "registry.example/agent@sha256:" + "1" * 64,
            "runner_image": "registry.example/runner:7",
            "image_pull_policy": "Always",
        },
        runners=2,
        results=tmp_path / "r",
    )
    the_plan = plan(options)
    backend = the_plan.backend
    assert isinstance(backend, KubernetesBackend)
    backend._engine = lambda name, work, target: Recording([])
    backend._cluster_api = lambda target: FakeCluster(2, [{}])
    report = execute(the_plan, backend=backend)
    assert report.exit_code == 0, report.message
    assert seen == {
        "agent": "registry.example/agent@sha256:" + "1" * 64,
        "runner": "registry.example/runner:7",
        "policy": "Always",
    }


def test_a_bad_image_pull_policy_is_refused(tmp_path, cluster_env):
    with pytest.raises(ConfigError, match="--image-pull-policy: got 'Sometimes'"):
        plan(
            RunOptions(
                scenario="ingest_mix",
                backend="kubernetes",
                backend_options={"kubeconfig": cluster_env, "image_pull_policy": "Sometimes"},
            )
        )


@pytest.mark.skipif(shutil.which("pulumi") is None, reason="the pulumi CLI is not on PATH")
def test_the_engine_previews_the_program_against_a_file_backend(tmp_path):  # pragma: no cover
    """Where the engine is installed: `pulumi preview` of infra/ with a local file state."""
    env = {
        **os.environ,
        "PULUMI_BACKEND_URL": f"file://{tmp_path}",
        "PULUMI_CONFIG_PASSPHRASE": "test",
    }
    root = Path(__file__).parents[3]
    subprocess.run(["pulumi", "stack", "init", "test"], cwd=root, env=env, check=True)
    try:
        preview = subprocess.run(
            ["pulumi", "preview", "--stack", "test", "--non-interactive"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert "stressbed:index:AgentStack" in preview.stdout + preview.stderr
    finally:
        subprocess.run(["pulumi", "stack", "rm", "test", "--yes"], cwd=root, env=env, check=False)


def test_the_fleet_runs_with_the_env_it_is_given_and_each_event_is_told_once(
    tmp_path, cluster_env, monkeypatch
):
    seen: dict[str, Any] = {}
    monkeypatch.setenv("API_KEY", "declared")  # the scenario reads it: it reaches the pods
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-shell")  # not read: it does not

    class Recording(FakeEngine):
        def up(self, program: Callable[[], None]) -> None:
            state = program.__self__  # type: ignore[attr-defined]
            if state.fleet is not None:
                seen.update(url=state.fleet_url, secrets=dict(state.fleet_secrets))
                seen["secret_env"] = state.fleet.secret_env
            super().up(program)

    (tmp_path / "k.py").write_text(
        SCENARIO.replace('get("/healthz")', 'get("/healthz", headers={"K": gen.secret("API_KEY")})')
    )
    the_plan = plan(
        RunOptions(
            scenario=str(tmp_path / "k.py"),
            backend="kubernetes",
            backend_options={"kubeconfig": cluster_env},
            results=tmp_path / "r",
        )
    )
    backend = the_plan.backend
    assert isinstance(backend, KubernetesBackend)
    backend._engine = lambda name, work, access: Recording([])
    backend._cluster_api = lambda access: FakeCluster(1, [{}])
    streamed: list[str] = []
    report = execute(the_plan, backend=backend, on_event=lambda e: streamed.append(e["event"]))
    assert report.exit_code == 0, report.message
    namespace = report.stack["namespace"]
    # TARGET_URL and the secrets reach the runners from the fleet's env, as on every backend.
    assert seen["url"] == f"http://agent.{namespace}.svc:8080"
    # The scenario's own names come from stressbed's environment, nothing else of it does.
    assert set(seen["secret_env"]) == {"API_KEY", "STRESSBED_AGENT_TOKEN"}
    assert seen["secrets"]["API_KEY"] == "declared"
    # ... and the fleet's own control token, made for it, beside them in its Secret.
    assert set(seen["secrets"]) == {"API_KEY", "STRESSBED_AGENT_TOKEN", TOKEN_ENV}
    assert len(seen["secrets"][TOKEN_ENV]) >= 32
    events = [(e["source"], e["event"]) for e in report.events]
    assert len(events) == len(set(events))  # the stack's and the fleet's events, once each
    assert ("stack", "stack-ready") in events
    assert ("fleet", "fleet-created") in events
    assert ("fleet", "fleet-finished") in events
    assert streamed[:2] == ["stack-creating", "stack-ready"]


def test_a_result_from_another_stressbed_is_a_runner_error_not_a_traceback(tmp_path, cluster_env):
    class OtherVersion(FakeCluster):
        def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
            if pod != "runners-1":
                return super().log(namespace, pod, tail_lines)
            return result_log(1, self.runners, version=9)

    report, calls = run_kube(tmp_path, cluster_env, OtherVersion(2, [{}]))
    assert report.exit_code == 3
    assert report.message.startswith(
        "runner 1: its result cannot be read: result.format: got 'stressbed.runner-result v9'"
    )
    assert calls[-2:] == ["destroy", "remove"]
    assert (tmp_path / "r" / "latest" / "summary.json").is_file()


def test_a_destroy_that_never_ends_is_given_up_and_the_stack_kept(tmp_path, cluster_env):
    class Stuck(FakeEngine):
        def destroy(self) -> None:
            self.calls.append("destroy")
            time.sleep(30)

    calls: list[str] = []
    (tmp_path / "k.py").write_text(SCENARIO)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=cluster_env, destroy_timeout_s=0.3),
        engine=lambda name, work, access: Stuck(calls),
        cluster_api=lambda access: FakeCluster(1, [{}]),
    )
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": cluster_env},
        runners=1,
        results=tmp_path / "r",
    )
    started = time.monotonic()
    report = execute(plan(options), backend=backend)
    assert time.monotonic() - started < 20
    assert calls == ["up:agent", "up:fleet", "destroy", "kill"]  # given up, and killed
    assert report.exit_code == 3
    assert report.message.startswith(
        "pulumi destroy failed: it did not finish within 0.3 s; the stack 'stressbed-"
    )
    assert "pulumi destroy --cwd " in report.message


def kube_plan(tmp_path: Path, config: Path, scenario: str = SCENARIO, **options: Any) -> Any:
    (tmp_path / "k.py").write_text(scenario)
    return plan(
        RunOptions(
            scenario=str(tmp_path / "k.py"),
            backend="kubernetes",
            backend_options={"kubeconfig": config, **options},
            stack=options.pop("stack", None),
        )
    )


def test_runner_resources_are_options_and_reach_the_pods(tmp_path, cluster_env):
    the_plan = kube_plan(tmp_path, cluster_env, runner_cpu="1500m", runner_memory="768Mi")
    backend = the_plan.backend
    assert isinstance(backend, KubernetesBackend)
    requests, limits = backend.options.runner_resources()
    assert requests == limits
    assert (limits.cpu_m, limits.memory) == (1500, 768 * 2**20)
    seen: dict[str, Any] = {}

    class Recording(FakeEngine):
        def up(self, program: Callable[[], None]) -> None:
            state = program.__self__  # type: ignore[attr-defined]
            if state.fleet is not None:
                seen["resources"] = (state.fleet.requests, state.fleet.limits)
            super().up(program)

    backend._engine = lambda name, work, access: Recording([])
    backend._cluster_api = lambda access: FakeCluster(1, [{}])
    report = execute(replace(the_plan, results=tmp_path / "r"), backend=backend)
    assert report.exit_code == 0, report.message
    assert seen["resources"] == (requests, limits)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"runner_memory": "4Gi"},
            "--runner-memory: got '4096Mi'; expected a request within the stack's LimitRange "
            "(16Mi..1024Mi)",
        ),
        ({"runner_cpu": "lots"}, "--runner-cpu: got 'lots'; expected a CPU quantity"),
    ],
)
def test_what_the_api_server_would_refuse_is_refused_before_anything_exists(
    tmp_path, cluster_env, change, message
):
    with pytest.raises(ConfigError) as error:
        kube_plan(tmp_path, cluster_env, **change)
    assert str(error.value).startswith(message)


def test_a_bundle_too_big_for_its_configmap_is_refused_at_plan_time(tmp_path, cluster_env):
    rows = tmp_path / "big.csv"
    rows.write_text("id,blob\n" + "".join(f"{i},{'x' * 1000}\n" for i in range(1200)))
    big = SCENARIO.replace(
        'description="kube", ',
        f'description="kube", variables={{"row": gen.rows({str(rows)!r})}}, ',
    ).replace('get("/healthz")', 'get("/healthz", headers={"X-Id": "{{row.id}}"})')
    with pytest.raises(ConfigError) as error:
        kube_plan(tmp_path, cluster_env, scenario=big)
    assert str(error.value).startswith(
        "--scenario: got 'k'; expected a k6 bundle that fits one ConfigMap (at most 1008 KiB; "
        "this one is 1"
    )


def test_runner_pods_are_sized_for_the_agents_they_hold(tmp_path, cluster_env):
    backend = kube_plan(tmp_path, cluster_env).backend
    assert isinstance(backend, KubernetesBackend)
    _, default = backend.options.runner_resources()
    assert default.memory == 1024 * 2**20
    _, few = backend.options.runner_resources(1000)  # 381 MiB needed: the default holds
    assert few.memory == 1024 * 2**20
    requests, many = backend.options.runner_resources(15_000)
    assert requests.memory == many.memory == (256 + 15_000 // 8) * 2**20
    given = kube_plan(tmp_path, cluster_env, runner_memory="768Mi").backend
    assert isinstance(given, KubernetesBackend)
    assert given.options.runner_resources(15_000)[1].memory == 768 * 2**20  # as asked
