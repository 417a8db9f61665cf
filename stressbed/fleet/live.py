"""The fleet's live view: what the runners report while they run, merged as one fleet.

Each runner reports snapshots (``{"windows": {second: Window}, "aggregates": {key:
Aggregate}}``: the seconds it closed since its last snapshot, and the threshold submetrics so
far). :class:`LiveMerge` keeps them per runner and answers the two live questions the same way
wherever the fleet runs (the local fleet, the coordinator in a cluster): the progress line
(:meth:`LiveMerge.progress`, from the latest second every runner has closed) and whether an
``abort_on_fail`` threshold has failed fleet-wide (:meth:`LiveMerge.breached`). Given a
:class:`~stressbed.results.live_series.LiveSeries`, it seals each second into it once every
running runner has closed it (and the rest at :meth:`LiveMerge.seal_rest`): what the live page
and the Prometheus endpoint show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import DocumentError
from ..results.aggregates import Aggregate, Window
from ..results.verdict import measured
from ..scenario.thresholds import Threshold

if TYPE_CHECKING:  # a type only: the runner image has no prometheus-client
    from ..results.live_series import LiveSeries

__all__ = ["Judge", "LiveMerge", "PrintedSeconds", "Progress", "SecondSink"]


class SecondSink(Protocol):
    """Where a sealed second goes: a :class:`LiveSeries`, or the coordinator's log."""

    sealed: int | None

    def seal(self, second: int, window: Window) -> bool: ...

    def runner_seconds(
        self, index: int, windows: Mapping[int, Window], cpu: Mapping[int, float]
    ) -> None: ...


class PrintedSeconds:
    """The coordinator's sink (its pod has no live series): each sealed second said as an
    event, ``{"event": "second", "t": T, "window": {...}}``, which the command following the
    run seals into its own series (:mod:`stressbed.backends.kubernetes._news`)."""

    def __init__(self, emit: Callable[[dict[str, object]], None]) -> None:
        self.emit = emit
        self.sealed: int | None = None

    def seal(self, second: int, window: Window) -> bool:
        if self.sealed is not None and second <= self.sealed:
            return False
        self.sealed = second
        self.emit({"event": "second", "t": second, "window": window.to_dict()})
        return True

    def runner_seconds(
        self, index: int, windows: Mapping[int, Window], cpu: Mapping[int, float]
    ) -> None:
        """Each runner's own seconds stay in the pod: the merged ones are what it says."""


#: ``judge(threshold, merged aggregates, elapsed seconds)``: True while the threshold holds.
Judge = Callable[[Threshold, dict[str, Aggregate], float], bool]


@dataclass(frozen=True)
class Progress:
    """What the live line shows, from windows every runner has closed."""

    elapsed_s: float
    total_s: float
    requests_per_s: float
    error_rate: float
    p95_ms: float
    vus: float  # active VUs, summed over the runners
    vus_max: float = 0.0  # VUs initialised, summed over the runners

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], total_s: float | None = None) -> Progress:
        """A progress line read back (``total_s`` replaces the writer's when given); a
        field missing or not a number is a ValueError."""
        values = {}
        for name in ("elapsed_s", "requests_per_s", "error_rate", "p95_ms", "vus", "vus_max"):
            value = data.get(name, 0.0)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"progress.{name}: got {value!r}; expected a number")
            values[name] = float(value)
        total = data.get("total_s", 0.0) if total_s is None else total_s
        if isinstance(total, bool) or not isinstance(total, int | float):
            raise ValueError(f"progress.total_s: got {total!r}; expected a number")
        return cls(total_s=float(total), **values)


