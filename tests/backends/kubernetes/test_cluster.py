"""Reading runner pods: which pod states fail a run, and which do not."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from stressbed.backends.kubernetes import ClusterAccess, PodState, kubernetes_api, runner_failure
from stressbed.backends.kubernetes._cluster import ProxyUnreachable, RolloutState
from stressbed.backends.kubernetes._rollout import restart_patch

from .fakes import KUBECONFIG


def test_runner_failure_is_quiet_while_pods_are_fine():
    now = time.time()
    for phase in ("Pending", "Running", "Succeeded"):
        assert runner_failure(PodState("p", 0, phase, now), now, 60) is None


#: The pod the next pod list answers with (POD when empty).
POD_LISTS: list[dict[str, object]] = []


class StubApiServer(BaseHTTPRequestHandler):
    """The two calls the backend makes of an API server, answered as one answers them."""

    seen: ClassVar[list[str]] = []
    headers_list: ClassVar[list[dict[str, str]]] = []  # what each POST and DELETE carried

    def unreachable(self) -> bool:
        """The pod proxy's answers for pods it cannot reach: agent-blocked, a dial that timed
        out (the API server's own 503); agent-slow, no answer for 1 s."""
        path = urllib.parse.unquote(self.path)
        if "/pods/agent-slow:" in path:
            time.sleep(1)
            return True  # the client gave up long ago: nothing to answer
        if "/pods/agent-blocked:" not in path:
            return False
        body = json.dumps(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "message": "error trying to reach service: dial tcp 10.244.1.5:8080: i/o timeout",
                "reason": "ServiceUnavailable",
                "code": 503,
            }
        ).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return True

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.unreachable():
            return
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/namespaces/ns1/pods":
            items = POD_LISTS[-1:] or [POD]
            body = json.dumps({"kind": "PodList", "apiVersion": "v1", "items": items}).encode()
            kind = "application/json"
        elif (
            urllib.parse.unquote(url.path)
            == "/api/v1/namespaces/ns1/pods/agent-x:8080/proxy/metrics"
        ):
            body = b"agent_queue_points 7\n"
            kind = "text/plain"
        elif url.path in ROUTES:
            body = json.dumps(ROUTES[url.path]).encode()
            kind = "application/json"
        elif url.path == "/api/v1/namespaces/ns1/pods/runners-coordinator-x/log":
            lines = [json.dumps({"event": "progress", "elapsed_s": i}) for i in range(200)]
            tail = urllib.parse.parse_qs(url.query).get("tailLines")
            shown = lines[-int(tail[0]) :] if tail else lines
            body = "".join(f"{x}\n" for x in shown).encode()
            kind = "text/plain"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.headers_seen()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append(f"POST {self.path} {body.decode()}")
        if self.unreachable():
            return
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PATCH(self) -> None:
        self.headers_seen()
        length = int(self.headers.get("Content-Length") or 0)
        sent = self.rfile.read(length).decode()
        self.seen.append(f"PATCH {self.path} {sent}")
        found = ROUTES.get(urllib.parse.urlsplit(self.path).path)
        if found is None:
            self.send_error(404)
            return
        body = json.dumps({**found, "metadata": {**found["metadata"], "generation": 8}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def headers_seen(self) -> None:
        self.headers_list.append(dict(self.headers.items()))

    def do_DELETE(self) -> None:
        self.headers_seen()
        self.seen.append(f"DELETE {self.path}")
        if urllib.parse.urlsplit(self.path).path not in ROUTES:
            self.send_error(404)
            return
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Success"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


POD = {
    "metadata": {
        "name": "runners-1-abc",
        "namespace": "ns1",
        "creationTimestamp": "2026-12-01T12:00:00Z",
        "annotations": {"batch.kubernetes.io/job-completion-index": "1"},
    },
    "status": {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "runner",
                "image": "stressbed-runner:latest",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }
        ],
    },
}


