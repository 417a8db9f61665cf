"""Faults on a cluster as Chaos Mesh objects: each kind's object validated against the subset
of Chaos Mesh's CRD schema it uses (tests/backends/kubernetes/data, written from the CRDs of
the version the README names); the instants read from the objects' records; the schedule run
against the fake cluster: created at the fault's instant, deleted at its end, every one gone
by teardown, and a run refused before anything exists where Chaos Mesh is not installed."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stressbed import fault
from stressbed.backends.kubernetes import PodState
from stressbed.backends.kubernetes._faults import ChaosFaults, applied_at, recovered_at
from stressbed.backends.kubernetes._rollout import RESTARTED_AT
from stressbed.backends.kubernetes.chaos import (
    CHAOS_MESH_VERSION,
    PLURALS,
    chaos_object,
)
from stressbed.backends.kubernetes.manifests import Cluster
from stressbed.errors import ConfigError
from stressbed.scenario.faults import check_faults

from ...conftest import needs_k6
from .fakes import FakeCluster

SCHEMA = json.loads((Path(__file__).parent / "data" / "chaos-mesh-subset.json").read_text())
CLUSTER = Cluster(namespace="stressbed-run1", run_id="run1")
PODS = ["agent-5d8-a", "agent-5d8-b"]


def validate(body: dict) -> None:
    """As the API server would, with fieldValidation=Strict: every field known and typed."""
    jsonschema.validate(body, SCHEMA["kinds"][body["kind"]])


def named(*faults):
    return check_faults(list(faults), 600_000)


EVERY_KIND = named(
    fault.kill(at="10s"),
    fault.pause("10s", at="20s"),
    fault.latency("200ms", jitter="20ms", at="40s", lasting="10s"),
    fault.latency("1500ms", at="60s", lasting="2500ms"),
    fault.loss("5%", at="70s", lasting="10s"),
    fault.bandwidth("1mbit", at="80s", lasting="5s"),
    fault.cpu(share=0.8, replicas=1, at="90s", lasting="10s"),
    fault.memory("200Mi", replicas=1, at="110s", lasting="10s"),
    fault.restart(at="130s"),
    fault.slow_disk(latency="50ms", at="140s", lasting="10s"),
)


def test_the_schema_subset_is_the_version_the_backend_writes_against():
    assert SCHEMA["version"] == f"v{CHAOS_MESH_VERSION}"
    assert set(SCHEMA["kinds"]) == set(PLURALS)


@pytest.mark.parametrize("item", EVERY_KIND, ids=[f.name for f in EVERY_KIND])
def test_each_kind_is_an_object_chaos_mesh_accepts(item):
    body = chaos_object(item, CLUSTER, PODS, cpu_limit_m=1000)
    validate(body)
    assert body["metadata"]["namespace"] == CLUSTER.namespace
    assert body["spec"]["selector"] == {"pods": {CLUSTER.namespace: PODS}}
    if item.lasting_ms:
        assert (
            body["spec"]["duration"] == f"{item.lasting_ms / 1000:g}s"
            or body["spec"]["duration"] == f"{item.lasting_ms:g}ms"
        )
    else:
        assert "duration" not in body["spec"]  # pod-kill is one-shot: deleted once applied


def test_what_each_kind_asks_chaos_mesh_for():
    spec = {f.name: chaos_object(f, CLUSTER, PODS, cpu_limit_m=500)["spec"] for f in EVERY_KIND}
    assert (spec["kill"]["action"], spec["kill"]["gracePeriod"]) == ("pod-kill", 0)
    assert (spec["pause"]["action"], spec["pause"]["direction"]) == ("partition", "both")
    assert spec["latency"]["delay"] == {"latency": "200ms", "jitter": "20ms"}
    assert spec["latency-2"]["delay"] == {"latency": "1500ms"}
    assert spec["latency-2"]["duration"] == "2500ms"
    assert spec["loss"]["loss"] == {"loss": "5"}
    # 1 Mbit/s: 125,000 B/s, a tenth of a second's burst, a second's worth queued.
    assert spec["bandwidth"]["bandwidth"] == {"rate": "1000kbit", "limit": 125000, "buffer": 12500}
    # 80% of a 500m limit: 0.4 cores, one worker at 40%.
    assert spec["cpu"]["stressors"] == {"cpu": {"workers": 1, "load": 40}}
    assert spec["memory"]["stressors"] == {"memory": {"workers": 1, "size": "200MiB"}}
    # A restart deletes the pods with their own grace: SIGTERM, SIGKILL after it.
    assert (spec["restart"]["action"], spec["restart"]["gracePeriod"]) == ("pod-kill", 30)
    assert "duration" not in spec["restart"]
    restart = chaos_object(EVERY_KIND[-2], CLUSTER, PODS, grace_s=25)
    validate(restart)
    assert restart["spec"]["gracePeriod"] == 25
    # Each operation on a file under the agent container's data volume (its /tmp emptyDir).
    slow = chaos_object(EVERY_KIND[-1], CLUSTER, PODS, container="worker")
    validate(slow)
    assert (slow["kind"], slow["spec"]) == (
        "IOChaos",
        {
            "mode": "all",
            "selector": {"pods": {CLUSTER.namespace: PODS}},
            "duration": "10s",
            "action": "latency",
            "delay": "50ms",
            "percent": 100,
            "volumePath": "/tmp",
            "path": "/tmp/**/*",
            "containerNames": ["worker"],
        },
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["spec"].update(value=1),  # value is a string in the CRD
        lambda b: b["spec"]["delay"].update(latency="200 ms"),
        lambda b: b["spec"].update(direction="sideways"),
        lambda b: b["spec"]["delay"].update(latnecy="1s"),  # a typo Strict refuses
    ],
)
def test_the_schema_subset_refuses_what_the_api_server_would(change):
    body = chaos_object(EVERY_KIND[2], CLUSTER, PODS)
    change(body)
    with pytest.raises(jsonschema.ValidationError):
        validate(body)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b["spec"].pop("volumePath"),  # required by the CRD
        lambda b: b["spec"].update(percent=101),  # the webhook's 0..100
        lambda b: b["spec"].update(delay="50 ms"),  # not a Go duration
        lambda b: b["spec"].update(action="slow"),
        lambda b: b["spec"].update(rate="1MiB/s"),  # IOChaos has no bandwidth
    ],
)
def test_the_schema_subset_refuses_an_iochaos_the_api_server_would(change):
    body = chaos_object(EVERY_KIND[-1], CLUSTER, PODS)
    change(body)
    with pytest.raises(jsonschema.ValidationError):
        validate(body)


def _record(pod: str, *events, key=".") -> dict:
    return {
        "id": f"{CLUSTER.namespace}/{pod}",
        "selectorKey": key,
        "events": [{"type": t, "operation": o, "timestamp": s} for t, o, s in events],
    }


def _found(*records) -> dict:
    return {"status": {"experiment": {"containerRecords": list(records)}}}


def test_the_instants_are_chaos_mesh_records_of_every_chosen_pod():
    ns = CLUSTER.namespace
    first = _record(PODS[0], ("Succeeded", "Apply", "2026-12-01T10:00:03Z"))
    retried = _record(
        PODS[1],
        ("Failed", "Apply", "2026-12-01T10:00:03Z"),
        ("Succeeded", "Apply", "2026-12-01T10:00:05Z"),
        ("Succeeded", "Recover", "2026-12-01T10:00:20Z"),
    )
    assert applied_at(_found(first), ns, PODS)[0] is None  # one pod is not injected yet
    failing = _record(PODS[1], ("Failed", "Apply", "2026-12-01T10:00:03Z"))
    failing["events"][0]["message"] = "no such device"
    assert applied_at(_found(first, failing), ns, PODS) == (None, "no such device")
    at, _ = applied_at(_found(first, retried), ns, PODS)
    earliest = datetime(2026, 12, 1, 10, 0, 3, tzinfo=UTC).timestamp()
    assert at == earliest  # the earliest Apply of the pods' (the retried one applied later)
    assert recovered_at(_found(first, retried), ns, PODS) is None  # one pod not recovered
    # A NetworkChaos target's records say nothing of the pods the fault is on.
    target = _record(PODS[0], ("Succeeded", "Apply", "2026-12-01T09:00:00Z"), key=".Target")
    assert applied_at(_found(target), ns, PODS[:1])[0] is None


def _agent_cluster() -> FakeCluster:
    cluster = FakeCluster(1, [{}])
    cluster.agents = [PodState(name, -1, "Running", time.time(), ready=True) for name in PODS]
    cluster.chaos_validate = validate
    return cluster


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("not within the deadline")


def test_the_schedule_creates_at_the_instant_deletes_at_the_end_and_says_both():
    cluster, events = _agent_cluster(), []
    chaos = ChaosFaults(cluster, CLUSTER, "agent", lambda kind, **f: events.append((kind, f)))
    faults = named(
        fault.kill(at="1s", seed=3), fault.latency("100ms", replicas=2, at="1s", lasting="2s")
    )
    started = time.time()
    chaos.arm(faults, started)
    wait_until(lambda: len([e for e in events if e[0] == "fault-ended"]) == 1)
    left = chaos.undo_all()
    assert left == []
    assert cluster.chaos == {}  # every object gone
    kinds = [(kind, f["fault"]) for kind, f in events]
    assert ("fault-applied", "kill") in kinds
    assert ("fault-applied", "latency") in kinds
    assert ("fault-ended", "latency") in kinds
    kill = next(f for kind, f in events if kind == "fault-applied" and f["fault"] == "kill")
    assert kill["how"] == "Chaos Mesh PodChaos pod-kill"
    assert len(kill["replicas"]) == 1
    assert kill["replicas"][0] in PODS
    # On the cluster's clock (whole seconds), no earlier than the fault was due.
    assert kill["t"] >= int(started + 1) - 1
    created = [c for c in cluster.chaos_calls if c[0] == "create"]
    deleted = [c for c in cluster.chaos_calls if c[0] == "delete"]
    assert [c[1] for c in created] == ["podchaos", "networkchaos"]
    assert {c[2] for c in deleted} == {c[2] for c in created}
    ended = next(f for kind, f in events if kind == "fault-ended")
    assert ended["reason"] == "its end"
    assert sorted(ended["replicas"]) == PODS


def test_a_slow_disk_is_an_iochaos_on_the_agent_container_and_says_a_rate_is_not_applied():
    cluster, events = _agent_cluster(), []
    chaos = ChaosFaults(cluster, CLUSTER, "worker", lambda kind, **f: events.append((kind, f)))
    both = fault.slow_disk("1MiB/s", latency="20ms", replicas=2, at="0s", lasting="1s")
    chaos.arm(named(both), time.time())
    wait_until(lambda: any(kind == "fault-ended" for kind, _ in events))
    assert chaos.undo_all() == []
    (body,) = cluster.chaos_created
    assert (body["kind"], body["spec"]["containerNames"]) == ("IOChaos", ["worker"])
    assert body["spec"]["delay"] == "20ms"
    assert {c[:2] for c in cluster.chaos_calls} == {("create", "iochaos"), ("delete", "iochaos")}
    assert cluster.chaos == {}
    applied = next(f for kind, f in events if kind == "fault-applied")
    assert applied["how"] == (
        "Chaos Mesh IOChaos latency 20ms on each operation under /tmp; its rate is not applied "
        "on Kubernetes (IOChaos delays each operation, it has no bandwidth)"
    )
    assert sorted(applied["replicas"]) == PODS


def test_too_few_pods_or_a_refusal_is_a_skipped_fault_not_a_crash():
    cluster, events = _agent_cluster(), []
    cluster.agents = cluster.agents[:1]
    chaos = ChaosFaults(cluster, CLUSTER, "agent", lambda kind, **f: events.append((kind, f)))

    def refuse(body):
        raise RuntimeError('admission webhook "vauth.chaos-mesh.org" denied the request')

    chaos.arm(named(fault.kill(replicas=2, at="0s")), time.time())
    wait_until(lambda: events)
    cluster.chaos_validate = refuse
    chaos.arm(named(fault.cpu(share=0.5, at="0s", lasting="5s")), time.time())
    wait_until(lambda: len(events) == 2)
    assert chaos.undo_all() == []
    (kind1, first), (kind2, second) = events
    assert (kind1, kind2) == ("fault-skipped", "fault-skipped")
    assert first["reason"] == "1 agent pod(s) running, the fault needs 2"
    assert second["reason"].startswith("Chaos Mesh refused it: admission webhook")


def test_a_fault_chaos_mesh_never_applies_is_skipped_and_its_object_removed():
    cluster, events = _agent_cluster(), []
    cluster.applying = False
    chaos = ChaosFaults(
        cluster, CLUSTER, "agent", lambda kind, **f: events.append((kind, f)), apply_timeout_s=0.5
    )
    chaos.arm(named(fault.pause("30s", at="0s")), time.time())
    wait_until(lambda: events)
    wait_until(lambda: cluster.chaos == {})  # deleted, and followed until gone
    assert chaos.undo_all() == []
    ((kind, said),) = events
    assert kind == "fault-skipped"
    assert said["reason"].startswith("Chaos Mesh did not apply it in 0.5 s: no record")


def test_an_object_that_will_not_go_is_named_at_teardown():
    cluster, events = _agent_cluster(), []
    cluster.undeletable = True
    chaos = ChaosFaults(
        cluster, CLUSTER, "agent", lambda kind, **f: events.append((kind, f)), delete_timeout_s=1
    )
    chaos.arm(named(fault.loss("5%", at="0s", lasting="60s")), time.time())
    wait_until(lambda: any(kind == "fault-applied" for kind, _ in events))
    assert chaos.undo_all() == ["stressbed-run1-loss"]
    assert ("fault-ended", "loss") in [(k, f["fault"]) for k, f in events]


FAULTED = """from stressbed import *
scenario = Scenario("k", description="kube", workloads=[
    Workload("w", get("/healthz"), ConstantVUs(vus=2, duration="20s"))],
    thresholds=[error_rate("< 5%")],
    faults=[fault.kill(at="1s"), fault.latency("100ms", at="1s", lasting="2s")],
    resilience=[recovery_time("< 30s")])
