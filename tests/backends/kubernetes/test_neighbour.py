"""A noisy neighbour on a cluster: its namespace's and Job's exact shape (strictly valid, a
namespace of its own owned by the run's, the pod as restricted as the runner pods, BestEffort,
beside the agent pods in the run's namespace), the shell that runs its hogs (and kills them at
SIGTERM), the default stack accepting it, and its schedule against the fake cluster: its
namespace and Job created at the instant, applied when its pod runs, the namespace deleted at
the end and at teardown, skipped when its pod does not run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from stressbed import fault
from stressbed.backends.kubernetes import PodState
from stressbed.backends.kubernetes._faults import ChaosFaults
from stressbed.backends.kubernetes._neighbour import (
    IO_FILE,
    neighbour_job,
    neighbour_namespace,
    neighbour_namespace_name,
    neighbour_script,
)
from stressbed.backends.kubernetes.manifests import Cluster
from stressbed.cli import main
from stressbed.scenario.faults import check_faults
from stressbed.stack.agent import reference_agent

from ...conftest import needs_k6
from .fakes import FakeCluster
from .test_chaos import recorded, run_faulted, said_of, wait_until

CLUSTER = Cluster(namespace="stressbed-run1", run_id="run1")
SPACE = "stressbed-run1-nb-neighbour"  # the neighbour's own namespace
PODS = ["agent-5d8-a", "agent-5d8-b"]
VERSIONS = ["1.31", "1.32", "1.33", "1.34", "1.35"]
HOG = "python -m stressbed.backends.local._hog"


def named(*faults):
    return check_faults(list(faults), 600_000)


NOISY = named(fault.neighbour(cpu=1.5, memory="256Mi", io=True, at="1s", lasting="30s"))[0]
EVERY_CORE = named(fault.neighbour(at="1s", lasting="30s"))[0]


def _job(item=NOISY) -> dict:
    return neighbour_job(item, CLUSTER, target="agent", image="stressbed-runner:1", deadline_s=120)


LABELS = {
    "app.kubernetes.io/name": "stressbed-run1-neighbour",
    "app.kubernetes.io/component": "neighbour",
    "app.kubernetes.io/part-of": "stressbed",
    "stressbed.dev/run": "run1",
    "stressbed.dev/fault": "neighbour",
}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_neighbours_namespace_and_job_validate_strictly(version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(_job(), version, strict=True)
    kubernetes_validate.validate(_job(EVERY_CORE), version, strict=True)
    space = neighbour_namespace(NOISY, CLUSTER, owner_uid="0b7f-run1")
    kubernetes_validate.validate(space, version, strict=True)


def test_the_neighbours_namespace_is_its_own_owned_by_the_runs_and_restricted_as_it_is():
    assert neighbour_namespace(NOISY, CLUSTER, owner_uid="0b7f-run1") == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": SPACE,
            # The run's labels (`stressbed.dev/run`: what finds it), and its Pod Security.
            "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
                **LABELS,
            },
            # The cluster's garbage collector deletes it once the run's namespace is gone.
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "name": "stressbed-run1",
                    "uid": "0b7f-run1",
                }
            ],
        },
    }


def test_the_neighbours_namespace_name_is_a_dns_label_cut_with_a_hash_of_the_whole():
    two = named(fault.neighbour(at="1s", lasting="2s"), fault.neighbour(at="5s", lasting="2s"))
    assert [neighbour_namespace_name(CLUSTER, f) for f in two] == [
        SPACE,
        "stressbed-run1-nb-neighbour-2",
    ]
    long = Cluster(namespace="stressbed-" + "a" * 53, run_id="x")  # a 63-character namespace
    cut = [neighbour_namespace_name(long, f) for f in two]
    assert [len(c) for c in cut] == [63, 63]
    assert cut[0] != cut[1]  # the hash keeps them apart where the cut would not
    assert cut[0].startswith("stressbed-" + "a" * 44 + "-")
    assert cut == [neighbour_namespace_name(long, f) for f in two]  # the same every time
    odd = Cluster(namespace="stressbed-run.1", run_id="run.1")
    assert neighbour_namespace_name(odd, two[0]) == "stressbed-run-1-nb-neighbour"


def test_the_neighbour_is_a_best_effort_pod_beside_the_agent_pods_as_restricted_as_a_runner():
    job = _job()
    assert job["metadata"] == {
        "name": "stressbed-run1-neighbour",
        "namespace": SPACE,
        "labels": LABELS,
    }
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 120)
    assert spec["ttlSecondsAfterFinished"] == 60
    assert spec["template"]["metadata"]["labels"] == LABELS  # found by the run's selectors
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
                    # The agent pods are in the run's namespace, not the neighbour's.
                    "namespaces": ["stressbed-run1"],
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
        wait_until(lambda: not _alive(shell.pid), timeout=10)  # every hog gone with it
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


def test_a_neighbour_on_the_default_stack_is_accepted(cluster_env):
    # Its LimitRange and quota are the run's namespace's: none is in the neighbour's own.
    pytest.importorskip("pulumi")
    from stressbed import ConstantVUs, Scenario, Workload, get  # noqa: PLC0415
    from stressbed.backends.kubernetes import KubernetesBackend, KubernetesOptions  # noqa: PLC0415

    agent = reference_agent()
    assert agent.limit_range is not None
    assert agent.quota is not None
    cluster = _agent_cluster()
    cluster.crds = set()  # and it needs no Chaos Mesh
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=cluster_env), cluster_api=lambda access: cluster
    )
    scenario = Scenario(
        "k",
        description="kube",
        workloads=[Workload("w", get("/healthz"), ConstantVUs(vus=1, duration="1m"))],
        faults=[fault.neighbour(cpu=2, at="20s", lasting="10s")],
    )
    backend.preflight(agent, scenario)


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


def test_its_namespace_and_job_are_created_at_the_instant_and_deleted_at_its_end():
    cluster = _agent_cluster()
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, runner_image="stressbed-runner:1")
    started = time.time()
    chaos.arm(named(fault.neighbour(cpu=2, at="1s", lasting="2s")), started)
    wait_until(lambda: cluster.jobs)  # its namespace first, then the Job in it
    assert time.time() >= started + 1  # not before it was due
    # Owned by the run's namespace, as the API server has it (its uid read first).
    (owner,) = cluster.namespaces_made[SPACE]["metadata"]["ownerReferences"]
    assert (owner["name"], owner["uid"]) == ("stressbed-run1", "uid-stressbed-run1")
    assert cluster.jobs["stressbed-run1-neighbour"]["metadata"]["namespace"] == SPACE
    wait_until(lambda: said_of(events, "fault-ended"))
    created_at = time.time()
    assert chaos.undo_all() == []
    assert cluster.namespace_calls == [("create", SPACE), ("delete", SPACE)]
    assert cluster.job_calls == [("create", "stressbed-run1-neighbour")]  # it went with it
    assert cluster.jobs == cluster.namespaces_made == {}
    assert SPACE in cluster.removed
    (applied,) = said_of(events, "fault-applied")
    (ended,) = said_of(events, "fault-ended")
    # Its pod's container start (whole seconds, the cluster's clock), not before it was due.
    assert int(started + 1) <= applied["t"] <= created_at
    assert applied["t"] == int(applied["t"])
    assert applied == {
        "t": applied["t"],
        "fault": "neighbour",
        "fault_kind": "neighbour",
        "replicas": [],
        "how": f"a BestEffort pod in a namespace of its own ({SPACE}, Job "
        "stressbed-run1-neighbour) beside the agent pods: 2 burner(s) of 2 cores",
        "label": "neighbour 2 cores at 1s for 2s",
        "scope": "node node-a, outside the agent pods' cgroups",
        "node": "node-a",
        "beside": ["agent-5d8-a"],
        "namespace": SPACE,
        "job": "stressbed-run1-neighbour",
    }
    assert ended == {
        "t": ended["t"],
        "fault": "neighbour",
        "fault_kind": "neighbour",
        "replicas": [],
        "how": "its namespace deleted: the neighbour's Job, pod and hogs gone",
        "reason": "its end",
    }
    assert started + 3 <= ended["t"] < started + 5  # deleted at its end
    assert said_of(events, "fault-skipped") == []


def test_a_neighbour_still_running_at_teardown_is_deleted_there():
    cluster = _agent_cluster()
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(memory="64Mi", at="0s", lasting="5m")), time.time())
    wait_until(lambda: said_of(events, "fault-applied"))
    assert chaos.undo_all() == []
    assert cluster.jobs == cluster.namespaces_made == {}
    assert cluster.namespace_calls == [("create", SPACE), ("delete", SPACE)]
    (ended,) = said_of(events, "fault-ended")
    assert (ended["reason"], ended["replicas"]) == ("teardown", [])
    (applied,) = said_of(events, "fault-applied")
    assert applied["how"].endswith(": a burner on every core of the node, 64Mi held")


def test_a_neighbour_whose_pod_is_not_scheduled_is_skipped_and_its_namespace_deleted():
    cluster = _agent_cluster()
    cluster.job_pod_phase = "Pending"
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, neighbour_pending_s=0.5)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-skipped") and cluster.namespaces_made == {})
    assert chaos.undo_all() == []
    (skipped,) = said_of(events, "fault-skipped")
    assert skipped["fault"] == "neighbour"
    assert skipped["reason"].startswith("its pod was not running after ")
    assert skipped["reason"].endswith(
        " s: its pod stressbed-run1-neighbour-x7k2p was not scheduled: 0/3 nodes are "
        "available: 3 node(s) didn't match pod affinity rules."
    )
    assert said_of(events, "fault-applied") == said_of(events, "fault-ended") == []
    assert cluster.namespace_calls == [("create", SPACE), ("delete", SPACE)]
    assert cluster.jobs == {}


def test_a_neighbour_without_a_pod_or_whose_pod_ends_early_says_why():
    cluster = _agent_cluster()
    cluster.job_pod_phase = None  # its pod never made: a quota refused it
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, neighbour_pending_s=0.3)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-skipped"))
    (skipped,) = said_of(events, "fault-skipped")
    assert skipped["reason"].endswith(
        f" s: no pod was made (`kubectl -n {SPACE} describe job stressbed-run1-neighbour`: Pod "
        "Security or an admission policy may have refused it)"
    )
    assert chaos.undo_all() == []
    cluster.job_pod_phase = "Running"
    events.clear()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(memory="1Gi", at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-applied"))
    cluster.end_job_pod("stressbed-run1-neighbour", "OOMKilled")
    wait_until(lambda: said_of(events, "fault-ended"))
    assert chaos.undo_all() == []
    (ended,) = said_of(events, "fault-ended")
    assert ended["reason"] == (
        "it stopped before its end: its pod stressbed-run1-neighbour-x7k2p failed (OOMKilled)"
    )


def test_a_neighbour_whose_namespace_cannot_be_made_is_skipped_saying_why():
    cluster = _agent_cluster()
    cluster.removed.add("stressbed-run1")  # its uid cannot be read: nothing to own it
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-skipped"))
    assert chaos.undo_all() == []
    (skipped,) = said_of(events, "fault-skipped")
    assert skipped["reason"] == (
        f"its namespace {SPACE} was not created: the run's namespace stressbed-run1 was not found"
    )
    assert cluster.namespaces_made == cluster.jobs == {}

    def refuse(body):
        if body["kind"] == "Job":
            raise OSError('jobs.batch is forbidden: User "ci" cannot create resource "jobs"')

    cluster = _agent_cluster()
    cluster.job_validate = refuse
    events.clear()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-skipped"))
    assert chaos.undo_all() == []
    (skipped,) = said_of(events, "fault-skipped")
    assert skipped["reason"] == (
        "its Job stressbed-run1-neighbour was not created: jobs.batch is forbidden: User "
        '"ci" cannot create resource "jobs"'
    )
    # The namespace it made is deleted, and followed until it is gone.
    assert cluster.namespace_calls == [("create", SPACE), ("delete", SPACE)]
    assert cluster.namespaces_made == {}


def test_a_neighbour_whose_pod_will_not_go_is_named_at_teardown():
    cluster = _agent_cluster()
    cluster.job_pod_lingers = True
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, delete_timeout_s=0.5)
    chaos.arm(named(fault.neighbour(at="0s", lasting="1m")), time.time())
    wait_until(lambda: said_of(events, "fault-applied"))
    assert chaos.undo_all() == [f"namespace/{SPACE}"]
    assert said_of(events, "fault-ended") == []  # not said gone while its pod runs
    assert cluster.namespace(SPACE).phase == "Terminating"
    assert cluster.namespace_calls == [("create", SPACE), ("delete", SPACE)]  # not again


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
    ],
    ids=["slow_disk-rate", "io"],
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
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/healthz"), ConstantVUs(vus=2, duration="20s"))],
    thresholds=[error_rate("< 5%")],
    faults=[fault.neighbour(cpu=1, at="1s", lasting="2s")])
"""


