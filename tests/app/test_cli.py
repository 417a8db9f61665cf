"""The command line: render and scenarios, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stressbed.cli import main

from ..conftest import needs_k6, run_k6


def stressbed(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in a child process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "stressbed", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_scenarios_lists_each_with_a_description(capsys):
    assert main(["scenarios"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in lines]
    assert names == [
        *("agent_population", "capacity_ramp", "ingest_mix", "modelled_fleet"),
        *("noisy_neighbour", "reconnect_storm", "reconnect_storm_unjittered", "resilience"),
        *("slow_disk", "task_journey"),
    ]
    assert all(len(line.split(None, 1)[1]) > 20 for line in lines)


def test_render_writes_a_bundle_and_says_how_to_run_it(tmp_path, capsys):
    assert main(["render", "--scenario", "ingest_mix", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert f"rendered scenario 'ingest_mix' to {tmp_path / 'b' / 'script.js'}" in out
    assert "TARGET_URL=" in out
    assert (tmp_path / "b" / "script.js").is_file()


def test_an_unknown_scenario_exits_2_with_one_line_naming_the_choices(tmp_path):
    proc = stressbed("render", "--scenario", "nope", "-o", str(tmp_path / "b"))
    assert proc.returncode == 2
    assert proc.stderr == (
        "stressbed: error: --scenario: got 'nope'; expected a scenario name (agent_population, "
        "capacity_ramp, ingest_mix, modelled_fleet, noisy_neighbour, reconnect_storm, "
        "reconnect_storm_unjittered, resilience, slow_disk, task_journey) or a path to a .py "
        "file\n"
    )
    assert not (tmp_path / "b").exists()


BAD_SCENARIO = """
from stressbed import Scenario, Workload, ConstantVUs, get
scenario = Scenario("mine", description="bad", workloads=[
    Workload("w", get("/{{missing}}"), ConstantVUs(vus=1, duration="1m"))])
"""

BAD_PROFILE = """
from stressbed import Scenario, Workload, ConstantArrivalRate, get
scenario = Scenario("mine", description="bad", workloads=[
    Workload("w", get("/"), ConstantArrivalRate(rate=-5, duration="1m", pre_allocated_vus=1))])
"""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            BAD_SCENARIO,
            "stressbed: error: scenario 'mine': workloads.w.flow (request "
            "'/{{missing}}'): got '{{missing}}'; expected a variable defined by the "
            "scenario or extracted by an earlier step (none defined)\n",
        ),
        (
            BAD_PROFILE,
            "stressbed: error: scenario 'bad': constant-arrival-rate.rate: got -5; "
            "expected an integer >= 1\n",
        ),
        (
            "import nothing_here_at_all\n",
            "stressbed: error: --scenario: got '{path}'; expected a module that imports cleanly "
            "(ModuleNotFoundError: No module named 'nothing_here_at_all')\n",
        ),
        (
            "x = 1\n",
            "stressbed: error: --scenario: got '{path}'; expected a module defining "
            "`scenario = Scenario(...)` at top level\n",
        ),
        ("def broken(:\n", None),
    ],
)
def test_a_bad_scenario_file_exits_2_with_one_line(tmp_path, source, message):
    path = Path("bad.py")  # relative (run in tmp_path): shown whole, not cut at 80 characters
    (tmp_path / path).write_text(source)
    proc = stressbed("render", "--scenario", str(path), "-o", str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    if message is not None:
        assert proc.stderr == message.replace("{path}", str(path))
    else:
        assert "SyntaxError" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_a_missing_scenario_file_exits_2(tmp_path):
    proc = stressbed("render", "--scenario", "absent.py", "-o", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("stressbed: error: --scenario: got 'absent.py'")


def test_usage_errors_exit_2():
    proc = stressbed("render", "--scenario", "ingest_mix")
    assert proc.returncode == 2
    assert "-o/--output" in proc.stderr


@needs_k6
@pytest.mark.k6
def test_a_rendered_scenario_file_runs_in_plain_k6(tmp_path, server):
    path = tmp_path / "mine.py"
    path.write_text("""
from stressbed import Scenario, Workload, SharedIterations, check, gen, post, latency
scenario = Scenario("mine", description="mine", workloads=[Workload("w",
    post("/echo", json={"id": gen.uuid4()}, checks=[check.status(200)]),
    SharedIterations(vus=2, iterations=10))], thresholds=[latency("p(95) < 5s")])
""")
    proc = stressbed("render", "--scenario", str(path), "-o", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr
    result = run_k6(tmp_path / "b" / "script.js", {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    assert len(server.received) == 10
    assert all("id" in json.loads(r.body) for r in server.received)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-url", "http://[::1"], "--target-url: got 'http://[::1'"),
        (["--target-url", "http://127.0.0.1:99999"], "--target-url: got 'http://127.0.0.1:99999'"),
        (["--target-url", "ftp://127.0.0.1"], "expected an http(s) base URL"),
        (
            ["--target-url", "http://127.0.0.1:1", "--duration", "500ms"],
            "--duration: got '500ms'; expected at least 1s",
        ),
        (["--target-url", "http://127.0.0.1:1", "--runners", "0"], "--runners: got 0"),
    ],
)
def test_bad_run_options_exit_2_before_anything_starts(tmp_path, args, message):
    proc = stressbed("run", "--scenario", "ingest_mix", "--results", str(tmp_path / "r"), *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("stressbed: error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
