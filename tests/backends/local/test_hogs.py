"""CPU and memory faults on the local backend: a hog inside the replica's own cgroup, so the
replica's limits bound it; killed at the fault's end; skipped, saying why, without cgroups."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import fault
from stressbed.backends.local import LocalStack
from stressbed.backends.local._cgroups import create
from stressbed.scenario.faults import check_faults
from stressbed.stack.spec import Resources

from .test_stack import FAST, MI, Control, fake_spec


def _cgroups_here() -> bool:
    group = create("stressbed-hog-probe", 100, 64 * MI)
    if group is None:
        return False
    group.remove()
    return True


needs_cgroups = pytest.mark.skipif(not _cgroups_here(), reason="no cgroup this user may create")


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def event(stack: LocalStack, kind: str) -> dict[str, Any] | None:
    return next((e for e in stack.events if e["event"] == kind), None)


def hogged(tmp_path: Path, control: Control, item: Any, **spec: Any) -> LocalStack:
    stack = LocalStack(replace(fake_spec(control), replicas=1, **spec), tmp_path / "s", FAST)
    stack.provision()
    (named,) = check_faults([item], 60_000)
    stack.schedule_faults([named], time.time())
    return stack


@needs_cgroups
def test_a_cpu_hog_runs_inside_the_replica_and_its_quota_holds_both(tmp_path, control):
    stack = hogged(
        tmp_path,
        control,
        fault.cpu(share=1.0, at="0s", lasting="30s"),
        limits=Resources(200, 256 * MI),
    )
    try:
        applied = wait_for(lambda: event(stack, "fault-applied"), "the hog")
        (replica,) = stack.replicas
        group = replica.process.group
        assert len(group.pids()) >= 2  # the replica and its hog, in one cgroup
        before = group.cpu_seconds()
        time.sleep(2.0)
        used_m = (group.cpu_seconds() - before) / 2.0 * 1000
        # The 200m quota holds the replica and the hog together (a margin for accounting).
        assert used_m < 200 * 1.5
        assert used_m > 50  # and the hog does burn
        assert applied["how"] == "a CPU hog in the replica's cgroup"
    finally:
        stack.teardown()
    ended = event(stack, "fault-ended")
    assert ended["reason"] == "teardown"  # undone before the replicas stopped


@needs_cgroups
def test_a_memory_hog_counts_against_the_replicas_memory_and_ends_with_the_fault(tmp_path, control):
    stack = hogged(tmp_path, control, fault.memory("96Mi", at="0s", lasting="3s"))
    try:
        (replica,) = stack.replicas
        group = replica.process.group
        base = group.memory_bytes()
        wait_for(lambda: event(stack, "fault-applied"), "the hog")
        wait_for(lambda: group.memory_bytes() - base > 90 * MI, "the hog's memory in the cgroup")
        wait_for(lambda: event(stack, "fault-ended"), "the fault's end")
        assert event(stack, "fault-ended")["reason"] == "its end"
        wait_for(lambda: group.memory_bytes() - base < 30 * MI, "the memory given back")
        assert len(group.pids()) == 1  # the hog is gone, the replica stays
    finally:
        stack.teardown()


def test_without_cgroups_a_hog_is_skipped_saying_why(tmp_path, control):
    # Nothing would hold a hog to the replica's limits: it is not started.
    stack = LocalStack(replace(fake_spec(control), replicas=1), tmp_path / "s", FAST)
    stack.provision()
    groups = [replica.process.group for replica in stack.replicas]
    try:
        for replica in stack.replicas:
            replica.process.group = None  # as on a machine without cgroups
        (named,) = check_faults([fault.cpu(share=0.5, at="0s", lasting="5s")], 60_000)
        stack.schedule_faults([named], time.time())
        skipped = wait_for(lambda: event(stack, "fault-skipped"), "the skip")
        assert "no cgroup" in skipped["reason"]
        assert event(stack, "fault-applied") is None
    finally:
        stack.teardown()
        for group in groups:  # the stack no longer knew them
            if group is not None:
                group.remove()