class LiveMerge:
    """The runners' snapshots so far, merged on demand."""

    def __init__(self, runners: int, series: LiveSeries | SecondSink | None = None) -> None:
        self.runners = runners
        #: Where each second goes once the whole fleet has closed it (None: nowhere).
        self.series = series
        self._windows: list[dict[int, Window]] = [{} for _ in range(runners)]
        self._aggregates: list[dict[str, Aggregate]] = [{} for _ in range(runners)]
        self._finished: set[int] = set()

    def feed(self, index: int, snapshot: Mapping[str, Any]) -> None:
        """Fold in runner ``index``'s snapshot: its new closed seconds, its latest aggregates.
        A malformed snapshot is a DocumentError naming what is wrong; nothing of it is kept."""
        if not isinstance(snapshot, Mapping):
            raise DocumentError("snapshot", type(snapshot).__name__, "a JSON object")
        found: dict[str, Mapping[Any, Any]] = {}
        for name in ("windows", "aggregates"):
            part = snapshot.get(name)
            if not isinstance(part, Mapping):
                raise DocumentError(f"snapshot.{name}", part, "a JSON object")
            found[name] = part
        windows = {}
        for t, window in found["windows"].items():
            if not (isinstance(t, str | int) and str(t).isdigit()):
                raise DocumentError("snapshot.windows", t, "whole unix seconds as keys")
            if not isinstance(window, Mapping):
                raise DocumentError(f"snapshot.windows.{t}", window, "a window document")
            windows[int(t)] = Window.from_dict(window)
        aggregates = {}
        for key, agg in found["aggregates"].items():
            if not isinstance(agg, Mapping):
                raise DocumentError(f"snapshot.aggregates.{key}", agg, "an aggregate document")
            aggregates[str(key)] = Aggregate.from_dict(agg)
        self._aggregates[index] = aggregates
        cpu = snapshot.get("cpu")
        if self.series is not None and isinstance(cpu, Mapping):
            self.series.runner_seconds(index, {}, {int(t): float(c) for t, c in cpu.items()
                                                   if str(t).isdigit()
                                                   and isinstance(c, int | float)})  # fmt: skip
        self.feed_windows(index, windows)

    def feed_windows(self, index: int, windows: Mapping[int, Window]) -> None:
        """Fold in runner ``index``'s closed seconds (its snapshot's, or at its end its
        result's: the seconds no snapshot brought), those not already drawn."""
        sealed = self.series.sealed if self.series is not None else None
        if self.series is not None:  # each runner's own seconds, for the page's runner lanes
            self.series.runner_seconds(index, windows, {})
        self._windows[index].update(
            {t: w for t, w in windows.items() if sealed is None or t > sealed}
        )
        self._forget_drawn()

    def _latest(self) -> int:
        """The latest second every running runner has closed (the one the live line shows)."""
        running = [w for i, w in enumerate(self._windows) if i not in self._finished]
        return min((max(w, default=0) for w in running or self._windows), default=0)

    def _forget_drawn(self) -> None:
        # Only the latest common second is ever drawn again: older ones go, so a long run's
        # live view (the coordinator's memory in a pod) stays the size of a few seconds.
        latest = self._latest()
        self._seal(lambda t: t < latest)
        for windows in self._windows:
            for second in [t for t in windows if t < latest]:
                del windows[second]

    def _seal(self, which: Callable[[int], bool]) -> None:
        """Seal into the series, in order, each second ``which`` picks, merged over the runners
        (a second before one already sealed is not counted again: the series says so)."""
        if self.series is None:
            return
        seconds = sorted({t for windows in self._windows for t in windows if which(t)})
        for second in seconds:
            merged = Window()
            for windows in self._windows:
                if second in windows:
                    merged.merge(windows[second])
            self.series.seal(second, merged)

    def seal_rest(self) -> None:
        """Seal every second still kept: the run is over, no runner will close another."""
        self._seal(lambda t: True)

    def finish(self, index: int) -> None:
        """Runner ``index`` has ended: the live line no longer waits for its seconds."""
        self._finished.add(index)

    def kept_seconds(self) -> int:
        """How many windows are kept, over all runners (bounded however long the run)."""
        return sum(len(w) for w in self._windows)

    def aggregates(self) -> dict[str, Aggregate]:
        """The threshold submetrics so far, merged over the runners."""
        merged: dict[str, Aggregate] = {}
        for aggregates in self._aggregates:
            for key, agg in aggregates.items():
                if key in merged:
                    merged[key].merge(agg)
                else:
                    merged[key] = agg.copy()
        return merged

    def progress(self, elapsed_s: float, total_s: float) -> Progress:
        """The latest second every running runner has closed, merged over the runners."""
        latest = self._latest()
        window = Window()
        for windows in self._windows:
            if latest in windows:
                window.merge(windows[latest])
        return Progress(
            elapsed_s=elapsed_s,
            total_s=total_s,
            requests_per_s=float(window.requests),
            error_rate=window.failed / window.requests if window.requests else 0.0,
            p95_ms=window.duration.quantile(0.95) if window.duration.count else 0.0,
            vus=window.vus,
            vus_max=window.vus_max,
        )

    def breached(
        self, thresholds: Sequence[Threshold], judge: Judge, elapsed_s: float
    ) -> Threshold | None:
        """The first ``abort_on_fail`` threshold that fails on the merged data now, or None.
        As k6 does while a test runs: a threshold with no samples yet has no verdict yet,
        and one with a delay is not judged before it."""
        if not thresholds:
            return None
        merged = self.aggregates()
        for threshold in thresholds:
            if threshold.delay_ms and elapsed_s * 1000 < threshold.delay_ms:
                continue
            if not measured(merged.get(threshold.key)):
                continue
            if not judge(threshold, merged, elapsed_s):
                return threshold
        return None