@contextlib.contextmanager
def stub_api(tmp_path: Path) -> Iterator[Any]:
    """The official client, through a kubeconfig, against StubApiServer on loopback."""
    StubApiServer.seen.clear()
    pytest.importorskip("kubernetes")
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "kubeconfig"
        config.write_text(
            KUBECONFIG.replace("https://127.0.0.1:6443", f"http://127.0.0.1:{server.server_port}")
        )
        yield kubernetes_api(ClusterAccess(config, "kind-stressbed"))
    finally:
        POD_LISTS.clear()
        server.shutdown()
        server.server_close()


AGENT_POD = {
    "metadata": {
        "name": "agent-5d8-a",
        "namespace": "ns1",
        "creationTimestamp": "2026-12-01T12:00:00Z",
    },
    "status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {
                "name": "agent",
                "image": "stressbed-agent:latest",
                "imageID": "",
                "ready": False,
                "restartCount": 2,
                "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
            }
        ],
    },
}
ROUTES = {
    "/apis/apps/v1/namespaces/ns1/deployments/agent/status": {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "agent"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}, "template": {}},
        "status": {"replicas": 3, "readyReplicas": 2},
    },
    "/apis/autoscaling/v2/namespaces/ns1/horizontalpodautoscalers/agent/status": {
        "kind": "HorizontalPodAutoscaler",
        "apiVersion": "autoscaling/v2",
        "metadata": {"name": "agent"},
        "spec": {
            "maxReplicas": 4,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agent"},
        },
        "status": {"currentReplicas": 3, "desiredReplicas": 4},
    },
    "/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods": {
        "kind": "PodMetricsList",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "items": [
            {
                "metadata": {"name": "agent-5d8-a"},
                "containers": [
                    {"name": "agent", "usage": {"cpu": "981234567n", "memory": "131072Ki"}},
                    {"name": "sidecar", "usage": {"cpu": "2m", "memory": "4Mi"}},
                ],
            }
        ],
    },
    "/api/v1/namespaces/ns1/events": {
        "kind": "EventList",
        "apiVersion": "v1",
        "items": [
            {
                "metadata": {"name": "agent-5d8.17", "uid": "u-1"},
                "involvedObject": {"kind": "ReplicaSet", "name": "agent-5d8"},
                "reason": "FailedCreate",
                "message": "exceeded quota: stressbed",
                "type": "Warning",
                "count": 3,
                "lastTimestamp": "2026-12-01T12:00:05Z",
            }
        ],
    },
}


def test_the_real_client_reads_the_agents_scale_usage_and_warnings(tmp_path):
    with stub_api(tmp_path) as api:
        scaled = api.scale("ns1", "agent", autoscaled=True)
        fixed = api.scale("ns1", "agent", autoscaled=False)
        usage = api.pod_usage("ns1", "agent", "agent")
        (warning,) = api.warnings("ns1")
    assert (scaled.replicas, scaled.ready, scaled.desired) == (3, 2, 4)
    assert fixed.desired == 2  # no autoscaler: the Deployment's own count
    assert usage["agent-5d8-a"][0] == pytest.approx(983.234567)  # every container, summed
    assert usage["agent-5d8-a"][1] == pytest.approx(132.0)
    assert (warning.uid, warning.reason, warning.involved, warning.count) == (
        "u-1",
        "FailedCreate",
        "agent-5d8",
        3,
    )
    assert warning.last == 1796126405.0
    asked = {
        urllib.parse.urlsplit(p).path: urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)
        for p in StubApiServer.seen
    }
    assert asked["/apis/metrics.k8s.io/v1beta1/namespaces/ns1/pods"] == {
        "labelSelector": ["app.kubernetes.io/component=agent,app.kubernetes.io/name=agent"]
    }
    assert asked["/api/v1/namespaces/ns1/events"] == {"fieldSelector": ["type=Warning"]}


def test_the_real_client_reads_a_pods_readiness_and_restarts_and_lists_one_fleet(tmp_path):
    POD_LISTS.append(AGENT_POD)  # what the next pod list answers with; cleared on the way out
    with stub_api(tmp_path) as api:
        (pod,) = api.pods("ns1", "runner", "stressbed-runners-2")
    assert (pod.ready, pod.restarts, pod.last_terminated) == (False, 2, "OOMKilled")
    (query,) = [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query) for p in StubApiServer.seen]
    assert query == {
        "labelSelector": [
            "app.kubernetes.io/component=runner,app.kubernetes.io/name=stressbed-runners-2"
        ]
    }


