"""The versioned documents a run writes: one per runner, read back by the merge."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aggregates import Aggregate, Window

__all__ = ["RESULT_FORMAT", "RESULT_VERSION", "RunnerResult", "RunnerStatus", "status_for"]

RESULT_FORMAT = "stressbed.runner-result"
RESULT_VERSION = 1


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
    windows: dict[int, Window] = field(default_factory=dict)
    k6_summary: dict[str, Any] | None = None
    stderr_tail: list[str] = field(default_factory=list)
    samples: int = 0
    reason: str = ""
    #: The runner wrapper's own peak memory (k6 not included), for the flat-memory check.
    peak_rss_mb: float = 0.0

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
            "peak_rss_mb": self.peak_rss_mb,
            "aggregates": {k: v.to_dict() for k, v in sorted(self.aggregates.items())},
            "windows": {str(t): w.to_dict() for t, w in sorted(self.windows.items())},
            "k6_summary": self.k6_summary,
            "stderr_tail": self.stderr_tail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunnerResult:
        if data.get("format") != RESULT_FORMAT or data.get("version") != RESULT_VERSION:
            raise ValueError(
                f"not a {RESULT_FORMAT} v{RESULT_VERSION} document: "
                f"{data.get('format')!r} v{data.get('version')!r}"
            )
        return cls(
            index=data["index"],
            count=data["count"],
            segment=data["segment"],
            status=RunnerStatus(data["status"]),
            exit_code=data["exit_code"],
            reason=data.get("reason", ""),
            started_at=data["started_at"],
            ended_at=data["ended_at"],
            samples=data["samples"],
            peak_rss_mb=data.get("peak_rss_mb", 0.0),
            aggregates={k: Aggregate.from_dict(v) for k, v in data["aggregates"].items()},
            windows={int(t): Window.from_dict(w) for t, w in data["windows"].items()},
            k6_summary=data.get("k6_summary"),
            stderr_tail=list(data.get("stderr_tail", [])),
        )

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> RunnerResult:
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
