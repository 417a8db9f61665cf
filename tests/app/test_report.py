"""report.html of a real run (the local backend, the reference agent, real k6), opened in
headless Chromium with the network cut; one test per section of the page. And
``stressbed report RUN_DIR``, which draws it again from the run directory."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.results.schemas import SUMMARY

from ..browser import Page, needs_browser
from ..conftest import needs_k6

pytestmark = [needs_k6, pytest.mark.k6]

SCENARIO = """
from stressbed import *
from scenarios import agent_api as api

scenario = Scenario(
    "report_run",
    description="ingest, and a route the agent does not have",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ingest",
            mix((api.report(), 60), (api.heartbeat(), 30),
                (get("/v1/nowhere", name="nowhere", checks=[check.status(200)]), 10)),
            ConstantArrivalRate(rate=40, duration="6s", pre_allocated_vus=5, max_vus=20),
        )
    ],
    thresholds=[latency("p(95) < 0.001ms"), error_rate("< 1%"), check_rate("> 99%")],
)
"""


TOKEN = "tok-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("report")
    (base / "report_run.py").write_text(SCENARIO)
    before = os.environ.get("STRESSBED_AGENT_TOKEN")
    os.environ["STRESSBED_AGENT_TOKEN"] = TOKEN  # the agent's secret, from the environment
    try:
        report = execute(
            plan(RunOptions(scenario=str(base / "report_run.py"), runners=2, results=base / "r"))
        )
    finally:
        if before is None:
            del os.environ["STRESSBED_AGENT_TOKEN"]
        else:
            os.environ["STRESSBED_AGENT_TOKEN"] = before
    assert report.exit_code == 1, report.message  # its thresholds fail, by design
    assert report.report_error is None
    return base / "r" / report.run_id


@pytest.fixture(scope="module")
def summary(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "summary.json").read_text()))


@pytest.fixture
def page(browser, run_dir: Path, tmp_path: Path) -> Page:
    return browser.open(run_dir / "report.html", tmp_path / "report.png")


class Links(HTMLParser):
    """Every src and href of the page's elements."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [v or "" for k, v in attrs if k in ("src", "href")]


def test_the_file_is_offline_and_small(run_dir):
    text = (run_dir / "report.html").read_text()
    assert len(text.encode()) < 3 * 2**20
    links = Links()
    links.feed(text)
    # Bokeh's script is inline (its JavaScript mentions a MathJax URL it would load only for
    # TeX labels, which the report has none of: the browser test sees no request at all).
    assert [link for link in links.found if re.match(r"(?i)(https?:)?//", link)] == []
    assert '<script type="text/javascript" src=' not in text


@needs_browser
def test_the_page_draws_without_an_error_or_a_request_to_any_host(page, tmp_path):
    assert page.errors() == []
    assert {url.split(":", 1)[0] for url in page.requests} <= {"file", "data"}
    assert (tmp_path / "report.png").stat().st_size > 10_000


@needs_browser
def test_the_verdict_and_why_top_the_page(page, summary):
    assert page.text("h1") == ["stressbed: report_run"]
    assert page.text(".verdict") == ["FAIL"]
    (message,) = page.text(".message")
    assert message == summary["message"]
    assert message.startswith("thresholds failed: http_req_duration p(95)<0.001")


@needs_browser
def test_the_thresholds_show_what_was_observed_against_the_limit(page, summary, tmp_path):
    text = page.section("Thresholds", tmp_path / "thresholds.png")
    for result in summary["thresholds"]:
        assert f"{result['metric']} " in text
        assert result["outcome"] in text
    assert "p(95)<0.001" in text
    assert "failed" in text


@needs_browser
def test_the_findings_are_listed(page, summary, tmp_path):
    text = page.section("Findings", tmp_path / "findings.png")
    if summary["findings"]:
        assert all(f["message"] in text for f in summary["findings"])
    else:
        assert text.startswith("None")


