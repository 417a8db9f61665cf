"""Where accepted batches go, and what has been stored there per agent id.

The file sink appends one JSON line per batch (``{"agent_id", "accepted_at", "points"}``) with
a single ``write(2)`` on an ``O_APPEND`` descriptor, so replicas sharing one file never
interleave their lines, and a line is stored (in the kernel's page cache) once the call has
returned: a SIGKILL after that loses nothing. :class:`Stored` reads the file back
incrementally, complete lines only, so every replica answers the read-back for writes any
replica stored, across restarts.

With ``sink_sync: data`` each write is ``fdatasync``'ed before it counts as stored: a lost
machine loses nothing acknowledged either, and each flush waits for the disk (a slow disk
slows the flusher: the queue grows, the agent turns unready at its high watermark and answers
429 once the queue is full, never acknowledging what it has not stored).

A full disk (ENOSPC, EDQUOT) is :class:`SinkFull`, saying how many of the batches were stored
whole before it: a write the disk cut short leaves a torn line, which the same sink's next
write ends with a newline of its own first (a line that is not JSON: never counted as
stored); a whole line another replica appended to it meanwhile is counted all the same.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

from .config import Config

__all__ = ["Batch", "Sink", "SinkFull", "Stored"]

#: (agent id, points, unix time the agent accepted the batch)
Batch = tuple[str, list[dict[str, Any]], float]
#: Agent ids the read-back index keeps at most; past it, new ids are counted as unknown.
MAX_WRITERS = 200_000


class SinkFull(OSError):
    """The sink's disk is full: the first ``stored`` batches were stored whole, the rest not."""

    def __init__(self, stored: int, cause: OSError) -> None:
        super().__init__(cause.errno, f"the sink's disk is full: {cause.strerror}")
        self.stored = stored


#: The errors that say the disk is full, not that it failed.
FULL = (errno.ENOSPC, errno.EDQUOT)


class Sink:
    """Nowhere ("null") or appended as JSON lines to a file ("file")."""

    def __init__(self, config: Config) -> None:
        self.path = Path(config.sink_path) if config.sink == "file" else None
        self.sync = config.sink_sync == "data"  # each write on the disk before it counts
        #: Set by fault hooks and tests: the next writes fail with this error.
        self.failing: str | None = None
        #: A write of this sink was cut short (a full disk): its next write ends that line.
        self.torn = False

    def write(self, batches: list[Batch]) -> None:
        if self.failing is not None:
            raise OSError(self.failing)
        if self.path is None:
            return
        lines = [
            (
                json.dumps({"agent_id": agent, "accepted_at": round(at, 3), "points": points})
                + "\n"
            ).encode()
            for agent, points, at in batches
        ]
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in FULL:
                raise
            raise SinkFull(0, exc) from exc
        # Only a replica whose own write was cut short ends the torn line (the file's end is
        # looked at then only: another replica's write may be under way).
        lead = b"\n" if self.torn and _ends_torn(fd) else b""
        data = lead + b"".join(lines)
        written = 0
        try:
            view = memoryview(data)
            while view:  # one call unless interrupted; a short write is finished, not lost
                done = os.write(fd, view)
                written += done
                view = view[done:]
            if self.sync:
                _sync(fd)
        except SinkFull:
            raise  # written, but not on the disk: not one of them stored
        except OSError as exc:
            body = written - len(lead)
            whole = _whole(lines, body)
            # Torn: the torn line still not ended, or a line of these begun and not finished.
            self.torn = (body < 0 and self.torn) or body > sum(map(len, lines[:whole]))
            if exc.errno not in FULL:
                raise
            raise SinkFull(whole, exc) from exc
        finally:
            os.close(fd)
        self.torn = False


def _sync(fd: int) -> None:
    """The file's data on the disk; a full disk is SinkFull with nothing stored."""
    try:
        os.fdatasync(fd)
    except OSError as exc:
        if exc.errno not in FULL:
            raise
        raise SinkFull(0, exc) from exc


def _ends_torn(fd: int) -> bool:
    """Whether the file's last line has no newline."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def _whole(lines: list[bytes], written: int) -> int:
    """How many of ``lines`` the first ``written`` bytes hold whole."""
    whole = 0
    for line in lines:
        written -= len(line)
        if written < 0:
            break
        whole += 1
    return whole


#: How every line starts; inside a line's strings a quote is escaped, so this marks a start.
LINE_START = b'{"agent_id": '


class Stored:
    """Points stored per agent id, and per second of acceptance, read from the sink file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # read-backs run on worker threads, off the event loop
        self.offset = 0
        self.points: dict[str, int] = {}
        self.seconds: dict[str, dict[int, int]] = {}
        self.bad_lines = 0

    def of(self, agent: str) -> dict[str, Any]:
        """What the read-back answers for ``agent``: its stored points, in total and per
        second of acceptance (unix seconds)."""
        with self.lock:
            self._catch_up()
            seconds = self.seconds.get(agent, {})
            return {
                "agent_id": agent,
                "stored": self.points.get(agent, 0),
                "by_second": {str(s): n for s, n in sorted(seconds.items())},
            }

    def _catch_up(self) -> None:
        """Count the lines appended since the last call, a line at a time (the file is never
        read whole into memory)."""
        try:
            with self.path.open("rb") as source:
                source.seek(self.offset)
                for line in source:
                    if not line.endswith(b"\n"):
                        break  # still being written: counted at the next call
                    if line.strip():  # a blank line ends a torn one: nothing to count
                        self._count(line)
                    self.offset += len(line)
        except FileNotFoundError:
            return  # nothing stored yet

    def _count(self, line: bytes) -> None:
        try:
            batch = json.loads(line)
        except ValueError:
            self.bad_lines += 1
            # A torn line (a full disk cut it short) that a whole line of another replica
            # joined: the whole one starts last; the torn part alone is bad.
            last = line.rfind(LINE_START)
            if last > 0:
                self._count(line[last:])
            return
        try:
            agent, points, at = batch["agent_id"], len(batch["points"]), int(batch["accepted_at"])
        except (KeyError, TypeError):
            self.bad_lines += 1
            return
        if agent not in self.points and len(self.points) >= MAX_WRITERS:
            self.bad_lines += 1
            return
        self.points[agent] = self.points.get(agent, 0) + points
        per_second = self.seconds.setdefault(agent, {})
        per_second[at] = per_second.get(at, 0) + points