"""


def run_faulted(
    tmp_path: Path, config: Path, cluster: FakeCluster, monkeypatch, scenario: str = FAULTED
):
    """A whole run of ``scenario`` on the fake cluster (a fake Pulumi engine): its report and
    the engine's calls."""
    pytest.importorskip("pulumi")
    from stressbed.backends.kubernetes import backend as kube_backend  # noqa: PLC0415

    # plan()'s preflight asks the cluster for Chaos Mesh: this one.
    monkeypatch.setattr(kube_backend, "kubernetes_api", lambda access: cluster)
    from stressbed.app.execute import execute  # noqa: PLC0415
    from stressbed.app.plan import RunOptions, plan  # noqa: PLC0415
    from stressbed.backends.kubernetes import KubernetesBackend, KubernetesOptions  # noqa: PLC0415

    from .fakes import FakeEngine  # noqa: PLC0415

    calls: list[str] = []
    (tmp_path / "k.py").write_text(scenario)
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=config),
        engine=lambda name, work, target: FakeEngine(calls, None),
        cluster_api=lambda target: cluster,
    )
    options = RunOptions(
        scenario=str(tmp_path / "k.py"),
        backend="kubernetes",
        backend_options={"kubeconfig": config},
        runners=1,
        results=tmp_path / "r",
    )
    return execute(plan(options), backend=backend), calls


