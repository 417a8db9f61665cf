"""The local backend with real processes, probes, routing, cgroups and the HPA loop.

The target is tests/fake_target.py, whose probe answers the tests flip through a control
file. All traffic stays on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed.backends.local import LocalOptions, LocalStack, sweep_cgroups
from stressbed.backends.local.balancer_pool import PortInUseError, per_worker
from stressbed.errors import ConfigError, ProvisionError, TeardownError
from stressbed.stack.spec import (
    Autoscaler,
    LimitRange,
    Metrics,
    Probe,
    Quota,
    Resources,
    ScalePolicy,
    StackSpec,
    Target,
)

FAKE = str(Path(__file__).with_name("fake_target.py"))
MI = 2**20
FAST = LocalOptions(
    hpa_sync_s=1.0,
    metrics_window_s=2.0,
    backoff_base_s=0.3,
    backoff_max_s=2.0,
    ready_timeout_s=20.0,
    teardown_grace_s=3.0,
    sample_s=0.5,
)


def fake_spec(control: Path, **changes: Any) -> StackSpec:
    env = {"FAKE_CONTROL": str(control), **changes.pop("env", {})}
    spec = StackSpec(
        target=Target(
            "fake",
            8080,
            command=(sys.executable, FAKE),
            env=tuple(sorted(env.items())),
        ),
        replicas=2,
        requests=Resources(100, 64 * MI),
        limits=Resources(1000, 256 * MI),
        startup_probe=Probe("http", "/healthz", period_s=0.2, failure_threshold=100),
        readiness_probe=Probe("http", "/readyz", period_s=0.2, failure_threshold=1),
        liveness_probe=Probe("http", "/healthz", period_s=0.2, timeout_s=0.5, failure_threshold=2),
        termination_grace_period_s=5,
    )
    return replace(spec, **changes)


class Control:
    """The fake target's control file: what its probes answer, per port or for all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.table: dict[str, dict[str, Any]] = {}
        self.write()

    def set(self, key: str | int, **state: Any) -> None:
        self.table.setdefault(str(key), {}).update(state)
        self.write()

    def write(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.table))
        tmp.replace(self.path)


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[Callable[..., LocalStack]]:
    made: list[LocalStack] = []

    def make(spec: StackSpec, options: LocalOptions = FAST) -> LocalStack:
        stack = LocalStack(spec, tmp_path / f"stack{len(made)}", options)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.teardown()
        assert not alive(stack_pids(stack)), "a process outlived teardown"


def stack_pids(stack: LocalStack) -> list[int]:
    return [e["pid"] for e in stack.events if "pid" in e]


def alive(pids: list[int]) -> list[int]:
    living = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.append(pid)
    return living


def wait_for(what: Callable[[], Any], timeout: float = 15.0, message: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message or what}")


def events(stack: LocalStack, replica: str | None = None) -> list[str]:
    return [e["event"] for e in stack.events if replica is None or e.get("replica") == replica]


def has_sequence(seen: list[str], expected: list[str]) -> bool:
    """``expected`` occurs in ``seen`` in order (other events may come between)."""
    it = iter(seen)
    return all(any(e == x for x in it) for e in expected)


