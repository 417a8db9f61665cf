"""A noisy neighbour on a cluster: its Job's exact shape (strictly valid, as restricted as the
runner pods, BestEffort, beside the agent pods), the shell that runs its hogs (and kills them
at SIGTERM), the stacks whose namespace would hold it or refuse it, and its schedule against
the fake cluster: created at the instant, applied when its pod runs, deleted at the end and at
teardown, skipped when its pod does not run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from stressbed import fault
from stressbed.backends.kubernetes import PodState
from stressbed.backends.kubernetes._faults import ChaosFaults
from stressbed.backends.kubernetes._neighbour import (
    IO_FILE,
    check_neighbour,
    neighbour_job,
    neighbour_script,
)
from stressbed.backends.kubernetes.manifests import Cluster
from stressbed.cli import main
from stressbed.errors import ConfigError
from stressbed.scenario.faults import check_faults
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import Quota

from ...conftest import needs_k6
from .fakes import FakeCluster

CLUSTER = Cluster(namespace="stressbed-run1", run_id="run1")
PODS = ["agent-5d8-a", "agent-5d8-b"]
VERSIONS = ["1.31", "1.32", "1.33", "1.34", "1.35"]
HOG = "python -m stressbed.backends.local._hog"


def named(*faults):
    return check_faults(list(faults), 600_000)


NOISY = named(fault.neighbour(cpu=1.5, memory="256Mi", io=True, at="1s", lasting="30s"))[0]
EVERY_CORE = named(fault.neighbour(at="1s", lasting="30s"))[0]


def _job(item=NOISY) -> dict:
    return neighbour_job(item, CLUSTER, target="agent", image="stressbed-runner:1", deadline_s=120)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_neighbours_job_validates_strictly(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(_job(), version, strict=True)
    kubernetes_validate.validate(_job(EVERY_CORE), version, strict=True)


def test_the_neighbour_is_a_best_effort_pod_beside_the_agent_pods_as_restricted_as_a_runner():
    job = _job()
    labels = {
        "app.kubernetes.io/name": "stressbed-run1-neighbour",
        "app.kubernetes.io/component": "neighbour",
        "app.kubernetes.io/part-of": "stressbed",
        "stressbed.dev/run": "run1",
        "stressbed.dev/fault": "neighbour",
    }
    assert job["metadata"] == {
        "name": "stressbed-run1-neighbour",
        "namespace": "stressbed-run1",
        "labels": labels,
    }
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 120)
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["template"]["metadata"]["labels"] == labels  # found by the run's selectors
    pod = spec["template"]["spec"]
    assert pod["affinity"] == {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "agent",
                            "app.kubernetes.io/component": "agent",
                        }
                    },
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    (container,) = pod["containers"]
    assert "resources" not in container  # BestEffort: no request, no limit
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert container["image"] == "stressbed-runner:1"
    assert container["command"] == ["/bin/sh", "-c", neighbour_script(NOISY)]


def test_its_shell_starts_a_burner_a_core_the_memory_and_the_io_writer():
    assert neighbour_script(NOISY) == (
        "trap \"trap '' TERM INT; kill 0; exit 0\" TERM INT\n"
        f'i=0; while [ "$i" -lt 2 ]; do {HOG} cpu 0.750 & i=$((i + 1)); done\n'
        f"{HOG} memory {256 * 2**20} &\n"
        f"{HOG} io {IO_FILE} &\n"
        "wait\n"
    )
    assert neighbour_script(EVERY_CORE) == (
        "trap \"trap '' TERM INT; kill 0; exit 0\" TERM INT\n"
        f'i=0; while [ "$i" -lt $(nproc) ]; do {HOG} cpu 1.000 & i=$((i + 1)); done\n'
        "wait\n"
    )


def test_its_shell_kills_every_hog_when_its_pod_is_deleted(tmp_path):
    # A `python` that records its arguments and waits, as a hog would.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/started\nexec sleep 60\n')
    fake.chmod(0o755)
    shell = subprocess.Popen(
        ["/bin/sh", "-c", neighbour_script(NOISY)],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        start_new_session=True,  # its `kill 0` is its own group's, as in its pod
    )
    started = tmp_path / "started"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        not started.exists() or len(started.read_text().splitlines()) < 4
    ):
        time.sleep(0.05)
    try:
        assert sorted(started.read_text().splitlines()) == sorted(
            [
                "-m stressbed.backends.local._hog cpu 0.750",
                "-m stressbed.backends.local._hog cpu 0.750",
                f"-m stressbed.backends.local._hog memory {256 * 2**20}",
                f"-m stressbed.backends.local._hog io {IO_FILE}",
            ]
        )
        shell.send_signal(signal.SIGTERM)  # what the kubelet sends at the pod's deletion
        assert shell.wait(timeout=10) == 0
        _wait(lambda: not _alive(shell.pid), timeout=10)  # every hog gone with it
    finally:
        with contextlib.suppress(ProcessLookupError):  # a failed test leaves nothing behind
            os.killpg(shell.pid, signal.SIGKILL)


def _alive(group: int) -> bool:
    """Whether a process of ``group`` is left (reaped: its init takes the orphans)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_stack_whose_namespace_would_hold_or_refuse_the_neighbour_is_refused():
    agent = reference_agent()
    with pytest.raises(ConfigError) as caught:
        check_neighbour(NOISY, agent)  # its LimitRange gives a container 500m and 256Mi
    assert caught.value.field == "faults.neighbour"
    assert "the stack's LimitRange would give it CPU or memory limits" in caught.value.expected
    assert "`limit_range: null`, `quota: null` in the profile's stack" in caught.value.expected
    with pytest.raises(ConfigError) as caught:
        check_neighbour(NOISY, replace(agent, limit_range=None))
    assert "the stack's quota would refuse a pod without CPU" in caught.value.expected
    check_neighbour(NOISY, replace(agent, limit_range=None, quota=None))  # nothing to hold it
    pods_only = Quota(pods=20)
    check_neighbour(NOISY, replace(agent, limit_range=None, quota=pods_only))