@needs_k6
def test_a_run_on_a_cluster_applies_its_faults_and_leaves_no_chaos_behind(
    tmp_path, cluster_env, monkeypatch
):
    cluster = _agent_cluster()
    cluster.running_for_s = 6  # the fleet runs long enough for both faults
    # The coordinator says when it released the runners: the faults' clock.
    cluster.coordinator_log = json.dumps({"event": "started", "t": time.time(), "skew_ms": 1.0})
    report, calls = run_faulted(tmp_path, cluster_env, cluster, monkeypatch)
    assert calls == ["up:agent", "up:fleet", "destroy", "remove"]
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    kill, latency = summary["resilience"]["faults"]
    assert kill["applied"], kill
    assert latency["applied"], latency
    assert kill["how"] == "Chaos Mesh PodChaos pod-kill"
    assert latency["how"] == "Chaos Mesh NetworkChaos delay"
    assert latency["end"] is not None
    assert cluster.chaos == {}  # every object deleted by the end
    events = [e["event"] for e in summary["events"]]
    assert events.index("fault-ended") < events.index("stack-destroyed")
    assert [c[1] for c in cluster.chaos_calls if c[0] == "create"] == ["podchaos", "networkchaos"]
    assert report.exit_code in (0, 1), report.message


@needs_k6
def test_without_chaos_mesh_a_run_with_faults_is_refused_before_anything_exists(
    tmp_path, cluster_env, monkeypatch
):
    cluster = _agent_cluster()
    cluster.crds = {"podchaos.chaos-mesh.org"}
    with pytest.raises(ConfigError) as caught:
        run_faulted(tmp_path, cluster_env, cluster, monkeypatch)
    assert caught.value.field == "faults"
    missing = "networkchaos.chaos-mesh.org, stresschaos.chaos-mesh.org, iochaos.chaos-mesh.org"
    assert missing in str(caught.value.value)
    assert caught.value.expected.startswith(f"Chaos Mesh {CHAOS_MESH_VERSION} installed")
    assert cluster.chaos_calls == []


