"""Limits beyond CPU and memory on the local backend, held by this kernel and read back from
it: a pids limit stops a replica's processes at it (the refused forks counted), an IO
throttle slows its direct writes, an open-file limit is the one it runs with; each said in
summary.json's ``stack.isolation``, and a spec that asks what cannot be is refused up front.

Skipped, saying why, where this process may not create cgroups.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from stressbed.app.settings import apply_stack
from stressbed.backends.local import LocalBackend, _datafs
from stressbed.backends.local._cgroups import device_of
from stressbed.errors import ConfigError
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import IoLimits

from .test_cgroups import start_in
from .test_stack import FAST, fake_spec

MIB = 2**20


@pytest.fixture
def group_of(cgroup_factory):
    """Cgroups with only the isolation limits (pids, io, device) set."""
    return cgroup_factory


def test_a_pids_limit_stops_a_replica_s_processes_at_it_and_counts_the_refusals(group_of):
    group = group_of(pids=16)
    if "pids" not in group.isolation or group.isolation["pids"].startswith("not enforced"):
        pytest.skip(f"no pids controller here: {group.isolation.get('pids')}")
    # 40 sleepers asked for, one at a time (bounded): the kernel refuses past the limit.
    code = (
        "import subprocess, sys\n"
        "started, refused = [], 0\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        started.append(subprocess.Popen(['sleep', '30']))\n"
        "    except OSError:\n"
        "        refused += 1\n"
        "print(len(started), refused, flush=True)\n"
        "for p in started: p.kill()\n"
    )
    proc = start_in(group, code)
    proc.wait(timeout=60)
    _, limit, refusals = group.pids_state()
    assert limit == 16
    assert refusals > 0  # pids.events: forks refused at the limit
    assert group.isolation["pids"] == "cgroup v1 pids.max 16" or "v2" in group.isolation["pids"]


def test_an_io_throttle_is_set_on_the_writable_path_s_disk_and_slows_direct_writes(
    group_of, tmp_path
):
    device = device_of(tmp_path)
    if device.major is None:
        pytest.skip(f"no block device under the tests' folder: {device.reason}")
    group = group_of(io=IoLimits(write_bps=512 * 1024), device=device)
    held = group.isolation["io.write_bps"]
    if held.startswith("not enforced"):
        pytest.skip(held)
    throttle = (
        group.dirs["blkio"] / "blkio.throttle.write_bps_device"
        if "blkio" in group.dirs
        else group.dirs[""] / "io.max"
    )
    assert f"{device.key} " in throttle.read_text()  # read back from the kernel
    # 1 MiB written with O_DIRECT (synchronous, accounted to the writer's cgroup) at 512 KiB/s
    # takes at least 1 s however idle the disk: a lower bound a busy machine cannot break.
    target = tmp_path / "direct.bin"
    code = (
        "import mmap, os, time\n"
        f"fd = os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)\n"
        "block = mmap.mmap(-1, 65536)\n"
        "block.write(b'x' * 65536)\n"
        "started = time.monotonic()\n"
        "for _ in range(16):\n"
        "    os.write(fd, block)\n"
        "os.fsync(fd)\n"
        "print(time.monotonic() - started, flush=True)\n"
    )
    proc = start_in(group, code, output=True)
    out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0:
        pytest.skip("O_DIRECT writes are not allowed on this filesystem")
    assert float(out) >= 1.0, out


def test_an_io_weight_the_kernel_cannot_hold_is_said_not_enforced(group_of, tmp_path):
    group = group_of(io=IoLimits(weight=500), device=device_of(tmp_path))
    said = group.isolation["io.weight"]
    # Either held (a BFQ scheduler) or said plainly not to be: never silently dropped.
    assert said.startswith(("cgroup v1 blkio.weight 500", "cgroup v2 io.weight", "not enforced:"))


def test_a_path_on_no_block_device_is_said_so():
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        device = device_of(Path(shm))
    assert device.major is None
    assert "is on no block device" in device.reason


def test_a_local_stack_holds_its_replicas_to_the_spec_s_pids_nofile_and_io(tmp_path):
    spec = apply_stack(
        reference_agent(),
        {"replicas": 1, "autoscaler": None, "pids": 64, "nofile": 4096,
         "io": {"write_bps": "1Mi"}},
    )  # fmt: skip
    stack = LocalBackend().stack(spec, tmp_path)
    try:
        stack.provision()
        (replica,) = stack.replicas
        pid = replica.process.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        (line,) = [row for row in limits.splitlines() if row.startswith("Max open files")]
        assert line.split()[3:5] == ["4096", "4096"]
        report = stack.report()
        isolation = report["isolation"]
        assert isolation["nofile"] == "RLIMIT_NOFILE 4096"
        if replica.process.group is None:
            assert isolation["pids"].startswith("not enforced")
            return
        assert isolation["pids"].endswith("pids.max 64")
        cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        pids_path = next(line.split(":", 2)[2] for line in cgroup.splitlines() if ":pids:" in line)
        assert (Path("/sys/fs/cgroup/pids") / pids_path.lstrip("/") / "pids.max").read_text() == (
            "64\n"
        )
        assert "io.write_bps" in isolation  # held on the data folder's disk, or said why not
    finally:
        stack.teardown()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"io": {"weight": 5}}, "stack.io.weight: got 5; expected a weight 10..1000"),
        ({"io": {"write_bps": 0}}, "stack.io.write_bps: got 0; expected a positive number"),
        ({"pids": 2}, "stack.pids: got 2; expected a whole number >= 8"),
        ({"nofile": 10}, "stack.nofile: got 10; expected a whole number >= 64"),
        ({"io": {"read_bps": "fast"}}, "stack.io.read_bps: got 'fast'"),
    ],
)
def test_a_limit_out_of_range_is_refused_naming_the_field(overrides, expected):
    with pytest.raises(ConfigError) as refused:
        apply_stack(reference_agent(), overrides)
    assert str(refused.value).startswith(expected)


def test_an_open_file_limit_above_the_machine_s_is_refused_before_anything_starts():
    import resource  # noqa: PLC0415

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit of open files here")
    spec = replace(reference_agent(), nofile=hard + 1)
    with pytest.raises(ConfigError) as refused:
        LocalBackend().preflight(spec)
    assert str(refused.value).startswith(f"stack.nofile: got {hard + 1}; expected at most")


def _write_mib(path: Path, count: int) -> int | None:
    """Write ``count`` MiB to ``path``: the errno that stopped it, or None."""
    try:
        with open(path, "wb") as out:
            for _ in range(count):
                out.write(bytes(MIB))
                out.flush()
    except OSError as exc:
        return exc.errno
    return None


def test_an_ephemeral_storage_limit_is_a_tmpfs_of_that_size_on_the_data_folder(tmp_path, control):
    problem = _datafs.can_mount()
    if problem is not None:
        pytest.skip(f"no tmpfs can be mounted here: {problem}")
    fake = fake_spec(control)
    spec = replace(fake, replicas=1, limits=replace(fake.limits, ephemeral_storage=8 * MIB))
    backend = LocalBackend(FAST)
    backend.preflight(spec)
    assert backend.options.data_size == 8 * MIB  # the limit times the most replicas (1)
    stack = backend.stack(spec, tmp_path / "s")
    data = tmp_path / "s" / "data"
    try:
        stack.provision()
        assert _datafs.mounted(data)
        found = os.statvfs(data)
        assert found.f_blocks * found.f_frsize == 8 * MIB  # read back from the kernel
        # The replicas' writes stop at the limit.
        assert _write_mib(data / "big", 9) == errno.ENOSPC
        assert stack.isolation["ephemeral-storage"].startswith(
            f"tmpfs size={8 * MIB} on the data folder, shared by the replicas"
        )
    finally:
        stack.teardown()
    assert not _datafs.mounted(data)  # unmounted at teardown, the files kept
    assert (data / "big").exists()


def test_an_ephemeral_storage_limit_where_no_tmpfs_can_be_mounted_is_refused(monkeypatch):
    monkeypatch.setattr(_datafs, "can_mount", lambda: "mount: permission denied")
    spec = apply_stack(reference_agent(), {"limits": {"ephemeral-storage": "64Mi"}})
    with pytest.raises(ConfigError) as refused:
        LocalBackend().preflight(spec)
    assert str(refused.value) == (
        "stack.limits.ephemeral-storage: got '64Mi (mount: permission denied)'; expected a data "
        "folder of the stack's own to hold it: a tmpfs mounted on it, which needs root (the "
        "docker and kubernetes backends hold it without)"
    )


def test_an_ephemeral_storage_request_above_its_limit_is_refused():
    with pytest.raises(ConfigError) as over:
        apply_stack(
            reference_agent(),
            {"requests": {"ephemeral-storage": "2Gi"}, "limits": {"ephemeral-storage": "1Gi"}},
        )
    assert str(over.value).startswith(
        "stack.requests.ephemeral-storage: got '2048Mi'; expected at most the limit"
    )
