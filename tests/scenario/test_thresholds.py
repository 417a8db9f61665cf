"""Thresholds: typed and raw forms, validation, and k6's verdict (exit code 99) on them."""

from __future__ import annotations

import json
import math
import time

import pytest

from stressbed import (
    ConfigError,
    ConstantVUs,
    Scenario,
    SharedIterations,
    Workload,
    check,
    check_rate,
    error_rate,
    get,
    latency,
    mix,
    request_rate,
    threshold,
)
from stressbed.population import Agent, WebSocket, population
from stressbed.scenario.thresholds import Threshold
from stressbed.thresholds import (
    checkin_lateness,
    command_rtt,
    connect_time,
    connected,
    reconnect_time,
)

from ..conftest import needs_k6, run_k6


@pytest.mark.parametrize(
    ("made", "key", "expression"),
    [
        (latency("p(95) < 500ms"), "http_req_duration", "p(95)<500"),
        (
            latency("p(99.9)<=1.5s", request="report"),
            "http_req_duration{name:report}",
            "p(99.9)<=1500",
        ),
        (latency("avg < 200us", metric="iteration_duration"), "iteration_duration", "avg<0.2"),
        (error_rate("< 0.5%"), "http_req_failed", "rate<0.005"),
        (
            error_rate("rate < 0.01", workload="ingest"),
            "http_req_failed{scenario:ingest}",
            "rate<0.01",
        ),
        (request_rate("> 1000/s"), "http_reqs", "rate>1000"),
        (request_rate(">= 60/m"), "http_reqs", "rate>=1"),
        (check_rate("> 99%"), "checks", "rate>0.99"),
        (threshold("http_req_waiting", "p(90) < 200"), "http_req_waiting", "p(90)<200"),
        (
            threshold("iterations", "count>=10", tags={"status": "200"}),
            "iterations{status:200}",
            "count>=10",
        ),
        (connected("> 99%"), "agents_connected", "share>0.99"),
        (reconnect_time("p(99) < 60s"), "agent_reconnect_time", "p(99)<60000"),
        (checkin_lateness("p(99) < 2s"), "agent_checkin_lateness", "p(99)<2000"),
        (
            connect_time("p(95) < 800ms", workload="fleet"),
            "agent_connect_time{scenario:fleet}",
            "p(95)<800",
        ),
        (command_rtt("max <= 1s"), "agent_command_rtt", "max<=1000"),
        (threshold("agent_gave_up", "count < 1"), "agent_gave_up", "count<1"),
    ],
)
def test_thresholds_become_k6_keys_and_expressions(made, key, expression):
    assert made.key == key
    assert made.expression == expression


def test_abort_on_fail_and_delay_render_as_k6_objects():
    made = error_rate("< 5%", abort_on_fail=True, delay="30s")
    assert made.to_k6() == {"threshold": "rate<0.05", "abortOnFail": True, "delayAbortEval": "30s"}
    assert latency("p(95) < 1s").to_k6() == "p(95)<1000"


@pytest.mark.parametrize(
    ("build", "field", "expected"),
    [
        (lambda: latency("p95 < 500ms"), "latency", "an expression like 'p(95) < 500ms'"),
        (lambda: latency("p(95) < fast"), "latency", "a duration like"),
        (lambda: latency("rate < 5ms"), "latency", "a trend aggregation"),
        (lambda: error_rate("< 150%"), "error_rate", "between 0% and 100%"),
        (lambda: request_rate("> lots"), "request_rate", "a rate like '1000/s'"),
        (
            lambda: threshold("http_reqs", "p(95)<1"),
            "threshold http_reqs",
            "count or rate on a counter metric",
        ),
        (
            lambda: threshold("http_req_failed", "avg<1"),
            "threshold http_req_failed",
            "rate on a rate metric",
        ),
        (lambda: threshold("x", "p(95) <"), "threshold.expression", "k6 syntax"),
        (lambda: threshold("bad metric", "rate<1"), "threshold.metric", "a k6 metric name"),
        (
            lambda: threshold("http_req_duration", "p(101)<1"),
            "threshold http_req_duration",
            "a percentile between 0 and 100",
        ),
        (lambda: latency("p(95)<1s", request="a,b"), "threshold.tags.name", "a tag value"),
        (lambda: latency("p(95)<1s", delay="10s"), "threshold.delay", "only with abort_on_fail"),
        (lambda: connected("p(99) > 99%"), "connected", "an expression like '> 99%'"),
        (lambda: connected("> 120%"), "connected", "between 0% and 100%"),
        (lambda: connected("most"), "connected", "an expression like '> 99%'"),
        (lambda: reconnect_time("p99 < 60s"), "reconnect_time", "an expression like"),
        (lambda: reconnect_time("p(99) < soon"), "reconnect_time", "a duration like"),
        (lambda: checkin_lateness("rate < 2s"), "checkin_lateness", "a trend aggregation"),
        (lambda: connect_time("p(95) < 1s", request="r"), "connect_time.request", "workload="),
        (
            lambda: command_rtt("p(99) < 1s", tags={"status": "200"}),
            "command_rtt.tags",
            "workload=",
        ),
    ],
)
def test_bad_thresholds_name_the_field_and_what_is_allowed(build, field, expected):
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.field == field
    assert expected in info.value.expected


@pytest.mark.parametrize(
    ("op", "observed", "passes"),
    [
        ("<", 1.0, True),
        ("<", 2.0, False),
        ("<=", 2.0, True),
        (">", 2.0, False),
        (">=", 2.0, True),
        ("==", 2.0, True),
        ("===", 2.0, True),
        ("!=", 2.0, False),
    ],
)
def test_passes_follows_k6_operators(op, observed, passes):
    assert threshold("vus", f"value{op}2").passes(observed) is passes