def test_a_dependency_goes_through_every_pods_fault_hook_new_pods_included():
    from stressbed.backends.kubernetes._faults import PodHook  # noqa: PLC0415
    from stressbed.stack.spec import FaultHook  # noqa: PLC0415

    cluster, events = _agent_cluster(), []
    chaos = ChaosFaults(
        cluster,
        CLUSTER,
        "agent",
        lambda kind, **f: events.append((kind, f)),
        hook=PodHook(FaultHook(), "run-token", 8080),
    )
    chaos.arm(named(fault.dependency("sink", at="0s", lasting="8s")), time.time())
    wait_until(lambda: any(kind == "fault-applied" for kind, _ in events))
    cluster.agents.append(PodState("agent-5d8-c", -1, "Running", time.time(), ready=True))
    wait_until(lambda: any(kind == "fault-extended" for kind, _ in events))  # the new pod hooked
    # A pod whose container restarted is a fresh process: hooked again.
    cluster.agents[0] = PodState(PODS[0], -1, "Running", time.time(), ready=True, restarts=1)
    wait_until(lambda: sum(kind == "fault-extended" for kind, _ in events) == 2)
    wait_until(lambda: any(kind == "fault-ended" for kind, _ in events))
    assert chaos.undo_all() == []
    started = [(pod, body) for pod, method, _, body, _ in cluster.hooked if method == "POST"]
    assert [pod for pod, _ in started] == [*PODS, "agent-5d8-c", PODS[0]]
    assert all(body["kind"] == "sink_failure" for _, body in started)
    assert all(body["duration_s"] > 30 for _, body in started)  # ends by itself if we are gone
    stopped = [(pod, path) for pod, method, path, _, _ in cluster.hooked if method == "DELETE"]
    assert stopped == [(p, "/admin/faults/sink_failure") for p in [*PODS, "agent-5d8-c"]]
    assert {h["X-Admin-Token"] for *_, h in cluster.hooked} == {"run-token"}
    applied = next(f for kind, f in events if kind == "fault-applied")
    assert applied["how"].startswith("the target's fault hook (sink_failure)")
    assert "run-token" not in json.dumps([f for _, f in events])
    ended = next(f for kind, f in events if kind == "fault-ended")
    assert (ended["reason"], sorted(ended["ended"])) == ("its end", [*PODS, "agent-5d8-c"])


