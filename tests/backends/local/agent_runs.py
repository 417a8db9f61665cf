"""Runs of the reference agent with its file sink, for the tests that count its writes: a
scenario of reports that declares its Writes, the stack it runs on, and the run itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.app.settings import apply_stack
from stressbed.results.summary import RunReport
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import StackSpec

SCENARIO = """
from stressbed import ConstantArrivalRate, Scenario, Workload, Writes, fault, lost_writes
from scenarios import agent_api as api

scenario = Scenario(
    "{name}",
    description="reports through faults",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ingest",
            api.report(),
            ConstantArrivalRate(rate={rate}, duration="8s", pre_allocated_vus=10, max_vus=60),
            graceful_stop="5s",
        )
    ],
    faults=[{faults}],
    resilience=[lost_writes("== 0")],
    writes=Writes(
        request="report",
        items="points",
        read_back="/v1/agents/{{writer}}/stored",
        token="STRESSBED_AGENT_TOKEN",
    ),
)
"""


def file_sink_stack(**env: str) -> StackSpec:
    """The reference agent at two replicas (no autoscaler) storing reports in a file its
    replicas share, with ``env`` on top (STRESSBED_AGENT_* settings)."""
    settings = {
        "STRESSBED_AGENT_SINK": "file",
        "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
        **env,
    }
    return apply_stack(reference_agent(), {"autoscaler": None, "target": {"env": settings}})


def run_reports(
    tmp_path: Path, faults: str, stack: StackSpec, *, rate: int = 60
) -> tuple[RunReport, dict[str, Any], Path]:
    """8 s of reports at ``rate`` through ``faults`` (Python source of the fault list):
    the report, its summary.json and its run directory."""
    path = tmp_path / "reports.py"
    path.write_text(SCENARIO.format(name="reports", rate=rate, faults=faults))
    options = RunOptions(scenario=str(path), results=tmp_path / "r", runners=1, stack=stack)
    report = execute(plan(options))
    run = tmp_path / "r" / report.run_id
    return report, json.loads((run / "summary.json").read_text()), run


def sink_points(run: Path) -> int:
    """Points in the run's sink file, counted apart from the agent."""
    lines = (run / "stack" / "data" / "sink.jsonl").read_text().splitlines()
    return sum(len(json.loads(line)["points"]) for line in lines)