def test_the_real_client_reads_pods_and_a_log_tail_from_an_api_server(tmp_path):
    with stub_api(tmp_path) as api:
        (pod,) = api.pods("ns1", "runner")
        tail = api.log("ns1", "runners-coordinator-x", tail_lines=100)
        whole = api.log("ns1", "runners-coordinator-x")
        page = api.proxy("ns1", "agent-x", 8080, "/metrics", timeout=5)
    assert (pod.name, pod.index, pod.phase) == ("runners-1-abc", 1, "Failed")
    assert (pod.terminated, pod.exit_code) == ("OOMKilled", 137)
    assert pod.created == 1796126400.0
    # The tail is asked of the server (tailLines), not cut here from the whole log.
    assert [json.loads(x)["elapsed_s"] for x in tail.splitlines()] == list(range(100, 200))
    assert len(whole.splitlines()) == 200
    assert page == "agent_queue_points 7\n"  # through the API server's pod proxy
    asked = [urllib.parse.parse_qs(urllib.parse.urlsplit(p).query) for p in StubApiServer.seen]
    assert asked == [
        {"labelSelector": ["app.kubernetes.io/component=runner"]},
        {"tailLines": ["100"]},
        {},
        {},
    ]


CHAOS = "/apis/chaos-mesh.org/v1alpha1"
KILL = {
    "apiVersion": "chaos-mesh.org/v1alpha1",
    "kind": "PodChaos",
    "metadata": {"name": "kill", "namespace": "ns1"},
    "spec": {"action": "pod-kill", "mode": "all", "selector": {"pods": {"ns1": ["agent-a"]}}},
    "status": {"experiment": {"containerRecords": [{"id": "ns1/agent-a", "events": []}]}},
}


def test_the_real_client_creates_reads_and_deletes_chaos_mesh_objects(tmp_path):
    ROUTES[CHAOS] = {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "chaos-mesh.org/v1alpha1",
        "resources": [
            {"name": n, "singularName": n, "namespaced": True, "kind": k, "verbs": ["create"]}
            for n, k in (("podchaos", "PodChaos"), ("networkchaos", "NetworkChaos"))
        ],
    }
    ROUTES[f"{CHAOS}/namespaces/ns1/podchaos/kill"] = KILL
    try:
        with stub_api(tmp_path) as api:
            missing = api.missing_chaos_kinds(["podchaos", "networkchaos", "stresschaos"])
            body = {key: value for key, value in KILL.items() if key != "status"}
            api.create_chaos("ns1", "podchaos", body)
            found = api.get_chaos("ns1", "podchaos", "kill")
            gone = api.get_chaos("ns1", "podchaos", "nope")
            api.delete_chaos("ns1", "podchaos", "kill")
            api.delete_chaos("ns1", "podchaos", "nope")  # gone already is fine
    finally:
        del ROUTES[CHAOS], ROUTES[f"{CHAOS}/namespaces/ns1/podchaos/kill"]
    assert missing == ["stresschaos"]
    assert found == KILL
    assert gone is None
    (created,) = [p for p in StubApiServer.seen if p.startswith("POST ")]
    path, sent = created.split(" ", 2)[1:]
    assert urllib.parse.urlsplit(path).path == f"{CHAOS}/namespaces/ns1/podchaos"
    # Strict: a field the CRD does not know is refused by the API server, not pruned.
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
        "fieldValidation": ["Strict"]
    }
    assert json.loads(sent) == body
    deleted = [p for p in StubApiServer.seen if p.startswith("DELETE ")]
    assert [urllib.parse.urlsplit(p.split()[1]).path for p in deleted] == [
        f"{CHAOS}/namespaces/ns1/podchaos/kill",
        f"{CHAOS}/namespaces/ns1/podchaos/nope",
    ]


