"""Planning: the backend is built from the run's options, and what it cannot honour is refused
(exit 2, one line) before anything is created, instead of being silently ignored."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stressbed.app.plan import RunOptions, plan
from stressbed.backends import registry
from stressbed.backends.base import Capability
from stressbed.backends.local import LocalBackend
from stressbed.errors import ConfigError
from stressbed.testing import FakeBackend

from ..conftest import needs_k6

ABORTING = """from stressbed import *
scenario = Scenario("a", description="aborts", workloads=[
    Workload("w", get("/healthz"), ConstantVUs(vus=1, duration="1s"))],
    thresholds=[error_rate("< 5%", abort_on_fail=True)])
"""


class FleetOnly(FakeBackend):
    """A backend that can load an existing service but provisions nothing."""

    name = "fleet-only"
    capabilities = frozenset({Capability.EXISTING_TARGET, Capability.LIVE_PROGRESS})


@pytest.fixture
def fleet_only(monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "fleet-only", {"class": f"{__name__}:FleetOnly"})


@needs_k6
def test_the_plan_builds_its_backend_from_the_options_that_belong_to_it(tmp_path):
    the_plan = plan(
        RunOptions(
            scenario="ingest_mix",
            results=tmp_path,
            # Another backend's setting (from a profile, say) is not this backend's business.
            backend_options={"port": 18080, "kubeconfig": "/nowhere"},
        )
    )
    assert isinstance(the_plan.backend, LocalBackend)
    assert the_plan.backend.options.port == 18080


def test_a_target_url_with_a_backend_whose_fleet_loads_only_its_own_stack_is_refused(tmp_path):
    options = RunOptions(
        scenario="ingest_mix", backend="kubernetes", target_url="http://127.0.0.1:9"
    )
    with pytest.raises(ConfigError) as error:
        plan(options)
    assert str(error.value) == (
        "--target-url: got 'http://127.0.0.1:9'; expected no --target-url with --backend "
        "kubernetes, whose runners load only the stack it provisions (--backend local loads an "
        "existing service)"
    )


def test_abort_on_fail_with_a_backend_that_cannot_judge_it_live_is_refused(tmp_path, fleet_only):
    (tmp_path / "a.py").write_text(ABORTING)
    options = RunOptions(
        scenario=str(tmp_path / "a.py"), backend="fleet-only", target_url="http://127.0.0.1:9"
    )
    with pytest.raises(ConfigError) as error:
        plan(options)
    assert str(error.value) == (
        "thresholds.http_req_failed: got 'rate<0.05 with abort_on_fail'; expected no "
        "abort_on_fail with --backend fleet-only: its fleet cannot judge thresholds while it "
        "runs (replace the threshold in a profile, or use --backend local)"
    )


def test_a_backend_that_provisions_nothing_needs_a_target_url(fleet_only):
    with pytest.raises(ConfigError, match=r"^--backend: got 'fleet-only'; expected a backend that"):
        plan(RunOptions(scenario="ingest_mix", backend="fleet-only"))
    the_plan = plan(
        RunOptions(scenario="ingest_mix", backend="fleet-only", target_url="http://127.0.0.1:9")
    )
    assert isinstance(the_plan.backend, FleetOnly)
    assert the_plan.stack is None


def test_an_option_given_for_another_backend_on_the_command_line_is_refused(tmp_path):
    options = RunOptions(
        scenario="ingest_mix",
        backend="kubernetes",
        backend_options={"port": 8080},
        sources={"port": "command line"},
    )
    with pytest.raises(ConfigError) as error:
        plan(options)
    assert str(error.value) == (
        "--port: got 8080; expected an option of --backend kubernetes (--kubeconfig, --context, "
        "--agent-image, --runner-image, --image-pull-policy, --runner-cpu, --runner-memory, "
        "--control-plane-cidrs)"
    )


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--target-url", "http://127.0.0.1:9"], "--target-url: got 'http://127.0.0.1:9'"),
        # Even the default value, given on the command line, is not the backend's.
        (["--port", "0"], "--port: got 0; expected an option of --backend kubernetes"),
    ],
)
def test_the_cli_says_so_on_one_line_and_creates_nothing(tmp_path, args, line):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stressbed",
            "run",
            "--backend",
            "kubernetes",
            *args,
            "--results",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"stressbed: error: {line}")
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"backend": "cloud"},
            "--backend: got 'cloud'; expected 'local', 'docker' or 'kubernetes'",
        ),
        (
            {"backend_options": {"port": 70000}},
            "--port: got 70000; expected a port 0..65535 (0: any free port)",
        ),
    ],
)
def test_bad_run_options_are_refused_before_anything_starts(tmp_path, options, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r", **options))
    assert not (tmp_path / "r").exists()


@needs_k6
def test_a_metrics_port_the_local_backend_cannot_scrape_is_refused(tmp_path):
    from dataclasses import replace  # noqa: PLC0415

    from stressbed.stack.agent import reference_agent  # noqa: PLC0415
    from stressbed.stack.spec import Metrics  # noqa: PLC0415

    spec = replace(reference_agent(), metrics=Metrics(port=9100, series=("agent_queue_points",)))
    with pytest.raises(ConfigError) as error:
        plan(RunOptions(scenario="ingest_mix", results=tmp_path, stack=spec))
    assert (error.value.field, error.value.value) == ("stack.metrics.port", 9100)


@needs_k6
def test_a_metrics_url_with_credentials_is_refused_without_showing_them(tmp_path):
    options = RunOptions(
        scenario="ingest_mix",
        target_url="http://127.0.0.1:9",
        target_metrics_url="http://me:secret@127.0.0.1:9/metrics",
        results=tmp_path,
    )
    with pytest.raises(ConfigError) as error:
        plan(options)
    assert "secret" not in str(error.value)
    assert error.value.field == "--target-metrics-url"


class Faulting(FakeBackend):
    """The fake backend, applying kills."""

    fault_kinds = frozenset({"kill"})


@pytest.fixture
def faulting(monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "faulting", {"class": f"{__name__}:Faulting"})


UNJUDGEABLE = """from stressbed import *
scenario = Scenario("blind", description="nothing a second can judge", workloads=[
    Workload("w", get("/healthz", checks=[check.status(200)]),
             ConstantArrivalRate(rate=10, duration="1m", pre_allocated_vus=5))],
    thresholds=[{thresholds}],
    faults=[fault.kill(at="10s")],
    resilience=[{resilience}])
