"""The io and slow_disk faults on the local backend, on this machine's real disk and cgroups:
an IO hog inside the replica's cgroup, held by the replica's own IO limits, its file removed
at the end; a slow_disk throttling the replica's reads and writes, its own limits put back at
the end, read back from the kernel each time."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from stressbed import fault
from stressbed.backends.local._cgroups import device_of
from stressbed.stack.spec import IoLimits

from .test_hogs import event, hogged, needs_cgroups, wait_for

MI = 2**20
LIMIT = 4 * MI  # the replica's own read and write limit in the hog's test


def done(group: Any) -> int:
    """Bytes the cgroup read and wrote so far, from the kernel."""
    return sum(way[0] for way in group.io_state().values())


def throttles(group: Any) -> tuple[int | None, int | None]:
    """Its read and write throttles (bytes a second), from the kernel."""
    found = group.io_state()
    return found["read"][1], found["write"][1]


def _throttled_here(tmp_path: Path) -> None:
    device = device_of(tmp_path)
    if device.major is None:
        pytest.skip(f"no block device to throttle here: {device.reason}")
    if not Path("/sys/fs/cgroup/blkio").is_dir() and not Path("/sys/fs/cgroup/io.stat").exists():
        pytest.skip("no blkio (or io) controller on this machine")


@needs_cgroups
def test_an_io_hog_runs_in_the_replica_s_cgroup_and_its_io_limits_hold_it(tmp_path, control):
    _throttled_here(tmp_path)
    limits = IoLimits(read_bps=LIMIT, write_bps=LIMIT)
    stack = hogged(tmp_path, control, fault.io(at="0s", lasting="60s"), io=limits)
    try:
        applied = wait_for(lambda: event(stack, "fault-applied"), "the IO hog")
        assert applied["how"].startswith("an IO hog in the replica's cgroup")
        (replica,) = stack.replicas
        group = replica.process.group
        assert len(group.pids()) >= 2  # the replica and its hog, in one cgroup
        hog_file = tmp_path / "s" / "data" / ".stressbed-io-fake-0"
        assert wait_for(hog_file.exists, "the hog's file")
        assert throttles(group) == (LIMIT, LIMIT)  # the spec's throttles, from the kernel
        first = done(group)
        # The hog does IO in the replica's cgroup...
        wait_for(lambda: done(group) > first + MI, "the hog's IO")
        start, begun = done(group), time.monotonic()
        time.sleep(3.0)
        moved, took = done(group) - start, time.monotonic() - begun
        # ... and no faster than the replica's limits let it: reads and writes, each at
        # most LIMIT a second (the throttle's slice lets a little more through at once).
        assert moved <= 2 * LIMIT * took * 1.5 + 2 * MI
    finally:
        stack.teardown()
    ended = event(stack, "fault-ended")
    assert (ended["reason"], ended["how"]) == ("teardown", "the hogs killed")
    assert not hog_file.exists()  # its file removed with it


@needs_cgroups
def test_a_slow_disk_throttles_the_replica_and_puts_its_own_limits_back(tmp_path, control):
    _throttled_here(tmp_path)
    own = IoLimits(write_bps=64 * MI)
    stack = hogged(tmp_path, control, fault.slow_disk("1MiB/s", at="0s", lasting="2s"), io=own)
    try:
        (replica,) = stack.replicas
        group = replica.process.group
        applied = wait_for(lambda: event(stack, "fault-applied"), "the slow disk")
        assert applied["replicas"] == ["fake-0"]
        assert "throttled to 1MiB/s in the replica's cgroup" in applied["how"]
        assert applied["device"] == device_of(tmp_path).key
        assert throttles(group) == (MI, MI)  # reads and writes at 1MiB/s, from the kernel
        ended = wait_for(lambda: event(stack, "fault-ended"), "its end", timeout=60)
        assert (ended["reason"], ended["how"]) == (
            "its end",
            "the replicas' own IO limits put back",
        )
        assert throttles(group) == (None, 64 * MI)  # the spec's write limit, as it was
    finally:
        stack.teardown()


@needs_cgroups
def test_a_slow_disk_on_a_replica_without_io_limits_leaves_none(tmp_path, control):
    _throttled_here(tmp_path)
    stack = hogged(tmp_path, control, fault.slow_disk("2MiB/s", at="0s", lasting="60s"))
    try:
        (replica,) = stack.replicas
        group = replica.process.group
        wait_for(lambda: event(stack, "fault-applied"), "the slow disk")
        assert throttles(group) == (2 * MI, 2 * MI)
    finally:
        stack.teardown()
    assert event(stack, "fault-ended")["reason"] == "teardown"
    assert group.io_state() is None or throttles(group) == (None, None)


@needs_cgroups
def test_a_slow_disk_on_a_tmpfs_data_folder_is_skipped_saying_why(tmp_path, control):
    stack = hogged(tmp_path, control, fault.slow_disk("1MiB/s", at="0s", lasting="60s"))
    stack._faults._folder = Path("/dev/shm")  # a folder on no block device
    try:
        skipped = wait_for(lambda: event(stack, "fault-skipped"), "the skip")
        assert skipped["reason"].startswith("nothing to throttle: /dev/shm is on no block device")
        assert event(stack, "fault-applied") is None
    finally:
        stack.teardown()
