"""The stack's data folder as a filesystem of its own, and the ``disk_fill`` fault's filler.

A stack whose spec sets an ``ephemeral-storage`` limit gets its data folder as a tmpfs of that
size times the most replicas it may run (they share the folder): the limit held by the
kernel, as a pod's is by the kubelet's eviction (here a write past it fails with ENOSPC).

A ``disk_fill`` fault fills the filesystem that holds the replicas' writable path. Locally that
path is the stack's data folder (``{data}``), which lives on this machine's own disk: filling
that would fill the host's disk, which stressbed never does. So when a run declares a
``disk_fill``, the data folder is made a tmpfs of a bounded size (:data:`SIZE`), mounted when
the stack is provisioned and unmounted at teardown (its files copied back to the folder first,
so the run keeps them); where it cannot be mounted (not root, no tmpfs) the fault is refused
before anything starts. The filler writes one file, ``.stressbed-fill-<fault>``, in that folder
only, and only while the folder is such a tmpfs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import ConfigError
from ...scenario.faults import Fault

__all__ = [
    "FILL_PREFIX",
    "SIZE",
    "DataFs",
    "Filled",
    "can_mount",
    "fill",
    "fill_size",
    "mount_own",
    "mounted",
    "sweep",
]

#: How big the data folder's tmpfs is (bytes); it counts against this machine's memory.
SIZE = 64 * 2**20
#: The fill files' names: ``.stressbed-fill-<fault name>``.
FILL_PREFIX = ".stressbed-fill-"
#: A mount or an unmount waits at most this long.
MOUNT_TIMEOUT_S = 10.0
_CHUNK = 2**20
_ZEROS = bytes(_CHUNK)


_SOURCE = "stressbed-data-"


def _source() -> str:
    """The tmpfs's name in /proc/mounts: stressbed's and this process's."""
    return f"{_SOURCE}{os.getpid()}"


def sweep() -> int:
    """Unmount the data folders' tmpfs of stressbeds that are gone (killed with ``-9``: no
    teardown unmounted them); how many. Only stressbed's own (``stressbed-data-<pid>``), and
    only of a pid no longer running."""
    removed = 0
    for source, folder, kind in _mounts():
        pid = source.removeprefix(_SOURCE)
        if kind != "tmpfs" or not source.startswith(_SOURCE) or not pid.isdigit():
            continue
        if not Path(f"/proc/{pid}").exists():
            removed += _umount(Path(folder)) is None
    return removed


def _mounts() -> list[tuple[str, str, str]]:
    """(source, mount point, type) of every mount, as /proc/mounts lists them."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            # /proc/mounts escapes a space, a tab, a newline and a backslash as octal.
            where = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1])
            found.append((fields[0], where, fields[2]))
    return found


def _mount(folder: Path, size: int) -> str | None:
    """Mount a tmpfs of ``size`` bytes on ``folder``: None, or why not in a few words."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    return _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", _source(), str(folder)])


def _umount(folder: Path) -> str | None:
    """Unmount ``folder``: None, or why not (a busy one is detached lazily)."""
    problem = None
    for args in (["umount", str(folder)], ["umount", "-l", str(folder)]):
        problem = _run(args)
        if problem is None:
            return None
    return problem


def _run(args: list[str]) -> str | None:
    """Run ``mount``/``umount`` (bounded): None, or why it failed, in a few words."""
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MOUNT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{args[0]}: {exc}"
    if done.returncode != 0:
        return f"{args[0]}: {done.stderr.strip() or f'exit {done.returncode}'}"
    return None


def mounted(folder: Path) -> bool:
    """Whether a filesystem is mounted on ``folder`` (as /proc/mounts says)."""
    where = str(folder.resolve())
    return any(point == where for _, point, _ in _mounts())


def fill_size(faults: Sequence[Fault]) -> int | None:
    """The data folder's tmpfs size a run with ``faults`` needs (:data:`SIZE` with a
    ``disk_fill``, None without one); ConfigError (exit 2) where no tmpfs can be mounted:
    this machine's disk is never filled."""
    fills = [f for f in faults if f.kind == "disk_fill"]
    if not fills:
        return None
    problem = can_mount()
    if problem is not None:
        raise ConfigError(
            f"faults.{fills[0].name}",
            f"{fills[0].label} ({problem})",
            "a data folder of the stack's own to fill: a tmpfs mounted on it, which needs "
            "root; stressbed never fills this machine's disk",
        )
    return SIZE


