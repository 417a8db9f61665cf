"""The live progress line of a run."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, TextIO

from ..backends.base import Progress

PLAIN_EVERY_S = 5.0
#: Stack events worth a line of their own while a run goes on.
NOTABLE = {
    "limits": "limits enforced by {enforcement}",
    "stack-ready": "stack ready at {url}",
    "scaled": "scaled {from} -> {to} ({reason})",
    "quota-denied": "quota denied a replica: {reason}",
    "unready": "{replica} unready ({probe})",
    "liveness-failed": "{replica} failed its liveness probe ({probe})",
    "oom-killed": "{replica} OOM-killed",
    "crashed": "{replica} crashed: {reason}",
    "restarted": "{replica} restarted (restart {restarts})",
    "fault-applied": "fault {fault} applied: {label} ({how})",
    "fault-ended": "fault {fault} ended ({reason})",
    "fault-skipped": "fault {fault} skipped: {reason}",
    "data-mounted": "data folder {path}: a tmpfs of {size} bytes of its own (what a disk_fill "
    "fills)",
    "proxy-refused": "warning: the API server's pod proxy did not reach {pod}:{port} "
    "({reason}): {fix}",
}


class LiveLine:
    """One line rewritten in place on a terminal; a plain log line every few seconds else."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last_plain = 0.0
        self._drawn = False
        self._lock = threading.Lock()  # stack events arrive from the controller thread

    def stack_event(self, event: dict[str, Any]) -> None:
        template = NOTABLE.get(str(event.get("event")))
        if event.get("event") == "limits" and not event.get("cgroups"):
            template = (
                "note: cgroups are not writable here, so memory limits are an RLIMIT_DATA and "
                "CPU limits advisory; to enforce them, run as root or inside a cgroup delegated "
                "to you (systemd-run --user --scope -p Delegate=yes ...)"
            )
        if template is None:
            return
        with contextlib.suppress(KeyError, ValueError):
            text = template.format(**{k: v for k, v in event.items() if k != "t"})
            with self._lock:
                if self._drawn:
                    self.stream.write("\r\x1b[2K")
                self.stream.write(f"stressbed: stack: {text}\n")
                self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a capacity probe's verdict), above the live line."""
        with self._lock:
            if self._drawn:
                self.stream.write("\r\x1b[2K")
                self._drawn = False
            self.stream.write(f"stressbed: {text}\n")
            self.stream.flush()

    def update(self, progress: Progress) -> None:
        text = (
            f"{progress.elapsed_s:5.0f}s/{progress.total_s:.0f}s  "
            f"{progress.requests_per_s:8,.0f} req/s  err {progress.error_rate * 100:5.2f}%  "
            f"p95 {progress.p95_ms:8.2f} ms  VUs {progress.vus:.0f}/{progress.vus_max:.0f}"
        )
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[2K" + text)
                self._drawn = True
            elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = time.monotonic()
                self.stream.write(f"stressbed: {text}\n")
            self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
