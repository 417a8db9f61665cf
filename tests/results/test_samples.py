"""The sample collector: k6's CSV stream folded into aggregates and submetrics."""

from __future__ import annotations

from stressbed.results.aggregates import MAX_NAMES, OTHER_NAME, Window
from stressbed.results.samples import Collector, parse_selector

HEADER = "metric_name,timestamp,metric_value,check,error_code,expected_response,group,method,name,scenario,status,extra_tags,metadata\n"  # noqa: E501


def test_the_collector_reads_k6_csv_with_its_header_and_submetrics():
    collector = Collector(
        [
            parse_selector("http_req_duration{name:report}"),
            parse_selector("http_req_failed{name:report}"),
        ]
    )
    lines = [
        HEADER,
        "http_reqs,100,1.000000,,,true,,POST,report,w,202,,\n",
        "http_req_duration,100,12.5,,,true,,POST,report,w,202,,\n",
        "http_req_failed,100,0.000000,,,true,,POST,report,w,202,,\n",
        'http_reqs,101,1.000000,,,false,,GET,"odd, name",w,500,,\n',
        'http_req_duration,101,40,,,false,,GET,"odd, name",w,500,,\n',
        'http_req_failed,101,1.000000,,,false,,GET,"odd, name",w,500,,\n',
        "http_req_waiting,101,39,,,false,,GET,x,w,500,,\n",  # not a metric anyone asked for
        "vus,101,4.000000,,,,,,,,,,\n",
        "http_reqs,102,1.0,,,true,,GET",  # cut short: k6 killed mid-write
    ]
    collector.feed_lines(lines)
    aggs = collector.aggregates
    assert aggs["http_reqs"].total == 2
    assert aggs["http_req_duration"].sketch.count == 2
    assert aggs["http_req_duration{name:report}"].sketch.count == 1
    assert aggs["http_req_duration{expected_response:true}"].sketch.maximum == 12.5
    assert (aggs["http_req_failed"].total, aggs["http_req_failed"].count) == (1, 2)
    assert aggs["http_req_failed{name:report}"].total == 0
    assert "http_req_waiting" not in aggs
    assert collector.windows[101].failed == 1
    assert collector.windows[101].vus == 4
    assert 102 not in collector.windows


def test_lines_that_cannot_be_used_are_counted_not_lost_silently():
    collector = Collector()
    collector.feed_lines(
        [
            HEADER,
            "iterations,100,1.000000,,,,,,,w,,,\n",
            "iterations,100,not-a-number,,,,,,,w,,,\n",  # malformed
            "http_req_duration,101,1.0,,,true,,GET",  # cut short: k6 killed mid-write
        ]
    )
    assert collector.samples == 1
    assert collector.bad_lines == 2


def test_a_request_is_read_off_its_duration_line_as_k6_emits_the_three_together():
    # Derived: the request's own http_reqs and http_req_failed lines are not read at all.
    lines = [
        "http_reqs,100,1.000000,,,false,,GET,a,w,503,,\n",
        "http_req_duration,100,7.5,,,false,,GET,a,w,503,,\n",
        "http_req_failed,100,1.000000,,,false,,GET,a,w,503,,\n",
        "http_reqs,100,1.000000,,,true,,GET,a,w,200,,\n",
        "http_req_duration,100,2.5,,,true,,GET,a,w,200,,\n",
        "http_req_failed,100,0.000000,,,true,,GET,a,w,200,,\n",
    ]
    selectors = [parse_selector("http_req_failed{name:a}"), parse_selector("http_reqs{status:503}")]
    derived = Collector(selectors)
    derived.feed_lines([HEADER, *lines])
    # The same stream without the expected_response column: every line is read.
    header = HEADER.replace("expected_response,", "")
    plain = Collector(selectors)
    plain.feed_lines(
        [header, *(line.replace(",true,", ",").replace(",false,", ",") for line in lines)]
    )
    for collector in (derived, plain):
        aggs = collector.aggregates
        assert aggs["http_reqs"].total == 2
        assert (aggs["http_req_failed"].total, aggs["http_req_failed"].count) == (1, 2)
        assert (aggs["http_req_failed{name:a}"].total, aggs["http_req_failed{name:a}"].count) == (
            1,
            2,
        )
        assert aggs["http_reqs{status:503}"].total == 1
        assert collector.samples == 6
        window = collector.windows[100]
        assert (window.requests, window.failed, window.statuses) == (2, 1, {"503": 1})
    assert {k: v.to_dict() for k, v in derived.aggregates.items() if "expected" not in k} == {
        k: v.to_dict() for k, v in plain.aggregates.items()
    }


