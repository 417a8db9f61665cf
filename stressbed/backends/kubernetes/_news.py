"""What the coordinator's log says as a Kubernetes fleet runs, read by its tail each poll."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...errors import DocumentError
from ...fleet.live import Progress, SecondSink
from ...results.aggregates import Window
from ...scenario.thresholds import Threshold
from ._cluster import ClusterApi, PodState

__all__ = ["COORDINATOR_TAIL", "CoordinatorNews"]

#: Lines of the coordinator's log read per poll: it prints one a second.
COORDINATOR_TAIL = 100


class CoordinatorNews:
    """What the coordinator's log says as the fleet runs: the merged progress (handed to
    ``on_progress``), an abort (the threshold that failed fleet-wide), and whether it has
    started the fleet (after which its own failure loses the live view, not the run)."""

    def __init__(
        self,
        thresholds: Sequence[Threshold],
        total_s: float,
        on_progress: Callable[[Progress], None] | None,
        series: SecondSink | None = None,
    ) -> None:
        self.thresholds = thresholds
        #: Where the seconds the coordinator merged go (the live page's and endpoint's).
        self.series = series
        self.total_s = total_s
        self.on_progress = on_progress
        self.seen_s = -1.0  # the elapsed time of the last progress handed on
        self.started = False
        #: The coordinator's release of the runners: unix time (the cluster's clock) and skew.
        self.started_at: float | None = None
        self.skew_ms: float | None = None
        self.lost = False
        self.aborted_at: float | None = None  # monotonic, when this side saw the abort

    def aborted_for(self, now: float) -> float:
        return 0.0 if self.aborted_at is None else now - self.aborted_at

    def read(
        self, api: ClusterApi, namespace: str, pods: Sequence[PodState], whole: bool = False
    ) -> Threshold | None:
        aborted = None
        latest: Progress | None = None
        seconds: dict[int, Window] = {}
        for pod in pods:
            if pod.phase not in ("Running", "Succeeded", "Failed"):
                continue  # no log yet
            try:
                text = api.log(namespace, pod.name, None if whole else COORDINATOR_TAIL)
            except Exception:  # the live line can wait for the next poll
                continue
            for line in text.splitlines():
                said = _json_line(line)
                if said is None:
                    continue
                kind = said.get("event")
                if kind in ("started", "progress"):
                    self.started = True
                if kind == "started" and isinstance(said.get("t"), int | float):
                    self.started_at = float(said["t"])
                    skew = said.get("skew_ms")
                    self.skew_ms = float(skew) if isinstance(skew, int | float) else None
                if kind == "aborted":
                    aborted = aborted or self._threshold(said)
                elif kind == "progress":
                    with contextlib.suppress(ValueError):
                        progress = Progress.from_dict(said, total_s=self.total_s)
                        if progress.elapsed_s > self.seen_s:
                            latest = progress
                elif kind == "second" and self.series is not None:
                    second = _second(said, self.series.sealed)
                    if second is not None:
                        seconds[second[0]] = second[1]
        if self.series is not None:
            for t in sorted(seconds):  # in order: a second is sealed once, and never again
                self.series.seal(t, seconds[t])
        if latest is not None and self.on_progress is not None:
            self.seen_s = latest.elapsed_s
            with contextlib.suppress(Exception):  # a live line must not break the run
                self.on_progress(latest)
        return aborted

    def _threshold(self, said: Mapping[str, Any]) -> Threshold | None:
        for threshold in self.thresholds:
            if threshold.key == said.get("threshold") and (
                threshold.expression == said.get("expression")
            ):
                return threshold
        return None  # not one this run asked for: another run's coordinator, say


def _json_line(line: str) -> dict[str, Any] | None:
    try:
        said = json.loads(line)
    except ValueError:
        return None
    return said if isinstance(said, dict) else None


def _second(said: Mapping[str, Any], sealed: int | None) -> tuple[int, Window] | None:
    """A ``second`` event's second and window, if it is after ``sealed`` and well formed."""
    t = said.get("t")
    if not isinstance(t, int) or isinstance(t, bool) or (sealed is not None and t <= sealed):
        return None
    try:
        return t, Window.from_dict(said.get("window"))  # type: ignore[arg-type]
    except (DocumentError, ValueError, TypeError, AttributeError):
        return None  # a line cut short, say: that second waits for the runners' results
