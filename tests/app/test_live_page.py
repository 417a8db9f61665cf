"""The live page of a real run in headless Chromium: real k6 runners against a server on
loopback, the page opened 20 s into a 40 s run, its charts moving on without a reload, and
the verdict with a link to report.html once the run ends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from stressbed.app.live_page import Ended, LivePage
from stressbed.app.live_server import LiveServer
from stressbed.fleet.process import free_port
from stressbed.results.aggregates import Window
from stressbed.results.live_series import RESOLUTION, LiveSeries
from stressbed.results.sketch import ACCURACY

from ..browser import Browser, needs_browser
from ..conftest import needs_k6
from .test_live_server import needs_prometheus, prometheus, query, query_range

pytestmark = [needs_k6, needs_browser]

SCENARIO = """
from stressbed import *
from stressbed.thresholds import error_rate, latency
scenario = Scenario('live_page', description='the live page', workloads=[
    Workload('w', get('/ok', name='ok'), ConstantArrivalRate(rate=20, duration='40s',
                                                            pre_allocated_vus=4)),
    Workload('f', get('/fail', name='fail', checks=[check.status(200)]),
             ConstantArrivalRate(rate=3, duration='40s', pre_allocated_vus=2))],
    thresholds=[latency('p(95) < 2s'), error_rate('< 50%')])
"""

#: Finite points of the chart whose title starts with arguments[0] (-1: no such chart).
CHART_POINTS = """
for (const fig of Bokeh.documents[0].roots()[0].children) {
  if (!fig.title.text.startsWith(arguments[0])) continue;
  let n = 0;
  for (const r of fig.renderers) {
    const data = r.data_source.data;
    for (const [k, column] of Object.entries(data)) {
      if (k !== 't') n += column.filter((v) => typeof v === 'number' && isFinite(v)).length;
    }
  }
  return n;
}
return -1;
"""

#: The latency chart's p95 points that have a value.
LATENCY_POINTS = """
const doc = Bokeh.documents[0];
for (const fig of doc.roots()[0].children) {
  if (!fig.title.text.startsWith('Latency, whole fleet')) continue;
  const data = fig.renderers[0].data_source.data;
  return data['s1'].filter((v) => typeof v === 'number' && isFinite(v)).length;
}
return -1;
"""
DASHBOARD = Path(__file__).parents[2] / "dashboards" / "stressbed-live.json"
#: Panels that only a population's run fills.
POPULATION_PANELS = {"Agents connected", "Agent connects per second, and failures by reason",
                     "Agent disconnects per second, by reason"}  # fmt: skip


def _update(url: str) -> dict:
    with urllib.request.urlopen(url + "/live.json", timeout=10) as reply:
        return json.loads(reply.read())


def _wait(what, deadline_s: float, message: str):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(message)


@needs_prometheus
def test_a_run_watched_live_in_a_browser_and_by_a_real_prometheus(server, tmp_path):
    """One real 40 s run, watched while it runs: its page, opened in headless Chromium 20 s
    in, has at least 15 s of latency points and gains more without a reload, then shows the
    verdict and links report.html; a real Prometheus scraping its /metrics every second
    holds summary.json's counts and, through histogram_quantile, its p95 within the
    buckets' resolution; every panel of the shipped dashboard returns data."""
    server.route("/fail", status=503)
    (tmp_path / "live_page.py").write_text(SCENARIO)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with prometheus(tmp_path, f"127.0.0.1:{port}") as prom:
        started = time.time()
        log = (tmp_path / "stderr.txt").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stressbed", "run", "--scenario",
             str(tmp_path / "live_page.py"), "--target-url", server.url,
             "--results", str(tmp_path / "r"), "--duration", "40s",
             "--live", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL,
            env={**os.environ, "K6_NO_USAGE_REPORT": "true", "CI": ""},
        )  # fmt: skip
        browser = Browser(offline=False)
        try:
            _watch_the_page(browser, proc, url, tmp_path)
            assert proc.wait(timeout=60) == 0, (tmp_path / "stderr.txt").read_text()
            ended = time.time()  # its last scrape came before: its series not yet stale
        finally:
            browser.close()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
        said = (tmp_path / "stderr.txt").read_text()
        (line,) = [x for x in said.splitlines() if x.startswith("stressbed: live: http")]
        assert line == f"stressbed: live: {url}/ (page), {url}/metrics"
        summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
        assert summary["settings"]["live_url"] == url
        assert summary["verdict"] == "pass"
        _check_prometheus(prom, summary, started, ended)


