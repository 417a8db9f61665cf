"""Process helpers shared by everything stressbed starts: parent-death signals, free ports, the
open-file limit (raised to its hard limit, and read back as a process has it)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "ABANDON_WINDOW_S",
    "TeardownAbandoned",
    "die_with_parent",
    "free_port",
    "interruptible",
    "nofile_of",
    "raise_if_interrupted",
    "raise_nofile",
    "uninterrupted",
]

#: Two interrupts this close together during a teardown abandon it.
ABANDON_WINDOW_S = 5.0
#: Non-empty while the main thread is inside :func:`uninterrupted` (a run's teardown and the
#: writing of its results, with the stack's own guarded waits nested in it).
_GUARDED: list[bool] = []
#: When the interrupts of this command came (monotonic), Ctrl-C and SIGTERM alike, kept apart
#: from the KeyboardInterrupt each raises: Python loses that exception where its handler ran
#: inside a callback it calls from C (the fork hooks it runs while starting a child with a
#: ``preexec_fn``, a finalizer), and the command would go on as if never interrupted. Kept
#: only inside :func:`interruptible` (a command), empty outside it.
_PRESSED: list[float] = []
_COMMAND: list[bool] = []


class TeardownAbandoned(KeyboardInterrupt):
    """The user pressed Ctrl-C twice within :data:`ABANDON_WINDOW_S` while stressbed was
    tearing down: stop waiting, say what is left and how to remove it."""


_PR_SET_PDEATHSIG = 1


def _resolve_prctl() -> Callable[..., int] | None:
    # Resolved here, in the parent: a child between fork and exec must not dlopen (another
    # thread of the parent may have held the loader's lock when it forked).
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    return prctl


_PRCTL = _resolve_prctl()


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGKILL when the thread that started it dies
    (Linux), so even ``kill -9`` of stressbed leaves no child behind.

    Call it in the parent, just before starting the child: it records who the parent is, and
    in the child, after ``prctl``, checks that this parent is still there (it may have died
    between the fork and the prctl, when no signal would ever come). The signal follows the
    *thread* that forked, so children are started from threads that live as long as they do.
    """
    parent = os.getpid()

    def in_child() -> None:
        if _PRCTL is None:
            return
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # orphaned before the prctl took: go as the parent went
            os._exit(137)

    return in_child


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def raise_nofile() -> int | None:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (what an unprivileged process
    may do: each open connection is a descriptor, and the soft limit is often 1024); the soft
    limit it has now, or None where it cannot be read. Safe in a ``preexec_fn``: two
    system calls, no lock taken."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard not in (resource.RLIM_INFINITY, soft):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def nofile_of(pid: int) -> int | None:
    """The soft open-file limit process ``pid`` runs with (``/proc/<pid>/limits``): the limit
    it has, not the one it was meant to have; None where it cannot be read (not Linux, gone)."""
    try:
        lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return int(soft) if soft.isdigit() else None
    return None


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Keep a teardown going through Ctrl-C and SIGTERM: one more interrupt only says how to
    abandon it; a second within :data:`ABANDON_WINDOW_S` raises :class:`TeardownAbandoned`
    where the teardown is waiting. (Handlers, not a signal mask: a signal the kernel hands to
    another thread still runs its handler in the main thread.)"""
    if threading.current_thread() is not threading.main_thread() or _GUARDED:
        yield  # nested in a guard already: its presses count, its handlers stay
        return
    pressed: list[float] = []

    def hold(signum: int, frame: object) -> None:
        # A Python handler, not SIG_IGN: children started meanwhile keep the default.
        now = time.monotonic()
        if _COMMAND:  # what comes after this stop knows it was interrupted
            _PRESSED.append(now)
        if pressed and now - pressed[-1] <= ABANDON_WINDOW_S:
            raise TeardownAbandoned
        pressed.append(now)
        print(
            f"stressbed: tearing down; press Ctrl-C again within {ABANDON_WINDOW_S:g} s to "
            "abandon the teardown",
            file=sys.stderr,
            flush=True,
        )

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    _GUARDED.append(True)
    try:
        yield
    finally:
        _GUARDED.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """For a command's length: Ctrl-C and SIGTERM (a CI job cancelled) raise KeyboardInterrupt
    alike, and each is recorded, so that :func:`raise_if_interrupted` raises it again where
    Python lost it. A Ctrl-C ignored when stressbed started (a shell's background job) stays
    ignored."""

    def interrupt(signum: int, frame: object) -> None:
        _PRESSED.append(time.monotonic())
        raise KeyboardInterrupt

    wanted = [signal.SIGTERM]
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        wanted.append(signal.SIGINT)
    previous = {s: signal.signal(s, interrupt) for s in wanted}
    _PRESSED.clear()  # a command of its own (tests run several in one process)
    _COMMAND.append(True)
    try:
        yield
    finally:
        _COMMAND.pop()
        _PRESSED.clear()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if this command was interrupted: called where a run waits on
    its fleet or a search starts a probe, it makes an interrupt whose exception Python lost
    stop the command all the same (a moment later, not never)."""
    if _PRESSED:
        raise KeyboardInterrupt
