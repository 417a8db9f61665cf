"""Run settings: the layers, where each value came from, and errors that name their path."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stressbed.app.settings import resolve, stack_of
from stressbed.errors import ConfigError
from stressbed.stack.quantities import Resources

PROFILES = """
version: 1
default_profile: local
common:
  scenario: ingest_mix
  runners: 2
  duration: 60s
profiles:
  local:
    backend: local
  ci:
    runners: 3
    duration: 30s
    stack:
      replicas: 3
      limits: {memory: 512Mi}
      autoscaler: {max_replicas: 6}
      quota: {pods: 10}
    thresholds:
      http_req_duration: ["p(95)<300"]
"""


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    path = tmp_path / "stressbed.yaml"
    path.write_text(PROFILES)
    return path


def test_each_layer_overrides_the_one_below_and_says_so(profiles):
    settings = resolve(
        {"duration": "10s"},
        {"STRESSBED_RUNNERS": "4", "STRESSBED_PROFILE": "ci"},
        file=profiles,
    )
    assert settings.profile == "ci"
    assert settings.values["scenario"] == "ingest_mix"  # common
    assert settings.values["runners"] == 4  # environment over the profile's 3
    assert settings.values["duration"] == "10s"  # command line over the profile's 30s
    assert settings.values["port"] == 0  # built-in default
    assert settings.sources == {
        "scenario": f"common ({profiles})",
        "backend": "default",
        "target_url": "default",
        "target_metrics_url": "default",
        "runners": "environment STRESSBED_RUNNERS",
        "duration": "command line",
        "results": "default",
        "keep_raw": "default",
        "history": "default",
        "build": "default",
        "port": "default",
        "kubeconfig": "default",
        "context": "default",
        "agent_image": "default",
        "runner_image": "default",
        "image_pull_policy": "default",
        "runner_cpu": "default",
        "runner_memory": "default",
        "runners_local": "default",
        "base_image": "default",
        "control_plane_cidrs": "default",
        "stack.replicas": f"profile ci ({profiles})",
        "stack.limits.memory": f"profile ci ({profiles})",
        "stack.autoscaler.max_replicas": f"profile ci ({profiles})",
        "stack.quota.pods": f"profile ci ({profiles})",
        "thresholds.http_req_duration": f"profile ci ({profiles})",
    }


def test_the_default_profile_applies_unless_another_is_named(profiles):
    assert resolve({}, {}, file=profiles).profile == "local"
    assert resolve({}, {}, file=profiles, profile="ci").values["runners"] == 3


def test_stack_overrides_change_only_what_they_name(profiles):
    spec = stack_of(resolve({}, {}, file=profiles, profile="ci"))
    assert spec.replicas == 3
    assert spec.limits == Resources(1000, 512 * 2**20)  # cpu kept from the agent's spec
    assert spec.autoscaler is not None
    assert (spec.autoscaler.min_replicas, spec.autoscaler.max_replicas) == (2, 6)
    assert spec.quota is not None
    assert spec.quota.pods == 10
    assert spec.readiness_probe is not None  # untouched


def test_no_file_means_built_in_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = resolve({"scenario": "x"}, {})
    assert settings.file is None
    assert settings.values["runners"] == 1
    assert settings.sources["scenario"] == "command line"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "env", "profile", "message"),
    [
        (
            "profiles:\n  ci:\n    runnerz: 3\n",
            {},
            "ci",
            "{path}: profiles.ci.runnerz: got 'runnerz'; expected one of scenario, backend",
        ),
        (
            "common:\n  runners: two\n",
            {},
            None,
            "{path}: common.runners: got 'two'; expected an integer",
        ),
        (
            "profiles:\n  ci:\n    stack:\n      replicas: many\n",
            {},
            "ci",
            "{path}: profiles.ci.stack.replicas: got 'many'; expected a value of type int",
        ),
        (
            "profiles:\n  ci:\n    stack:\n      autoscaler: {max_replica: 3}\n",
            {},
            "ci",
            "{path}: profiles.ci.stack.autoscaler.max_replica: got 'max_replica'; expected one "
            "of min_replicas, max_replicas",
        ),
        (
            "profiles:\n  ci:\n    stack:\n      requests: {cpu: lots}\n",
            {},
            "ci",
            "{path}: profiles.ci.stack.requests.cpu: got 'lots'; expected a CPU quantity",
        ),
        (
            "profiles:\n  ci:\n    thresholds: {http_req_duration: 'p(95)<3'}\n",
            {},
            "ci",
            "{path}: profiles.ci.thresholds.http_req_duration: got 'p(95)<3'; expected a list",
        ),
        (
            "version: 2\n",
            {},
            None,
            "{path}: version: got 2; expected 1",
        ),
        (
            "common: [1, 2\n",
            {},
            None,
            "{path}: got 'invalid YAML at line 2'; expected a YAML mapping",
        ),
        (
            "profiles:\n  local: {}\n",
            {},
            "nightly",
            "--profile: got 'nightly'; expected a profile of {path}: local",
        ),
        (
            "profiles: [ci]\n",
            {},
            None,
            "{path}: profiles: got ['ci']; expected a mapping",
        ),
        (
            "profiles:\n  ci:\n    stack:\n      autoscaler: {memory_utilization: '80%'}\n",
            {},
            "ci",
            "{path}: profiles.ci.stack.autoscaler.memory_utilization: got '80%'; expected a "
            "value of type int, or null",
        ),
        (
            "profiles:\n  ci:\n    stack:\n      autoscaler:\n        scale_up_policies:\n"
            "          - {kind: Pods, value: '4', period_s: 15}\n",
            {},
            "ci",
            "{path}: profiles.ci.stack.autoscaler.scale_up_policies[0].value: got '4'; "
            "expected an integer",
        ),
        (
            "",
            {"STRESSBED_KEEP_RAW": "maybe"},
            None,
            "STRESSBED_KEEP_RAW: got 'maybe'; expected true or false",
        ),
        (
            "",
            {"STRESSBED_PORT": "80x"},
            None,
            "STRESSBED_PORT: got '80x'; expected an integer",
        ),
    ],
)
def test_bad_settings_name_their_path(tmp_path, text, env, profile, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        resolve({}, env, file=path, profile=profile)
    assert str(error.value).startswith(message.format(path=path)), str(error.value)


def test_a_stack_that_does_not_validate_names_the_profile_it_came_from(tmp_path):
    path = write(tmp_path, "profiles:\n  ci:\n    stack:\n      requests: {cpu: '4'}\n")
    settings = resolve({}, {}, file=path, profile="ci")
    with pytest.raises(
        ConfigError, match=re.escape(f"stack.requests.cpu (from profile ci ({path}))")
    ):
        stack_of(settings)


def stressbed_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stressbed", "run", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_the_cli_reports_a_bad_profile_file_on_one_line_and_starts_nothing(tmp_path):
    write(tmp_path, "profiles:\n  ci:\n    runners: -1\n    stack: {replicas: 0}\n")
    proc = stressbed_run(tmp_path, "--profiles", "p.yaml", "--profile", "ci")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("stressbed: error: stack.replicas")
    assert not (tmp_path / "results").exists()


def test_a_bad_scenario_name_from_the_profile_file_exits_2(tmp_path):
    (tmp_path / "stressbed.yaml").write_text("common: {scenario: nope}\n")
    proc = stressbed_run(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("stressbed: error: --scenario: got 'nope'")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "profiles: {local: {image_pull_policy: Sometimes}}",
            "profiles.local.image_pull_policy: got 'Sometimes'; expected Always, IfNotPresent "
            "or Never",
        ),
        ("common: {port: 70000}", "common.port: got 70000; expected a port 0..65535"),
    ],
)
def test_backend_settings_are_checked_whichever_backend_runs(tmp_path, text, message):
    path = tmp_path / "stressbed.yaml"
    path.write_text(f"version: 1\ndefault_profile: local\n{text}\n")
    with pytest.raises(ConfigError) as error:
        resolve({}, {}, file=path)
    assert str(error.value).startswith(f"{path}: {message}")


def test_a_profile_chooses_the_target_metrics_the_report_draws(tmp_path):
    path = write(
        tmp_path,
        "profiles:\n  p:\n    stack:\n      metrics:\n"
        "        series: [agent_queue_points, 'agent_requests{status=\"503\"}']\n",
    )
    spec = stack_of(resolve({}, {}, file=path, profile="p"))
    assert spec.metrics is not None
    assert spec.metrics.series == ("agent_queue_points", 'agent_requests{status="503"}')
    assert spec.metrics.path == "/metrics"  # kept from the agent's spec
    off = write(tmp_path, "profiles:\n  p:\n    stack:\n      metrics: null\n")
    assert stack_of(resolve({}, {}, file=off, profile="p")).metrics is None


def test_a_scenario_module_declares_its_stack_and_the_profile_comes_on_top(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "version: 1\nprofiles:\n  p:\n    stack:\n      target: {env: {B: '2', A: 'profile'}}\n"
    )
    declared = {"replicas": 3, "target": {"env": {"A": "scenario", "C": "{data}/x"}}}
    spec = stack_of(resolve({}, {}, file=path, profile="p"), declared)
    assert spec.replicas == 3
    # Environment variables add up, a variable at a time; the profile's win.
    assert dict(spec.target.env) == {"A": "profile", "B": "2", "C": "{data}/x"}


def test_a_scenario_modules_stack_that_is_not_a_mapping_is_refused(tmp_path):
    from stressbed.scenario import catalog  # noqa: PLC0415

    path = tmp_path / "s.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('s', description='s', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=1, duration='10s', pre_allocated_vus=1))])\n"
        "stack = ['replicas', 3]\n"
    )
    with pytest.raises(ConfigError) as caught:
        catalog.load_stack(str(path))
    assert caught.value.field.endswith("s.py: stack")
