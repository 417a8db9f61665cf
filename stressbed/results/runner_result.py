"""The versioned documents a run writes: one per runner, read back by the merge."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DocumentError
from .aggregates import Aggregate, Window
from .packed import pack_windows

__all__ = ["RESULT_FORMAT", "RESULT_VERSION", "RunnerResult", "RunnerStatus", "status_for"]

RESULT_FORMAT = "stressbed.runner-result"
#: 3: packed windows that may carry a population's agents; 2: windows packed
#: (:mod:`stressbed.results.packed`); 1: windows as JSON objects. All three are read.
RESULT_VERSION = 3
_READABLE = (1, 2, 3)


class RunnerStatus(enum.Enum):
    """How a runner's k6 ended, from its exit code (k6's codes mapped one by one)."""

    OK = "ok"  # 0 (and 99: thresholds are judged by the fleet, never by one runner)
    ABORTED = "aborted"  # 105 external abort, 108 test.abort() in the script
    SCRIPT_ERROR = "script_error"  # 107
    CONFIG_ERROR = "config_error"  # 104
    ERROR = "error"  # 100-103, 106, 109, 110 and anything else
    KILLED = "killed"  # ended by a signal
    OOM_KILLED = "oom_killed"  # ended by SIGKILL while its cgroup ran out of memory
    STOPPED = "stopped"  # stopped by the fleet because another runner failed
    TIMEOUT = "timeout"  # stopped by the fleet at the deadline

    @property
    def failed(self) -> bool:
        return self not in (RunnerStatus.OK, RunnerStatus.STOPPED)


def status_for(exit_code: int) -> RunnerStatus:
    if exit_code in (0, 99):
        return RunnerStatus.OK
    if exit_code in (105, 108):
        return RunnerStatus.ABORTED
    if exit_code == 107:
        return RunnerStatus.SCRIPT_ERROR
    if exit_code == 104:
        return RunnerStatus.CONFIG_ERROR
    if exit_code < 0:
        return RunnerStatus.KILLED
    return RunnerStatus.ERROR


@dataclass
class RunnerResult:
    index: int
    count: int
    segment: str
    status: RunnerStatus
    exit_code: int
    started_at: float  # unix time the test started in this runner (resume)
    ended_at: float
    aggregates: dict[str, Aggregate] = field(default_factory=dict)
    #: Per unix second; read from a version-2 document, a lazy :class:`PackedWindows`.
    windows: Mapping[int, Window] = field(default_factory=dict)
    #: Write items acknowledged per writer (the scenario's Writes; empty without).
    writes: dict[str, int] = field(default_factory=dict)
    k6_summary: dict[str, Any] | None = None
    stderr_tail: list[str] = field(default_factory=list)
    samples: int = 0
    #: k6 CSV lines the collector could not use (cut short by a kill, or malformed).
    dropped_lines: int = 0
    reason: str = ""
    #: The runner wrapper's own peak memory (k6 not included), for the flat-memory check.
    peak_rss_mb: float = 0.0
    #: k6's CPU per second (unix second -> cores used): is the load generator the limit?
    cpu: dict[int, float] = field(default_factory=dict)
    #: The cores k6 could use (its CPU affinity, capped by its cgroup's quota); 0: unknown.
    cpu_capacity: float = 0.0
    #: Request names whose latency the windows count under "(other)", not apart (listed up
    #: to MAX_FOLDED_LISTED; ``names_folded_more``: there were more).
    names_folded: list[str] = field(default_factory=list)
    names_folded_more: bool = False
    #: The open-file limit k6 ran with (each connection is a descriptor); None: not read.
    nofile: int | None = None
    #: The addresses k6's VUs connected from (its --local-ips), None: the system's choice.
    source_addresses: str | None = None

    @classmethod
    def missing(
        cls,
        index: int,
        count: int,
        segment: str,
        status: RunnerStatus,
        reason: str,
        *,
        exit_code: int = -1,
        started_at: float | None = None,
    ) -> RunnerResult:
        """The result of a runner that left no document (killed, no log line): no data."""
        now = time.time()
        return cls(
            index=index,
            count=count,
            segment=segment,
            status=status,
            exit_code=exit_code,
            reason=reason,
            started_at=started_at or now,
            ended_at=now,
        )

    @property
    def requests(self) -> int:
        agg = self.aggregates.get("http_reqs")
        return int(agg.total) if agg else 0

    def per_second(self, name: str) -> Iterator[tuple[int, float]]:
        """(second, value) of one of the windows' counts (``requests``, ``dropped``, ...),
        read without decoding any sketch."""
        column = getattr(self.windows, "column", None)
        if column is not None:
            return zip(self.windows, column(name), strict=True)
        return ((t, getattr(w, name)) for t, w in self.windows.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RESULT_FORMAT,
            "version": RESULT_VERSION,
            "index": self.index,
            "count": self.count,
            "segment": self.segment,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "samples": self.samples,
            "dropped_lines": self.dropped_lines,
            "peak_rss_mb": self.peak_rss_mb,
            "cpu": {str(t): round(v, 4) for t, v in sorted(self.cpu.items())},
            "cpu_capacity": self.cpu_capacity,
            "nofile": self.nofile,
            "source_addresses": self.source_addresses,
            "aggregates": {k: v.to_dict() for k, v in sorted(self.aggregates.items())},
            "windows": _packed(self.windows),
            "writes": dict(sorted(self.writes.items())),
            "names_folded": sorted(self.names_folded),
            "names_folded_more": self.names_folded_more,
            "k6_summary": self.k6_summary,
            "stderr_tail": self.stderr_tail,
        }

    @classmethod
    def from_dict(cls, data: Any) -> RunnerResult:
        """The document read back; DocumentError (exit 3) naming what is wrong with it: another
        format or version (a runner of another stressbed), a field missing or mistyped."""
        if not isinstance(data, dict):
            raise DocumentError("result", data, f"a {RESULT_FORMAT} document (a JSON object)")
        version = data.get("version")
        if data.get("format") != RESULT_FORMAT or version not in _READABLE:
            raise DocumentError(
                "result.format",
                f"{data.get('format')} v{data.get('version')}",
                f"{RESULT_FORMAT} v1 to v3 (a runner of a compatible stressbed version)",
            )
        status = _field(data, "status", str)
        try:
            runner_status = RunnerStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in RunnerStatus)
            raise DocumentError("result.status", status, f"one of {known}") from None
        aggregates = _field(data, "aggregates", dict)
        windows = _windows(_field(data, "windows", dict), version)
        cpu = _field(data, "cpu", dict, default={})
        try:
            cpu_seconds = {int(t): float(v) for t, v in cpu.items()}
        except (TypeError, ValueError):
            raise DocumentError("result.cpu", list(cpu.items())[:3], "seconds -> cores") from None
        writes = _field(data, "writes", dict, default={})
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in writes.values()):
            raise DocumentError("result.writes", list(writes.items())[:3], "writer -> a count")
        summary = data.get("k6_summary")
        folded = _field(data, "names_folded", list, default=[])
        nofile = _field(data, "nofile", (int, type(None)), default=None)
        sources = _field(data, "source_addresses", (str, type(None)), default=None)
        if not all(isinstance(name, str) for name in folded):
            raise DocumentError("result.names_folded", folded[:3], "a list of request names")
        return cls(
            index=_field(data, "index", int),
            count=_field(data, "count", int),
            segment=_field(data, "segment", str),
            status=runner_status,
            exit_code=_field(data, "exit_code", int),
            reason=str(data.get("reason", "")),
            started_at=float(_field(data, "started_at", (int, float))),
            ended_at=float(_field(data, "ended_at", (int, float))),
            samples=_field(data, "samples", int),
            dropped_lines=_field(data, "dropped_lines", int, default=0),
            peak_rss_mb=float(_field(data, "peak_rss_mb", (int, float), default=0.0)),
            cpu=cpu_seconds,
            cpu_capacity=float(_field(data, "cpu_capacity", (int, float), default=0.0)),
            aggregates={k: Aggregate.from_dict(_mapping(v, k)) for k, v in aggregates.items()},
            windows=windows,
            writes={str(k): v for k, v in writes.items()},
            names_folded=folded,
            names_folded_more=bool(data.get("names_folded_more", False)),
            nofile=nofile,
            source_addresses=sources,
            k6_summary=summary if isinstance(summary, dict) else None,
            stderr_tail=[str(line) for line in _field(data, "stderr_tail", list, default=[])],
        )

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> RunnerResult:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DocumentError(str(path), type(exc).__name__, "a readable JSON document") from exc
        return cls.from_dict(data)


_MISSING = object()


def _packed(windows: Mapping[int, Window]) -> dict[str, Any]:
    document = getattr(windows, "document", None)  # read packed: written again as it came
    return document() if document is not None else pack_windows(windows)


def _windows(data: dict[str, Any], version: object) -> Mapping[int, Window]:
    if version == 1:
        try:
            seconds = {int(t): w for t, w in data.items()}
        except ValueError:
            raise DocumentError("result.windows", list(data)[:3], "whole seconds") from None
        return {t: Window.from_dict(_mapping(w, str(t))) for t, w in seconds.items()}
    # Decoding needs numpy, which the runner image (it only writes documents) does not have.
    from .unpack import PackedWindows  # noqa: PLC0415

    return PackedWindows(data)


def _field(data: dict[str, Any], name: str, kind: Any, default: Any = _MISSING) -> Any:
    value = data.get(name, default)
    if value is _MISSING:
        raise DocumentError(f"result.{name}", None, "a value")
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DocumentError(f"result.{name}", value, f"a value of type {names}")
    return value


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DocumentError(f"result.{key}", value, "a JSON object")
    return value
