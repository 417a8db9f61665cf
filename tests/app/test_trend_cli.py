"""``stressbed trend``: a series' change points where the level moved (the run, the build,
the size), as a table, JSON and trend.html, and ``--gate`` failing exactly when the newest
run is in a regression; on a SQLite file and on PostgreSQL alike."""

from __future__ import annotations

import json
import random
import time

import pytest

from stressbed.cli import main
from stressbed.history.entry import Entry
from stressbed.history.store import open_store

from ..browser import needs_browser

P95 = "http_req_duration p(95)"
FINGERPRINT = "a1b2c3d4e5f6"
START = 1_796_600_000.0


def runs(count: int, *, step_at: int = 20, step: float = 0.2, seed: int = 7) -> list[Entry]:
    """``count`` runs of one series: p95 around 50 ms (3 % noise), ``step`` higher from run
    ``step_at`` (1-based) on; the error rate 0 and the request rate 50/s throughout."""
    rng = random.Random(seed)
    made = []
    for i in range(1, count + 1):
        level = 50.0 * (1 + step if i >= step_at else 1)
        made.append(
            Entry(
                run_id=f"20261207-{i:06d}-run",
                kind="run",
                scenario="ingest_mix",
                fingerprint=FINGERPRINT,
                verdict="pass",
                exit_code=0,
                run_dir=f"/results/20261207-{i:06d}-run",
                build=f"b{i}",
                started_at=START + 600 * i,
                figures={
                    P95: rng.gauss(level, 0.03 * 50),
                    "http_req_duration p(99)": rng.gauss(2 * level, 0.03 * 100),
                    "http_req_failed rate": 0.0,
                    "http_reqs rate": rng.gauss(50.0, 0.2),
                },
            )
        )
    return made


def stored(location: str, entries: list[Entry]) -> str:
    with open_store(location) as store:
        for entry in entries:
            store.record(entry, recorded_at=time.time())
    return location


def test_a_step_is_one_change_point_at_its_run_with_its_build_and_size(
    store_location, capsys, tmp_path
):
    stored(store_location, runs(30))
    assert main(["trend", "--history", store_location, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["series"] == FINGERPRINT
    assert len(document["runs"]) == 30
    by_metric = {m["metric"]: m for m in document["metrics"]}
    (change,) = by_metric[P95]["changes"]
    assert abs(change["index"] + 1 - 20) <= 1
    assert change["build"] == f"b{change['index'] + 1}"
    assert (change["kind"], change["direction"]) == ("regression", "up")
    assert change["relative"] == pytest.approx(0.2, abs=0.04)
    assert by_metric[P95]["worse"] == "up"
    assert by_metric["http_reqs rate"]["changes"] == []  # noise only
    # The table says the same; trend.html draws it, each run linked to its report.
    html = tmp_path / "out" / "trend.html"
    assert main(["trend", "--history", store_location, "--html", str(html)]) == 0
    table = capsys.readouterr().out
    (line,) = [row for row in table.splitlines() if row.startswith(P95)]
    assert "regression +" in line
    assert f"(build b{change['index'] + 1})" in line
    page = html.read_text()
    assert "../../results/20261207-000001-run/report.html" in page or (
        "/results/20261207-000001-run/report.html" in page
    )
    assert "regression" in page


def test_the_gate_passes_on_noise_and_fails_on_the_step_naming_the_metric_and_build(
    store_location, capsys
):
    everything = runs(30)
    stored(store_location, everything[:19])
    assert main(["trend", "--history", store_location, "--gate"]) == 0
    assert "gate: pass" in capsys.readouterr().out
    stored(store_location, everything[19:21])
    assert main(["trend", "--history", store_location, "--gate"]) == 1
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("gate:")]
    assert any(P95 in line and "since build b20" in line for line in said), said
    assert not any("http_reqs rate" in line for line in said)


def test_the_gate_fails_on_the_first_slow_run_and_passes_again_once_fixed(tmp_path, capsys):
    location = str(tmp_path / "h.db")
    everything = runs(22)
    stored(location, everything[:20])  # run 20: the first at the slower level
    assert main(["trend", "--history", location, "--gate", "--json"]) == 1
    gate = json.loads(capsys.readouterr().out)["gate"]
    (failure,) = [f for f in gate["failures"] if f["metric"] == P95]
    assert (failure["build"], failure["rule"], failure["runs"]) == ("b20", "recent runs", 1)
    # A build back at the old level passes at once.
    fixed = runs(23, step_at=99)[22]
    stored(location, [*everything[20:22], fixed])
    assert main(["trend", "--history", location, "--gate", "--metric", P95]) == 0


def test_runs_that_ended_in_error_are_no_level(tmp_path, capsys):
    location = str(tmp_path / "h.db")
    everything = runs(19)
    broken = Entry(
        **{**everything[-1].__dict__, "run_id": "20261207-999999-err", "verdict": "error",
           "started_at": START + 600 * 40, "figures": {P95: 500.0}},
    )  # fmt: skip
    stored(location, [*everything, broken])
    assert main(["trend", "--history", location, "--gate", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["runs"]) == 19
    assert document["gate"]["run_id"] == everything[-1].run_id


def test_what_trend_refuses_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["trend", "--history", str(tmp_path / "none.db")]) == 2
    assert "expected an existing history store" in capsys.readouterr().err
    location = stored(str(tmp_path / "h.db"), runs(3))
    assert main(["trend", "--history", location, "--fingerprint", "ffff"]) == 2
    assert "--fingerprint: got 'ffff'; expected one series's fingerprint" in (
        capsys.readouterr().err
    )
    assert main(["trend", "--history", location, "--scenario", "other"]) == 2
    assert "expected a scenario with runs in the history" in capsys.readouterr().err
    assert main(["trend", "--history", location, "--gate", "2"]) == 2
    assert "--gate: got 2" in capsys.readouterr().err


def test_a_gate_with_nothing_earlier_passes_saying_there_was_no_data(tmp_path, capsys):
    location = stored(str(tmp_path / "h.db"), runs(1))
    assert main(["trend", "--history", location, "--gate"]) == 0
    assert "no earlier run of this series" in capsys.readouterr().out


@needs_browser
def test_trend_html_draws_offline_a_chart_per_metric_with_the_step_marked(
    tmp_path, browser, capsys
):
    location = stored(str(tmp_path / "h.db"), runs(30))
    html = tmp_path / "trend.html"
    assert main(["trend", "--history", location, "--html", str(html)]) == 0
    page = browser.open(html, tmp_path / "trend.png")
    assert page.errors() == []
    assert {url.split(":", 1)[0] for url in page.requests} <= {"file", "data"}
    charts = {c["title"]: c for c in page.charts()}
    assert set(charts) == {
        "http_req_duration p(95) (up is worse)",
        "http_req_duration p(99) (up is worse)",
        "http_req_failed rate (up is worse)",
        "http_reqs rate (down is worse)",
    }
    assert charts["http_req_duration p(95) (up is worse)"]["points"] >= 30
    spans = page.driver.execute_script(
        "return Bokeh.documents[0].roots()[0].children.map("
        "f => f.center.filter(a => a.type === 'Span').map(a => a.location))"
    )
    titles = [c["title"] for c in page.charts()]
    marked = dict(zip(titles, spans, strict=True))
    assert [round(x - 0.5) + 1 for x in marked["http_req_duration p(95) (up is worse)"]] == [20]
    assert marked["http_reqs rate (down is worse)"] == []
    runs_linked = page.text("table a")
    assert len(runs_linked) == 30
