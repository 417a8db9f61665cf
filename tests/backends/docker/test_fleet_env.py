"""A runner container's environment: the scenario's names and the run's own, nothing of this
machine's (no engine needed: the container's environment is computed before it is made)."""

from __future__ import annotations

import pytest

from stressbed import ConstantVUs, Scenario, Workload, gen, get, render
from stressbed.backends.base import FleetSpec

fleet = pytest.importorskip("stressbed.backends.docker.fleet", reason="the docker extra")
stack = pytest.importorskip("stressbed.backends.docker.stack", reason="the docker extra")


def test_a_runner_container_gets_what_the_scenario_reads_and_no_credential(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-the-shell")
    monkeypatch.setenv("K6_CLOUD_TOKEN", "from-the-shell")
    monkeypatch.setenv("API_KEY", "declared")
    monkeypatch.setenv("PATH", "/this/machines/bin")
    flow = get("/x", headers={"X-Key": gen.secret("API_KEY")})
    scenario = Scenario(
        "env", description="d", workloads=[Workload("w", flow, ConstantVUs(1, "1s"))]
    )
    bundle = render(scenario, tmp_path / "bundle").root
    runners = fleet.DockerFleet(
        bundle,
        tmp_path / "run",
        FleetSpec(runners=1),
        {"TARGET_URL": "http://10.0.0.1:8080", "STRESSBED_AGENT_TOKEN": "the-stacks"},
        registry=None,  # type: ignore[arg-type]
        network=stack.RunNetwork(None),  # type: ignore[arg-type]
        image=lambda: "stressbed-runner:latest",
    )
    assert runners._target_env() == {
        "API_KEY": "declared",
        "TARGET_URL": "http://10.0.0.1:8080",
        "STRESSBED_AGENT_TOKEN": "the-stacks",
        "K6_NO_USAGE_REPORT": "true",
    }