def get(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


def port_of(stack: LocalStack, name: str) -> int:
    return next(r.port for r in stack.replicas if r.name == name)


# -- probes and restarts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "setup", "expected"),
    [
        (
            "startup gates readiness until the target listens",
            ({"FAKE_LISTEN_AFTER_S": "1.0"}, None),
            ["created", "started", "ready"],
        ),
        (
            "readiness failure takes it out of routing, no restart",
            ({}, {"ready": False}),
            ["created", "started", "ready", "unready"],
        ),
        (
            "liveness failure: SIGTERM, exit, back-off, restart",
            ({}, {"live": False}),
            [
                "created",
                "ready",
                "liveness-failed",
                "terminating",
                "stopped",
                "back-off",
                "restarted",
            ],
        ),
        (
            "a liveness probe that times out counts as a failure",
            ({}, {"hang_live": True}),
            ["ready", "liveness-failed", "terminating", "stopped", "back-off", "restarted"],
        ),
        (
            "a crash is restarted after a back-off",
            ({"FAKE_EXIT_AFTER_S": "1.5"}, None),
            ["created", "ready", "crashed", "back-off", "restarted"],
        ),
    ],
)
def test_probe_semantics(stacks, control, case, setup, expected):
    env, after_ready = setup
    stack = stacks(fake_spec(control.path, replicas=1, env=env))
    stack.provision()
    if after_ready is not None:
        control.set(port_of(stack, "fake-0"), **after_ready)
    wait_for(lambda: has_sequence(events(stack, "fake-0"), expected), message=case)
    if "readiness" in case:
        seen = events(stack, "fake-0")
        assert "terminating" not in seen, seen
        assert "restarted" not in seen, seen
        assert stack.replicas[0].restarts == 0


def test_liveness_kill_waits_the_grace_period_then_sigkills(stacks, control):
    # A target that ignores SIGTERM: the kubelet's SIGKILL comes after the grace period.
    spec = fake_spec(
        control.path, replicas=1, termination_grace_period_s=1, env={"FAKE_IGNORE_TERM": "1"}
    )
    stack = stacks(spec)
    stack.provision()
    control.set("*", live=False)
    wait_for(lambda: "restarted" in events(stack, "fake-0"))
    seen = [e for e in stack.events if e.get("replica") == "fake-0"]
    terminating = next(e for e in seen if e["event"] == "terminating")
    killed = next(e for e in seen if e["event"] == "killed")
    stopped = next(e for e in seen if e["event"] == "stopped")
    assert 0.9 <= killed["t"] - terminating["t"] <= 3.0
    assert stopped["reason"] == "killed by SIGKILL"


def test_crash_loop_back_off_doubles(stacks, control):
    stack = stacks(fake_spec(control.path, replicas=1, env={"FAKE_EXIT_AFTER_S": "0.5"}))
    stack.provision()
    wait_for(lambda: events(stack).count("back-off") >= 3, timeout=30)
    delays = [e["delay_s"] for e in stack.events if e["event"] == "back-off"][:3]
    assert delays == [0.3, 0.6, 1.2]
    crashed = next(e for e in stack.events if e["event"] == "crashed")
    assert crashed["exit_code"] == 3


def test_a_controller_that_fails_while_restarting_still_tears_down_cleanly(
    stacks, control, monkeypatch
):
    stack = stacks(fake_spec(control.path, replicas=1, env={"FAKE_EXIT_AFTER_S": "0.5"}))
    stack.provision()
    wait_for(lambda: "back-off" in events(stack), timeout=30)

    def no_port(launch: Any) -> Any:  # the process runtime's free port, all taken
        raise RuntimeError("no port left")

    monkeypatch.setattr(stack.runtime, "launch", no_port)
    wait_for(lambda: "stack-deleted" in events(stack), timeout=30)
    seen = events(stack)
    after = seen[seen.index("controller-failed") :]
    # The replica that could not be restarted was never running: nothing to signal or stop.
    assert after == ["controller-failed", "stack-deleted"]
    with pytest.raises(ProvisionError, match="controller failed: no port left"):
        stack.teardown()


def test_a_stack_that_never_gets_ready_fails_provisioning_with_the_reason(stacks, control):
    control.set("*", ready=False)
    stack = stacks(fake_spec(control.path, replicas=1), replace(FAST, ready_timeout_s=2.0))
    with pytest.raises(ProvisionError, match=r"replica fake-0 not ready within 2 s.*HTTP 503"):
        stack.provision()


# -- routing ----------------------------------------------------------------------------