@needs_k6
def test_a_run_with_a_neighbour_on_a_cluster_gets_its_isolation_verdict(
    tmp_path, cluster_env, monkeypatch
):
    cluster = _agent_cluster()
    cluster.crds = set()  # a neighbour needs no Chaos Mesh
    cluster.running_for_s = 6
    cluster.coordinator_log = json.dumps({"event": "started", "t": time.time(), "skew_ms": 1.0})
    report, _ = run_faulted(tmp_path, cluster_env, cluster, monkeypatch, NEIGHBOURED)
    assert report.exit_code in (0, 1), report.message
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    (neighbour,) = summary["resilience"]["faults"]
    assert neighbour["applied"], neighbour
    assert neighbour["end"] is not None
    assert neighbour["end"] > neighbour["at"]
    assert neighbour["replicas"] == []
    assert neighbour["how"].startswith("a BestEffort pod in a namespace of its own (stressbed-")
    assert "verdict" in neighbour["isolation"]  # judged, whatever the few seconds say
    # On the default stack (its LimitRange and quota in the run's namespace), and gone.
    (space,) = {name for _, name in cluster.namespace_calls}
    assert space.endswith("-nb-neighbour")
    assert [what for what, _ in cluster.namespace_calls] == ["create", "delete"]
    assert cluster.jobs == cluster.namespaces_made == {}
    events = [e["event"] for e in summary["events"]]
    assert events.index("fault-ended") < events.index("stack-destroyed")
