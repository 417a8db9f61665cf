"""Writes as scenario data: which request writes, checked when the scenario is built, rendered
for the k6 runtime without the read-back's token, and refused where it cannot be read back."""

from __future__ import annotations

import json

import pytest

from stressbed import (
    ConstantArrivalRate,
    Scenario,
    Workload,
    Writes,
    fault,
    get,
    lost_writes,
    mix,
    post,
    render,
)
from stressbed.app.plan import RunOptions, plan
from stressbed.errors import ConfigError
from stressbed.results.aggregates import Window
from stressbed.results.merge import merge
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.samples import Collector

REPORT = post("/v1/report", name="report", json={"agent_id": "a1", "points": [1, 2]})
WRITES = Writes(request="report", items="points", read_back="/v1/agents/{writer}/stored")


def scenario(flow=REPORT, writes=WRITES, resilience=(), faults=()) -> Scenario:
    return Scenario(
        "w",
        description="writes",
        workloads=[
            Workload("w", flow, ConstantArrivalRate(rate=5, duration="1m", pre_allocated_vus=2))
        ],
        writes=writes,
        faults=faults,
        resilience=resilience,
    )


@pytest.mark.parametrize(
    ("build", "field", "expected"),
    [
        (lambda: Writes(request="report", read_back="/stored"), "writes.read_back", "{writer}"),
        (lambda: Writes(request="report", read_back="x/{writer}"), "writes.read_back", "a path"),
        (
            lambda: Writes(request="report", read_back="/{writer}", token="my token"),
            "writes.token",
            "the name of an environment variable",
        ),
        (lambda: Writes(request="", read_back="/{writer}"), "writes.request", "a request"),
        (
            lambda: Writes(request="report", read_back="/{writer}", writer="a..b"),
            "writes.writer",
            "a JSON path",
        ),
        (
            lambda: scenario(writes=Writes(request="nope", read_back="/{writer}")),
            "writes.request",
            "a request of a workload (report)",
        ),
        (
            lambda: scenario(flow=mix((REPORT, 1), (get("/v1/report", name="report"), 1))),
            "writes.request 'report'",
            "a request with a JSON body",
        ),
        (
            lambda: scenario(
                writes=None, faults=[fault.kill(at="10s")], resilience=[lost_writes("== 0")]
            ),
            "resilience",
            "writes=Writes(...)",
        ),
    ],
)
def test_a_bad_declaration_is_refused_naming_the_field(build, field, expected):
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.field.endswith(field)
    assert expected in caught.value.expected


def test_the_runtime_gets_the_write_and_never_the_token(tmp_path):
    declared = Writes(
        request="report",
        writer="agent_id",
        items="points",
        read_back="/v1/agents/{writer}/stored",
        token="STRESSBED_AGENT_TOKEN",
    )
    bundle = render(scenario(writes=declared), tmp_path / "b")
    config = json.loads((bundle.root / "config.json").read_text())
    assert config["writes"] == {
        "request": "report",
        "writer": ["agent_id"],
        "items": ["points"],
        "metric": "stressbed_acked_writes",
        "tag": "writer",
    }
    assert "STRESSBED_AGENT_TOKEN" not in (bundle.root / "config.json").read_text()
    assert (bundle.root / "lib" / "stressbed" / "writes.js").is_file()


def test_a_writer_is_percent_encoded_into_the_read_back_path():
    assert (
        WRITES.url("http://127.0.0.1:1/", "a b/c")
        == "http://127.0.0.1:1/v1/agents/a%20b%2Fc/stored"
    )


def test_acknowledged_writes_are_counted_per_writer_and_per_second_and_merge_exactly():
    header = "metric_name,timestamp,metric_value,check,error_code,expected_response,group,method,name,scenario,status,extra_tags,metadata\n"  # noqa: E501
    lines = [
        header,
        "stressbed_acked_writes,100,3.000000,,,,,,,w,,writer=a1,\n",
        "stressbed_acked_writes,100,2.000000,,,,,,,w,,writer=a2&other=x,\n",
        "stressbed_acked_writes,101,4.000000,,,,,,,w,,writer=a1,\n",
        "stressbed_acked_writes,101,4.000000,,,,,,,w,,,\n",  # no writer: not counted
    ]
    collector = Collector()
    collector.feed_lines(lines)
    assert collector.writes == {"a1": 7, "a2": 2}
    assert (collector.windows[100].acked, collector.windows[101].acked) == (5, 4)
    assert collector.bad_lines == 1

    def result(index: int) -> RunnerResult:
        return RunnerResult(
            index, 2, "0:1", RunnerStatus.OK, 0, 0.0, 1.0,
            windows={100: Window(acked=5)}, writes=dict(collector.writes),
        )  # fmt: skip

    again = RunnerResult.from_dict(json.loads(json.dumps(result(0).to_dict())))
    assert again.writes == {"a1": 7, "a2": 2}
    fleet = merge([again, result(1)])
    assert fleet.writes == {"a1": 14, "a2": 4}
    assert fleet.windows[100].acked == 10


def test_writes_are_refused_where_the_stack_cannot_be_read_back(tmp_path):
    path = tmp_path / "w.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('w', description='w', workloads=[Workload('w', "
        "post('/v1/report', name='report', json={'agent_id': 'a'}), "
        "ConstantArrivalRate(rate=1, duration='10s', pre_allocated_vus=1))], "
        "writes=Writes(request='report', read_back='/v1/agents/{writer}/stored'))\n"
    )
    with pytest.raises(ConfigError) as caught:
        plan(RunOptions(scenario=str(path), backend="kubernetes", results=tmp_path / "r"))
    assert caught.value.field == "writes"
    assert "--backend local" in caught.value.expected


def test_render_says_what_is_counted_and_where_it_is_read_back(tmp_path, capsys):
    from stressbed.app.cli import main  # noqa: PLC0415

    path = tmp_path / "w.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('w', description='w', workloads=[Workload('w', "
        "post('/v1/report', name='report', json={'agent_id': 'a'}), "
        "ConstantArrivalRate(rate=1, duration='10s', pre_allocated_vus=1))], "
        "writes=Writes(request='report', read_back='/v1/agents/{writer}/stored'))\n"
    )
    assert main(["render", "--scenario", str(path), "--output", str(tmp_path / "out")]) == 0
    assert (
        "writes: acknowledged 'report' counted per writer (stressbed_acked_writes); read back "
        "by stressbed run from /v1/agents/{writer}/stored"
    ) in capsys.readouterr().out
