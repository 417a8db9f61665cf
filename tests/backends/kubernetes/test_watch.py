"""What a Kubernetes run records of its agent stack: the rows and the events a capacity cause
or a finding reads, from the Deployment, the autoscaler, the pods, the namespace's Warning
events and metrics.k8s.io (a fake cluster: none can run here)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from stressbed.backends.kubernetes import ClusterEvent, PodState, ScaleState, _watch
from stressbed.backends.kubernetes._cluster import usage_cpu_m, usage_mib
from stressbed.backends.kubernetes._watch import USAGE_TRIES, StackWatch

from .fakes import FakeCluster


def watch_of(cluster: FakeCluster) -> tuple[StackWatch, list[dict[str, Any]]]:
    said: list[dict[str, Any]] = []
    watch = StackWatch(
        cluster, "ns", "agent", lambda kind, **f: said.append({"event": kind, **f}), autoscaled=True
    )
    return watch, said


def agent(name: str, **changes: Any) -> PodState:
    fields = {"phase": "Running", "created": time.time(), "ready": True, **changes}
    return PodState(name, -1, **fields)


def test_a_row_has_the_local_stacks_shape_replicas_desired_ready_and_each_pods_usage():
    cluster = FakeCluster(1, [{}])
    cluster.scales = [ScaleState(replicas=3, ready=2, desired=4)]
    cluster.agents = [agent("agent-a"), agent("agent-b")]
    cluster.usage = {"agent-a": (980.04, 120.5), "agent-b": (410.0, 96.25)}
    watch, said = watch_of(cluster)
    watch.sample()
    (row,) = watch.rows()
    assert (row["replicas"], row["ready"], row["desired"]) == (3, 2, 4)
    assert row["pods"] == {
        "agent-a": {"cpu_m": 980.0, "memory_mib": 120.5},
        "agent-b": {"cpu_m": 410.0, "memory_mib": 96.25},
    }
    assert abs(row["t"] - time.time()) < 60
    assert said == []  # the first sample only sets where things start
    # The agent's pods are asked for by its name, not every pod of the namespace.
    assert ("agent", "agent") in cluster.asked


def test_the_autoscaler_deciding_is_a_scaled_event_from_the_old_count_to_the_new():
    cluster = FakeCluster(1, [{}])
    cluster.scales = [ScaleState(2, 2, 2), ScaleState(2, 2, 4), ScaleState(4, 3, 4)]
    watch, said = watch_of(cluster)
    for _ in range(3):
        watch.sample()
    assert said == [{"event": "scaled", "from": 2, "to": 4}]
    assert [r["ready"] for r in watch.rows()] == [2, 2, 3]
    assert watch.desired == 4


def test_a_restart_is_said_once_and_an_oom_kill_is_named():
    cluster = FakeCluster(1, [{}])
    watch, said = watch_of(cluster)
    cluster.agents = [agent("agent-a")]
    watch.sample()
    cluster.agents = [agent("agent-a", restarts=1, last_terminated="OOMKilled", ready=False)]
    watch.sample()
    watch.sample()  # still one restart: nothing new
    cluster.agents = [agent("agent-a", restarts=2, last_terminated="Error")]
    watch.sample()
    assert said == [
        {"event": "oom-killed", "replica": "agent-a", "restarts": 1},
        {"event": "restarted", "replica": "agent-a", "restarts": 1, "reason": "OOMKilled"},
        {"event": "unready", "replica": "agent-a"},
        {"event": "restarted", "replica": "agent-a", "restarts": 2, "reason": "Error"},
    ]
    assert watch.restarts == {"agent-a": 2}


def test_warning_events_become_quota_and_probe_events_once_each():
    cluster = FakeCluster(1, [{}])
    watch, said = watch_of(cluster)
    now = time.time() + 1
    quota = ClusterEvent(
        "u1",
        "FailedCreate",
        'pods "agent-x" is forbidden: exceeded quota: stressbed, requested: pods=1',
        "agent-5d8",
        1,
        now,
    )
    liveness = ClusterEvent("u2", "Unhealthy", "Liveness probe failed: HTTP 503", "agent-a", 1, now)
    old = ClusterEvent("u3", "Unhealthy", "Liveness probe failed", "agent-a", 9, now - 3600)
    other = ClusterEvent("u4", "BackOff", "Back-off pulling image", "agent-a", 1, now)
    cluster.warning_events = [quota, liveness, old, other]
    watch.sample()
    watch.sample()  # the same events again: already said
    cluster.warning_events = [
        quota,
        ClusterEvent("u2", "Unhealthy", liveness.message, "agent-a", 2, now),
    ]
    watch.sample()  # the API server folded a repeat into the count: said again
    kinds = [(e["event"], e["replica"]) for e in said]
    assert kinds == [
        ("quota-denied", "agent-5d8"),
        ("liveness-failed", "agent-a"),
        ("liveness-failed", "agent-a"),
    ]
    assert said[0]["reason"].startswith('pods "agent-x" is forbidden: exceeded quota')


def test_without_a_metrics_server_the_rows_have_no_usage_said_once():
    cluster = FakeCluster(1, [{}])
    cluster.usage = None
    watch, said = watch_of(cluster)
    for _ in range(USAGE_TRIES + 2):
        watch.sample()
    assert [e["event"] for e in said] == ["usage-unavailable"]
    assert "pods.metrics.k8s.io" in said[0]["reason"]
    assert all(row["pods"] == {} for row in watch.rows())
    assert len(watch.rows()) == USAGE_TRIES + 2  # the replicas are still recorded


def test_the_thread_samples_until_stopped_and_survives_an_api_blip(monkeypatch):
    monkeypatch.setattr(_watch, "WATCH_S", 0.01)

    class Blips(FakeCluster):
        reads = 0

        def scale(self, namespace: str, name: str, *, autoscaled: bool) -> ScaleState:
            self.reads += 1
            if self.reads == 2:
                raise OSError("connection reset by peer")
            return super().scale(namespace, name, autoscaled=autoscaled)

    cluster = Blips(1, [{}])
    watch, _ = watch_of(cluster)
    watch.start()
    deadline = time.monotonic() + 30
    while len(watch.rows()) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.stop()
    count = len(watch.rows())
    assert count >= 3
    time.sleep(0.05)
    assert len(watch.rows()) == count  # stopped means stopped


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("123456789n", 123.456789), ("2500u", 2.5), ("250m", 250.0), ("1", 1000.0), ("0", 0.0)],
)
def test_usage_cpu_reads_every_unit_metrics_server_uses(text, millicores):
    assert usage_cpu_m(text) == pytest.approx(millicores)


@pytest.mark.parametrize(
    ("text", "mib"), [("52344Ki", 51.1171875), ("128Mi", 128.0), ("1Gi", 1024.0), ("1048576", 1.0)]
)
def test_usage_memory_reads_every_unit_metrics_server_uses(text, mib):
    assert usage_mib(text) == pytest.approx(mib)


def test_a_usage_that_is_not_a_quantity_is_refused():
    with pytest.raises(ValueError, match="not a CPU usage"):
        usage_cpu_m("lots")


def test_samples_that_keep_failing_are_said_once_and_the_record_goes_on(monkeypatch):
    # A kubeconfig whose user may not read the HPA: said once, then the rows resume when
    # the reads succeed again.
    monkeypatch.setattr(_watch, "WATCH_S", 0.01)

    class Forbidden(FakeCluster):
        reads = 0

        def scale(self, namespace: str, name: str, *, autoscaled: bool) -> ScaleState:
            self.reads += 1
            if self.reads <= 5:
                raise OSError('(403) horizontalpodautoscalers "agent" is forbidden\nmore')
            return super().scale(namespace, name, autoscaled=autoscaled)

    cluster = Forbidden(1, [{}])
    watch, said = watch_of(cluster)
    watch.start()
    deadline = time.monotonic() + 30
    while not watch.rows() and time.monotonic() < deadline:
        time.sleep(0.01)
    watch.stop()
    assert watch.rows()
    assert said == [
        {"event": "watch-failed", "reason": '(403) horizontalpodautoscalers "agent" is forbidden'}
    ]
