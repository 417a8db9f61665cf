"""What a runner gets of stressbed's environment: the scenario's names and the allow-list."""

from __future__ import annotations

from pathlib import Path

from stressbed import ConstantVUs, Scenario, Workload, gen, get, render
from stressbed.fleet.environment import ALLOWED, declared_names, runner_environment


def bundle_reading(tmp_path: Path) -> Path:
    flow = get(
        "/x",
        headers={"X-Key": gen.secret("API_KEY"), "X-Region": gen.env("REGION", "eu")},
    )
    scenario = Scenario(
        "env", description="reads two", workloads=[Workload("w", flow, ConstantVUs(1, "1s"))]
    )
    return render(scenario, tmp_path / "bundle").root


def test_the_names_a_bundle_reads_are_its_env_and_secret_calls(tmp_path):
    assert declared_names(bundle_reading(tmp_path)) == {"API_KEY", "REGION"}
    assert declared_names(tmp_path / "nowhere") == set()


def test_a_runner_gets_the_declared_the_allowed_and_the_runs_own_and_nothing_else(tmp_path):
    shell = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "HTTPS_PROXY": "http://proxy:3128",
        "API_KEY": "declared",
        "AWS_SECRET_ACCESS_KEY": "cloud",
        "GITHUB_TOKEN": "forge",
        "K6_CLOUD_TOKEN": "k6-cloud",
        "K6_VUS": "1000",  # would override the scenario's VUs
        "TARGET_URL": "http://from-the-shell",
    }
    env = runner_environment(shell, bundle_reading(tmp_path), {"TARGET_URL": "http://run:1"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "HTTPS_PROXY": "http://proxy:3128",
        "API_KEY": "declared",
        "TARGET_URL": "http://run:1",  # the run's, over the shell's
        "K6_NO_USAGE_REPORT": "true",
    }


def test_the_allow_list_says_why_for_each_name_and_holds_no_credential():
    assert all(reason.strip() for reason in ALLOWED.values())
    assert not [n for n in ALLOWED if any(w in n for w in ("TOKEN", "SECRET", "KEY", "PASS"))]
    assert not [n for n in ALLOWED if n.startswith(("K6_", "AWS_", "GOOGLE_", "AZURE_"))]
