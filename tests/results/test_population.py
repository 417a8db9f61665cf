"""A population's agents read from k6's sample stream of two runners: the fleet's levels,
failures and disconnects by reason, seconds that measured nothing, the plateau's connected
share, its thresholds, and what summary.json, the terminal, junit.xml and report.html say."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from stressbed.results.merge import FleetResult, merge
from stressbed.results.packed import pack_windows
from stressbed.results.population import connected_share, levels, population
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.samples import Collector
from stressbed.results.summary import RunReport
from stressbed.results.table import table
from stressbed.results.verdict import Verdict, evaluate
from stressbed.thresholds import (
    checkin_lateness,
    command_rtt,
    connect_time,
    connected,
    latency,
    reconnect_time,
)

HEADER = "metric_name,timestamp,metric_value,check,error_code,expected_response,group,method,name,scenario,status,extra_tags,metadata\n"  # noqa: E501
START = 1_800_000_000

# Seconds since the start -> (metric, value, reason) of each runner. Runner 0 has three
# agents, runner 1 two; both sample their VUs every second, so every second has a window.
RUNNER_0 = {
    0: [("agents_joined", 1, "")] * 3
    + [("agent_connect_attempts", 1, "")] * 3
    + [("agent_connects", 1, ""), ("agent_connects", 1, "")]
    + [("agent_connect_time", 50, ""), ("agent_connect_time", 70, "")]
    + [("agent_connect_failures", 1, "refused")],
    1: [
        ("agent_connect_attempts", 1, ""),
        ("agent_connects", 1, ""),
        ("agent_connect_time", 900, ""),
        ("agent_checkin_lateness", 10, ""),
        ("agent_checkin_lateness", 20, ""),
        ("agent_registrations", 3, ""),
    ],
    2: [("agent_disconnects", 1, "closed_1006"), ("agent_checkins_missed", 1, "")],
    3: [("agent_connect_attempts", 1, ""), ("agent_connect_failures", 1, "status_503")],
    4: [
        ("agent_connect_attempts", 1, ""),
        ("agent_connects", 1, ""),
        ("agent_reconnects", 1, ""),
        ("agent_reconnect_time", 2000, ""),
        ("agent_checkin_lateness", 5, ""),
        ("agent_gave_up", 1, ""),
    ],
    5: [],  # nothing of the agents happened: only the VU gauge
    6: [("agents_left", 1, "")] * 3 + [("agent_disconnects", 1, "end")] * 3,
}
RUNNER_1 = {
    0: [("agents_joined", 1, "")] * 2
    + [("agent_connect_attempts", 1, "")] * 2
    + [("agent_connect_failures", 1, "timeout")] * 2,
    1: [("agent_connect_attempts", 1, "")] * 2
    + [("agent_connects", 1, "")] * 2
    + [("agent_connect_time", 100, ""), ("agent_connect_time", 110, "")],
    2: [],
    3: [("agent_disconnects", 1, "churn"), ("agents_left", 1, "")],
    4: [
        ("agents_joined", 1, ""),
        ("agent_connect_attempts", 1, ""),
        ("agent_connects", 1, ""),
        ("agent_connect_failures", 1, "refused"),
    ],
    5: [],
    6: [("agents_left", 1, "")] * 2 + [("agent_disconnects", 1, "end")] * 2,
}
# At the end of each second, over both runners.
WANTED = [5, 5, 5, 4, 5, 5, 0]
CONNECTED = [2, 5, 4, 3, 5, 5, 0]


def lines(events: dict[int, list[tuple[str, int, str]]]) -> list[str]:
    """k6's CSV lines of a runner: its agent samples, and a VU sample every second."""
    out = [HEADER]
    for s, samples in events.items():
        t = START + s
        out.append(f"vus,{t},1,,,,,,,,,,\n")
        for metric, value, reason in samples:
            extra = f"reason={reason}" if reason else ""
            out.append(f"{metric},{t},{value},,,,,,,fleet,,{extra},\n")
    return out


def runner(index: int, events: dict[int, list[tuple[str, int, str]]]) -> RunnerResult:
    collector = Collector()
    collector.feed_lines(lines(events))
    assert collector.bad_lines == 0
    return RunnerResult(
        index=index,
        count=2,
        segment=f"{index}/2",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=START + 0.4,
        ended_at=START + 7.0,
        aggregates=collector.aggregates,
        windows=collector.windows,
        samples=collector.samples,
    )


def through_json(result: RunnerResult) -> RunnerResult:
    return RunnerResult.from_dict(json.loads(json.dumps(result.to_dict())))


