"""``stressbed run`` provisioning its stack: the reference agent on the local backend, for real,
and the failure paths through the fake backend."""

from __future__ import annotations

import base64
import html
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.base import FleetOutcome
from stressbed.backends.local import sweep_cgroups
from stressbed.backends.local.balancer_pool import PortInUseError
from stressbed.errors import ConfigError, ProvisionError
from stressbed.fleet.process import TeardownAbandoned
from stressbed.results.aggregates import Aggregate
from stressbed.stack.agent import reference_agent
from stressbed.testing import FakeBackend

from .. import leftovers
from ..conftest import counting_result, needs_k6

TOKEN = "tok-e2e-3f9c1a7d5b"  # must never reach a file the run writes


def stressbed_run(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stressbed",
            "run",
            "--results",
            str(tmp_path / "r"),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "STRESSBED_AGENT_TOKEN": TOKEN, "K6_NO_USAGE_REPORT": "true"},
        start_new_session=True,
    )


def wait_for_load(proc: subprocess.Popen[str]) -> str:
    """Read the run's stderr until its live line shows requests flowing; what it said so far."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "req/s" in line and "     0 req/s" not in line:
            return seen  # load is flowing
    proc.kill()
    pytest.fail(f"the run never got going: {seen}")


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def started_pids(summary: dict) -> list[int]:
    return [e["pid"] for e in summary["events"] if e.get("source") == "stack" and "pid" in e]


@needs_k6
def test_a_local_run_provisions_the_agent_loads_it_and_tears_it_down(tmp_path):
    proc = stressbed_run(tmp_path, "--scenario", "ingest_mix", "--runners", "2", "--duration", "4s")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert "verdict: PASS" in out
    assert "stack local: replicas 2 -> 2" in out
    assert "stressbed: stack: stack ready at http://127.0.0.1:" in err
    run_dir = tmp_path / "r" / "latest"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["verdict"] == "pass"
    assert summary["metrics"]["http_reqs"]["count"] > 0
    assert summary["metrics"]["http_req_failed"]["rate"] == 0
    stack = summary["stack"]
    assert stack["backend"] == "local"
    assert stack["enforcement"].startswith(("cgroup v", "rlimit"))
    assert stack["timeseries"]
    assert {"agent-0", "agent-1"} <= set(stack["timeseries"][-1]["pods"])
    events = summary["events"]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    kinds = [(e["source"], e["event"]) for e in events]
    # The stack is ready before the fleet starts, and gone after it.
    assert kinds.index(("stack", "stack-ready")) < kinds.index(("fleet", "started"))
    assert kinds[-1] == ("stack", "stack-deleted")
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    assert [json.loads(x)["event"] for x in lines] == [e["event"] for e in events]
    pids = started_pids(summary)
    assert len(pids) == 2
    assert not any(alive(p) for p in pids)
    # The agent's token was used (the run passed its checks) yet is written nowhere.
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), path


def children_running(parent: int, marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and marker in args:
            found.append(int(proc.name))
    return found


@needs_k6
def test_a_stack_that_dies_during_the_run_stops_the_fleet_with_exit_3(tmp_path):
    path = tmp_path / "long.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('long', description='long', workloads=[Workload('w', "
        "get('/healthz'), ConstantVUs(vus=2, duration='60s'))])\n"
    )
    proc = stressbed_run(tmp_path, "--scenario", str(path), "--runners", "1")
    seen = wait_for_load(proc)
    (balancer,) = children_running(proc.pid, "stressbed.balancer")
    os.kill(balancer, signal.SIGKILL)
    killed = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, seen + err
    assert time.monotonic() - killed < 40  # well before the scenario's 60 s
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["message"].startswith(
        "the stack failed during the run: the stack's controller failed: the load balancer exited"
    )
    assert "stack-failed" in [e["event"] for e in summary["events"]]
    assert not any(alive(p) for p in started_pids(summary))


@needs_k6
def test_sigint_mid_run_tears_the_stack_down_and_exits_130(tmp_path):
    path = tmp_path / "long.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('long', description='long', workloads=[Workload('w', "
        "get('/healthz'), ConstantVUs(vus=2, duration='60s'))])\n"
    )
    proc = stressbed_run(tmp_path, "--scenario", str(path), "--runners", "2")
    seen = wait_for_load(proc)
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + err
    assert time.monotonic() - interrupted < 15
    assert "verdict: ERROR  interrupted" in out
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["exit_code"] == 130
    assert summary["metrics"]["http_reqs"]["count"] > 0  # partial results kept
    assert summary["events"][-1]["event"] == "stack-deleted"
    assert not any(alive(p) for p in started_pids(summary))
    # Straight after an interrupted run, the next one works.
    again = stressbed_run(
        tmp_path, "--scenario", "ingest_mix", "--runners", "1", "--duration", "2s"
    )
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err


@needs_k6
def test_sigint_while_provisioning_tears_down_and_exits_130(tmp_path):
    proc = stressbed_run(tmp_path, "--scenario", "ingest_mix", "--runners", "1")
    deadline = time.monotonic() + 30
    log = None
    while time.monotonic() < deadline and proc.poll() is None:
        logs = list((tmp_path / "r").glob("*/stack/replicas/agent-0.log"))
        if logs:  # a replica process exists; the stack is not ready yet
            log = logs[0]
            break
        time.sleep(0.01)
    assert log is not None, "no replica was ever started"
    interrupted = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - interrupted < 10
    assert "verdict: ERROR  interrupted" in out
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    kinds = [e["event"] for e in summary["events"]]
    assert "stack-ready" not in kinds
    assert "started" not in [e["event"] for e in summary["events"] if e["source"] == "fleet"]
    assert kinds[-1] == "stack-deleted"
    assert not any(alive(p) for p in started_pids(summary))


@needs_k6  # plan() checks that k6 is there
def test_a_stack_that_cannot_be_provisioned_ends_the_run_with_exit_3(tmp_path):
    backend = FakeBackend(provision_error=ProvisionError("replica agent-0 not ready within 5 s"))
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    report = execute(the_plan, backend=backend)
    assert report.exit_code == 3
    assert report.message == "provisioning failed: replica agent-0 not ready within 5 s"
    assert backend.stacks[0].torn_down
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["verdict"] == "error"
    assert [e["event"] for e in summary["events"]] == ["stack-created", "stack-deleted"]
    assert "<error" in (tmp_path / "r" / "latest" / "junit.xml").read_text()


@needs_k6  # plan() checks that k6 is there
def test_an_interrupt_while_provisioning_tears_down_and_exits_130(tmp_path):
    backend = FakeBackend(provision_error=KeyboardInterrupt())
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    report = execute(the_plan, backend=backend)
    assert report.exit_code == 130
    assert backend.stacks[0].torn_down


@needs_k6  # plan() checks that k6 is there
def test_a_run_against_an_existing_service_provisions_nothing(tmp_path):
    backend = FakeBackend()
    the_plan = plan(
        RunOptions(scenario="ingest_mix", target_url="http://127.0.0.1:9", results=tmp_path)
    )
    assert the_plan.stack is None
    report = execute(the_plan, backend=backend)
    assert backend.stacks == []
    # The fleet loads the given URL, and no secret of a stack is made for it.
    ((spec, env),) = backend.fleets
    assert env == {"TARGET_URL": "http://127.0.0.1:9"}
    assert spec.runners == 1
    assert report.stack == {"backend": "none", "url": "http://127.0.0.1:9"}
    assert report.settings["backend"] is None
    assert report.settings["target_url"] == "http://127.0.0.1:9"


@needs_k6  # plan() checks that k6 is there
def test_an_existing_service_s_own_metrics_are_scraped_when_asked(tmp_path, server):
    page = b"# TYPE agent_queue_points gauge\nagent_queue_points 42\n"
    server.routes["/metrics"] = lambda _req: (200, {"Content-Type": "text/plain"}, page)
    the_plan = plan(
        RunOptions(
            scenario="ingest_mix",
            target_url=server.url,
            target_metrics_url=f"{server.url}/metrics",
            results=tmp_path,
        )
    )
    report = execute(the_plan, backend=FakeBackend())
    assert report.stack["target_metrics"]["series"]["agent_queue_points"][0][1] == 42
    assert report.settings["target_metrics_url"] == f"{server.url}/metrics"
    assert any(r.path == "/metrics" for r in server.received)


def written_anywhere(folder: Path, *secrets_: str) -> list[str]:
    """Each file under ``folder`` that holds one of ``secrets_``."""
    return [
        f"{path}: {secret}"
        for path in folder.rglob("*")
        if path.is_file() and not path.is_symlink()
        for secret in secrets_
        if secret.encode() in path.read_bytes()
    ]


@needs_k6
def test_a_credential_in_the_target_urls_is_used_but_written_nowhere(tmp_path, server):
    password, token = "pw-" + secrets.token_hex(8), "tok-" + secrets.token_hex(8)
    page = b"# TYPE agent_queue_points gauge\nagent_queue_points 42\n"
    server.routes["/metrics"] = lambda req: (
        (200, {"Content-Type": "text/plain"}, page) if token in req.path else (403, {}, b"")
    )
    target = server.url.replace("//", f"//load:{password}@")
    metrics = f"{server.url}/metrics?token={token}&format=text"
    proc = stressbed_run(
        tmp_path,
        *("--scenario", "ingest_mix", "--runners", "1", "--duration", "2s"),
        *("--target-url", target, "--target-metrics-url", metrics),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 1), err
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    # Used: k6 sent the password, the scrape the token ...
    expected = "Basic " + base64.b64encode(f"load:{password}".encode()).decode()
    assert any(r.headers.get("Authorization") == expected for r in server.received)
    assert summary["stack"]["target_metrics"]["series"]["agent_queue_points"]
    # ... and kept nowhere: the keys of the query are, not its values.
    assert summary["settings"]["target_url"] == server.url
    assert summary["stack"]["url"] == server.url
    assert summary["settings"]["target_metrics_url"] == (
        f"{server.url}/metrics?token=REDACTED&format=REDACTED"
    )
    assert written_anywhere(tmp_path / "r", password, token) == []
    assert password not in out + err
    assert token not in out + err


@needs_k6
def test_a_target_url_refused_is_shown_redacted(tmp_path):
    with pytest.raises(ConfigError) as error:
        plan(RunOptions(scenario="ingest_mix", target_url="http://u:pw@h:1/?token=t0k"))
    assert str(error.value) == (
        "--target-url: got 'http://h:1/?token=REDACTED'; expected an http(s) base URL like "
        "http://127.0.0.1:8080, without a query"
    )


@needs_k6
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, "only with --target-url"),
        ({"target_url": "http://127.0.0.1:9", "target_metrics_url": "ftp://x"}, "an http(s) URL"),
    ],
)
def test_target_metrics_without_a_target_or_of_no_url_are_refused(tmp_path, options, expected):
    with pytest.raises(ConfigError) as error:
        plan(
            RunOptions(
                scenario="ingest_mix",
                results=tmp_path,
                **{"target_metrics_url": "http://127.0.0.1:9/metrics", **options},
            )
        )
    assert error.value.field == "--target-metrics-url"
    assert expected in error.value.expected


@needs_k6
def test_a_profile_whose_thresholds_cannot_hold_fails_the_run_with_exit_1(tmp_path):
    (tmp_path / "stressbed.yaml").write_text(
        "version: 1\n"
        "common: {scenario: ingest_mix, runners: 2, duration: 3s}\n"
        "profiles:\n"
        "  strict:\n"
        "    stack: {replicas: 1, autoscaler: {min_replicas: 1, max_replicas: 2}}\n"
        "    thresholds: {http_req_duration: ['p(95)<0.001']}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--profile", "strict"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        stdin=subprocess.DEVNULL,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    assert "FAIL http_req_duration p(95)<0.001" in proc.stdout
    assert "verdict: FAIL  thresholds failed: http_req_duration p(95)<0.001" in proc.stdout
    assert "stack local: replicas 1 -> 1" in proc.stdout
    run_dir = tmp_path / "results" / "latest"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["settings"]["profile"] == "strict"
    assert summary["settings"]["sources"]["thresholds.http_req_duration"].startswith(
        "profile strict"
    )
    failed = [t for t in summary["thresholds"] if not t["ok"]]
    assert [t["expression"] for t in failed] == ["p(95)<0.001"]
    junit = (run_dir / "junit.xml").read_text()
    assert junit.count("<failure") == 1
    for name in ("summary.json", "junit.xml", "events.jsonl", "bundle/script.js"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "runners" / "0" / "result.json").is_file()
    assert (run_dir / "stack" / "replicas" / "agent-0.log").is_file()


@needs_k6  # plan() checks that k6 is there
def test_a_threshold_on_a_request_that_never_ran_fails_the_run_as_no_data(tmp_path):
    (tmp_path / "s.py").write_text(
        "from stressbed import *\n"
        "flow = mix((get('/a', name='a'), 8), (get('/b', name='b'), 1), (get('/c', name='c'), 1))\n"
        "scenario = Scenario('s', description='s', workloads=[Workload('w', flow, "
        "ConstantVUs(vus=1, duration='1s'))], thresholds=[latency('p(95) < 1s', "
        "request='a'), latency('p(95) < 1s', request='b'), latency('p(99) < 1s', "
        "request='c', optional=True)])\n"
    )
    the_plan = plan(RunOptions(scenario=str(tmp_path / "s.py"), results=tmp_path / "r"))
    canned = counting_result(0, 5, 100.0, 101.0)
    canned.count, canned.segment = 1, "0:1"
    agg = Aggregate("trend")
    agg.add(3.0)
    canned.aggregates["http_req_duration{name:a}"] = agg
    report = execute(the_plan, backend=FakeBackend([canned]))
    assert report.exit_code == 1
    assert report.message == "thresholds failed: http_req_duration{name:b} p(95)<1000 (no data)"
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    outcomes = {t["metric"]: (t["outcome"], t["ok"], t["observed"]) for t in summary["thresholds"]}
    assert outcomes == {
        "http_req_duration{name:a}": ("ok", True, 3.0),
        "http_req_duration{name:b}": ("no data", False, None),
        "http_req_duration{name:c}": ("no data", True, None),
    }
    junit = (tmp_path / "r" / "latest" / "junit.xml").read_text()
    assert junit.count("<failure") == 1
    assert "no data: nothing of http_req_duration{name:b} was measured" in junit


@needs_k6  # plan() checks that k6 is there
def test_summary_json_says_which_request_names_had_no_latency_of_their_own(tmp_path):
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    canned = counting_result(0, 5, 100.0, 101.0)
    canned.count, canned.segment = 1, "0:1"
    canned.names_folded = ["/elsewhere"]
    execute(the_plan, backend=FakeBackend([canned]))
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["names_folded"] == {"names": ["/elsewhere"], "more": False}
    canned.names_folded = []
    execute(the_plan, backend=FakeBackend([canned]))
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["names_folded"] == {"names": [], "more": False}  # none were


def failing_fleet() -> FleetOutcome:
    raise RuntimeError("the fleet's own bug")


@needs_k6  # plan() checks that k6 is there
@pytest.mark.parametrize(
    ("backend", "code", "message"),
    [
        (
            FakeBackend(provision_error=PortInUseError("127.0.0.1", 8080)),
            2,
            "provisioning failed: --port: got 8080; expected a free port on 127.0.0.1: another "
            "process listens on it (stop it, or pass --port 0 to take any free port)",
        ),
        (
            FakeBackend(provision_error=OSError(24, "Too many open files")),
            3,
            "provisioning failed: OSError: [Errno 24] Too many open files",
        ),
        (
            FakeBackend(outcome=failing_fleet),
            3,
            "the fleet failed: RuntimeError: the fleet's own bug",
        ),
        (
            FakeBackend(teardown_error=RuntimeError("cgroup busy")),
            3,
            "RuntimeError: cgroup busy",
        ),
    ],
)
def test_every_run_that_started_writes_its_summary_whatever_failed(
    tmp_path, backend, code, message
):
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    report = execute(the_plan, backend=backend)
    assert (report.exit_code, report.message) == (code, message)
    assert backend.stacks[0].torn_down
    run_dir = tmp_path / "r" / "latest"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["verdict"], summary["exit_code"], summary["message"]) == (
        "error",
        code,
        message,
    )
    assert (run_dir / "junit.xml").is_file()
    assert (run_dir / "events.jsonl").is_file()
    # The report too, with why the run failed at its top.
    assert report.report_error is None
    assert html.escape(message) in (run_dir / "report.html").read_text()
    assert not list(run_dir.glob(".*.tmp"))


@needs_k6  # plan() checks that k6 is there
def test_an_abandoned_teardown_says_what_is_left(tmp_path):
    backend = FakeBackend(provision_error=KeyboardInterrupt(), teardown_error=TeardownAbandoned())
    report = execute(
        plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r")), backend=backend
    )
    assert report.exit_code == 130
    assert report.message == "interrupted; teardown abandoned; left: nothing (a fake stack)"
    assert (tmp_path / "r" / "latest" / "summary.json").is_file()


@needs_k6
def test_a_stack_whose_replicas_exit_at_once_ends_with_exit_3_naming_the_replica(tmp_path):
    crashing = replace(
        reference_agent(),
        target=replace(
            reference_agent().target, command=("sh", "-c", "echo 'cannot open config'; exit 3")
        ),
    )
    options = RunOptions(scenario="ingest_mix", results=tmp_path / "r", stack=crashing)
    started = time.monotonic()
    report = execute(plan(options))
    assert time.monotonic() - started < 60  # no waiting out the 90 s ready timeout
    assert report.exit_code == 3
    assert report.message.startswith(
        "provisioning failed: replica agent-0 ended 3 times before it was ever ready "
        "(last: exited with code 3); log: "
    )
    assert report.message.endswith("agent-0.log: cannot open config")
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert (summary["exit_code"], summary["message"]) == (3, report.message)


@needs_k6  # plan() checks that k6 is there
def test_what_teardown_could_not_do_is_kept_beside_the_runs_own_failure(tmp_path):
    backend = FakeBackend(
        provision_error=ProvisionError("replica agent-0 not ready within 5 s"),
        teardown_error=ProvisionError("pulumi destroy failed: timeout; finish with `x`"),
    )
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    report = execute(the_plan, backend=backend)
    assert report.exit_code == 3
    assert report.message == (
        "provisioning failed: replica agent-0 not ready within 5 s; teardown: pulumi destroy "
        "failed: timeout; finish with `x`"
    )


FAKE_TARGET = Path(__file__).parents[1] / "backends" / "local" / "fake_target.py"
#: A scenario whose one replica ignores SIGTERM: its teardown waits out the grace period
#: (10 s locally), long enough for a kill to come while it waits.
STUBBORN = (
    "import sys\n"
    "from stressbed import *\n"
    "scenario = Scenario('stubborn', description='stubborn', workloads=[Workload('w', "
    "get('/healthz'), ConstantVUs(vus=2, duration='60s'))])\n"
    f"stack = {{'target': {{'command': [sys.executable, {str(FAKE_TARGET)!r}], "
    "'env': {'FAKE_IGNORE_TERM': '1'}}, 'replicas': 1, 'autoscaler': None, "
    "'termination_grace_period_s': 30}\n"
)


@needs_k6
def test_a_run_killed_during_its_teardown_leaves_a_summary_with_verdict_error(tmp_path):
    # A CI cancel: SIGINT, then SIGKILL 5 s later. The replica ignores SIGTERM, so the
    # teardown waits out its grace period (10 s locally): the kill comes while it waits.
    path = tmp_path / "stubborn.py"
    path.write_text(STUBBORN)
    proc = stressbed_run(tmp_path, "--scenario", str(path), "--runners", "1")
    seen = wait_for_load(proc)
    (replica,) = children_running(proc.pid, "fake_target.py")
    proc.send_signal(signal.SIGINT)
    time.sleep(5)
    assert alive(replica), "the teardown was over before the kill: the test proves nothing"
    proc.kill()
    proc.communicate(timeout=30)
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert (summary["verdict"], summary["exit_code"]) == ("error", 130), seen
    assert summary["message"] == "interrupted, tearing down"
    assert summary["metrics"]["http_reqs"]["count"] > 0  # what was merged so far
    assert not list((tmp_path / "r" / "latest").glob(".*.tmp"))
    nothing_left_of(proc.pid, replica)


def nothing_left_of(killed: int, replica: int) -> None:
    """The replica of stressbed ``killed`` (SIGKILL) ended with it, and its cgroup, which the
    next run's sweep (or stressbed gc) removes, is gone once swept."""
    deadline = time.monotonic() + 10
    while alive(replica) and time.monotonic() < deadline:  # its parent-death signal
        time.sleep(0.05)
    assert not alive(replica)
    sweep_cgroups()
    mine = f"stressbed-{killed}-"
    assert [g for g in leftovers.replica_cgroups() if g.name.startswith(mine)] == []


@needs_k6  # plan() checks that k6 is there
def test_the_summary_before_the_teardown_says_error_with_what_was_merged(tmp_path):
    seen: list[dict] = []

    def look() -> None:  # what a kill during the teardown would leave
        seen.append(json.loads((tmp_path / "r" / "latest" / "summary.json").read_text()))

    now = time.time()
    backend = FakeBackend([counting_result(0, 10, now - 2, now)], on_teardown=look)
    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r"))
    report = execute(the_plan, backend=backend)
    (provisional,) = seen
    assert (provisional["verdict"], provisional["exit_code"]) == ("error", 130)
    assert provisional["message"].startswith("interrupted, tearing down; the run had ended: ")
    assert provisional["metrics"]["http_reqs"]["count"] == 10
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert (summary["verdict"], summary["exit_code"]) == (report.verdict.value, report.exit_code)
