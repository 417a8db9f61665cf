"""``stressbed compare`` and ``stressbed run --baseline`` on real runs: real k6 against the
reference agent on loopback, whose latency fault hook makes a slower build on demand.

The runs compared for noise have 10 ms of latency injected, as a service doing real work
would have, so that the machine's own jitter (a 1 ms answer can take 1.3 ms on a busy core)
is small beside what they measure; the slower build has 30 ms. One pair is the agent as it is
against the agent 20 ms slower."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.base import FleetOutcome
from stressbed.errors import ConfigError
from stressbed.testing import FakeBackend

from ..agent.helpers import AgentProcess, call
from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]

ADMIN = "adm-compare-test"
SCENARIO = """
from stressbed import *
from scenarios import agent_api as api

scenario = Scenario(
    "{name}",
    description="heartbeats at a steady rate",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "beat",
            api.heartbeat(),
            # 60/s: the 4 to 5 whole seconds compared hold the 200 samples a p95 needs (10
            # beyond it), however the run's 6 s fall on the clock's seconds.
            ConstantArrivalRate(rate=60, duration="6s", pre_allocated_vus=10, max_vus=60),
        )
    ],
)
"""


TOKEN = "tok-compare-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    made = AgentProcess(env={"STRESSBED_AGENT_ADMIN_TOKEN": ADMIN, "STRESSBED_AGENT_TOKEN": TOKEN})
    made.wait_listening()
    before = os.environ.get("STRESSBED_AGENT_TOKEN")
    os.environ["STRESSBED_AGENT_TOKEN"] = TOKEN  # the scenario's secret, for the runners
    try:
        yield made
    finally:
        made.stop()
        if before is None:
            del os.environ["STRESSBED_AGENT_TOKEN"]
        else:
            os.environ["STRESSBED_AGENT_TOKEN"] = before


def slow_down(agent: AgentProcess, ms: int) -> None:
    reply = call(
        f"{agent.url}/admin/faults",
        "POST",
        {"kind": "latency", "duration_s": 900, "ms": ms},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    assert reply.status == 200, reply.body


def a_run(agent: AgentProcess, folder: Path, name: str = "beats", **options: object) -> Path:
    path = folder / f"{name}.py"
    path.write_text(SCENARIO.format(name=name))
    report = execute(
        plan(
            RunOptions(
                scenario=str(path),
                target_url=agent.url,
                runners=2,
                results=folder / "r",
                **options,  # type: ignore[arg-type]
            )
        )
    )
    assert report.exit_code in (0, 1), report.message
    return folder / "r" / report.run_id


@pytest.fixture(scope="module")
def runs(agent, tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("compare")
    normal = a_run(agent, folder)  # the agent as it is
    slow_down(agent, 20)
    slowed = a_run(agent, folder)  # ... and 20 ms slower
    slow_down(agent, 10)
    base = a_run(agent, folder)
    same = [a_run(agent, folder) for _ in range(4)]
    other = a_run(agent, folder, name="other_beats")
    slow_down(agent, 30)
    slower = a_run(agent, folder)
    judged = a_run(agent, folder, baseline=base)
    slow_down(agent, 10)
    return {
        "base": base,
        "same": same,
        "other": other,
        "slower": slower,
        "judged": judged,
        "folder": folder,
        "normal": normal,
        "slowed": slowed,
    }


def stressbed_compare(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stressbed", "compare", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_run_compared_with_itself_is_unchanged_on_every_metric(runs, tmp_path):
    done = stressbed_compare(runs["base"], runs["base"], "--json", tmp_path / "c.json")
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads((tmp_path / "c.json").read_text())
    assert found["verdict"] == "unchanged", done.stdout
    assert {m["verdict"] for m in found["metrics"]} == {"unchanged"}
    assert done.stdout.splitlines()[-1] == "verdict: unchanged"


def _p95(run_dir: Path) -> float:
    return json.loads((run_dir / "summary.json").read_text())["metrics"]["http_req_duration"][
        "p(95)"
    ]


def test_runs_of_the_same_thing_are_not_regressed(runs, tmp_path):
    # Each interval comes from that run's own second-to-second variation, not from the
    # variation between runs: a burst of another process during one run of this shared
    # machine really does make that run slower, and may be judged so. A change in the thing
    # tested shows in every run; so at most one of four identical runs may be "regressed"
    # ("improved" is the same noise the other way) against a typical one of the five: the
    # median by p95, not one that may have run in the machine's one quiet moment.
    identical = sorted([runs["base"], *runs["same"]], key=_p95)
    reference = identical.pop(len(identical) // 2)
    regressed = []
    for i, candidate in enumerate(identical):
        done = stressbed_compare(reference, candidate, "--json", tmp_path / f"{i}.json")
        found = json.loads((tmp_path / f"{i}.json").read_text())
        assert (done.returncode == 1) == (found["verdict"] == "regressed"), done.stdout
        if found["verdict"] == "regressed":
            regressed.append(done.stdout)
    assert len(regressed) <= 1, "\n".join(regressed)


def test_a_build_20_ms_slower_is_regressed_on_p50_and_p95(runs, tmp_path):
    done = stressbed_compare(runs["base"], runs["slower"], "--json", tmp_path / "c.json")
    assert done.returncode == 1, done.stdout + done.stderr
    found = {m["metric"]: m for m in json.loads((tmp_path / "c.json").read_text())["metrics"]}
    for metric in ("http_req_duration p(50)", "http_req_duration p(95)"):
        assert found[metric]["verdict"] == "regressed"
        assert found[metric]["ci95"][0] > 0.3  # 10 ms -> 30 ms: far past the 10% tolerance
    assert "http_req_duration p(95)" in done.stdout


def test_a_normal_run_against_the_agent_slowed_by_20_ms_exits_1_naming_p95(runs, tmp_path):
    done = stressbed_compare(runs["normal"], runs["slowed"], "--json", tmp_path / "c.json")
    assert done.returncode == 1, done.stdout + done.stderr
    p95 = next(
        m
        for m in json.loads((tmp_path / "c.json").read_text())["metrics"]
        if m["metric"] == "http_req_duration p(95)"
    )
    assert p95["verdict"] == "regressed"
    assert any(
        "http_req_duration p(95)" in line and "regressed" in line
        for line in done.stdout.splitlines()
    )


def test_runs_of_different_scenarios_are_not_comparable(runs):
    done = stressbed_compare(runs["base"], runs["other"])
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith(f"stressbed: error: CANDIDATE: got '{runs['other']}'; expected a run ")
    assert "scenario: 'beats' vs 'other_beats'" in line
    assert done.stdout == ""
    allowed = stressbed_compare(runs["base"], runs["other"], "--allow-different")
    assert allowed.returncode in (0, 1)


def test_a_run_judged_against_its_baseline_says_so_everywhere(runs):
    run_dir = runs["judged"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 1
    assert summary["message"].startswith("regressed against the baseline: http_req_duration p(50)")
    assert summary["comparison"]["baseline"] == str(runs["base"])
    assert summary["comparison"]["verdict"] == "regressed"
    junit = (run_dir / "junit.xml").read_text()
    assert 'name="http_req_duration p(95) against the baseline"' in junit
    assert "<failure" in junit
    page = (run_dir / "report.html").read_text()
    assert "Against the baseline" in page
    assert "baseline p95" in page  # drawn dashed on the latency chart


def test_a_baseline_of_another_scenario_is_refused_before_anything_runs(runs, agent):
    folder = runs["folder"]
    (folder / "third.py").write_text(SCENARIO.format(name="third"))
    with pytest.raises(ConfigError) as error:
        plan(
            RunOptions(
                scenario=str(folder / "third.py"),
                target_url=agent.url,
                runners=2,
                results=folder / "r2",
                baseline=runs["base"],
            )
        )
    assert str(error.value).startswith(f"--baseline: got '{runs['base']}'; expected a run of ")
    assert not (folder / "r2").exists()


def a_copy(run_dir: Path, where: Path) -> Path:
    shutil.copytree(run_dir, where)
    return where


def test_a_run_with_a_runner_s_result_missing_is_not_comparable(runs, tmp_path):
    # One lost runner of two would read as requests/s halved.
    partial = a_copy(runs["base"], tmp_path / "b")
    (partial / "runners" / "1" / "result.json").unlink()
    done = stressbed_compare(runs["base"], partial)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"stressbed: error: CANDIDATE: got '{partial}'; expected a complete run: runner 1 of 2 "
        "has no result (runners/1/result.json missing); pass --allow-partial to compare anyway"
    )
    assert done.stdout == ""
    as_base = stressbed_compare(partial, runs["base"])
    assert as_base.returncode == 2
    assert as_base.stderr.startswith(f"stressbed: error: BASE: got '{partial}'; expected a compl")
    allowed = stressbed_compare(runs["base"], partial, "--allow-partial", "--metric", "http_reqs*")
    assert allowed.returncode == 1, allowed.stdout + allowed.stderr  # half the requests/s
    assert f"CANDIDATE {partial} compared though partial: runner 1 of 2" in allowed.stderr


def test_a_runner_s_result_that_cannot_be_read_is_named(runs, tmp_path):
    partial = a_copy(runs["base"], tmp_path / "b")
    (partial / "runners" / "0" / "result.json").write_text("{")
    done = stressbed_compare(runs["base"], partial)
    assert done.returncode == 2
    assert "expected a complete run: runner 0 of 2 has no result (runners/0/result.json: " in (
        done.stderr
    )


def test_a_run_whose_verdict_was_error_is_not_comparable(runs, tmp_path):
    errored = a_copy(runs["base"], tmp_path / "b")
    summary = json.loads((errored / "summary.json").read_text())
    summary.update(verdict="error", exit_code=130, message="interrupted; every runner stopped")
    (errored / "summary.json").write_text(json.dumps(summary))
    done = stressbed_compare(errored, runs["base"])
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"stressbed: error: BASE: got '{errored}'; expected a complete run: its verdict was "
        "error (interrupted; every runner stopped); pass --allow-partial to compare anyway"
    )
    assert stressbed_compare(errored, runs["base"], "--allow-partial").returncode == 0


def test_a_partial_baseline_is_refused_before_anything_runs(runs, agent, tmp_path):
    partial = a_copy(runs["base"], tmp_path / "b")
    (partial / "runners" / "1" / "result.json").unlink()
    options = RunOptions(
        scenario=str(runs["folder"] / "beats.py"),
        target_url=agent.url,
        runners=2,
        results=tmp_path / "r",
        baseline=partial,
    )
    with pytest.raises(ConfigError) as error:
        plan(options)
    assert str(error.value) == (
        f"--baseline: got '{partial}'; expected a complete run: runner 1 of 2 has no result "
        "(runners/1/result.json missing); pass --allow-partial to compare anyway"
    )
    assert not (tmp_path / "r").exists()
    assert plan(replace(options, allow_partial=True)).baseline is not None


def test_a_run_that_ends_in_error_is_not_judged_against_its_baseline(runs, agent, tmp_path):
    def lost() -> FleetOutcome:
        return FleetOutcome(results=[], failure="runner 1: lost")

    options = RunOptions(
        scenario=str(runs["folder"] / "beats.py"),
        target_url=agent.url,
        runners=2,
        results=tmp_path / "r",
        baseline=runs["base"],
    )
    report = execute(plan(options), backend=FakeBackend(outcome=lost))
    assert report.exit_code == 3
    assert report.message == (
        "runner 1: lost (not compared with the baseline: runner 0 of 2 has no result "
        "(runners/0/result.json missing); pass --allow-partial to compare anyway)"
    )
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    assert summary["comparison"] is None
    allowed = execute(plan(replace(options, allow_partial=True)), backend=FakeBackend(outcome=lost))
    assert allowed.comparison is not None


def test_a_run_with_no_load_to_compare_is_exit_2(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"schema_version": 1, "fingerprint": {}}))
    done = stressbed_compare(tmp_path, tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"stressbed: error: BASE: got '{tmp_path}'; expected a run with 3 s of load or more "
        "to compare (it has 0)"
    )


def test_the_fingerprint_is_the_same_from_another_checkout_or_venv(monkeypatch):
    from stressbed.app.compare import run_fingerprint  # noqa: PLC0415
    from stressbed.scenario import catalog  # noqa: PLC0415
    from stressbed.stack.agent import reference_agent  # noqa: PLC0415

    scenario = catalog.load("ingest_mix")
    here = reference_agent()
    elsewhere = replace(
        here,
        target=replace(
            here.target, command=("/ci/clone/.nox/stress/bin/python", *here.target.command[1:])
        ),
    )
    assert run_fingerprint(scenario, 2, "local", here) == run_fingerprint(
        scenario, 2, "local", elsewhere
    )
    bigger = replace(here, replicas=3)
    assert run_fingerprint(scenario, 2, "local", here) != run_fingerprint(
        scenario, 2, "local", bigger
    )


def test_the_metrics_compared_can_be_chosen(runs, tmp_path):
    done = stressbed_compare(
        runs["base"], runs["slower"], "--metric", "http_reqs rate", "--json", tmp_path / "c.json"
    )
    assert done.returncode == 0, done.stdout  # the slower build serves the same requests/s
    found = json.loads((tmp_path / "c.json").read_text())
    assert [m["metric"] for m in found["metrics"]] == ["http_reqs rate"]
    none = stressbed_compare(runs["base"], runs["slower"], "--metric", "p(42)*")
    assert none.returncode == 2
    assert none.stderr.startswith("stressbed: error: --metric: got 'p(42)*'; expected patterns")
