"""The ``disk_fill`` fault on the local backend, for real: the stack's data folder made a tmpfs of
its own (this machine's disk is never filled), filled to a share or until full and freed; the
reference agent, filling its file sink, loses nothing it acknowledged once flushed and counts
what it loses when it acknowledged on queueing; a run where the folder cannot be made the
stack's own is refused before anything is filled."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from stressbed import fault
from stressbed.app.cli import main
from stressbed.backends.local import _datafs
from stressbed.backends.local._faults import LocalFaults
from stressbed.backends.local.stack import LocalOptions, LocalStack
from stressbed.errors import ConfigError
from stressbed.scenario.faults import check_faults
from stressbed.stack.agent import reference_agent

from ...conftest import needs_k6
from .agent_runs import file_sink_stack, run_reports

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


def _in_mounts(folder: Path) -> bool:
    where = str(folder.resolve())
    return any(line.split()[1] == where for line in Path("/proc/mounts").read_text().splitlines())


def test_a_folder_that_is_not_the_stacks_own_tmpfs_is_never_filled(tmp_path: Path):
    fs = _datafs.DataFs(tmp_path / "data", _datafs.SIZE)
    fs.folder.mkdir()
    with pytest.raises(OSError, match="is not the stack's own tmpfs: not filled"):
        _datafs.fill(fs, "disk_fill", 1.0)
    fs.active = True  # said mounted, but /proc/mounts has no tmpfs there: still not filled
    with pytest.raises(OSError, match="is not the stack's own tmpfs: not filled"):
        _datafs.fill(fs, "disk_fill", 1.0)
    assert list(fs.folder.iterdir()) == []


def test_a_disk_fill_with_no_folder_of_the_stacks_own_is_skipped_saying_why(tmp_path: Path):
    events: list[tuple[str, dict]] = []
    faults = LocalFaults(lambda kind, **fields: events.append((kind, fields)), lambda: None)
    (item,) = check_faults([fault.disk_fill(share=None, at="0s", lasting="1s")], 10_000)
    faults.arm([item], time.time() - 1)
    faults.tick([])
    faults.undo_all()
    assert events == [
        (
            "fault-skipped",
            {
                "fault": "disk_fill",
                "fault_kind": "disk_fill",
                "reason": "the data folder was not filled: the data folder is not the stack's "
                "own tmpfs: not filled",
            },
        )
    ]


@needs_root
def test_the_data_folder_tmpfs_is_filled_to_a_share_or_until_full_freed_and_unmounted(
    tmp_path: Path,
):
    fs = _datafs.DataFs(tmp_path / "data", 4 * 2**20)
    assert fs.mount() is None
    try:
        assert _in_mounts(fs.folder)
        (fs.folder / "sink.jsonl").write_text('{"kept": true}\n')
        half = _datafs.fill(fs, "disk_fill", 0.5)
        assert half.path == fs.folder / ".stressbed-fill-disk_fill"
        assert half.size == 4 * 2**20
        assert abs(half.free_after - 2 * 2**20) <= 2 * 4096  # the sink file's page aside
        assert half.how == "a file filling the data folder's tmpfs (4194304 bytes) to 50%"
        half.path.unlink()
        full = _datafs.fill(fs, "disk_fill-2", 1.0)
        assert full.free_after == 0
        assert full.written > 4 * 2**20 - 2 * 4096
        with pytest.raises(OSError, match="No space left on device"):
            (fs.folder / "more").write_bytes(bytes(4096))
    finally:
        fs.unmount()
    assert not _in_mounts(fs.folder)
    assert not fs.active
    # What the run wrote is kept in the folder, the fill is not.
    assert sorted(p.name for p in fs.folder.iterdir()) == ["more", "sink.jsonl"]
    assert (fs.folder / "sink.jsonl").read_text() == '{"kept": true}\n'
    assert list(tmp_path.glob(".data-kept-*")) == []


DISK_FILL = """
from stressbed import *
scenario = Scenario('f', description='a full disk', workloads=[Workload('w', get('/healthz'),
    ConstantArrivalRate(rate=5, duration='10s', pre_allocated_vus=2))],
    faults=[fault.disk_fill(share=None, at='2s', lasting='3s')])
