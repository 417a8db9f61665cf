"""The Capacity declaration: SLOs parsed and checked, rates, durations; bad input named."""

from __future__ import annotations

import pytest

from stressbed import Capacity, ConfigError, error_rate, latency, request_rate
from stressbed.scenario.capacity import parse_slo, slo_label
from stressbed.thresholds import checkin_lateness, command_rtt, connected


def test_defaults_and_the_warm_up_a_third_of_the_step_at_least_5s():
    found = Capacity(slos=["p(95)<300ms"])
    assert (found.min_rate, found.max_rate, found.step_s, found.budget_s) == (10, 10_000, 30, 600)
    assert found.warmup_s == 10
    assert Capacity(slos=["p(95)<300ms"], step_duration="9s").warmup_s == 5
    # A short step keeps a steady window of at least 3 s.
    assert Capacity(slos=["p(95)<300ms"], step_duration="6s").warmup_s == 3


def test_slos_from_the_command_line_and_the_dsl_alike():
    by_text = Capacity(slos=["p(95)<300ms", "error_rate<1%"]).slo_thresholds
    by_dsl = Capacity(slos=[latency("p(95) < 300ms"), error_rate("< 1%")]).slo_thresholds
    assert [slo_label(t) for t in by_text] == ["p(95)<300ms", "error_rate<1%"]
    assert [slo_label(t) for t in by_dsl] == ["p(95)<300ms", "error_rate<1%"]
    assert [(t.metric, t.value) for t in by_text] == [
        ("http_req_duration", 300.0),
        ("http_req_failed", 0.01),
    ]
    one = parse_slo("avg < 0.2s")
    assert (one.aggregation, one.value) == ("avg", 200.0)
    named = latency("p(99)<1s", request="report")
    assert slo_label(named) == "report: p(99)<1000ms"


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"slos": ["p95 under 300"]}, "capacity.slos[0]", "an SLO like"),
        ({"slos": ["error_rate>1%"]}, "capacity.slos[0]", "an upper bound"),
        ({"slos": [request_rate("> 100/s")]}, "capacity.slos[0]", "an upper bound"),
        ({"slos": "p(95)<300ms"}, "capacity.slos", "a list"),
        ({"min_rate": 0}, "--min-rate", "1..1,000,000"),
        ({"max_rate": -5}, "--max-rate", "1..1,000,000"),
        ({"min_rate": 2.5}, "--min-rate", "whole number"),
        ({"min_rate": 500, "max_rate": 100}, "--min-rate", "at most --max-rate (100)"),
        ({"step_duration": "3s"}, "--step-duration", "at least 4s"),
        ({"step_duration": "10s", "warmup": "8s"}, "--warmup", "at least 3s"),
        ({"budget": "ten minutes"}, "--budget", "a duration like"),
        ({"resolution": 0.9}, "--resolution", "0.005..0.5"),
        ({"min_agents": 0}, "--min-agents", "a whole number of agents, 1..10,000,000"),
        ({"max_agents": 2.5}, "--max-agents", "a whole number of agents"),
        ({"min_agents": 500, "max_agents": 100}, "--min-agents", "at most --max-agents (100)"),
        ({"slos": ["connected<99%"]}, "capacity.slos[0]", "connected share (> or >=)"),
        ({"slos": [command_rtt("p(99) < 1s", abort_on_fail=True)]}, "capacity.slos[0]", "abort"),
    ],
)
def test_bad_declarations_name_the_field_the_value_and_what_is_allowed(kwargs, field, expected):
    with pytest.raises(ConfigError) as caught:
        Capacity(**{"slos": ["p(95)<300ms"], **kwargs})
    assert caught.value.field == field
    assert expected in str(caught.value)


def test_with_changes_keeps_what_is_not_given_and_validates_again():
    base = Capacity(slos=["p(95)<300ms"], min_rate=50, budget="5m")
    changed = base.with_changes(max_rate=800, min_rate=None)
    assert (changed.min_rate, changed.max_rate, changed.budget_s) == (50, 800, 300)
    with pytest.raises(ConfigError):
        base.with_changes(max_rate=10)


def test_a_population_s_slos_from_the_command_line_and_the_dsl_alike():
    by_text = Capacity(slos=["connected>=99%", "checkin_lateness p(99)<2s"]).slo_thresholds
    by_dsl = Capacity(slos=[connected(">= 99%"), checkin_lateness("p(99) < 2s")]).slo_thresholds
    labels = ["connected>=99%", "checkin_lateness p(99)<2000ms"]
    assert [slo_label(t) for t in by_text] == [slo_label(t) for t in by_dsl] == labels
    assert [(t.metric, t.value) for t in by_text] == [
        ("agents_connected", 0.99),
        ("agent_checkin_lateness", 2000.0),
    ]
    # A label reads back as the same SLO.
    for threshold in by_text:
        again = parse_slo(slo_label(threshold))
        assert (again.metric, again.operator, again.value) == (
            threshold.metric,
            threshold.operator,
            threshold.value,
        )
    for name in ("connect_time", "command_rtt", "reconnect_time"):
        assert parse_slo(f"{name} p(95)<1s").metric == f"agent_{name}"
    bounds = Capacity(slos=["connected>99%"], min_agents=100, max_agents=5000)
    assert (bounds.to_dict()["min_agents"], bounds.to_dict()["max_agents"]) == (100, 5000)