def test_readiness_routes_new_connections_and_keeps_in_flight_requests(stacks, control):
    stack = stacks(fake_spec(control.path))
    url = stack.provision()
    # A slow request in flight on one replica...
    slow: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: slow.update(get(f"{url}/slow?s=2")))
    thread.start()
    busy = wait_for(
        lambda: next((r for r in stack.replicas if r.process and _has_conn(r.port)), None),
        message="the slow request to reach a replica",
    )
    # ...then that replica turns unready: it leaves routing, the request still completes.
    control.set(busy.port, ready=False)
    wait_for(lambda: "unready" in events(stack, busy.name))
    other = next(r.port for r in stack.replicas if r is not busy)
    # The balancer hears of it a moment later: from then on only the other replica answers.
    wait_for(
        lambda: {get(f"{url}/whoami")["port"] for _ in range(20)} == {other},
        message="new connections to leave the unready replica",
    )
    thread.join(timeout=10)
    assert slow == {"port": busy.port, "slept": 2.0}
    # Ready again: it takes new connections again.
    control.set(busy.port, ready=True)
    wait_for(lambda: events(stack, busy.name)[-1] == "ready")
    everyone = {r.port for r in stack.replicas}
    wait_for(
        lambda: {get(f"{url}/whoami")["port"] for _ in range(20)} == everyone,
        message="the ready replica to take new connections again",
    )


def _has_conn(port: int) -> bool:
    """An established TCP connection to 127.0.0.1:port (from /proc/net/tcp)."""
    needle = f"0100007F:{port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == needle and fields[3] == "01":
            return True
    return False


def test_no_ready_replica_refuses_connections(stacks, control):
    stack = stacks(fake_spec(control.path, replicas=1))
    url = stack.provision()
    control.set("*", ready=False)
    wait_for(lambda: "unready" in events(stack))
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(f"{url}/whoami", timeout=3)


def test_each_replica_s_open_connections_and_open_file_limit_are_recorded(stacks, control):
    # Sized for one connection more than a worker carries: two balancer workers on its port.
    stack = stacks(fake_spec(control.path), replace(FAST, connections=per_worker() + 1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))  # as many shells start
    try:
        url = stack.provision()  # the balancer's workers and the replicas inherit 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    port = int(url.rsplit(":", 1)[1])
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(6)]
    try:

        def counted() -> dict[str, Any] | None:
            rows = [
                row
                for row in stack.series
                if sum(pod.get("connections", 0) for pod in row["pods"].values()) == 6
            ]
            return rows[-1] if rows else None

        row = wait_for(counted, message="the 6 held connections in the stack's series")
        assert all("connections" in row["pods"][name] for name in ("fake-0", "fake-1")), row
    finally:
        for sock in held:
            sock.close()
    report = stack.report()
    assert report["replicas"]["nofile"] == hard  # raised from whatever soft limit they had
    assert report["balancer"] == {
        "workers": 2,
        "expected_connections": per_worker() + 1,
        "connections_per_worker": per_worker(),
        "nofile": hard,
    }
    assert [e["balancer_workers"] for e in stack.events if e["event"] == "stack-created"] == [2]


def test_a_taken_port_is_one_clear_error(stacks, control):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stack = stacks(fake_spec(control.path), replace(FAST, port=port))
        with pytest.raises(PortInUseError, match=f"--port: got {port}; expected a free port"):
            stack.provision()
        assert stack.replicas == []


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("/nonexistent/agent",), "got '/nonexistent/agent'; expected an executable that exists"),
        (("no-such-program-xyz",), "got 'no-such-program-xyz'; expected an executable that exists"),
        ((FAKE,), "expected an executable file (chmod +x it, or fix the path)"),
    ],
)
def test_a_command_that_cannot_start_is_refused_before_anything_starts(
    stacks, control, command, message
):
    spec = fake_spec(control.path)
    stack = stacks(replace(spec, target=replace(spec.target, command=command)))
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        stack.provision()
    assert error.value.field == "stack.target.command[0]"
    assert stack.replicas == []
    assert stack.events == []