def test_no_chaos_mesh_at_all_is_every_kind_missing(tmp_path):
    with stub_api(tmp_path) as api:
        assert api.missing_chaos_kinds(["podchaos"]) == ["podchaos"]


def test_the_real_client_calls_a_pods_fault_hook_through_the_pod_proxy(tmp_path):
    hook = "/api/v1/namespaces/ns1/pods/agent-x:8080/proxy/admin/faults"
    ROUTES[f"{hook}/sink_failure"] = {"stopped": "sink_failure"}
    headers = {"X-Admin-Token": "t0ken", "Content-Type": "application/json"}
    try:
        with stub_api(tmp_path) as api:
            body = {"kind": "sink_failure", "duration_s": 40}
            started = api.hook("ns1", "agent-x", 8080, ("POST", "/admin/faults", body), headers)
            stopped = api.hook(
                "ns1", "agent-x", 8080, ("DELETE", "/admin/faults/sink_failure", None), headers
            )
            missing = api.hook("ns1", "agent-y", 8080, ("DELETE", "/admin/faults/x", None), headers)
    finally:
        del ROUTES[f"{hook}/sink_failure"]
    assert (started, stopped, missing) == (None, None, "HTTP 404")
    (posted,) = [p for p in StubApiServer.seen if p.startswith("POST ")]
    path, sent = posted.split(" ", 2)[1:]
    assert path == hook  # the path as written, not percent-encoded
    assert json.loads(sent) == {"kind": "sink_failure", "duration_s": 40}
    assert StubApiServer.headers_list[-3]["X-Admin-Token"] == "t0ken"


def test_a_pod_the_proxy_cannot_reach_is_told_from_the_pods_own_answer(tmp_path):
    # The API server's 503 for a dial that failed, and no answer in time, are the proxy's;
    # a 404 is the pod's own answer.
    request = ("POST", "/admin/faults", {"kind": "sink_failure", "duration_s": 40})
    with stub_api(tmp_path) as api:
        with pytest.raises(ProxyUnreachable) as hooked:
            api.hook("ns1", "agent-blocked", 8080, request, {})
        with pytest.raises(ProxyUnreachable) as scraped:
            api.proxy("ns1", "agent-blocked", 8080, "/metrics", 1.0)
        with pytest.raises(ProxyUnreachable) as slow:
            api.proxy("ns1", "agent-slow", 8080, "/metrics", 0.2)
        said = api.hook("ns1", "agent-y", 8080, ("DELETE", "/admin/faults/x", None), {})
    reach = "HTTP 503: error trying to reach service: dial tcp 10.244.1.5:8080: i/o timeout"
    assert (str(hooked.value), str(scraped.value)) == (reach, reach)
    assert str(slow.value) == "no answer in 0.2 s"
    assert said == "HTTP 404"


def test_the_real_client_merges_every_file_of_a_kubeconfig_list(tmp_path):
    # The context and user in one file, the cluster (the server's address) in another: as
    # KUBECONFIG=a:b for kubectl. Without the second file there is no server to ask.
    config = yaml.safe_load(KUBECONFIG)
    clusters = config.pop("clusters")
    (tmp_path / "a").write_text(yaml.safe_dump(config))
    (tmp_path / "b").write_text(yaml.safe_dump({"apiVersion": "v1", "clusters": clusters}))
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        text = (tmp_path / "b").read_text()
        served = f"http://127.0.0.1:{server.server_port}"
        (tmp_path / "b").write_text(text.replace("https://127.0.0.1:6443", served))
        with pytest.raises(Exception, match="Expected object with name kind-stressbed in"):
            kubernetes_api(ClusterAccess(tmp_path / "a", "kind-stressbed"))
        access = ClusterAccess(tmp_path / "a", "kind-stressbed", (tmp_path / "b",))
        (pod,) = kubernetes_api(access).pods("ns1", "runner")
    finally:
        server.shutdown()
        server.server_close()
    assert pod.name == "runners-1-abc"


