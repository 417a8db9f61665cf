"""The fleet's live view: the progress line and fleet-wide aborts, from runner snapshots."""

from __future__ import annotations

import pytest

from stressbed import error_rate, latency
from stressbed.errors import DocumentError
from stressbed.fleet.live import LiveMerge, Progress
from stressbed.results.aggregates import Aggregate, Window
from stressbed.results.sketch import Sketch
from stressbed.results.verdict import judge


def window(requests: int, failed: int = 0, vus: float = 0, durations: tuple[float, ...] = ()):
    sketch = Sketch()
    for value in durations:
        sketch.add(value)
    return Window(requests=requests, failed=failed, vus=vus, vus_max=vus, duration=sketch)


def rate(passes: int, count: int) -> Aggregate:
    return Aggregate("rate", total=passes, count=count)


def trend(*values: float) -> Aggregate:
    agg = Aggregate("trend")
    for value in values:
        agg.sketch.add(value)
    return agg


def snapshot(windows: dict[int, Window], aggregates: dict[str, Aggregate] | None = None):
    """A snapshot as a runner serves it: JSON-ready documents."""
    return {
        "windows": {str(t): w.to_dict() for t, w in windows.items()},
        "aggregates": {k: a.to_dict() for k, a in (aggregates or {}).items()},
    }


def test_the_live_line_is_the_latest_second_every_running_runner_has_closed():
    live = LiveMerge(2)
    live.feed(0, snapshot({100: window(10, vus=2), 101: window(12, 3, vus=2)}))
    live.feed(1, snapshot({100: window(8, vus=3, durations=(50.0,) * 4)}))
    progress = live.progress(2.0, 60.0)
    # Runner 1 has closed only second 100: that is the fleet's latest whole second.
    assert (progress.requests_per_s, progress.vus, progress.vus_max) == (18.0, 5.0, 5.0)
    assert progress.p95_ms == pytest.approx(50.0, rel=0.005)
    live.feed(1, snapshot({101: window(6, 1, vus=3)}))
    progress = live.progress(3.0, 60.0)
    assert (progress.requests_per_s, progress.error_rate) == (18.0, 4 / 18)
    # Runner 1 is done (a shared-iterations share ends early): the line moves on without it.
    live.finish(1)
    live.feed(0, snapshot({102: window(9, vus=2)}))
    assert live.progress(4.0, 60.0).requests_per_s == 9.0


def test_an_abort_threshold_fails_on_the_merged_fleet_not_on_one_runner():
    aborting = error_rate("< 5%", abort_on_fail=True)
    live = LiveMerge(2)
    # 8% on runner 0 alone, 4% over the fleet: holds.
    live.feed(0, snapshot({}, {"http_req_failed": rate(8, 100)}))
    live.feed(1, snapshot({}, {"http_req_failed": rate(0, 100)}))
    assert live.breached([aborting], judge, 10.0) is None
    live.feed(1, snapshot({}, {"http_req_failed": rate(4, 100)}))
    assert live.breached([aborting], judge, 11.0) == aborting


def test_no_data_and_a_delay_give_no_verdict_yet():
    delayed = latency("p(95) < 100ms", abort_on_fail=True, delay="30s")
    other = latency("p(95) < 100ms", request="never", abort_on_fail=True)
    live = LiveMerge(1)
    live.feed(0, snapshot({}, {"http_req_duration": trend(500.0, 600.0)}))
    assert live.breached([delayed, other], judge, 29.0) is None
    assert live.breached([delayed, other], judge, 31.0) == delayed


def test_a_malformed_snapshot_is_an_error_not_a_silent_zero():
    live = LiveMerge(1)
    with pytest.raises(DocumentError, match=r"^window\.duration: got None"):
        live.feed(0, {"windows": {"100": {}}, "aggregates": {}})
    with pytest.raises(DocumentError, match=r"^snapshot\.windows: got 'x'; expected whole unix"):
        live.feed(0, {"windows": {"x": window(1).to_dict()}, "aggregates": {}})
    with pytest.raises(DocumentError, match=r"^snapshot: got 'list'"):
        live.feed(0, [])  # type: ignore[arg-type]
    assert live.progress(1.0, 2.0).requests_per_s == 0.0  # nothing of them was kept


def test_a_progress_line_reads_back_and_refuses_what_is_not_a_number():
    line = Progress(1.5, 0.0, 40.0, 0.25, 12.5, 4.0, 6.0).to_dict()
    assert Progress.from_dict(line, total_s=600.0) == Progress(1.5, 600.0, 40.0, 0.25, 12.5, 4, 6)
    with pytest.raises(ValueError, match=r"progress\.vus: got 'many'"):
        Progress.from_dict({**line, "vus": "many"})
    with pytest.raises(ValueError, match=r"progress\.p95_ms: got True"):
        Progress.from_dict({**line, "p95_ms": True})


def test_a_long_run_keeps_a_live_view_of_a_few_seconds_only():
    live = LiveMerge(4)
    for second in range(1, 3601):  # an hour, each runner reporting each second
        for index in range(4):
            live.feed(index, snapshot({second: window(5, vus=1)}))
    assert live.kept_seconds() <= 8
    assert live.progress(3600.0, 3600.0).requests_per_s == 20.0