def test_a_process_that_cannot_start_is_a_crash_loop_not_a_controller_failure(
    stacks, control, tmp_path
):
    # Executable, but no interpreter line: exec fails (ENOEXEC) on every start.
    script = tmp_path / "no-shebang"
    script.write_text("echo hi\n")
    script.chmod(0o755)
    spec = fake_spec(control.path, replicas=1)
    stack = stacks(
        replace(spec, target=replace(spec.target, command=(str(script),))),
        replace(FAST, ready_timeout_s=2.0),
    )
    with pytest.raises(ProvisionError, match="replica fake-0 ended 3 times before it was ever"):
        stack.provision()
    kinds = events(stack, "fake-0")
    assert has_sequence(kinds, ["start-failed", "crashed", "back-off", "start-failed"])
    assert "controller-failed" not in events(stack)


# -- limits, autoscaling and quota ------------------------------------------------------


def test_memory_limit_oom_kill_is_reported_as_such(stacks, control):
    spec = fake_spec(control.path, replicas=1, limits=Resources(1000, 64 * MI))
    stack = stacks(spec)
    url = stack.provision()
    if not stack.enforcement.startswith("cgroup"):
        pytest.skip(f"no writable cgroups here: {stack.enforcement}")
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(f"{url}/alloc?mb=200")
    wait_for(lambda: "restarted" in events(stack, "fake-0"))
    oom = next(e for e in stack.events if e["event"] == "oom-killed")
    assert oom["reason"] == "OOMKilled"
    assert "crashed" not in events(stack)


def test_without_cgroups_memory_is_an_rlimit_and_the_run_says_so(stacks, control):
    spec = fake_spec(control.path, replicas=1, limits=Resources(1000, 128 * MI))
    stack = stacks(spec, replace(FAST, cgroups=False))
    url = stack.provision()
    assert stack.enforcement == "rlimit (memory as RLIMIT_DATA; CPU limits advisory)"
    limits = next(e for e in stack.events if e["event"] == "limits")
    assert limits["cgroups"] is False
    process = stack.replicas[0].process
    assert process is not None
    assert process.pid is not None
    line = next(
        x for x in Path(f"/proc/{process.pid}/limits").read_text().splitlines() if "data" in x
    )
    assert line.split()[3:5] == [str(128 * MI), str(128 * MI)]
    # Allocating past it fails inside the replica instead of growing without bound.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        get(f"{url}/alloc?mb=256")
    assert get(f"{url}/whoami")["port"] == stack.replicas[0].port


def test_limit_range_defaults_become_the_replicas_limits(stacks, control):
    spec = fake_spec(
        control.path,
        replicas=1,
        requests=Resources(),
        limits=Resources(),
        limit_range=LimitRange(default=Resources(300, 96 * MI), default_request=Resources(50)),
    )
    stack = stacks(spec)
    stack.provision()
    assert stack.spec.limits == Resources(300, 96 * MI)
    assert stack.spec.requests == Resources(50, 96 * MI)
    process = stack.replicas[0].process
    assert process is not None
    if process.group is None:
        pytest.skip(f"no writable cgroups here: {stack.enforcement}")
    group = process.group
    if group.version == 1:
        memory = int((group.dirs["memory"] / "memory.limit_in_bytes").read_text())
        quota = int((group.dirs["cpu"] / "cpu.cfs_quota_us").read_text())
    else:
        memory = int((group.dirs[""] / "memory.max").read_text())
        quota = int((group.dirs[""] / "cpu.max").read_text().split()[0])
    assert memory == 96 * MI
    assert quota == 30_000  # 300m of a 100 ms period


def hpa_spec(control: Path, **hpa: Any) -> StackSpec:
    autoscaler = Autoscaler(
        min_replicas=1,
        max_replicas=3,
        cpu_utilization=50,
        scale_up_stabilization_s=0,
        scale_down_stabilization_s=3,
        scale_up_policies=(ScalePolicy("Pods", 4, 15),),
        scale_down_policies=(ScalePolicy("Percent", 100, 15),),
    )
    return fake_spec(control, replicas=1, autoscaler=replace(autoscaler, **hpa))


