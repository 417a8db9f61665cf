"""Reading runner pods: which pod states fail a run, and which do not."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from stressbed.backends.kubernetes import ClusterAccess, PodState, kubernetes_api, runner_failure

from .fakes import KUBECONFIG


def test_runner_failure_is_quiet_while_pods_are_fine():
    now = time.time()
    for phase in ("Pending", "Running", "Succeeded"):
        assert runner_failure(PodState("p", 0, phase, now), now, 60) is None


class StubApiServer(BaseHTTPRequestHandler):
    """The two calls the backend makes of an API server, answered as one answers them."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/api/v1/namespaces/ns1/pods":
            body = json.dumps({"kind": "PodList", "apiVersion": "v1", "items": [POD]}).encode()
            kind = "application/json"
        elif (
            urllib.parse.unquote(url.path)
            == "/api/v1/namespaces/ns1/pods/agent-x:8080/proxy/metrics"
        ):
            body = b"agent_queue_points 7\n"
            kind = "text/plain"
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


def test_the_real_client_reads_pods_and_a_log_tail_from_an_api_server(tmp_path):
    StubApiServer.seen.clear()
    pytest.importorskip("kubernetes")
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "kubeconfig"
        config.write_text(
            KUBECONFIG.replace("https://127.0.0.1:6443", f"http://127.0.0.1:{server.server_port}")
        )
        api = kubernetes_api(ClusterAccess(config, "kind-stressbed"))
        (pod,) = api.pods("ns1", "runner")
        tail = api.log("ns1", "runners-coordinator-x", tail_lines=100)
        whole = api.log("ns1", "runners-coordinator-x")
        page = api.proxy("ns1", "agent-x", 8080, "/metrics", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
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
