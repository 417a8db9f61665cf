"""Namespaces outside the run's stack: the official client's calls for them against a stub API
server (read with its owner, listed by labels, created strictly, deleted: gone or going already
is fine), and the sweep that deletes the neighbours' namespaces a run left."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stressbed import cli, fault
from stressbed.app import engine
from stressbed.backends import kubernetes
from stressbed.backends.kubernetes import (
    ClusterAccess,
    NamespaceState,
    kubernetes_api,
    sweep_neighbours,
)
from stressbed.backends.kubernetes._faults import ChaosFaults
from stressbed.backends.kubernetes._namespaces import NEIGHBOUR_SELECTOR
from stressbed.backends.kubernetes._neighbour import neighbour_namespace
from stressbed.backends.kubernetes.manifests import Cluster
from stressbed.errors import ConfigError
from stressbed.scenario.faults import check_faults

from .fakes import KUBECONFIG, FakeCluster

NAMESPACES = "/api/v1/namespaces"


def _space(name: str, phase: str = "Active", owner: str = "") -> dict[str, Any]:
    owners = [{"apiVersion": "v1", "kind": "Namespace", "name": owner, "uid": "u-0"}]
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": f"u-{name}",
            **({"ownerReferences": owners} if owner else {}),
        },
        "status": {"phase": phase},
    }


class NamespaceServer(BaseHTTPRequestHandler):
    """Namespaces as an API server keeps them: a DELETE marks one Terminating, a second DELETE
    of it is a 409 (its content still going), one of a name it lacks a 404."""

    spaces: ClassVar[dict[str, dict[str, Any]]] = {}
    seen: ClassVar[list[str]] = []

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str) -> None:
        body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
        self._answer(code, {**body, "reason": reason})

    def do_GET(self) -> None:
        self.seen.append(f"GET {self.path}")
        url = urllib.parse.urlsplit(self.path)
        if url.path == NAMESPACES:
            items = list(self.spaces.values())
            self._answer(200, {"kind": "NamespaceList", "apiVersion": "v1", "items": items})
        elif url.path.removeprefix(f"{NAMESPACES}/") in self.spaces:
            self._answer(200, self.spaces[url.path.removeprefix(f"{NAMESPACES}/")])
        else:
            self._status(404, "NotFound")

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.seen.append(f"POST {self.path} {sent}")
        self._answer(201, json.loads(sent))

    def do_DELETE(self) -> None:
        self.seen.append(f"DELETE {self.path}")
        name = urllib.parse.urlsplit(self.path).path.removeprefix(f"{NAMESPACES}/")
        found = self.spaces.get(name)
        if found is None:
            self._status(404, "NotFound")
        elif found["status"]["phase"] == "Terminating":
            self._status(409, "Conflict")  # "The system is ensuring all content is removed"
        else:
            found["status"]["phase"] = "Terminating"
            self._answer(200, found)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def namespace_api(tmp_path: Path, *spaces: dict[str, Any]) -> Iterator[Any]:
    """The official client, through a kubeconfig, against NamespaceServer on loopback."""
    pytest.importorskip("kubernetes")
    NamespaceServer.spaces = {s["metadata"]["name"]: s for s in spaces}
    NamespaceServer.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), NamespaceServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "kubeconfig"
        served = f"http://127.0.0.1:{server.server_port}"
        config.write_text(KUBECONFIG.replace("https://127.0.0.1:6443", served))
        yield kubernetes_api(ClusterAccess(config, "kind-stressbed"))
    finally:
        server.shutdown()
        server.server_close()


def test_the_real_client_reads_lists_creates_and_deletes_namespaces(tmp_path):
    run, neighbour = (
        _space("stressbed-r1"),
        _space("stressbed-r1-nb-neighbour", owner="stressbed-r1"),
    )
    body = neighbour_namespace(
        check_faults([fault.neighbour(at="1s", lasting="2s")], 60_000)[0],
        Cluster(namespace="stressbed-r1", run_id="r1"),
        owner_uid="u-stressbed-r1",
    )
    with namespace_api(tmp_path, run, neighbour) as api:
        assert api.namespace("stressbed-r1") == NamespaceState(
            "stressbed-r1", "u-stressbed-r1", "Active"
        )
        assert api.namespace("nope") is None
        listed = api.namespaces(NEIGHBOUR_SELECTOR)
        api.create_namespace(body)
        api.delete_namespace("stressbed-r1-nb-neighbour")
        going = api.namespace("stressbed-r1-nb-neighbour")
        api.delete_namespace("stressbed-r1-nb-neighbour")  # going already: fine
        api.delete_namespace("nope")  # gone: fine
    assert (
        NamespaceState(
            "stressbed-r1-nb-neighbour", "u-stressbed-r1-nb-neighbour", "Active", "stressbed-r1"
        )
        in listed
    )
    assert going is not None
    assert going.phase == "Terminating"
    (listing,) = [p for p in NamespaceServer.seen if p.startswith(f"GET {NAMESPACES}?")]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(listing.split()[1]).query)
    assert query["labelSelector"] == [
        "app.kubernetes.io/part-of=stressbed,app.kubernetes.io/component=neighbour"
    ]
    (created,) = [p for p in NamespaceServer.seen if p.startswith("POST ")]
    path, sent = created.split(" ", 2)[1:]
    assert urllib.parse.urlsplit(path).path == NAMESPACES
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(path).query) == {
        "fieldValidation": ["Strict"]
    }
    assert json.loads(sent) == body
    deleted = [p.split()[1] for p in NamespaceServer.seen if p.startswith("DELETE ")]
    assert deleted == [f"{NAMESPACES}/stressbed-r1-nb-neighbour"] * 2 + [f"{NAMESPACES}/nope"]


def test_a_refused_namespace_delete_is_raised(tmp_path):
    class Forbidding(NamespaceServer):
        def do_DELETE(self) -> None:
            self._status(403, "Forbidden")

    pytest.importorskip("kubernetes")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Forbidding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = tmp_path / "kubeconfig"
        served = f"http://127.0.0.1:{server.server_port}"
        config.write_text(KUBECONFIG.replace("https://127.0.0.1:6443", served))
        api = kubernetes_api(ClusterAccess(config, "kind-stressbed"))
        with pytest.raises(Exception, match="Forbidden") as raised:
            api.delete_namespace("stressbed-r1-nb-neighbour")
    finally:
        server.shutdown()
        server.server_close()
    assert getattr(raised.value, "status", None) == 403


# -- the sweep of what runs left ---------------------------------------------------------------


def _left_behind(cluster: FakeCluster, run: str) -> str:
    """A neighbour's namespace of run ``run``, as its fault made it; its name."""
    item = check_faults([fault.neighbour(at="1s", lasting="2s")], 60_000)[0]
    body = neighbour_namespace(item, Cluster(namespace=run, run_id=run), owner_uid=f"uid-{run}")
    cluster.create_namespace(body)
    return str(body["metadata"]["name"])