def mount_own(folder: Path, size: int, field: str) -> DataFs:
    """``folder`` made a tmpfs of ``size`` bytes of the stack's own, mounted; ConfigError
    naming ``field`` (what asked for it) where it cannot be, with nothing filled."""
    fs = DataFs(folder, size)
    problem = fs.mount()
    if problem is not None:
        raise ConfigError(
            field,
            problem,
            "the stack's data folder made a tmpfs of its own (which needs root); stressbed "
            "never fills this machine's disk",
        )
    return fs


def can_mount() -> str | None:
    """None when a tmpfs can be mounted here (tried on a scratch folder, and unmounted);
    else why not."""
    with tempfile.TemporaryDirectory(prefix="stressbed-mount-check-") as scratch:
        problem = _mount(Path(scratch), 2**20)
        if problem is None:
            problem = _umount(Path(scratch))
        return problem


@dataclass
class DataFs:
    """The data folder ``folder`` with a tmpfs of ``size`` bytes mounted on it."""

    folder: Path
    size: int
    active: bool = False

    def mount(self) -> str | None:
        """Mount it (the folder made first; it must be empty): None, or why not."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if any(self.folder.iterdir()):
            return f"{self.folder} is not empty"
        problem = _mount(self.folder, self.size)
        self.active = problem is None and mounted(self.folder)
        if problem is None and not self.active:
            problem = "the mount did not show in /proc/mounts"
        return problem

    def unmount(self) -> None:
        """Remove the fill files, copy what is left back onto the folder, unmount (OSError
        naming what could not be done). Idempotent."""
        if not self.active:
            return
        for leftover in self.folder.glob(f"{FILL_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        kept = Path(tempfile.mkdtemp(prefix=".data-kept-", dir=self.folder.parent))
        try:
            # Bounded: the tmpfs holds at most its size.
            shutil.copytree(self.folder, kept, dirs_exist_ok=True, symlinks=True)
            problem = _umount(self.folder)
            if problem is not None:
                raise OSError(f"the data folder's tmpfs at {self.folder}: {problem}")
            self.active = False
            for item in kept.iterdir():
                item.rename(self.folder / item.name)
        finally:
            shutil.rmtree(kept, ignore_errors=True)


@dataclass(frozen=True)
class Filled:
    """What a fill did: the file, the bytes it holds, the filesystem's free bytes after."""

    path: Path
    written: int
    free_after: int
    size: int
    share: float

    @property
    def how(self) -> str:
        """How the fault was applied, in a few words."""
        to = "until full" if self.share >= 1 else f"to {self.share:.0%}"
        return f"a file filling the data folder's tmpfs ({self.size} bytes) {to}"


def fill(fs: DataFs | None, name: str, share: float) -> Filled:
    """Fill ``fs`` to ``share`` of its size (1: until a write fails with ENOSPC) with the
    file ``.stressbed-fill-<name>``, zeros written a chunk at a time (a bounded loop). Raises
    OSError (the file removed) where it cannot; never fills a folder that is not ``fs``'s
    mounted tmpfs."""
    if fs is None or not fs.active or not mounted(fs.folder):
        where = fs.folder if fs is not None else "the data folder"
        raise OSError(f"{where} is not the stack's own tmpfs: not filled")
    path = fs.folder / f"{FILL_PREFIX}{name}"
    stats = os.statvfs(fs.folder)
    total = stats.f_blocks * stats.f_frsize
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    want = total if share >= 1 else max(0, int(total * share) - used)
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(want // _CHUNK + 2):  # at most the filesystem's size, chunk by chunk
            left = want - written
            if left <= 0:
                break
            try:
                wrote = os.write(fd, _ZEROS[: min(_CHUNK, left)])
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    break  # full: what the fault wanted, or as far as it goes
                raise
            if wrote == 0:
                break
            written += wrote
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    after = os.statvfs(fs.folder)
    return Filled(path, written, after.f_bavail * after.f_frsize, total, share)