"""


def test_a_recovery_with_no_slo_a_second_can_judge_is_refused_at_the_command_line(tmp_path):
    # Only a check_rate threshold: every second would read as held, every fault as recovered
    # after 0 s. Refused before anything starts: one line, no traceback, no run directory.
    path = tmp_path / "blind.py"
    path.write_text(
        UNJUDGEABLE.format(thresholds='check_rate("> 99%")', resilience='recovery_time("< 30s")')
    )
    proc = subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--scenario", str(path), "--results", "r"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "stressbed: error: scenario 'blind': resilience[0]: got 'recovery_time < 30s'; expected "
        "a latency or error-rate threshold one second can judge, like latency('p(95) < 300ms') "
        "or error_rate('< 1%') without abort_on_fail (the thresholds have none: recovery_time "
        "would read every second as held)\n"
    )
    assert not (tmp_path / "r").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blind.py"]  # nothing else made


@pytest.mark.parametrize(
    ("thresholds", "resilience", "overrides"),
    [
        ("", 'errors_during_fault("< 5%")', {}),
        ('error_rate("< 5%", abort_on_fail=True)', 'recovery_time("< 30s")', {}),
        # A profile that replaced the scenario's latency threshold with none.
        ('latency("p(95) < 300ms")', 'recovery_time("< 30s")', {"http_req_duration": None}),
    ],
)
def test_resilience_judged_on_slos_without_any_is_refused(
    tmp_path, faulting, thresholds, resilience, overrides
):
    path = tmp_path / "blind.py"
    path.write_text(UNJUDGEABLE.format(thresholds=thresholds, resilience=resilience))
    options = RunOptions(
        scenario=str(path), backend="faulting", results=tmp_path / "r", thresholds=overrides
    )
    with pytest.raises(ConfigError, match=r"^scenario 'blind': resilience\[0\]: got '"):
        plan(options)


def test_resilience_that_needs_no_slo_or_has_one_is_planned(tmp_path, faulting):
    path = tmp_path / "seen.py"
    path.write_text(
        UNJUDGEABLE.format(thresholds='check_rate("> 99%")', resilience='time_to_detect("< 5s")')
    )
    assert plan(RunOptions(scenario=str(path), backend="faulting", results=tmp_path / "r"))
    path.write_text(
        UNJUDGEABLE.format(thresholds='error_rate("< 5%")', resilience='recovery_time("< 30s")')
    )
    assert plan(RunOptions(scenario=str(path), backend="faulting", results=tmp_path / "r"))