def test_the_sweep_deletes_the_neighbours_namespaces_whose_run_is_gone():
    cluster = FakeCluster(1, [{}])
    killed = _left_behind(cluster, "stressbed-r1")  # its stressbed killed, its stack destroyed
    cluster.removed.add("stressbed-r1")
    live = _left_behind(cluster, "stressbed-r2")  # a run still going
    said: list[str] = []
    assert sweep_neighbours(cluster, say=said.append) == [killed]
    assert cluster.namespace(killed) is None
    assert cluster.namespace(live) is not None
    assert sweep_neighbours(cluster) == []  # nothing more: the live run's is its own
    assert sweep_neighbours(cluster, everything=True) == [live]
    assert cluster.namespaces_made == {}
    assert said == []


def test_the_sweep_passes_over_one_going_already_and_says_one_that_will_not_go():
    cluster = FakeCluster(1, [{}])
    going = _left_behind(cluster, "stressbed-r1")
    cluster.terminating.add(going)
    stuck = _left_behind(cluster, "stressbed-r2")
    cluster.terminating.add("stressbed-r2")  # its run's namespace is being deleted
    refused = []

    def delete(name: str) -> None:
        refused.append(name)
        raise OSError("namespaces is forbidden")

    cluster.delete_namespace = delete  # type: ignore[method-assign]
    said: list[str] = []
    assert sweep_neighbours(cluster, say=said.append) == []
    assert refused == [stuck]
    assert said == [f"namespace {stuck} was not deleted: namespaces is forbidden"]


