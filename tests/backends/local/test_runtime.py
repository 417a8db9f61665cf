"""The local stack's controller through its replica runtime alone: with the library's fake
runtime no replica is a process or a container (the load balancer still is), and the
controller still probes, restarts, measures, pauses and stops them with Kubernetes semantics.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stressbed.backends.local import FakeRuntime, LocalOptions, LocalStack, Usage
from stressbed.scenario.faults import pause
from stressbed.stack.spec import Probe, Resources, StackSpec, Target

MI = 2**20
FAST = LocalOptions(
    metrics_window_s=1.0,
    backoff_base_s=0.2,
    backoff_max_s=1.0,
    ready_timeout_s=10.0,
    teardown_grace_s=2.0,
    sample_s=0.2,
)
#: Nothing of this exists: a fake runtime never runs the command (the process runtime would
#: refuse it before anything starts).
NO_COMMAND = ("/nonexistent/target",)


def fake_spec(replicas: int = 2) -> StackSpec:
    return StackSpec(
        target=Target("fake", 8080, command=NO_COMMAND, env=(("DATA", "{data}/x"),)),
        replicas=replicas,
        requests=Resources(100, 64 * MI),
        limits=Resources(1000, 256 * MI),
        # An exec probe: the fake replica answers it (it is never run as a command).
        readiness_probe=Probe("exec", command=("ready",), period_s=0.1, failure_threshold=1),
        termination_grace_period_s=1,
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[LocalStack, FakeRuntime]]:
    runtime = FakeRuntime()
    made = LocalStack(fake_spec(), tmp_path / "stack", FAST, secrets={"S": "v"}, runtime=runtime)
    yield made, runtime
    made.teardown()


def wait_for(what: Callable[[], Any], message: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def seen(stack: LocalStack, kind: str, replica: str) -> dict[str, Any] | None:
    return next(
        (e for e in stack.events if e["event"] == kind and e.get("replica") == replica), None
    )


def test_the_controller_drives_a_fake_runtime_without_a_process_or_a_container(stack):
    stack, runtime = stack
    url = stack.provision()

    assert url.startswith("http://127.0.0.1:")
    assert runtime.prepared
    assert [r.name for r in runtime.launched] == ["fake-0", "fake-1"]
    assert all(r.started for r in runtime.launched)
    # What a replica is given: the spec's env with {data} filled in, the secrets, its address.
    assert runtime.launched[0].env == {
        "DATA": "/data/x",
        "S": "v",
        "PORT": "8080",
        "HOST": "fake",
    }
    assert seen(stack, "created", "fake-0")["fake"] == "fake-0"
    assert stack.enforcement == "not enforced"

    # Its usage is what the runtime reads.
    runtime.running("fake-0").used = Usage(2.0, 5 * MI)
    wait_for(
        lambda: any(row["pods"].get("fake-0", {}).get("memory_mib") == 5 for row in stack.series),
        "fake-0's memory in the usage series",
    )

    # Its exec probe fails: unrouted; passes again: routed.
    runtime.running("fake-1").ready = False
    wait_for(lambda: seen(stack, "unready", "fake-1"), "fake-1 unready")
    runtime.running("fake-1").ready = True
    wait_for(lambda: sum(e["event"] == "ready" for e in stack.events) == 3, "fake-1 ready again")

    # It ends: a crash, a back-off, then a new run of the same replica.
    first = runtime.running("fake-0")
    first.end(3)
    crashed = wait_for(lambda: seen(stack, "crashed", "fake-0"), "fake-0 crashed")
    assert crashed["exit_code"] == 3
    wait_for(lambda: seen(stack, "restarted", "fake-0"), "fake-0 restarted")
    assert first.closed
    assert runtime.running("fake-0") is not first
    assert [r.restarts for r in stack.replicas] == [1, 0]

    # Teardown: SIGTERM to what runs, each one closed, nothing left to drive.
    stack.teardown()
    alive = [r for r in runtime.launched if r is not first]
    assert [r.signals[:1] for r in alive] == [[signal.SIGTERM], [signal.SIGTERM]]
    assert all(r.closed for r in runtime.launched)
    assert "stack-deleted" in [e["event"] for e in stack.events]


def test_a_pause_fault_freezes_a_fake_replica_whole_then_thaws_it(stack):
    stack, runtime = stack
    stack.provision()
    stack.schedule_faults([pause("0.5s", at="0s", replicas=1)], time.time())

    applied = wait_for(
        lambda: next((e for e in stack.events if e["event"] == "fault-applied"), None),
        "the pause applied",
    )
    assert applied["how"] == "the cgroup freezer"
    frozen = [r for r in runtime.launched if r.frozen]
    assert len(frozen) == 1
    assert frozen[0].signals == []  # the freezer, not SIGSTOP
    wait_for(lambda: seen(stack, "unready", frozen[0].name), "the frozen replica unready")
    wait_for(lambda: any(e["event"] == "fault-ended" for e in stack.events), "the pause ended")
    assert not frozen[0].frozen