@pytest.fixture
def fleet() -> FleetResult:
    return merge([through_json(runner(0, RUNNER_0)), through_json(runner(1, RUNNER_1))])


def report(fleet: FleetResult, thresholds=(), plateau=(1.0, 6.0)) -> RunReport:
    results = evaluate(list(thresholds), fleet, plateau)
    failed = [r for r in results if not r.ok]
    return RunReport(
        run_id="r",
        scenario="pop",
        verdict=Verdict.FAIL if failed else Verdict.PASS,
        exit_code=1 if failed else 0,
        message="thresholds failed" if failed else "all thresholds passed",
        fleet=fleet,
        thresholds=results,
        runners=[],
        start_skew_ms=None,
        plateau=plateau,
    )


def test_the_fleets_levels_are_read_from_both_runners_counts(fleet):
    found = levels(fleet.windows)
    assert [found[START + s] for s in range(7)] == list(zip(WANTED, CONNECTED, strict=True))
    # Packed and read back lazily, the merge is the one of the runners' own windows.
    in_memory = merge([runner(0, RUNNER_0), runner(1, RUNNER_1)])
    assert {t: w.to_dict() for t, w in fleet.windows.items()} == {
        t: w.to_dict() for t, w in in_memory.windows.items()
    }
    window = fleet.windows[START]
    assert window.agents is not None
    assert window.agents.connect_failures == {"refused": 1, "timeout": 2}
    assert window.agents.connect_time.count == 2


def test_failures_and_disconnects_are_counted_by_reason_over_the_run(fleet):
    found = population(fleet, (1.0, 6.0))
    assert found is not None
    assert found["connect_failures_by_reason"] == {
        "refused": 2,
        "status_503": 1,
        "timeout": 2,
    }
    assert found["disconnects_by_reason"] == {"churn": 1, "closed_1006": 1, "end": 5}
    assert found["counts"] == {
        "joined": 6,
        "left": 6,
        "connect_attempts": 11,
        "connects": 7,
        "connect_failures": 5,
        "disconnects": 7,
        "reconnects": 1,
        "gave_up": 1,
        "registrations": 3,
        "commands": 0,  # never counted in a run with a population: a true 0
        "checkins_missed": 1,
    }
    assert fleet.aggregates["agent_disconnects{reason:end}"].total == 5
    assert (found["peak_connected"], found["peak_wanted"]) == (5, 5)
    trends = found["trends"]
    assert trends["connect_time"]["count"] == 5
    assert trends["connect_time"]["max"] == 900
    assert trends["reconnect_time"]["p(99)"] == pytest.approx(2000, rel=0.01)
    # No command was ever answered: not measured, never 0 ms.
    assert trends["command_rtt"] == {
        "count": 0,
        "p(50)": None,
        "p(90)": None,
        "p(95)": None,
        "p(99)": None,
        "p(99.9)": None,
        "max": None,
    }


def test_a_second_without_a_sample_of_a_trend_reads_null_never_0(fleet):
    rows = {row["t"] - START: row for row in population(fleet)["timeseries"]}  # type: ignore[index]
    assert [rows[s]["connected"] for s in range(7)] == CONNECTED
    assert [rows[s]["wanted"] for s in range(7)] == WANTED
    assert rows[0]["connect_failures"] == 3
    assert rows[0]["connect_time_p99_ms"] == pytest.approx(70, rel=0.01)
    # Second 2: agents, a missed check-in, but no check-in sent: its lateness is not measured.
    assert (rows[2]["checkins_missed"], rows[2]["disconnects"]) == (1, 1)
    assert rows[2]["checkin_lateness_p99_ms"] is None
    assert rows[1]["checkin_lateness_p99_ms"] == pytest.approx(19.9, rel=0.01)
    # Second 5: nothing of the agents at all: counts 0, statistics null, levels held.
    assert rows[5] == {
        "t": START + 5,
        "connected": 5,
        "wanted": 5,
        "connects": 0,
        "connect_attempts": 0,
        "connect_failures": 0,
        "disconnects": 0,
        "reconnects": 0,
        "gave_up": 0,
        "checkins_missed": 0,
        "checkin_lateness_p99_ms": None,
        "connect_time_p99_ms": None,
    }


