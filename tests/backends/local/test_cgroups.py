"""Per-replica cgroups on this kernel: CPU quota, memory limit with OOM kill, kill-all.

Skipped with the reason where this process may not create cgroups.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest


def start_in(group, code: str, *, output: bool = False) -> subprocess.Popen[bytes]:
    """Python running ``code`` inside ``group`` from its first instruction (``output``: its
    stdout piped)."""
    procs = [str(d / "cgroup.procs") for d in group.dirs.values()]

    def enter() -> None:
        for path in procs:
            with open(path, "w") as f:
                f.write("0")  # 0: the writing process itself

    return subprocess.Popen(
        [sys.executable, "-c", code],
        preexec_fn=enter,  # noqa: PLW1509 - entering the cgroup before exec
        stdout=subprocess.PIPE if output else None,
        stderr=subprocess.DEVNULL if output else None,
    )


def test_cpu_quota_caps_cpu_time(cgroup_factory):
    group = cgroup_factory(200, None)  # 200m: a fifth of one core
    proc = start_in(group, "import time\nend = time.time() + 2\nwhile time.time() < end: pass\n")
    started = time.monotonic()
    proc.wait(timeout=30)
    wall = time.monotonic() - started
    used = group.cpu_seconds()
    assert used < 0.2 * wall * 1.5 + 0.1, (used, wall)  # capped: the behaviour under test
    assert used > 0.05, (used, wall)  # it did run, and its time is read (a busy core aside)
    # A process that wants a whole core under a fifth of one is throttled in most periods.
    periods, throttled = group.throttling()
    assert periods >= 5
    assert throttled / periods > 0.5, (periods, throttled)


def test_memory_limit_oom_kills_and_is_counted(cgroup_factory):
    group = cgroup_factory(None, 64 * 2**20)
    proc = start_in(group, "x = []\nwhile True: x.append(bytearray(b'a' * (1 << 20)))\n")
    proc.wait(timeout=30)
    assert proc.returncode == -9
    assert group.oom_kills() >= 1


def test_kill_all_leaves_nothing(cgroup_factory):
    group = cgroup_factory(None, None)
    proc = start_in(
        group,
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n",
    )
    deadline = time.monotonic() + 10
    while len(group.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group.pids()) == 2
    group.kill_all()
    assert group.pids() == []
    proc.wait(timeout=5)


def _progress(path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _wait_progress(path, beyond: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = _progress(path)
        if now > beyond:
            return now
        time.sleep(0.05)
    raise AssertionError(f"no progress past {beyond} in {timeout} s")


def test_the_freezer_stops_everything_inside_until_thawed_and_a_kill_still_works(
    cgroup_factory, tmp_path
):
    group = cgroup_factory(None, None)
    if not group.can_freeze:
        pytest.skip("no cgroup freezer here")
    counter = tmp_path / "counter"
    proc = start_in(
        group,
        "import time, sys\nn = 0\n"
        "while True:\n    n += 1\n"
        f"    open({str(counter)!r}, 'w').write(str(n))\n    time.sleep(0.01)\n",
    )
    _wait_progress(counter, 0)
    assert group.freeze(True)
    frozen_at = _progress(counter)
    time.sleep(0.5)  # nothing inside may run: not one more count, however busy the machine
    assert _progress(counter) <= frozen_at + 1  # a write in progress may land
    assert group.freeze(False)
    _wait_progress(counter, frozen_at + 1)
    group.freeze(True)
    group.kill_all()  # thaws first: a frozen task cannot die until it runs
    assert proc.wait(timeout=10) == -9
    assert group.pids() == []


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def leftover(creator: int) -> tuple[subprocess.Popen[bytes], list]:
    """A replica cgroup as a stressbed ``creator`` leaves it: a frozen process in it."""
    from stressbed.backends.local._cgroups import CGROUP_ROOT, _own_paths  # noqa: PLC0415

    own = _own_paths()
    if (CGROUP_ROOT / "cgroup.controllers").exists() or "freezer" not in own:
        pytest.skip("no cgroup v1 freezer controller here")
    leaf = f"stressbed-{creator}-agent-0-0a1b2c3d"
    dirs = []
    for controller in ("memory", "cpu", "freezer"):
        directory = (CGROUP_ROOT / controller / own[controller]).resolve() / leaf
        try:
            directory.mkdir(exist_ok=True)
        except OSError as exc:
            pytest.skip(f"this process may not create cgroups here: {exc}")
        dirs.append(directory)
    named = dict(zip(("memory", "cpu", "freezer"), dirs, strict=True))
    group = type("Group", (), {"dirs": named})()
    proc = start_in(group, "import time\ntime.sleep(120)\n")
    deadline = time.monotonic() + 10
    while not (dirs[-1] / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    (dirs[-1] / "freezer.state").write_text("FROZEN")
    while "FROZEN" not in (dirs[-1] / "freezer.state").read_text():
        time.sleep(0.02)
    return proc, dirs


def clean_up(proc: subprocess.Popen[bytes], dirs: list) -> None:
    """What a failed test would leave: the process thawed and killed, its cgroups gone."""
    proc.kill()
    for directory in dirs:
        with contextlib.suppress(OSError):
            (directory / "freezer.state").write_text("THAWED")
    proc.wait()
    for directory in dirs:
        with contextlib.suppress(OSError):
            directory.rmdir()


def test_the_sweep_thaws_and_kills_a_frozen_replica_a_killed_stressbed_left():
    from stressbed.backends.local._cgroups import sweep  # noqa: PLC0415

    proc, dirs = leftover(dead_pid())
    try:
        assert sweep() >= 1
        assert proc.wait(timeout=10) == -9
        assert not any(d.exists() for d in dirs)
    finally:
        clean_up(proc, dirs)


def test_the_sweep_leaves_the_cgroups_of_a_stressbed_still_running_alone():
    from stressbed.backends.local._cgroups import sweep  # noqa: PLC0415

    proc, dirs = leftover(os.getpid())
    try:
        sweep()
        assert all(d.exists() for d in dirs)
        assert proc.poll() is None
    finally:
        (dirs[-1] / "freezer.state").write_text("THAWED")
        proc.kill()
        proc.wait()
        time.sleep(0.1)
        for directory in dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()


def test_stressbed_gc_thaws_and_kills_what_a_killed_stressbed_left_frozen():
    proc, dirs = leftover(dead_pid())
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stressbed", "gc"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert proc.wait(timeout=10) == -9
        assert not any(d.exists() for d in dirs)
        removed = int(done.stdout.split(" replica cgroup(s)")[0].rsplit(" ", 1)[-1])
        assert removed >= 1, done.stdout
    finally:
        clean_up(proc, dirs)


def test_the_time_a_cgroup_s_threads_waited_for_a_cpu_is_read_from_the_kernel(cgroup_factory):
    group = cgroup_factory()
    assert group.run_delay() is None  # no thread in it: nothing said
    # One more busy process than this machine has cores: one of them is always waiting.
    busy = [start_in(group, "while True: pass") for _ in range((os.cpu_count() or 1) + 1)]
    try:
        deadline = time.monotonic() + 60
        while (group.run_delay() or 0) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group.run_delay() >= 0.5
    finally:
        for process in busy:
            process.kill()
            process.wait(timeout=10)