def burn(url: str, seconds: float, workers: int = 3) -> None:
    """Bounded CPU load through the stack: `workers` clients asking for 0.1 s spins."""
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            with __import__("contextlib").suppress(OSError):
                get(f"{url}/burn?s=0.1", timeout=5)

    threads = [threading.Thread(target=client) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_hpa_scales_out_under_load_and_in_after(stacks, control):
    stack = stacks(hpa_spec(control.path))
    url = stack.provision()
    burn(url, 6.0)
    wait_for(lambda: any(e["event"] == "scaled" and e["to"] > 1 for e in stack.events))
    wait_for(
        lambda: any(e["event"] == "scaled" and e["to"] == 1 for e in stack.events),
        timeout=30,
        message="scale-in once the load stopped",
    )
    wait_for(lambda: "deleted" in events(stack))
    scaled = [e for e in stack.events if e["event"] == "scaled"]
    up, down = scaled[0], scaled[-1]
    assert up["from"] == 1
    assert up["to"] > 1
    assert up["reason"].startswith("cpu")
    assert down["to"] == 1
    assert down["t"] - up["t"] >= 3
    kinds = [e["event"] for e in stack.events]
    first_up = kinds.index("scaled")
    assert "created" in kinds[first_up:]
    assert has_sequence(kinds[first_up:], ["scaled", "created", "scaled", "terminating", "deleted"])
    assert stack.series
    assert max(row["replicas"] for row in stack.series) == up["to"]


def test_a_scale_up_beyond_the_quota_is_refused_and_recorded(stacks, control, monkeypatch):
    spec = hpa_spec(control.path, min_replicas=1, max_replicas=3)
    spec = replace(spec, quota=Quota(pods=2))
    stack = stacks(spec)
    url = stack.provision()
    burn(url, 5.0)
    denied = wait_for(lambda: [e for e in stack.events if e["event"] == "quota-denied"])
    assert denied[0]["reason"] == "exceeded quota: pods, requested 1, used 2, limited 2"
    # Three more syncs of the HPA while the load goes on: the scale target stays at 3, the
    # denial is retried but said once.
    hpa = stack._hpa
    assert hpa is not None
    syncs: list[int] = []
    decide = hpa.decide

    def counted(*args: Any, **kwargs: Any) -> Any:
        syncs.append(1)
        return decide(*args, **kwargs)

    monkeypatch.setattr(hpa, "decide", counted)
    burn(url, 5.0)
    wait_for(lambda: len(syncs) >= 3, timeout=30)
    kinds = events(stack)
    assert kinds.count("quota-denied") == 1
    assert [e["to"] for e in stack.events if e["event"] == "scaled"].count(3) == 1
    assert max(row["replicas"] for row in stack.series) <= 2


# -- teardown ---------------------------------------------------------------------------

HOLDER = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_stack import fake_spec, FAST
from stressbed.backends.local import LocalStack
stack = LocalStack(fake_spec(Path({control!r})), Path({work!r}), FAST)
stack.provision()
print(json.dumps({{"pids": [e["pid"] for e in stack.events if "pid" in e],
                  "balancer": stack._balancer.pids}}), flush=True)
time.sleep(120)
"""


def test_kill_9_of_stressbed_leaves_no_replica_behind(tmp_path, control):
    code = HOLDER.format(
        tests=str(Path(__file__).parent), control=str(control.path), work=str(tmp_path / "w")
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert holder.stdout is not None
        line = holder.stdout.readline()
        started = json.loads(line)
        pids = [*started["pids"], *started["balancer"]]
        assert len(alive(pids)) == 3
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        wait_for(lambda: not alive(pids), timeout=5, message="replicas to die with stressbed")
        # Its replicas' cgroups stay until a sweep (the next run's, or stressbed gc) removes
        # them, in every hierarchy (the freezer's too).
        from ... import leftovers  # noqa: PLC0415 - HOLDER imports this module top-level

        mine = f"stressbed-{holder.pid}-"
        sweep_cgroups()
        assert [g for g in leftovers.replica_cgroups() if g.name.startswith(mine)] == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_teardown_stops_everything_and_records_it(stacks, control):
    stack = stacks(fake_spec(control.path))
    stack.provision()
    pids = stack_pids(stack)
    stack.teardown()
    assert not alive(pids)
    assert events(stack)[-1] == "stack-deleted"
    assert events(stack).count("stopped") == 2
    assert os.path.exists(stack.work_dir / "replicas" / "fake-0.log")


def test_teardown_kills_every_replica_even_when_the_controller_hangs(stacks, control, monkeypatch):
    stack = stacks(fake_spec(control.path, replicas=2), replace(FAST, teardown_grace_s=0.5))
    stack.provision()
    pids = stack_pids(stack)
    assert len(alive(pids)) == 2
    hung = threading.Event()

    def hang() -> None:
        hung.set()
        time.sleep(60)  # a controller stuck in its last step (it is a daemon thread)

    monkeypatch.setattr(stack, "_stop_everything", hang)
    monkeypatch.setattr("stressbed.backends.local.stack.CONTROLLER_JOIN_MARGIN_S", 0.5)
    stack.teardown()
    assert hung.is_set()
    assert alive(pids) == []
    assert "teardown-forced" in events(stack)


def test_a_replica_inherits_only_the_allow_listed_environment(stacks, control, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-leak")
    monkeypatch.setenv("STRESSBED_AGENT_ADMIN_TOKEN", "turns-on-faults")
    monkeypatch.setenv("TZ", "UTC")
    stack = stacks(fake_spec(control.path, replicas=1, env={"FROM_SPEC": "yes"}))
    stack.provision()
    (pid,) = stack_pids(stack)
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    env = dict(item.decode().split("=", 1) for item in raw if b"=" in item)
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "STRESSBED_AGENT_ADMIN_TOKEN" not in env
    assert (env["FROM_SPEC"], env["TZ"], env["PATH"]) == ("yes", "UTC", os.environ["PATH"])
    assert env["PORT"] == str(stack.replicas[0].port)


def test_every_replica_s_own_metrics_are_scraped_each_second(stacks, control):
    spec = fake_spec(control.path, metrics=Metrics(series=("fake_replicas", "fake_pages_served")))
    stack = stacks(spec)
    stack.provision()

    def both_counted() -> bool:
        points = stack.report()["target_metrics"]["series"].get("fake_replicas", [])
        return any(value == 2 for _, value in points)  # a second when both replicas said 1

    wait_for(both_counted, message="no second with both replicas' metrics")
    wait_for(
        lambda: stack.report()["target_metrics"]["series"].get("fake_pages_served /s"),
        message="no rate of the counter",
    )
    stack.teardown()
    series = stack.report()["target_metrics"]["series"]
    # Each replica serves one page a second to the scraper: about 2 pages/s for the stack.
    rates = [value for _, value in series["fake_pages_served /s"]]
    assert all(0 < rate < 10 for rate in rates)


def test_a_teardown_step_that_raises_or_hangs_does_not_keep_the_replicas_up(
    stacks, control, monkeypatch
):
    stack = stacks(fake_spec(control.path, replicas=2), replace(FAST, teardown_grace_s=0.5))
    stack.provision()
    pids = stack_pids(stack)
    assert len(alive(pids)) == 2

    def broken() -> None:
        raise RuntimeError("tc: no such device")

    def hang() -> None:
        time.sleep(60)

    monkeypatch.setattr(stack._faults, "undo_all", broken)  # the controller's own call too
    monkeypatch.setattr(stack._probes, "close", hang)
    monkeypatch.setattr("stressbed.backends._teardown.STEP_TIMEOUT_S", 0.5)
    with pytest.raises(TeardownError) as raised:
        stack.teardown()
    assert raised.value.failures[-2:] == [
        "undo the faults: RuntimeError: tc: no such device",
        "stop the probes: did not finish within 0.5 s",
    ]
    assert alive(pids) == []
    assert stack._balancer is None  # the last step ran
    failed = [e["step"] for e in stack.events if e["event"] == "teardown-step-failed"]
    assert failed == ["undo the faults", "stop the probes"]