def test_the_hooks_token_is_in_the_agents_secret_only():
    from stressbed.backends.kubernetes.manifests import agent_manifests  # noqa: PLC0415
    from stressbed.stack.agent import reference_agent  # noqa: PLC0415

    manifests = agent_manifests(reference_agent(), CLUSTER)
    (secret,) = [m for m in manifests if m["kind"] == "Secret"]
    assert set(secret["stringData"]) == {"STRESSBED_AGENT_TOKEN", "STRESSBED_AGENT_ADMIN_TOKEN"}
    assert set(secret["stringData"].values()) == {""}  # values are filled at apply time
    (deployment,) = [m for m in manifests if m["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    from_secret = {e["name"] for e in container["env"] if "valueFrom" in e}
    assert from_secret == {"STRESSBED_AGENT_TOKEN", "STRESSBED_AGENT_ADMIN_TOKEN"}


# -- restarts ----------------------------------------------------------------------------


def recorded() -> tuple[list[tuple[str, dict]], Any]:
    events: list[tuple[str, dict]] = []
    return events, lambda kind, **f: events.append((kind, f))


def said_of(events, kind: str) -> list[dict]:
    return [f for k, f in events if k == kind]


def test_a_restart_is_a_graceful_pod_kill_of_the_pods_the_seed_chose():
    cluster = _agent_cluster()
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, grace_s=25)
    chaos.arm(named(fault.restart(at="0s", replicas=1, seed=4)), time.time())
    wait_until(lambda: said_of(events, "fault-applied") and cluster.chaos == {})
    assert chaos.undo_all() == []
    (body,) = cluster.chaos_created
    assert (body["kind"], body["spec"]["action"], body["spec"]["gracePeriod"]) == (
        "PodChaos",
        "pod-kill",
        25,
    )
    (applied,) = said_of(events, "fault-applied")
    assert applied["replicas"] == random.Random(4).sample(PODS, 1)
    assert body["spec"]["selector"] == {"pods": {CLUSTER.namespace: applied["replicas"]}}
    assert applied["how"] == (
        "Chaos Mesh PodChaos pod-kill, gracePeriod 25 s (the ReplicaSet makes new pods at once)"
    )
    assert said_of(events, "fault-ended") == []  # an instant: deleted once applied


STRATEGY = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_a_rolling_restart_is_the_deployments_rollout_followed_to_its_end():
    cluster = _agent_cluster()
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    started = time.time()
    chaos.arm(named(fault.rolling_restart(at="0s", max_unavailable=1)), started)
    wait_until(lambda: said_of(events, "fault-ended"))
    assert chaos.undo_all() == []
    restart, restore = cluster.patches
    stamp = restart["spec"]["template"]["metadata"]["annotations"].pop(RESTARTED_AT)
    # As kubectl rollout restart sets it (RFC 3339), when the fault was due.
    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    assert int(started) <= at <= time.time()
    assert restart == {
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "template": {"metadata": {"annotations": {}}},
        }
    }
    assert restore == {"spec": {"strategy": STRATEGY}}  # its own, put back: no rollout
    assert cluster.deployment.paused is False
    (applied,) = said_of(events, "fault-applied")
    (ended,) = said_of(events, "fault-ended")
    assert applied["replicas"] == PODS
    assert applied["how"] == (
        "a rollout restart of Deployment agent (kubectl.kubernetes.io/restartedAt), "
        "maxUnavailable 1, maxSurge 0"
    )
    assert (ended["reason"], ended["how"]) == (
        "every replica restarted",
        "the Deployment rolled out",
    )
    assert ended["t"] >= applied["t"]
    # Every old pod was replaced: the controller's six steps were all read.
    state = cluster.deployment
    assert (state.updated, state.available, state.current) == (2, 2, 2)
    assert cluster.chaos_calls == []  # no Chaos Mesh in it