@needs_browser
def test_every_chart_has_drawn_data_and_the_breach_is_shaded(page):
    charts = {c["title"].split("  (")[0]: c for c in page.charts()}
    target = [t for t in charts if t.startswith("Target's own metric: ")]
    # Where this machine's cgroups measure them: each replica's IO and its wait for a CPU.
    measured = ("Replica IO (reads and writes) against its throttle",)
    measured += ("Replica wait for a CPU (run-queue delay, seconds a second)",)
    assert [t for t in charts if t not in target and t not in measured] == [
        "Load: requests/s offered and achieved, VUs",
        "Latency, whole fleet (merged sketches per second)",
        "Latency p95 by request name",
        "Errors: failed requests/s by status, failed checks/s",
        "Stack: replicas (desired, running, ready) and its events",
        "Replica CPU against its limit",
        "Replica memory (working set) against its limit",
        "Open connections per replica (through the balancer)",
        "The replicas' data folder: free and its size",
        "Runners: requests/s each",
        "Runners: k6 CPU each",
    ]
    # The agent's own metrics, scraped from its replicas each second.
    assert "Target's own metric: agent_queue_points" in target
    assert "Target's own metric: agent_points_accepted /s" in target
    assert all(c["points"] > 0 for c in charts.values()), charts
    # p(95) < 0.001 ms fails every second: the latency chart is shaded where.
    assert charts["Latency, whole fleet (merged sketches per second)"]["shaded"] >= 1
    assert charts["Errors: failed requests/s by status, failed checks/s"]["shaded"] >= 1


@needs_browser
def test_errors_are_drawn_by_status_and_by_check(page):
    legends = page.driver.execute_script(
        "const f = Bokeh.documents[0].roots()[0].children[3];"
        "const legend = f.center.filter(a => a.type === 'Legend')[0];"
        "return legend.items.map(i => i.label.value);"
    )
    assert "status 404" in legends
    assert any(label.startswith("check ") for label in legends)


@needs_browser
def test_the_runners_table_names_each_runner(page, summary, tmp_path):
    text = page.section("Runners", tmp_path / "runners.png")
    for runner in summary["runners"]:
        assert runner["segment"] in text


@needs_browser
def test_the_events_table_holds_every_event(page, summary, tmp_path):
    text = page.section(f"Events ({len(summary['events'])})", tmp_path / "events.png")
    assert "stack-ready" in text
    assert "started" in text


@needs_browser
def test_the_settings_say_where_each_came_from(page, summary, tmp_path):
    text = page.section("Settings", tmp_path / "settings.png")
    assert "runners 2" in text
    for source in set(summary["settings"]["sources"].values()):
        assert source in text


def test_stressbed_report_draws_the_page_again_from_the_run_directory(run_dir):
    page = run_dir / "report.html"
    page.unlink()
    done = subprocess.run(
        [sys.executable, "-m", "stressbed", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {page}"
    assert "Latency p95 by request name" in page.read_text()


def test_stressbed_report_of_a_directory_that_is_no_run_is_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stressbed", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"stressbed: error: RUN_DIR: got '{tmp_path}'; expected a run directory "
        "(results/<run-id>/, with summary.json)"
    )


def test_every_field_a_run_writes_in_summary_json_is_documented(summary):
    # The documentation's table of the run directory names each top-level field of a real
    # run's summary.json (a field added without its documentation fails here).
    page = (Path(__file__).parent.parent.parent / "docs" / "reference" / "results.md").read_text()
    (row,) = [line for line in page.splitlines() if line.startswith("| `summary.json` |")]
    assert [key for key in summary if f"`{key}`" not in row] == []
    # ... and the document is what its schema says (the schema the site publishes).
    jsonschema.validate(summary, SUMMARY)


def test_every_file_a_run_writes_is_documented_and_every_documented_one_written(run_dir):
    page = (Path(__file__).parent.parent.parent / "docs" / "reference" / "results.md").read_text()
    documented = {
        name.split("/")[0]
        for name in re.findall(r"^\| `([^`]+)` \|", page.split("## capacity.json")[0], re.M)
    }
    written = {path.name for path in run_dir.iterdir()}
    assert written == documented