# -- its schedule ---------------------------------------------------------------------------


def _agent_cluster() -> FakeCluster:
    cluster = FakeCluster(1, [{}])
    cluster.agents = [
        PodState(PODS[0], -1, "Running", time.time(), ready=True, node="node-a"),
        PodState(PODS[1], -1, "Running", time.time(), ready=True, node="node-b"),
    ]
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    cluster.job_validate = lambda body: kubernetes_validate.validate(body, VERSIONS[-1], True)
    return cluster


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("not within the deadline")


def _recorded() -> tuple[list[tuple[str, dict]], object]:
    events: list[tuple[str, dict]] = []
    return events, lambda kind, **f: events.append((kind, f))


def _said(events, kind: str) -> list[dict]:
    return [f for k, f in events if k == kind]


def test_its_job_is_created_at_the_instant_and_deleted_at_its_end():
    cluster = _agent_cluster()
    events, say = _recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, runner_image="stressbed-runner:1")
    started = time.time()
    chaos.arm(named(fault.neighbour(cpu=2, at="1s", lasting="2s")), started)
    _wait(lambda: _said(events, "fault-ended"))
    created_at = time.time()
    assert chaos.undo_all() == []
    assert cluster.job_calls == [
        ("create", "stressbed-run1-neighbour"),
        ("delete", "stressbed-run1-neighbour"),
    ]
    assert cluster.jobs == {}
    (applied,) = _said(events, "fault-applied")
    (ended,) = _said(events, "fault-ended")
    # Its pod's container start (whole seconds, the cluster's clock), not before it was due.
    assert int(started + 1) <= applied["t"] <= created_at
    assert applied["t"] == int(applied["t"])
    assert applied == {
        "t": applied["t"],
        "fault": "neighbour",
        "fault_kind": "neighbour",
        "replicas": [],
        "how": "a BestEffort pod of its own (Job stressbed-run1-neighbour) beside the agent "
        "pods: 2 burner(s) of 2 cores",
        "label": "neighbour 2 cores at 1s for 2s",
        "scope": "node node-a, outside the agent pods' cgroups",
        "node": "node-a",
        "beside": ["agent-5d8-a"],
        "job": "stressbed-run1-neighbour",
    }
    assert ended == {
        "t": ended["t"],
        "fault": "neighbour",
        "fault_kind": "neighbour",
        "replicas": [],
        "how": "its Job deleted: the neighbour's pod and its hogs gone",
        "reason": "its end",
    }
    assert started + 3 <= ended["t"] < started + 5  # deleted at its end
    assert _said(events, "fault-skipped") == []


