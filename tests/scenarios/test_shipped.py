"""The shipped scenarios against the real reference agent: the API contract holds end to end."""

from __future__ import annotations

import json
import os

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan

from ..agent.helpers import AgentProcess
from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]

TOKEN = "scenario-test-token"


@pytest.fixture(scope="module")
def agent():
    process = AgentProcess(env={"STRESSBED_AGENT_TOKEN": TOKEN})
    process.wait_listening()
    yield process
    process.stop()


@pytest.mark.parametrize("name", ["ingest_mix", "task_journey", "capacity_ramp"])
def test_each_shipped_scenario_passes_against_the_agent(agent, tmp_path, monkeypatch, name):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", TOKEN)
    report = execute(
        plan(
            RunOptions(
                scenario=name, target_url=agent.url, runners=2, duration="4s", results=tmp_path
            )
        )
    )
    summary = json.loads((tmp_path / "latest" / "summary.json").read_text())
    assert report.exit_code == 0, (report.message, summary["thresholds"])
    assert summary["metrics"]["http_req_failed"]["rate"] == 0
    assert summary["metrics"]["checks"]["rate"] == 1
    assert summary["metrics"]["http_reqs"]["count"] > 0
    assert "STRESSBED_AGENT_TOKEN" not in os.environ or TOKEN not in json.dumps(summary)
