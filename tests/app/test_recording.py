"""Every run records itself in the history store: the next run of the same thing sees it
(report.html's history strip), the build comes from --build or the CI's variables, and a
store that cannot be written is said once and never fails the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.app.recording import BUILD_VARIABLES, build_of, location_of
from stressbed.errors import ConfigError
from stressbed.history.store import Store
from stressbed.results.aggregates import Aggregate
from stressbed.testing import FakeBackend

from ..conftest import counting_result, needs_k6


def canned(latency_ms: float):
    """One runner's result: 50 requests, each ``latency_ms``."""
    result = counting_result(0, 50, 100.0, 101.0)
    result.count, result.segment = 1, "0:1"
    duration = Aggregate("trend")
    for _ in range(50):
        duration.add(latency_ms)
    result.aggregates["http_req_duration"] = duration
    return result


def run(tmp_path: Path, latency_ms: float, **options):
    options = {"scenario": "ingest_mix", **options}
    the_plan = plan(RunOptions(results=tmp_path / "r", **options))
    report = execute(the_plan, backend=FakeBackend([canned(latency_ms)]))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    return report, summary


@needs_k6  # plan() checks that k6 is there
def test_each_run_is_recorded_and_the_next_run_of_it_sees_the_earlier_ones(tmp_path, monkeypatch):
    for name in BUILD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GITHUB_SHA", "4f1c2e9")
    first, first_summary = run(tmp_path, 3.0)
    second, second_summary = run(tmp_path, 5.0, build="b2")
    with Store(tmp_path / "r" / "history.db") as store:
        entries = store.entries()
    assert [(e.run_id, e.build, e.verdict) for e in entries] == [
        (first.run_id, "4f1c2e9", first.verdict.value),
        (second.run_id, "b2", second.verdict.value),
    ]
    assert [e.figures["http_req_duration p(95)"] for e in entries] == [3.0, 5.0]
    assert entries[0].fingerprint == entries[1].fingerprint  # one series
    assert entries[1].run_dir == str((tmp_path / "r" / second.run_id).resolve())
    assert "history" not in first_summary  # nothing earlier: no strip
    (earlier,) = second_summary["history"]["earlier"]
    assert earlier["run_id"] == first.run_id
    assert earlier["http_req_duration p(95)"] == 3.0
    assert earlier["report"] == f"../{first.run_id}/report.html"
    # report.html's history strip: where the run sits, the earlier run linked.
    page = (tmp_path / "r" / second.run_id / "report.html").read_text()
    assert "<h2>History</h2>" in page
    assert "5 ms: higher than 1 of the 1 earlier" in page
    assert f'href="../{first.run_id}/report.html"' in page


@needs_k6
def test_a_run_that_failed_is_recorded_with_its_verdict(tmp_path):
    from stressbed.backends.local.balancer_pool import PortInUseError  # noqa: PLC0415

    the_plan = plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r", build="b1"))
    report = execute(
        the_plan, backend=FakeBackend(provision_error=PortInUseError("127.0.0.1", 8080))
    )
    with Store(tmp_path / "r" / "history.db") as store:
        (entry,) = store.entries()
    assert (entry.run_id, entry.verdict, entry.exit_code) == (report.run_id, "error", 2)
    assert entry.figures["http_req_duration p(95)"] is None  # nothing measured: no number


@needs_k6
def test_a_store_that_cannot_be_written_is_said_once_and_the_run_keeps_its_verdict(
    tmp_path, capsys
):
    (tmp_path / "file").write_text("not a folder")
    unrecorded, _ = run(tmp_path / "off", 3.0, history="off")
    capsys.readouterr()
    report, summary = run(tmp_path, 3.0, history=str(tmp_path / "file" / "history.db"))
    assert (report.exit_code, summary["verdict"]) == (
        unrecorded.exit_code,
        unrecorded.verdict.value,
    )
    warned = [line for line in capsys.readouterr().err.splitlines() if "history" in line]
    assert len(warned) == 1
    assert warned[0].startswith(f"stressbed: warning: run {report.run_id} not recorded in ")


@needs_k6
def test_history_off_records_nothing(tmp_path):
    run(tmp_path, 3.0, history="off")
    assert not (tmp_path / "r" / "history.db").exists()


def test_the_build_is_the_one_given_else_the_ci_s_commit_else_unknown():
    assert build_of("v1.2", {"GITHUB_SHA": "abc"}) == "v1.2"
    assert build_of(None, {"CI_COMMIT_SHA": "def", "GIT_COMMIT": "ghi"}) == "def"
    assert build_of(None, {"STRESSBED_BUILD": "x", "GITHUB_SHA": "abc"}) == "x"
    assert build_of(None, {"GITHUB_SHA": ""}) is None
    assert build_of(None, {}) is None


def test_the_store_is_in_the_results_folder_unless_given():
    assert location_of(None, Path("out")) == str(Path("out") / "history.db")
    assert location_of("postgresql://ci@db/stressbed", Path("out")) == (
        "postgresql://ci@db/stressbed"
    )
    assert location_of("off", Path("out")) is None


@needs_k6
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"gate_history": 2}, "--gate-history: got 2; expected a whole number of earlier runs"),
        ({"gate_history": 10, "history": "off"}, "--gate-history: got 10; expected a history"),
    ],
)
def test_a_history_gate_that_cannot_work_is_refused_before_anything_starts(
    tmp_path, options, expected
):
    with pytest.raises(ConfigError) as raised:
        plan(RunOptions(scenario="ingest_mix", results=tmp_path / "r", **options))
    assert str(raised.value).startswith(expected)


SCENARIO = (
    "from stressbed import *\n"
    "scenario = Scenario('gated', description='one GET', workloads=[Workload('w', get('/a'), "
    "ConstantVUs(vus=1, duration='1s'))], thresholds=[latency('p(95) < 1s')])\n"
)


@needs_k6
def test_run_gate_history_fails_a_run_that_regressed_naming_the_metric_and_build(tmp_path):
    (tmp_path / "gated.py").write_text(SCENARIO)
    scenario = str(tmp_path / "gated.py")
    for i, latency in enumerate((10.0, 10.2, 9.9, 10.1, 10.0, 9.8)):
        report, _ = run(tmp_path, latency, scenario=scenario, build=f"b{i}")
        assert report.exit_code == 0
    passed, summary = run(tmp_path, 10.1, scenario=scenario, build="b6", gate_history=10)
    assert passed.exit_code == 0
    assert summary["history"]["gate"]["passed"] is True
    slower, summary = run(tmp_path, 14.0, scenario=scenario, build="b7", gate_history=10)
    assert (slower.exit_code, summary["verdict"]) == (1, "fail")
    assert summary["message"].startswith(
        "history gate: http_req_duration p(95) regressed (10.01 -> 14, +39.8%) since build b7"
    )
    failures = summary["history"]["gate"]["failures"]
    assert [(f["metric"], f["build"], f["rule"]) for f in failures] == [
        ("http_req_duration p(95)", "b7", "recent runs"),
        ("http_req_duration p(99)", "b7", "recent runs"),
    ]
    junit = (tmp_path / "r" / slower.run_id / "junit.xml").read_text()
    assert 'name="history gate against the last 7 runs"' in junit
    assert "since build b7" in junit
    # Recorded as it ended: the failed run is in the history with its verdict.
    with Store(tmp_path / "r" / "history.db") as store:
        newest = store.entries()[-1]
    assert (newest.run_id, newest.verdict, newest.exit_code) == (slower.run_id, "fail", 1)