def test_a_neighbour_still_running_at_teardown_is_deleted_there():
    cluster = _agent_cluster()
    events, say = _recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(memory="64Mi", at="0s", lasting="5m")), time.time())
    _wait(lambda: _said(events, "fault-applied"))
    assert chaos.undo_all() == []
    assert cluster.jobs == {}
    (ended,) = _said(events, "fault-ended")
    assert (ended["reason"], ended["replicas"]) == ("teardown", [])
    (applied,) = _said(events, "fault-applied")
    assert applied["how"].endswith(": a burner on every core of the node, 64Mi held")


def test_a_neighbour_whose_pod_is_not_scheduled_is_skipped_and_its_job_deleted():
    cluster = _agent_cluster()
    cluster.job_pod_phase = "Pending"
    events, say = _recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, neighbour_pending_s=0.5)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    _wait(lambda: _said(events, "fault-skipped") and cluster.jobs == {})
    assert chaos.undo_all() == []
    (skipped,) = _said(events, "fault-skipped")
    assert skipped["fault"] == "neighbour"
    assert skipped["reason"].startswith("its pod was not running after ")
    assert skipped["reason"].endswith(
        " s: its pod stressbed-run1-neighbour-x7k2p was not scheduled: 0/3 nodes are "
        "available: 3 node(s) didn't match pod affinity rules."
    )
    assert _said(events, "fault-applied") == _said(events, "fault-ended") == []
    assert [what for what, _ in cluster.job_calls] == ["create", "delete"]


def test_a_neighbour_without_a_pod_or_whose_pod_ends_early_says_why():
    cluster = _agent_cluster()
    cluster.job_pod_phase = None  # its pod never made: a quota refused it
    events, say = _recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, neighbour_pending_s=0.3)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    _wait(lambda: _said(events, "fault-skipped"))
    (skipped,) = _said(events, "fault-skipped")
    assert skipped["reason"].endswith(
        " s: no pod was made (`kubectl -n stressbed-run1 describe job stressbed-run1-neighbour`:"
        " a quota or Pod Security may have refused it)"
    )
    assert chaos.undo_all() == []
    cluster.job_pod_phase = "Running"
    events.clear()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(memory="1Gi", at="0s", lasting="1m")), time.time())
    _wait(lambda: _said(events, "fault-applied"))
    cluster.end_job_pod("stressbed-run1-neighbour", "OOMKilled")
    _wait(lambda: _said(events, "fault-ended"))
    assert chaos.undo_all() == []
    (ended,) = _said(events, "fault-ended")
    assert ended["reason"] == (
        "it stopped before its end: its pod stressbed-run1-neighbour-x7k2p failed (OOMKilled)"
    )


def test_a_neighbour_whose_pod_will_not_go_is_named_at_teardown():
    cluster = _agent_cluster()
    cluster.job_pod_lingers = True
    events, say = _recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, delete_timeout_s=0.5)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    _wait(lambda: _said(events, "fault-applied"))
    assert chaos.undo_all() == ["stressbed-run1-neighbour"]
    assert _said(events, "fault-ended") == []  # not said gone while its pod runs


# -- refused before anything exists -----------------------------------------------------------


def _scenario(tmp_path: Path, faults: str, stack: str = "") -> Path:
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        f"{stack}"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        f"faults=[{faults}])\n"
    )
    return path


