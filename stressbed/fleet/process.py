"""Process helpers shared by everything stressbed starts: parent-death signals, free ports."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import threading
from collections.abc import Iterator

__all__ = ["die_with_parent", "free_port", "uninterrupted"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child, before exec: get SIGKILL when the thread that started it dies (Linux).

    Even ``kill -9`` of stressbed then leaves no child behind. The signal follows the
    *thread* that forked, so children are started from threads that live as long as they do.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM while cleanup runs: a second Ctrl-C must not cut a teardown
    short and leave processes loading the target. (Handlers, not a signal mask: a signal
    the kernel hands to another thread still runs its handler in the main thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ignore(signum: int, frame: object) -> None:
        return  # a Python handler, not SIG_IGN: children started meanwhile keep the default

    previous = {s: signal.signal(s, ignore) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