def test_a_rolling_restart_that_makes_no_progress_is_paused_and_says_why():
    cluster = _agent_cluster()
    cluster.rollout_stuck = True
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say, rollout_deadline_s=0.5)
    chaos.arm(named(fault.rolling_restart(at="0s")), time.time())
    wait_until(lambda: said_of(events, "fault-ended"))
    assert chaos.undo_all() == []
    (ended,) = said_of(events, "fault-ended")
    assert ended["reason"] == (
        "stopped: no progress for 0.5 s, waiting for 1 of 2 new replicas updated: paused"
    )
    assert ended["how"] == "it stopped there"
    assert cluster.patches[-1] == {"spec": {"strategy": STRATEGY, "paused": True}}
    # A later one is refused, as kubectl refuses to restart a paused Deployment.
    events.clear()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.rolling_restart(at="0s")), time.time())
    wait_until(lambda: said_of(events, "fault-skipped"))
    assert chaos.undo_all() == []
    (skipped,) = said_of(events, "fault-skipped")
    assert skipped["reason"] == "Deployment agent is paused (a rolling restart stopped earlier)"
    assert len(cluster.patches) == 2


def test_a_rolling_restart_under_way_at_teardown_ends_there():
    cluster = _agent_cluster()
    cluster.rollout_stuck = True
    events, say = recorded()
    chaos = ChaosFaults(cluster, CLUSTER, "agent", say)
    chaos.arm(named(fault.rolling_restart(at="0s")), time.time())
    wait_until(lambda: said_of(events, "fault-applied"))
    assert chaos.undo_all() == []
    (ended,) = said_of(events, "fault-ended")
    assert ended["reason"] == "teardown"
    assert len(cluster.patches) == 1  # the Deployment goes with the namespace


def test_a_rolling_restart_needs_no_chaos_mesh_and_a_restart_does(cluster_env):
    pytest.importorskip("pulumi")
    from stressbed import ConstantVUs, Scenario, Workload, get  # noqa: PLC0415
    from stressbed.backends.kubernetes import KubernetesBackend, KubernetesOptions  # noqa: PLC0415

    cluster = _agent_cluster()
    cluster.crds = set()
    backend = KubernetesBackend(
        KubernetesOptions(kubeconfig=cluster_env), cluster_api=lambda access: cluster
    )

    def with_faults(*faults):
        return Scenario(
            "k",
            description="kube",
            workloads=[Workload("w", get("/healthz"), ConstantVUs(vus=1, duration="1m"))],
            faults=list(faults),
        )

    backend.preflight(None, with_faults(fault.rolling_restart(at="10s")))
    with pytest.raises(ConfigError) as caught:
        backend.preflight(None, with_faults(fault.restart(at="10s")))
    assert caught.value.field == "faults"
    assert caught.value.expected.startswith(f"Chaos Mesh {CHAOS_MESH_VERSION} installed")
