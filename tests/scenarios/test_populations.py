"""The shipped population scenarios on the local backend, as users run them: 2,000 agents over
two runners, and their reconnect storm when every replica restarts."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stressbed.app.execute import execute
from stressbed.app.live_server import LiveServer
from stressbed.app.plan import RunOptions, plan
from stressbed.results.live_series import LiveSeries
from stressbed.results.schemas import SUMMARY

from ..app.test_live_page import DASHBOARD, POPULATION_PANELS
from ..app.test_live_server import needs_prometheus, prometheus, query_range
from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]


def run(
    tmp_path: Path, scenario: str, live: LiveSeries | None = None, **options: Any
) -> tuple[int, dict[str, Any]]:
    results = tmp_path / scenario
    report = execute(plan(RunOptions(scenario=scenario, results=results, **options)), live=live)
    return report.exit_code, json.loads((results / "latest" / "summary.json").read_text())


def _population_panels_have_data(prom: str, run_id: str, started: float, ended: float) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["title"] in POPULATION_PANELS]
    assert {p["title"] for p in panels} == POPULATION_PANELS
    for panel in panels:
        found = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$run_id", run_id).replace("$__rate_interval", "5s")
            found += query_range(prom, expr, started, ended)
        assert found, panel["title"]


def test_two_thousand_agents_over_two_runners_are_all_connected_and_registered_once(tmp_path):
    code, summary = run(tmp_path, "agent_population", runners=2, duration="30s")
    jsonschema.validate(summary, SUMMARY)  # a population's summary is what its schema says
    population = summary["population"]
    assert code == 0, (summary["message"], summary["thresholds"])
    assert population["counts"]["joined"] == 2000
    assert population["peak_connected"] == 2000
    plateau = population["plateau"]
    # The plateau's whole seconds but its first (the last joins' connects may end in it).
    steady = [
        row
        for row in population["timeseries"]
        if plateau["first_t"] + 1 <= row["t"] <= plateau["last_t"]
    ]
    assert steady
    assert {row["connected"] for row in steady} == {2000}
    assert population["connected_share"] == 1.0
    # What the agent service itself counted: each agent registered once.
    assert population["target"]["registrations"] == 2000
    assert population["target"]["duplicate_registrations"] == 0
    assert [r["segment"] for r in summary["runners"]] == ["0:1/2", "1/2:1"]


@needs_prometheus
def test_the_reconnect_storm_is_reported_under_its_fault(tmp_path):
    """Every replica restarted under 2,000 connected agents: the storm's figures. (That full
    jitter spreads it, the same agents and seed without jitter beside them, is
    tests/scenario/test_population_k6.py's, where one second's windows cannot split a wave.)
    Served live and scraped by a real Prometheus: the shipped dashboard's population panels
    return data."""
    series = LiveSeries(lock=threading.Lock())
    with LiveServer(series) as server:
        target = server.url.removeprefix("http://")
        with prometheus(tmp_path, target) as prom:
            started = time.time()
            code, summary = run(tmp_path, "reconnect_storm", duration="30s", live=series)
            ended = time.time()
            assert code == 0, (summary["message"], summary["thresholds"])
            _population_panels_have_data(prom, summary["run_id"], started, ended)
    (restart,) = summary["resilience"]["faults"]
    assert restart["kind"] == "restart"
    storm = restart["population"]
    assert storm["connected_before"] == 2000
    assert storm["disconnected"] == 2000
    assert storm["disconnected_by_reason"] == {"closed": 2000}  # the drain's 1001
    assert storm["dipped"] is True
    assert storm["peak_connect_rate"] > 0
    assert storm["time_to_99_connected_s"] is not None
    # The last of 2,000 may still be in its backoff (full jitter, cap 30 s) when a 30 s run
    # ends: then null, "not within the run", never a number.
    last = storm["time_to_all_connected_s"]
    assert last is None or last >= storm["time_to_99_connected_s"]
    assert storm["stack"]["survived"] is True
    assert storm["stack"]["restarted"] == 2