@pytest.mark.parametrize(
    ("faults", "line"),
    [
        (
            "fault.slow_disk('1MiB/s', at='20s', lasting='10s')",
            "stressbed: error: faults.slow_disk.rate: got 'slow_disk 1MiB/s on 1 replica at 20s "
            "for 10s'; expected a latency with --backend kubernetes, like "
            "fault.slow_disk(latency='50ms'): Chaos Mesh's IOChaos delays each operation, it "
            "has no bandwidth to throttle (--backend local applies a rate)",
        ),
        (
            "fault.io(at='20s', lasting='10s')",
            "; not io: Chaos Mesh's StressChaos starts stress-ng in the pod's cgroup but not in "
            "its mount namespace, so an IO hog would write chaos-daemon's disk, not the "
            "replica's, and a pod has no IO limits to hold it (--backend local runs it against "
            "the stack's own)",
        ),
        (
            "fault.neighbour(cpu=2, at='20s', lasting='10s')",
            "stressbed: error: faults.neighbour: got 'neighbour 2 cores at 20s for 10s'; "
            "expected a stack whose namespace has no LimitRange or quota on CPU or memory, with "
            "--backend kubernetes: the neighbour is a BestEffort pod in the run's namespace, and "
            "the stack's LimitRange would give it CPU or memory limits, or refuse it "
            "(`limit_range: null`, `quota: null` in the profile's stack), or --backend local",
        ),
    ],
    ids=["slow_disk-rate", "io", "neighbour-limit-range"],
)
def test_what_the_cluster_cannot_apply_is_one_line_and_exit_2(tmp_path, capsys, faults, line):
    path = _scenario(tmp_path, faults)
    args = ["run", "--scenario", str(path), "--results", str(tmp_path / "r")]
    assert main([*args, "--backend", "kubernetes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0] == line or (line.startswith(";") and err[0].endswith(line))
    assert not (tmp_path / "r").exists()


# -- a whole run --------------------------------------------------------------------------------


NEIGHBOURED = """from stressbed import *
stack = {"limit_range": None, "quota": None}
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/healthz"), ConstantVUs(vus=2, duration="20s"))],
    thresholds=[error_rate("< 5%")],
    faults=[fault.neighbour(cpu=1, at="1s", lasting="2s")])
"""


@needs_k6
def test_a_run_with_a_neighbour_on_a_cluster_gets_its_isolation_verdict(
    tmp_path, cluster_env, monkeypatch
):
    pytest.importorskip("pulumi")
    from stressbed.app.execute import execute  # noqa: PLC0415
    from stressbed.app.plan import RunOptions, plan  # noqa: PLC0415
    from stressbed.backends.kubernetes import KubernetesBackend, KubernetesOptions  # noqa: PLC0415
    from stressbed.backends.kubernetes import backend as kube_backend  # noqa: PLC0415

    from .fakes import FakeEngine  # noqa: PLC0415

    cluster = _agent_cluster()
    cluster.crds = set()  # a neighbour needs no Chaos Mesh
    cluster.running_for_s = 6
    cluster.coordinator_log = json.dumps({"event": "started", "t": time.time(), "skew_ms": 1.0})
    monkeypatch.setattr(kube_backend, "kubernetes_api", lambda access: cluster)
    calls: list[str] = []
    (tmp_path / "k.py").write_text(NEIGHBOURED)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=cluster_env),
        engine=lambda name, work, target: FakeEngine(calls, None),
        cluster_api=lambda target: cluster,
    )
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": cluster_env},
        runners=1,
        results=tmp_path / "r",
    )
    report = execute(plan(options), backend=backend)
    assert report.exit_code in (0, 1), report.message
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    (neighbour,) = summary["resilience"]["faults"]
    assert neighbour["applied"], neighbour
    assert neighbour["end"] is not None
    assert neighbour["end"] > neighbour["at"]
    assert neighbour["replicas"] == []
    assert neighbour["how"].startswith("a BestEffort pod of its own (Job ")
    assert "verdict" in neighbour["isolation"]  # judged, whatever the few seconds say
    assert cluster.jobs == {}
    events = [e["event"] for e in summary["events"]]
    assert events.index("fault-ended") < events.index("stack-destroyed")