def test_the_client_floor_is_the_first_release_with_what_hook_calls():
    # hook() serialises its request with ApiClient.param_serialize: kubernetes 37.0.0 is the
    # first release that has it (36.0.3 has not). An older floor installs a client it fails on.
    import tomllib  # noqa: PLC0415

    from kubernetes import client  # noqa: PLC0415

    document = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    wanted = document["project"]["optional-dependencies"]["kubernetes"]
    assert [r for r in wanted if r.startswith("kubernetes")] == ["kubernetes>=37"]
    assert callable(getattr(client.ApiClient, "param_serialize", None))


DEPLOYMENT = "/apis/apps/v1/namespaces/ns1/deployments/agent"


def test_the_real_client_reads_a_rollout_and_patches_the_deployment_as_kubectl_does(tmp_path):
    ROUTES[DEPLOYMENT] = {
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "agent", "generation": 7},
        "spec": {
            "replicas": 3,
            "paused": True,
            "selector": {"matchLabels": {"a": "b"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
            "template": {},
        },
        "status": {
            "observedGeneration": 6,
            "replicas": 4,
            "updatedReplicas": 1,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    patch = restart_patch(2, 1796126400.0)
    StubApiServer.headers_list.clear()
    try:
        with stub_api(tmp_path) as api:
            state = api.rollout("ns1", "agent")
            generation = api.patch_deployment("ns1", "agent", patch)
    finally:
        del ROUTES[DEPLOYMENT]
    assert state == RolloutState(
        generation=7,
        observed_generation=6,
        replicas=3,
        current=4,
        updated=1,
        ready=2,
        available=2,
        strategy={
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
        },
        paused=True,
    )
    assert generation == 8
    (sent,) = [p for p in StubApiServer.seen if p.startswith("PATCH ")]
    path, body = sent.split(" ", 2)[1:]
    assert urllib.parse.urlsplit(path).path == DEPLOYMENT
    assert json.loads(body) == {
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0},
            },
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T12:00:00Z"}
                }
            },
        }
    }
    # A strategic merge patch, as kubectl rollout restart sends (not the client's JSON patch).
    (headers,) = StubApiServer.headers_list
    assert headers["Content-Type"] == "application/strategic-merge-patch+json"


NEIGHBOUR_POD = {
    "metadata": {
        "name": "stressbed-r1-neighbour-x7k2p",
        "namespace": "ns1",
        "creationTimestamp": "2026-12-01T12:00:00Z",
    },
    "spec": {"nodeName": "node-a", "containers": [{"name": "neighbour"}]},
    "status": {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "neighbour",
                "image": "stressbed-runner:latest",
                "imageID": "",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": "2026-12-01T12:00:07Z"}},
            }
        ],
    },
}
JOBS = "/apis/batch/v1/namespaces/ns1/jobs"


def test_the_real_client_creates_a_neighbours_job_and_reads_where_it_runs(tmp_path):
    POD_LISTS.append(NEIGHBOUR_POD)
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "stressbed-r1-neighbour"}}
    with stub_api(tmp_path) as api:
        api.create_job("ns1", body)
        (pod,) = api.pods("ns1", "neighbour", "stressbed-r1-neighbour")
    assert (pod.phase, pod.node) == ("Running", "node-a")
    assert pod.started == datetime(2026, 12, 1, 12, 0, 7, tzinfo=UTC).timestamp()
    (created,) = [p for p in StubApiServer.seen if p.startswith("POST ")]
    path, sent = created.split(" ", 2)[1:]
    assert urllib.parse.urlsplit(path).path == JOBS
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
        "fieldValidation": ["Strict"]
    }
    assert json.loads(sent) == body
    # Deleted with its namespace (test_namespaces): no Job is deleted by itself.


def test_a_pod_not_every_container_of_which_runs_has_no_start(tmp_path):
    two = json.loads(json.dumps(NEIGHBOUR_POD))
    two["status"]["containerStatuses"].append(
        {**two["status"]["containerStatuses"][0], "name": "b", "state": {"waiting": {}}}
    )
    POD_LISTS.append(two)
    with stub_api(tmp_path) as api:
        (pod,) = api.pods("ns1", "neighbour", "stressbed-r1-neighbour")
    assert (pod.phase, pod.started) == ("Running", None)