def test_thresholds_name_only_metrics_and_tags_k6_records():
    with pytest.raises(ConfigError, match="a k6 built-in metric"):
        threshold("http_req_duraton", "p(95)<100")
    with pytest.raises(ConfigError, match="a tag k6 records"):
        latency("p(95) < 1s", tags={"tls_version": "tls1.3"})


def test_a_missing_observation_fails():
    assert not latency("p(95) < 1s").passes(math.nan)


def test_thresholds_must_select_known_requests_and_workloads():
    flow = mix((get("/a", name="a"), 1), (get("/b", name="b"), 1))
    with pytest.raises(ConfigError) as info:
        Scenario(
            "s",
            description="d",
            workloads=[Workload("w", flow, ConstantVUs(1, "1s"))],
            thresholds=[latency("p(95) < 1s", request="c")],
        )
    assert str(info.value) == (
        "scenario 's': thresholds[0].request: got 'c'; expected a request name (a, b)"
    )
    with pytest.raises(ConfigError, match=r"a workload name \(w\)"):
        Scenario(
            "s",
            description="d",
            workloads=[Workload("w", flow, ConstantVUs(1, "1s"))],
            thresholds=[error_rate("< 1%", workload="other")],
        )


def _scenario(thresholds, flow=None, iterations=20):
    flow = flow or mix((get("/ok", name="ok"), 1), (get("/bad", name="bad"), 1))
    return Scenario(
        "thr",
        description="thresholds",
        thresholds=thresholds,
        workloads=[Workload("w", flow, SharedIterations(vus=2, iterations=iterations))],
    )


@needs_k6
@pytest.mark.k6
@pytest.mark.parametrize(
    ("thresholds", "exit_code", "crossed"),
    [
        ([latency("p(95) < 10s"), error_rate("<= 70%")], 0, None),
        ([error_rate("< 1%")], 99, "http_req_failed"),
        ([error_rate("< 1%", request="ok")], 0, None),
        ([error_rate("< 1%", request="bad")], 99, "http_req_failed{name:bad}"),
        ([check_rate("> 99%")], 99, "checks"),
        ([request_rate("> 100000/s")], 99, "http_reqs"),
        ([threshold("iterations", "count == 20")], 0, None),
    ],
)
def test_k6_judges_rendered_thresholds(server, k6_bundle, thresholds, exit_code, crossed):
    server.route("/bad", status=500)
    flow = mix(
        (get("/ok", name="ok", checks=[check.status(200)]), 1),
        (get("/bad", name="bad", checks=[check.status(200)]), 1),
    )
    result = run_k6(k6_bundle(_scenario(thresholds, flow)), {"TARGET_URL": server.url})
    assert result.exit_code == exit_code, result.stderr
    if crossed:
        assert f"thresholds on metrics '{crossed}' have been crossed" in result.stderr


@needs_k6
@pytest.mark.k6
def test_abort_on_fail_stops_the_test_early(server, k6_bundle):
    server.route("/bad", status=500)
    scenario = Scenario(
        "abort",
        description="aborts",
        thresholds=[error_rate("< 1%", abort_on_fail=True)],
        workloads=[Workload("w", get("/bad"), ConstantVUs(vus=1, duration="30s"))],
    )
    started = time.monotonic()
    result = run_k6(k6_bundle(scenario), {"TARGET_URL": server.url})
    assert result.exit_code == 99
    assert time.monotonic() - started < 15


def test_a_threshold_travels_as_a_document_and_comes_back_the_same():
    shipped = [
        latency("p(99.9) <= 1.5s", request="report", abort_on_fail=True, delay="30s"),
        error_rate("< 0.5%", tags={"status": "500"}, optional=True),
        request_rate("> 1000/s"),
        threshold("vus", "value<=64"),
    ]
    for original in shipped:
        document = json.loads(json.dumps(original.to_dict()))
        assert Threshold.from_dict(document) == original


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": "500"}, "threshold.value: got '500'"),
        ({"value": True}, "threshold.value: got True"),
        ({"operator": "~"}, "threshold.operator: got '~'; expected <, <=, >, >=, ==, ===, !="),
        ({"tags": [["name"]]}, "threshold.tags: got ['name']; expected [name, value] pairs"),
        ({"abort_on_fail": 1}, "threshold.abort_on_fail: got 1"),
    ],
)
def test_a_threshold_document_that_is_not_one_is_refused_naming_the_field(change, message):
    document = {**latency("p(95) < 1s").to_dict(), **change}
    with pytest.raises(ConfigError) as error:
        Threshold.from_dict(document)
    assert str(error.value).startswith(message)


def test_connected_is_judged_by_stressbed_alone_and_left_out_of_k6s_options():
    scenario = Scenario(
        "pop",
        description="d",
        workloads=[
            Workload("w", get("/"), ConstantVUs(1, "1s")),
            population("agents", Agent(channel=WebSocket("/c")), agents=10, lasting="1s"),
        ],
        thresholds=[connected("> 99%"), reconnect_time("p(99) < 60s"), latency("p(95) < 1s")],
    )
    assert [t.k6 for t in scenario.thresholds] == [False, True, True]
    assert scenario.k6_options_dict()["thresholds"] == {
        "agent_reconnect_time": ["p(99)<60000"],
        "http_req_duration": ["p(95)<1000"],
    }
    # It travels to a judge like any threshold.
    made = connected(">= 99.5%", optional=True)
    assert Threshold.from_dict(json.loads(json.dumps(made.to_dict()))) == made
