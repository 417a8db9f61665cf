"""A dependency fault for real: the reference agent's sink fails on every replica through its
fault hook (the run's own admin token) while reports keep coming. A small queue sheds with
429 once full; a large one buffers and stores everything once the sink is back; either way no
acknowledged report is lost, and the hook's fault is ended at the fault's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.app.settings import apply_stack
from stressbed.stack.agent import reference_agent

from ...conftest import needs_k6

SCENARIO = """
from stressbed import ConstantArrivalRate, Scenario, Workload, Writes, fault, lost_writes
from scenarios import agent_api as api

scenario = Scenario(
    "dependency",
    description="reports while the agent's sink fails",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ingest",
            api.report(),
            ConstantArrivalRate(rate=40, duration="10s", pre_allocated_vus=10, max_vus=60),
            graceful_stop="5s",
        )
    ],
    faults=[fault.dependency("sink", at="2s", lasting="5s")],
    resilience=[lost_writes("== 0")],
    writes=Writes(
        request="report",
        items="points",
        read_back="/v1/agents/{writer}/stored",
        token="STRESSBED_AGENT_TOKEN",
    ),
)
"""


@needs_k6
@pytest.mark.parametrize(("queue", "sheds"), [(300, True), (100_000, False)])
def test_a_failing_sink_sheds_or_buffers_as_configured_and_loses_nothing(
    tmp_path: Path, monkeypatch, queue, sheds
):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "dependency-test-token")
    scenario = tmp_path / "dependency.py"
    scenario.write_text(SCENARIO)
    env = {
        "STRESSBED_AGENT_SINK": "file",
        "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
        "STRESSBED_AGENT_QUEUE_MAX_POINTS": str(queue),
        "STRESSBED_AGENT_BREAKER_RESET_S": "1",
    }
    stack = apply_stack(reference_agent(), {"autoscaler": None, "target": {"env": env}})
    options = RunOptions(scenario=str(scenario), results=tmp_path / "r", runners=1, stack=stack)
    report = execute(plan(options))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    (dependency,) = summary["resilience"]["faults"]
    assert dependency["applied"], dependency
    assert dependency["how"] == "the target's fault hook (sink_failure)"
    assert len(dependency["replicas"]) == 2
    (ended,) = [e for e in summary["events"] if e["event"] == "fault-ended"]
    assert ended["reason"] == "its end"
    assert sorted(ended["ended"]) == sorted(dependency["replicas"])

    during = range(int(dependency["at"]), int(dependency["end"]) + 1)
    shed = sum(
        report.fleet.windows[s].statuses.get("429", 0) for s in during if s in report.fleet.windows
    )
    everywhere = sum(w.statuses.get("429", 0) for w in report.fleet.windows.values())
    if sheds:
        assert shed > 0  # the queue filled while nothing drained it
    else:
        assert everywhere == 0  # buffered: every report accepted
        assert dependency["errors_during_fault"] == 0
    writes = summary["writes"]
    assert writes["problem"] is None
    assert writes["lost"] == 0  # refused ones were never acknowledged; queued ones got stored
    assert writes["acknowledged"] > 500
    assert report.exit_code == 0 or report.message.startswith("thresholds failed"), report.message
    text = json.dumps(summary) + (tmp_path / "r" / report.run_id / "junit.xml").read_text()
    assert "dependency-test-token" not in text
