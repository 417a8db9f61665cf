"""The io and slow_disk faults on the Docker backend, on the real engine: they act in the
replica container's own cgroup on this host (the IO hog entered into it, writing the data
folder the container bind-mounts; the throttle written into its blkio controller), and the
engine's own device limits are put back at the end, read back from the kernel."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import fault
from stressbed.backends.local._cgroups import device_of
from stressbed.stack.spec import IoLimits

from .conftest import wait_for
from .test_stack import MI, agent_spec, inspect, make_stack


def _throttles_here(tmp_path: Path) -> None:
    device = device_of(tmp_path)
    if device.major is None:
        pytest.skip(f"the data folder is on no block device here: {device.reason}")


def test_an_io_hog_runs_in_the_container_s_cgroup_and_a_slow_disk_throttles_it_there(
    engine, built, tmp_path, no_leftovers
):
    _throttles_here(tmp_path)
    spec = agent_spec(replicas=1, io=IoLimits(write_bps=8 * MI))
    stack = make_stack(engine, built, spec, tmp_path)
    try:
        stack.provision()
        (info,) = inspect(engine, stack.registry.run)
        (replica,) = stack.replicas
        group = replica.process.group
        assert group is not None
        assert "blkio" in group.dirs  # the container's, on this host
        assert group.io_state()[1] == 8 * MI  # the engine's device_write_bps, from the kernel
        io = replace(fault.io(at="0s", lasting="60s"), name="io")
        slow = replace(fault.slow_disk("1MiB/s", at="0s", lasting="4s"), name="slow")
        stack.schedule_faults([io, slow], time.time())
        assert wait_for(
            lambda: len([e for e in stack.events if e["event"] == "fault-applied"]) == 2, 30
        )
        hog_file = tmp_path / "stack" / "data" / f".stressbed-io-{replica.name}"
        assert wait_for(hog_file.exists, 30)  # in the folder the container bind-mounts
        hogs = set(group.pids()) - {info["State"]["Pid"]}
        assert hogs  # the hog is in the container's cgroup, beside its processes
        assert group.io_state()[1] == MI  # held to the slow disk's rate now
        first = group.io_state()[0]
        assert wait_for(lambda: group.io_state()[0] > first, 30)  # and it does IO there

        def slow_ended() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in stack.events
                    if e.get("fault") == "slow" and e["event"] == "fault-ended"
                ),
                None,
            )

        ended = wait_for(slow_ended, 60)
        assert ended["how"] == "the replicas' own IO limits put back"
        assert group.io_state()[1] == 8 * MI  # the engine's own limit again
    finally:
        stack.teardown()
    ended = {e["fault"]: e for e in stack.events if e["event"] == "fault-ended"}
    assert (ended["io"]["how"], ended["io"]["reason"]) == ("the hogs killed", "teardown")
    assert not hog_file.exists()