@pytest.mark.parametrize(
    ("plateau", "share"),
    [
        ((1.0, 6.0), 22 / 24),  # seconds 1 to 5
        ((0.5, 6.5), 22 / 24),  # whole seconds only
        ((0.0, 2.0), 7 / 10),
        ((3.0, 4.0), 3 / 4),
        (None, None),  # no plateau given
        ((20.0, 30.0), None),  # nothing measured in it
        ((6.0, 7.0), None),  # nobody wanted
    ],
)
def test_the_connected_share_is_connected_over_wanted_summed_over_the_plateau(
    fleet, plateau, share
):
    found = connected_share(fleet.windows, START, plateau)
    assert found == (pytest.approx(share) if share is not None else None)
    assert population(fleet, plateau)["connected_share"] == found  # type: ignore[index]


def test_population_thresholds_pass_fail_or_have_no_data(fleet):
    thresholds = [
        connected("> 90%"),
        connected("> 99%"),
        reconnect_time("p(99) < 60s"),
        checkin_lateness("p(99) < 2s"),
        checkin_lateness("p(99) < 15ms"),
        connect_time("p(95) < 500ms"),
        command_rtt("p(99) < 1s"),
        command_rtt("p(99) < 1s", optional=True),
    ]
    results = evaluate(thresholds, fleet, (1.0, 6.0))
    assert [r.outcome for r in results] == [
        *("ok", "failed", "ok", "ok", "failed", "failed"),
        *("no data", "no data"),
    ]
    assert results[0].observed == pytest.approx(22 / 24)
    assert [r.ok for r in results[-2:]] == [False, True]  # no data passes only when optional
    # Without a plateau there is no share to judge.
    (alone,) = evaluate([connected("> 90%")], fleet)
    assert (alone.outcome, alone.ok) == ("no data", False)
    assert math.isnan(alone.observed)


def test_summary_terminal_junit_and_report_show_the_population(fleet, tmp_path):
    made = report(
        fleet, [connected("> 99%"), reconnect_time("p(99) < 60s"), command_rtt("p(99) < 1s")]
    )
    made.write(tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["report_error"] is None
    section = summary["population"]
    assert section["connected_share"] == pytest.approx(22 / 24)
    # Its whole seconds, by the rows' t: what the share was summed over.
    assert section["plateau"] == {
        "start_s": 1.0,
        "end_s": 6.0,
        "first_t": START + 1,
        "last_t": START + 5,
    }
    assert summary["metrics"]["agent_connect_failures{reason:refused}"]["count"] == 2
    assert [t["outcome"] for t in summary["thresholds"]] == ["failed", "ok", "no data"]

    shown = table(made)
    assert "agents: peak 5 connected (5 wanted at most), 91.67% of those wanted" in shown
    assert "connect failures 5 (refused 2, timeout 2, status_503 1)" in shown
    assert (
        "reconnects 1, gave up 1, check-in lateness p99 19.786 ms, reconnect p99 2,000 ms" in shown
    )
    assert "FAIL agents_connected share>0.99" in shown

    suite = ET.fromstring((tmp_path / "junit.xml").read_text())
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["agents_connected: share>0.99"].find("failure") is not None
    assert cases["agent_reconnect_time: p(99)<60000"].find("failure") is None
    failure = cases["agent_command_rtt: p(99)<1000"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("no data")

    page = (tmp_path / "report.html").read_text()
    assert "<h2>Population</h2>" in page
    assert "status_503" in page
    assert "closed_1006" in page
    assert "Agents: connected and wanted (whole fleet)" in page
    assert "Agents: connect attempts, connects and failures per second" in page


def test_the_report_draws_connected_against_wanted_each_second(fleet):
    line = report(fleet).timeline()
    assert line.agents["connected"] == CONNECTED
    assert line.agents["wanted"] == WANTED
    assert line.agents["connects_per_s"] == [2, 3, 0, 0, 2, 0, 0]
    assert line.agent_failures == {
        "refused": [1, 0, 0, 0, 1, 0, 0],
        "status_503": [0, 0, 0, 1, 0, 0, 0],
        "timeout": [2, 0, 0, 0, 0, 0, 0],
    }


def test_a_run_without_a_population_gets_nothing_of_one(tmp_path):
    collector = Collector()
    collector.feed_lines(
        [
            HEADER,
            "http_req_duration,100,12.5,,,true,,POST,report,w,202,,\n",
            "vus,100,1,,,,,,,,,,\n",
        ]
    )
    assert all(w.agents is None for w in collector.windows.values())
    assert "agents" not in pack_windows(collector.windows)
    assert "agents" not in collector.windows[100].to_dict()
    result = runner(0, {})
    result.aggregates, result.windows = collector.aggregates, collector.windows
    made = report(merge([through_json(result)]), [latency("p(95) < 1s")])
    assert made.population() is None
    made.write(tmp_path, html=False)
    assert "population" not in json.loads((tmp_path / "summary.json").read_text())
    assert "agents" not in table(made)