def test_each_second_keeps_what_the_report_draws():
    collector = Collector()
    lines = [HEADER]
    for name, status, ms in [("report", "202", 10), ("report", "503", 90), ("ingest", "", 5)]:
        failed = "0" if status == "202" else "1"
        expected = "true" if status == "202" else "false"
        lines += [
            f"http_reqs,100,1,,,{expected},,POST,{name},w,{status},,\n",
            f"http_req_duration,100,{ms},,,{expected},,POST,{name},w,{status},,\n",
            f"http_req_failed,100,{failed},,,{expected},,POST,{name},w,{status},,\n",
        ]
    lines += [
        "checks,100,1,accepted,,,,,,w,,,\n",
        "checks,100,0,accepted,,,,,,w,,,\n",
        "checks,100,0,has id,,,,,,w,,,\n",
        "dropped_iterations,100,3,,,,,,,w,,,\n",
    ]
    collector.feed_lines(lines)
    window = collector.windows[100]
    assert {k: v.count for k, v in window.names.items()} == {"report": 2, "ingest": 1}
    assert window.names["report"].maximum == 90
    # A request with no response (refused, timed out) has no status: "0".
    assert window.statuses == {"503": 1, "0": 1}
    assert window.checks_failed == {"accepted": 1, "has id": 1}
    assert window.dropped == 3
    assert Window.from_dict(window.to_dict()) == window


def test_a_window_keeps_a_bounded_number_of_request_names():
    collector = Collector()
    lines = [HEADER]
    for i in range(MAX_NAMES + 10):  # unnamed requests: k6 names each by its URL
        lines.append(f"http_req_duration,100,{i + 1},,,true,,GET,/item/{i},w,200,,\n")
    collector.feed_lines(lines)
    names = collector.windows[100].names
    assert len(names) == MAX_NAMES + 1
    assert names[OTHER_NAME].count == 10
    assert sum(s.count for s in names.values()) == MAX_NAMES + 10
    assert collector.folded == {f"/item/{i}" for i in range(MAX_NAMES, MAX_NAMES + 10)}


def test_a_second_without_a_vu_sample_holds_the_last_value():
    collector = Collector()
    collector.feed_lines(
        [
            HEADER,
            "vus_max,100,10,,,,,,,,,,\n",
            "vus,100,4,,,,,,,,,,\n",
            "http_req_duration,101,1,,,true,,GET,a,w,200,,\n",  # no gauge sampled in 101
            "vus_max,102,10,,,,,,,,,,\n",
            "vus,102,2,,,,,,,,,,\n",  # a drop: the second's own sample, not the carried 4
        ]
    )
    windows = collector.windows
    assert (windows[101].vus, windows[101].vus_max) == (4, 10)
    assert (windows[102].vus, windows[102].vus_max) == (2, 10)


def test_data_counters_come_from_k6s_summary_unless_a_threshold_reads_their_lines():
    lines = [HEADER, "data_sent,100,120,,,,,,,w,,,\n", "data_received,100,300,,,,,,,w,,,\n"]
    summary = {"metrics": {"data_sent": {"count": 5000, "rate": 50.0}}}
    skipped = Collector()
    skipped.feed_lines(lines)
    assert "data_sent" not in skipped.aggregates
    assert skipped.samples == 0
    skipped.take_summary(summary)
    assert skipped.aggregates["data_sent"].total == 5000
    assert "data_received" not in skipped.aggregates  # not in this summary: not made up
    read = Collector([parse_selector("data_sent{scenario:w}")])
    read.feed_lines(lines)
    read.take_summary(summary)  # the lines win: the threshold is judged live on them
    assert read.aggregates["data_sent"].total == 120
    assert read.aggregates["data_sent{scenario:w}"].total == 120