"""


@needs_k6
def test_a_disk_fill_where_no_tmpfs_can_be_mounted_is_refused_and_nothing_is_filled(
    tmp_path: Path, monkeypatch, capsys
):
    def refused(folder: Path, size: int) -> str:
        return "mount: permission denied"

    monkeypatch.setattr(_datafs, "_mount", refused)
    path = tmp_path / "f.py"
    path.write_text(DISK_FILL)
    code = main(["run", "--scenario", str(path), "--results", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    # (The run's profile scales the fault's times with the load.)
    assert re.fullmatch(
        r"stressbed: error: faults\.disk_fill: got 'disk_fill until full on 1 replica at \S+ "
        r"for \S+ \(mount: permission denied\)'; expected a data folder of the stack's own to "
        r"fill: a tmpfs mounted on it, which needs root; stressbed never fills this machine's "
        r"disk",
        err[0],
    ), err[0]
    assert not (tmp_path / "r").exists()  # nothing started, nothing filled


def test_a_data_folder_that_cannot_be_mounted_at_provisioning_fails_it_with_nothing_filled(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(_datafs, "_mount", lambda folder, size: "mount: no such device")
    stack = LocalStack(reference_agent(), tmp_path, LocalOptions(data_size=_datafs.SIZE))
    try:
        with pytest.raises(ConfigError) as caught:
            stack.provision()
    finally:
        stack.teardown()
    assert caught.value.field == "faults.disk_fill"
    assert "mount: no such device" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert list((tmp_path / "data").iterdir()) == []
    assert not [e for e in stack.events if e["event"] == "created"]  # no replica started


def _points_in(run: Path) -> int:
    """Points in the sink file's whole lines, counted apart from the agent: a line a full
    disk cut short is no JSON, and the whole line another replica appended to it is what
    follows its last start."""
    total = 0
    for line in (run / "stack" / "data" / "sink.jsonl").read_text().splitlines():
        with contextlib.suppress(ValueError):
            total += len(json.loads(line[line.rfind('{"agent_id": ') :])["points"])
    return total


FILL = 'fault.disk_fill(share=None, at="2s", lasting="3s")'


@needs_k6
@needs_root
@pytest.mark.parametrize("ack", ["flushed", "queued"])
def test_a_full_disk_loses_nothing_acknowledged_once_flushed_and_counts_what_queued_loses(
    tmp_path: Path, monkeypatch, ack: str
):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "disk-fill-test-token")
    report, summary, run = run_reports(tmp_path, FILL, file_sink_stack(STRESSBED_AGENT_ACK=ack))
    (filled,) = summary["resilience"]["faults"]
    events = [e for e in summary["events"] if e.get("fault") == "disk_fill"]
    applied, ended = (
        next(e for e in events if e["event"] == kind) for kind in ("fault-applied", "fault-ended")
    )
    assert filled["applied"]
    assert applied["free_after"] == 0
    assert applied["path"].endswith("stack/data/.stressbed-fill-disk_fill")
    assert sorted(applied["replicas"]) == ["agent-0", "agent-1"]  # the folder they share
    assert ended["how"] == "the fill file removed"
    assert ended["reason"] == "its end"
    (mounted,) = [e for e in summary["events"] if e["event"] == "data-mounted"]
    assert (mounted["fs"], mounted["size"]) == ("tmpfs", _datafs.SIZE)
    data = run / "stack" / "data"
    assert not _in_mounts(data)  # unmounted at teardown
    assert not list(data.glob(".stressbed-fill-*"))
    writes = summary["writes"]
    assert writes["problem"] is None
    assert writes["acknowledged"] > 100
    assert writes["stored"] == _points_in(run)  # the sink file, kept off the tmpfs
    if ack == "flushed":
        assert writes["lost"] == 0
        assert filled["lost_writes"] == 0
        assert report.exit_code == 0, summary["message"]
        # The reports the full disk refused were answered 503, never acknowledged.
        assert filled["during"]["error_rate"] > 0
    else:
        assert writes["lost"] > 0
        assert filled["lost_writes"] == writes["lost"]
        assert report.exit_code == 1
        assert "lost_writes == 0 (disk_fill:" in summary["message"]
    assert "disk-fill-test-token" not in json.dumps(summary)


@needs_root
def test_gc_unmounts_the_data_folders_of_stressbeds_that_are_gone_and_no_other(tmp_path: Path):
    dead = subprocess.Popen(["true"])  # a pid that ran and ended
    dead.wait()
    folders = {}
    for who, pid in (("gone", dead.pid), ("alive", os.getpid())):
        folders[who] = tmp_path / who
        folders[who].mkdir()
        mount = ["mount", "-t", "tmpfs", "-o", "size=64k", f"stressbed-data-{pid}"]
        subprocess.run([*mount, str(folders[who])], check=True, timeout=10)
    try:
        assert _datafs.sweep() >= 1
        assert not _in_mounts(folders["gone"])
        assert _in_mounts(folders["alive"])
    finally:
        for folder in folders.values():
            subprocess.run(["umount", "-l", str(folder)], check=False, timeout=10)
