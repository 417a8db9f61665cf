"""summary.json says "not measured" as null: a second in which nothing completed is no 0 ms,
0% error second, and a share of no requests is no 0%."""

from __future__ import annotations

import json

from stressbed.results.aggregates import Aggregate, Window
from stressbed.results.merge import FleetResult
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.summary import RunReport
from stressbed.results.verdict import Verdict


def report(fleet: FleetResult) -> RunReport:
    return RunReport(
        run_id="r",
        scenario="s",
        verdict=Verdict.PASS,
        exit_code=0,
        message="all thresholds passed",
        fleet=fleet,
        thresholds=[],
        runners=[],
        start_skew_ms=None,
    )


def test_a_second_without_completed_requests_reads_null_in_summary_json(tmp_path):
    answered = Window(requests=4, failed=1, iterations=4, vus=5)
    answered.duration.extend([10.0, 20.0, 30.0, 400.0])
    stalled = Window(vus=5)  # the VUs waited; nothing came back
    fleet = FleetResult(windows={100: answered, 101: stalled}, duration_s=2.0)
    report(fleet).write(tmp_path, html=False)
    rows = json.loads((tmp_path / "summary.json").read_text())["timeseries"]
    assert rows[0]["error_rate"] == 0.25
    assert rows[0]["p50_ms"] is not None
    assert rows[1] == {
        "t": 101,
        "requests_per_s": 0.0,  # a count: nothing is 0
        "error_rate": None,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "vus": 5,
        "vus_max": 0.0,
    }


def test_statistics_of_nothing_read_null_in_the_metrics():
    fleet = FleetResult(
        aggregates={
            "http_req_failed": Aggregate("rate"),
            "http_req_duration": Aggregate("trend"),
        },
        duration_s=1.0,
    )
    metrics = report(fleet).metrics()
    assert metrics["http_req_failed"]["rate"] is None
    assert metrics["http_req_duration"] == {"count": 0}


def test_each_runner_s_open_file_limit_is_in_summary_json_and_null_when_not_read(tmp_path):
    def runner(index: int, nofile: int | None) -> RunnerResult:
        segment = f"{index}/2:{index + 1}/2"
        return RunnerResult(index, 2, segment, RunnerStatus.OK, 0, 100.0, 101.0, nofile=nofile)

    said, unsaid = runner(0, 20_000), runner(1, None)
    run = report(FleetResult(duration_s=1.0))
    run.runners = [said, unsaid]
    rows = run.to_dict(with_findings=False)["runners"]
    assert [r["nofile"] for r in rows] == [20_000, None]