def _watch_the_page(browser: Browser, proc: subprocess.Popen, url: str, tmp_path: Path) -> None:
    def merged_seconds() -> float:
        if proc.poll() is not None:
            return -1.0
        try:
            return float(_update(url)["end"])
        except OSError:
            return 0.0

    # 20 s into the run: the seconds the whole fleet has merged (a bounded wait).
    _wait(lambda: merged_seconds() >= 20 or merged_seconds() < 0, 120, "never 20 s in")
    assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
    page = browser.open(url + "/", tmp_path / "live-20s.png")
    first = page.driver.execute_script(LATENCY_POINTS)
    assert first >= 15, first
    _wait(  # it moves on by itself
        lambda: page.driver.execute_script(LATENCY_POINTS) > first,
        30,
        "the latency chart gained no point",
    )
    # Each runner's lane, from its own snapshots: its requests and its k6's CPU.
    assert page.driver.execute_script(CHART_POINTS, "Runners: requests/s each") > 0
    assert page.driver.execute_script(CHART_POINTS, "Runners: k6 CPU each") > 0
    header = page.text("#live-header")[0]
    assert "running:" in header
    assert "holding" in header  # each threshold's state now
    _wait(  # the end: the verdict, and a link to report.html
        lambda: "report.html" in page.text("#live-header")[0],
        120,
        "the page never said the run ended",
    )
    header = page.text("#live-header")[0]
    assert header.splitlines()[1].startswith("PASS"), header
    page.driver.save_screenshot(str(tmp_path / "live-end.png"))
    console = page.console + page.driver.get_log("browser")
    assert [e["message"] for e in console if e.get("level") == "SEVERE"] == []
    asked = [u for u in page.requests + browser.requests() if not u.startswith("data:")]
    assert asked, "no request seen"
    assert all(u.startswith(url + "/") for u in asked), asked  # no other host


def _check_prometheus(prom: str, summary: dict, started: float, ended: float) -> None:
    # Once its target is gone Prometheus marks the series stale: each is read as its last
    # sample (a range selector leaves the stale marker out).
    run = f'run_id="{summary["run_id"]}"'

    def last(selector: str) -> str:
        return f"last_over_time({selector}[5m])"

    (requests,) = query(prom, f"sum({last(f'stressbed_http_requests_total{{{run}}}')})", ended)
    assert float(requests["value"][1]) == summary["metrics"]["http_reqs"]["count"]
    # The whole run's p95, from the fleet-merged buckets, against stressbed's own.
    buckets = last(f"stressbed_http_request_duration_seconds_bucket{{{run}}}")
    (p95,) = query(prom, f"histogram_quantile(0.95, sum by (le) ({buckets}))", ended)
    own = summary["metrics"]["http_req_duration"]["p(95)"] / 1000
    assert abs(float(p95["value"][1]) / own - 1) <= RESOLUTION + ACCURACY
    states = query(prom, last(f'stressbed_threshold_state{{{run},state="pass"}}') + " == 1", ended)
    assert len(states) == 2, states
    # Every expression of the shipped dashboard, over the run: each parses, and each panel
    # but a population's returns data.
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            assert not re.search(r"\bavg(_over_time)?\b", expr), expr  # never averaged
            if "histogram_quantile" in expr:
                assert "sum by (le" in expr, expr  # the fleet's buckets, summed first
                assert "_bucket{" in expr, expr
            expr = expr.replace("$run_id", summary["run_id"])
            expr = expr.replace("$__rate_interval", "5s")
            found = query_range(prom, expr, started, ended)
            if panel["title"] not in POPULATION_PANELS:
                assert found, (panel["title"], expr)


@pytest.mark.parametrize("path", ["/", "/live.json"])
def test_the_page_is_not_served_where_nothing_is_live(path):
    """Without a page (the endpoint alone: a test's LiveServer), only /metrics answers."""

    with LiveServer(LiveSeries(lock=threading.Lock())) as live:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(live.url + path, timeout=10)
        assert refused.value.code == 404
        refused.value.close()


def test_report_link_is_served_once_written(tmp_path: Path):
    """/report.html answers once the run has ended with one, not before."""

    series = LiveSeries(lock=threading.Lock())
    page = LivePage(series)
    with LiveServer(series, page=page) as live:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(live.url + "/report.html", timeout=10)
        refused.value.close()
        report = tmp_path / "report.html"
        report.write_text("<html>the report</html>")
        page.finish(Ended("pass", "all thresholds passed", report))
        with urllib.request.urlopen(live.url + "/report.html", timeout=10) as reply:
            assert reply.read() == b"<html>the report</html>"
        update = _update(live.url)
        assert update["ended"] is True
        assert "report.html" in update["header"]


def test_the_page_marks_the_stack_s_faults_and_draws_each_runner_s_lane():
    """Without a run: the page's update from a series, a stack report and its events."""
    series = LiveSeries(identity={"run_id": "r", "scenario": "s"}, lock=threading.Lock())
    t0 = 1_800_000_000
    for i in range(6):
        window = Window(requests=10, vus=2.0)
        window.duration.extend([3.0] * 10)
        window.names["get"] = window.duration.copy()
        series.seal(t0 + i, window)
        series.runner_seconds(0, {t0 + i: window}, {t0 + i + 1: 0.5})
    page = LivePage(series)
    rows = [{"t": t0 + i, "replicas": 2, "ready": 2, "desired": 2, "pods": {}} for i in range(6)]
    series.stack = lambda: {"timeseries": rows, "limits": {}}
    events = [
        {"t": t0 + 2.5, "event": "fault-applied", "fault": "kill-one", "source": "stack"},
        {"t": t0 + 4.0, "event": "fault-ended", "fault": "kill-one", "source": "stack"},
    ]
    page.events = lambda: events
    update = json.loads(page.update())
    markers = [cols for name, cols in update["sources"].items() if name.endswith("/markers")]
    assert [m["kind"] for m in markers] == [["fault-applied", "fault-ended"]]
    assert markers[0]["t"] == [2.5, 4.0]
    assert "fault-applied: kill-one" in markers[0]["text"][0]
    lanes = [c for name, c in update["sources"].items() if name.endswith("/lines")]
    assert any(c.get("s0") == [0.5] * 6 for c in lanes)  # runner 0's k6 CPU, each second
