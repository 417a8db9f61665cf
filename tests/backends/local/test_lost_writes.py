"""Acknowledged writes lost to a kill, counted for real: the reference agent with its file
sink, reports at a steady rate, both replicas SIGKILLed mid-run. Acknowledged once flushed,
nothing is lost; acknowledged once queued, what the killed replicas held is, and the count
matches an independent count of the sink file."""

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
    "lost_writes",
    description="reports through a kill of both replicas",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ingest",
            api.report(),
            ConstantArrivalRate(rate=60, duration="10s", pre_allocated_vus=10, max_vus=60),
            graceful_stop="5s",
        )
    ],
    faults=[fault.kill(replicas=2, at="4s")],
    resilience=[lost_writes("== 0")],
    writes=Writes(
        request="report",
        items="points",
        read_back="/v1/agents/{writer}/stored",
        token="STRESSBED_AGENT_TOKEN",
    ),
)
"""


def _run(tmp_path: Path, ack: str) -> tuple[int, dict, Path]:
    scenario = tmp_path / "lost_writes.py"
    scenario.write_text(SCENARIO)
    # Flushed every 2 s when acknowledged on queueing: a replica killed holds up to 2 s of
    # reports (both are killed, so a loss does not hang on one kill's timing).
    env = {
        "STRESSBED_AGENT_SINK": "file",
        "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
        "STRESSBED_AGENT_ACK": ack,
        "STRESSBED_AGENT_FLUSH_INTERVAL_S": "2",
    }
    stack = apply_stack(reference_agent(), {"autoscaler": None, "target": {"env": env}})
    options = RunOptions(scenario=str(scenario), results=tmp_path / "r", runners=1, stack=stack)
    report = execute(plan(options))
    run = tmp_path / "r" / report.run_id
    return report.exit_code, json.loads((run / "summary.json").read_text()), run


def _sink_points(run: Path) -> int:
    lines = (run / "stack" / "data" / "sink.jsonl").read_text().splitlines()
    return sum(len(json.loads(line)["points"]) for line in lines)


@needs_k6
@pytest.mark.parametrize("ack", ["flushed", "queued"])
def test_a_kill_loses_acknowledged_writes_only_when_acknowledged_before_flushing(
    tmp_path, monkeypatch, ack
):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "lost-writes-test-token")
    code, summary, run = _run(tmp_path, ack)
    writes = summary["writes"]
    (kill,) = summary["resilience"]["faults"]
    assert kill["applied"]
    assert len(kill["replicas"]) == 2
    assert writes["problem"] is None
    assert writes["writers"] >= 10
    assert writes["acknowledged"] > 2000  # ~60 reports/s of ~10 points for 10 s
    # What the read-back found is what the sink file holds (the replicas' drains at teardown
    # add nothing: every survivor flushed before the read-back settled).
    assert writes["stored"] == _sink_points(run)
    # Per writer, acknowledged beyond stored is lost, stored beyond acknowledged is not.
    surplus = writes["stored_unacknowledged"]
    assert writes["lost"] == writes["acknowledged"] - writes["stored"] + surplus
    assert kill["lost_writes"] == writes["lost"]
    if ack == "flushed":
        assert writes["lost"] == 0
        assert code == 0, summary["message"]
    else:
        assert writes["lost"] > 0
        assert code == 1
        assert "lost_writes == 0 (kill:" in summary["message"]
    assert "lost-writes-test-token" not in json.dumps(summary)
