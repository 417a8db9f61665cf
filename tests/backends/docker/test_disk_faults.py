"""The io, slow_disk and disk_fill faults on the Docker backend, on the real engine: the first
two act in the replica container's own cgroup on this host (the IO hog entered into it, writing
the data folder the container bind-mounts; the throttle written into its blkio controller), and
the engine's own device limits are put back at the end, read back from the kernel; a disk_fill
fills the data folder only as a tmpfs of the stack's own, mounted before the container
bind-mounts it and unmounted after it went."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import ConstantArrivalRate, Scenario, Workload, fault, get
from stressbed.backends.docker.backend import DockerBackend
from stressbed.backends.local import _datafs
from stressbed.backends.local._cgroups import device_of
from stressbed.errors import ConfigError
from stressbed.stack.spec import IoLimits

from ..local.test_disk_faults import done, throttles
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
        assert throttles(group) == (None, 8 * MI)  # the engine's device_write_bps, from the kernel
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
        assert throttles(group) == (MI, MI)  # held to the slow disk's rate now
        first = done(group)
        assert wait_for(lambda: done(group) > first, 30)  # and it does IO there

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
        assert throttles(group) == (None, 8 * MI)  # the engine's own limit again
    finally:
        stack.teardown()
    ended = {e["fault"]: e for e in stack.events if e["event"] == "fault-ended"}
    assert (ended["io"]["how"], ended["io"]["reason"]) == ("the hogs killed", "teardown")
    assert not hog_file.exists()


def test_a_disk_fill_fills_a_tmpfs_of_the_stack_s_own_that_the_containers_mount(
    engine, built, tmp_path, no_leftovers
):
    if _datafs.can_mount() is not None:
        pytest.skip(f"no tmpfs can be mounted here: {_datafs.can_mount()}")
    stack = make_stack(engine, built, agent_spec(replicas=1), tmp_path, data_size=_datafs.SIZE)
    data = (tmp_path / "stack" / "data").resolve()
    try:
        stack.provision()
        assert _datafs.mounted(data)  # mounted before the container bind-mounted it
        (info,) = inspect(engine, stack.registry.run)
        fill = replace(fault.disk_fill(share=None, at="0s", lasting="60s"), name="disk_fill")
        stack.schedule_faults([fill], time.time())
        applied = wait_for(lambda: event(stack, "fault-applied"), 30)
        assert applied["replicas"] == [stack.replicas[0].name]
        # Inside the container its data folder is full: a write there fails for want of room.
        made = engine.api.exec_create(
            info["Id"], ["sh", "-c", "head -c 1048576 /dev/zero > /data/more; echo $?"]
        )
        said = engine.api.exec_start(made["Id"]).decode()
        assert "No space left on device" in said
    finally:
        stack.teardown()
    assert event(stack, "fault-ended")["how"] == "the fill file removed"
    assert not _datafs.mounted(data)  # unmounted after the container went
    assert not list(data.glob(".stressbed-fill-*"))


def test_a_disk_fill_where_no_tmpfs_can_be_mounted_is_refused_before_anything(monkeypatch):
    monkeypatch.setattr(_datafs, "_mount", lambda folder, size: "mount: permission denied")
    scenario = Scenario(
        "f",
        description="a full disk",
        workloads=[
            Workload("w", get("/"), ConstantArrivalRate(rate=5, duration="1m", pre_allocated_vus=2))
        ],
        faults=[fault.disk_fill(share=None, at="2s", lasting="3s")],
    )
    with pytest.raises(ConfigError) as refused:
        DockerBackend().preflight(None, scenario)
    assert str(refused.value).startswith(
        "faults.disk_fill: got 'disk_fill until full on 1 replica at 2s for 3s (mount: "
        "permission denied)'; expected a data folder of the stack's own to fill"
    )


def event(stack: Any, kind: str) -> dict[str, Any] | None:
    return next((e for e in stack.events if e["event"] == kind), None)
