"""The target's own metrics: scrapes of two replicas, selected, turned into stack series."""

from __future__ import annotations

import pytest

from stressbed.errors import ConfigError
from stressbed.results.target_metrics import increases, parse, parse_selector, series

SELECT = [
    parse_selector("agent_queue_points"),
    parse_selector('agent_requests{status="429"}'),
    parse_selector("agent_request_duration_seconds"),
]


def page(queue: float, shed: float, *, ok: float, fast: float, slow: float, total: float) -> str:
    return f"""# HELP agent_queue_points q
# TYPE agent_queue_points gauge
agent_queue_points {queue}
# TYPE agent_requests_total counter
agent_requests_total{{route="/v1/report",status="429"}} {shed}
agent_requests_total{{route="/v1/report",status="202"}} {ok}
agent_requests_created{{route="/v1/report",status="429"}} 1.7e9
# TYPE agent_request_duration_seconds histogram
agent_request_duration_seconds_bucket{{le="0.01",route="/v1/report"}} {fast}
agent_request_duration_seconds_bucket{{le="0.1",route="/v1/report"}} {slow}
agent_request_duration_seconds_bucket{{le="+Inf",route="/v1/report"}} {total}
agent_request_duration_seconds_count{{route="/v1/report"}} {total}
agent_request_duration_seconds_sum{{route="/v1/report"}} 1.0
# TYPE unrelated gauge
unrelated 5
"""


def test_only_the_selected_samples_are_kept():
    scrape = parse(page(7, 3, ok=90, fast=10, slow=20, total=20), SELECT, 100.0, "agent-0")
    assert scrape.samples == {
        ("gauge", "agent_queue_points"): 7.0,
        ("counter", 'agent_requests{route="/v1/report",status="429"}'): 3.0,
        ("histogram", 'agent_request_duration_seconds{route="/v1/report"}|0.01'): 10.0,
        ("histogram", 'agent_request_duration_seconds{route="/v1/report"}|0.1'): 20.0,
        ("histogram", 'agent_request_duration_seconds{route="/v1/report"}|+Inf'): 20.0,
    }


def test_two_replicas_add_up_to_the_stack():
    scrapes = [
        parse(page(5, 0, ok=0, fast=0, slow=0, total=0), SELECT, 100.0, "agent-0"),
        parse(page(2, 10, ok=0, fast=0, slow=0, total=0), SELECT, 100.1, "agent-1"),
        parse(
            page(6, 4, ok=0, fast=90, slow=100, total=100), SELECT, 101.0, "agent-0"
        ),  # 4 shed, 100 served
        parse(
            page(3, 12, ok=0, fast=0, slow=100, total=100), SELECT, 101.1, "agent-1"
        ),  # 2 shed, 100 served
        parse(
            page(1, 1, ok=0, fast=0, slow=0, total=0), SELECT, 102.0, "agent-1"
        ),  # restarted: counts from 0
    ]
    found = series(scrapes)
    assert found["agent_queue_points"] == [(100, 7.0), (101, 9.0), (102, 1.0)]
    shed = 'agent_requests{route="/v1/report",status="429"} /s'
    # Each rate is keyed by the second its interval began.
    assert found[shed] == [(100, pytest.approx(6.0)), (101, pytest.approx(1 / 0.9))]
    # The interval from second 100: 200 requests, 90 under 10 ms, 110 between 10 and 100 ms.
    # The 190th is in the second bucket, 100 of its 110 in: 10 + 90 * 100/110 ms.
    ((second, p95),) = found['agent_request_duration_seconds{route="/v1/report"} p95 ms']
    assert second == 100
    assert p95 == pytest.approx(10 + 90 * 100 / 110)


def test_a_page_that_is_not_prometheus_text_is_an_empty_scrape():
    assert parse("<html>oops</html>\n{", SELECT, 1.0, "a").samples == {}


@pytest.mark.parametrize("bad", ["", "9lives", "x{status=429}", 'x{status="1",}'])
def test_a_selector_that_is_not_one_is_refused_naming_the_field(bad):
    with pytest.raises(ConfigError, match=r"^stack\.metrics\.series: got "):
        parse_selector(bad)


def test_two_scrapes_of_one_replica_in_one_second_count_once():
    gauge = "# TYPE agent_queue_points gauge\nagent_queue_points {}\n"
    counter = '# TYPE agent_requests_total counter\nagent_requests_total{{status="429"}} {}\n'
    scrapes = [
        parse(gauge.format(5) + counter.format(0), SELECT, t, "agent-0") for t in (10.01,)
    ] + [
        parse(gauge.format(5) + counter.format(10), SELECT, 10.999, "agent-0"),
        parse(gauge.format(5) + counter.format(20), SELECT, 12.0, "agent-0"),
    ]
    found = series(scrapes)
    assert found["agent_queue_points"] == [(10, 5.0), (12, 5.0)]  # the replica's, not 10
    # 20 requests over the 1.99 s watched: about 10/s, keyed by the seconds the intervals began.
    rates = dict(found['agent_requests{status="429"} /s'])
    assert rates == {10: pytest.approx(20 / 1.99, rel=1e-3)}


def test_a_counter_s_increase_over_the_run_is_exact_across_replicas_and_restarts():
    scrapes = [
        parse(page(0, 3, ok=0, fast=0, slow=0, total=0), SELECT, 100.0, "agent-0"),
        parse(page(0, 10, ok=0, fast=0, slow=0, total=0), SELECT, 100.1, "agent-1"),
        parse(page(0, 7, ok=0, fast=0, slow=0, total=0), SELECT, 101.7, "agent-0"),  # +4
        parse(page(0, 2, ok=0, fast=0, slow=0, total=0), SELECT, 103.0, "agent-0"),  # reset: +2
        parse(page(0, 15, ok=0, fast=0, slow=0, total=0), SELECT, 102.2, "agent-1"),  # +5
    ]
    shed = 'agent_requests{route="/v1/report",status="429"}'
    assert increases(scrapes) == {shed: 11.0}
    assert increases(scrapes[:2]) == {}  # one scrape each: nothing seen to grow