def test_a_neighbours_namespace_left_by_its_fault_is_one_the_sweep_finds():
    # What the fault made is what the sweep looks for: the labels are the same.
    cluster = FakeCluster(1, [{}])
    cluster.job_pod_lingers = True  # its pod will not go: the run's teardown names it
    events: list[str] = []
    run = Cluster(namespace="stressbed-r1", run_id="r1")
    chaos = ChaosFaults(
        cluster, run, "agent", lambda kind, **f: events.append(kind), delete_timeout_s=0.3
    )
    chaos.arm(check_faults([fault.neighbour(at="0s", lasting="1m")], 600_000), time.time())
    deadline = time.monotonic() + 10
    while "fault-applied" not in events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert chaos.undo_all() == ["namespace/stressbed-r1-nb-neighbour"]
    cluster.job_pod_lingers = False
    cluster.terminating.discard("stressbed-r1-nb-neighbour")  # as if its delete was lost
    cluster.removed.add("stressbed-r1")  # the run's destroy went on
    assert sweep_neighbours(cluster) == ["stressbed-r1-nb-neighbour"]
    assert cluster.namespace("stressbed-r1-nb-neighbour") is None


def test_stressbed_gc_kubernetes_deletes_what_killed_runs_left_on_the_cluster(
    tmp_path: Path, monkeypatch, capsys
):
    cluster = FakeCluster(1, [{}])
    killed = _left_behind(cluster, "stressbed-r1")
    cluster.removed.add("stressbed-r1")
    live = _left_behind(cluster, "stressbed-r2")
    asked: list[Any] = []

    def preflight(options: Any, *, engine: bool = True) -> str:
        asked.append((options.kubeconfig, options.context, engine))
        return "access"

    monkeypatch.setattr(kubernetes, "preflight", preflight)
    monkeypatch.setattr(kubernetes, "kubernetes_api", lambda access: cluster)

    def no_docker() -> None:
        raise ConfigError("stressbed images/gc", "missing Python package docker", "its extra")

    monkeypatch.setattr(engine, "_docker", no_docker)
    config = tmp_path / "kubeconfig"
    args = ["gc", "--kubernetes", "--kubeconfig", str(config), "--context", "kind"]
    assert cli.main(args) == 0
    assert asked == [(config, "kind", False)]  # the cluster only: no Pulumi needed
    assert f"deleted 1 neighbour namespace(s): {killed}" in capsys.readouterr().out
    assert cluster.namespace(live) is not None  # a live run's is its own
    assert cli.main([*args, "--all"]) == 0
    assert cluster.namespace(live) is None


def test_stressbed_gc_kubernetes_without_a_cluster_is_exit_2_in_one_line(tmp_path: Path, capsys):
    code = cli.main(["gc", "--kubernetes", "--kubeconfig", str(tmp_path / "none")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("stressbed: error: ")


def test_stressbed_gc_kubernetes_refused_by_the_api_server_is_exit_2_in_one_line(
    monkeypatch, capsys
):
    cluster = FakeCluster(1, [{}])

    def forbidden(label_selector: str) -> list[Any]:
        raise OSError('namespaces is forbidden: User "ci" cannot list resource "namespaces"')

    cluster.namespaces = forbidden  # type: ignore[method-assign]
    monkeypatch.setattr(kubernetes, "preflight", lambda options, *, engine=True: "access")
    monkeypatch.setattr(kubernetes, "kubernetes_api", lambda access: cluster)
    assert cli.main(["gc", "--kubernetes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "stressbed: error: stressbed gc --kubernetes: got 'OSError: namespaces is forbidden: "
        'User "ci" cannot list resource "namespaces"\'; expected a cluster that answers, and '
        "the right to list namespaces"
    ]
