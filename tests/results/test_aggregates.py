"""Aggregates: gauges summed across runners second by second, and documents read strictly."""

from __future__ import annotations

import pytest

from stressbed.errors import DocumentError
from stressbed.results.aggregates import Aggregate, Window, gauge_stats


def gauge(samples: dict[int, float]) -> Aggregate:
    agg = Aggregate("gauge")
    for second, value in samples.items():
        agg.add(value, second=second)
    return agg


def test_a_fleet_gauge_is_the_runners_sum_at_each_second():
    # Runner 1 skipped a second (its sample fell in the next one) and ends a second later.
    a = gauge({100: 3, 101: 3, 102: 3, 103: 3})
    b = gauge({100: 3, 102: 3, 103: 3, 104: 3})
    merged = a.copy()
    merged.merge(Aggregate.from_dict(b.to_dict()))
    # The skipped second carries the runner's last value; the lone tail is not a dip.
    assert merged.gauge() == (6.0, 6.0, 6.0)
    assert gauge_stats([{100: 1, 101: 5}, {100: 2, 101: 1}]) == (6.0, 3.0, 6.0)


def test_a_ramp_peaks_where_the_runners_peak_together():
    a = {10: 0, 11: 2, 12: 4, 13: 2}
    b = {10: 0, 11: 3, 12: 5, 13: 1}
    assert gauge_stats([a, b]) == (3.0, 0.0, 9.0)


def test_runners_that_never_overlap_are_read_over_their_union():
    assert gauge_stats([{1: 2, 2: 2}, {5: 4}]) == (4.0, 2.0, 4.0)
    assert gauge_stats([]) == (0.0, 0.0, 0.0)
    assert Aggregate("gauge").gauge() == (0.0, 0.0, 0.0)


def test_a_document_without_series_keeps_its_own_figures():
    old = {"kind": "gauge", "total": 0, "count": 3, "last": 2.0, "min": 1.0, "max": 5.0}
    assert Aggregate.from_dict(old).gauge() == (2.0, 1.0, 5.0)


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"kind": "histogram"}, "aggregate.kind"),
        ({"kind": "trend", "sketch": [1]}, "aggregate.sketch"),
        ({"kind": "counter", "total": "3", "count": 1}, "aggregate.total"),
        ({"kind": "rate", "total": 1, "count": 1.5}, "aggregate.count"),
        ({"kind": "gauge", "total": 0, "count": 1, "series": [{"x": 1}]}, "aggregate.series"),
    ],
)
def test_a_bad_aggregate_document_names_its_field(document, field):
    with pytest.raises(DocumentError) as error:
        Aggregate.from_dict(document)
    assert error.value.field == field
    assert error.value.exit_code == 3


def test_a_bad_window_document_names_its_field():
    good = Window(requests=1, failed=0, iterations=1, vus=2.0, vus_max=3.0).to_dict()
    assert Window.from_dict(good).vus_max == 3.0
    with pytest.raises(DocumentError, match=r"^window\.failed: got None; expected an integer"):
        Window.from_dict({**good, "failed": None})


def test_windows_of_two_runners_merge_their_names_statuses_checks_and_drops():
    a = Window(requests=3, failed=2, statuses={"503": 2}, checks_failed={"ok": 1}, dropped=1)
    a.name_sketch("report").extend([10.0, 20.0])
    b = Window(requests=2, failed=1, statuses={"503": 1}, checks_failed={"id": 2}, dropped=4)
    b.name_sketch("report").extend([30.0])
    b.name_sketch("ingest").extend([1.0])
    merged = a.copy()
    merged.merge(b)
    assert {k: s.count for k, s in merged.names.items()} == {"report": 3, "ingest": 1}
    assert merged.names["report"].maximum == 30.0
    assert (merged.statuses, merged.checks_failed) == ({"503": 3}, {"ok": 1, "id": 2})
    assert merged.dropped == 5
    assert a.names["report"].count == 2  # the copy was merged, not the original
