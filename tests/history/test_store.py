"""The history store: a run recorded reads back the same, again replaces it, two writers at
once lose nothing, and a store of a newer schema is refused with a clear message."""

from __future__ import annotations

import multiprocessing
import sqlite3

import pytest

from stressbed.history.entry import entry_of
from stressbed.history.store import SCHEMA_VERSION, Store, StoreError
from stressbed.results.compare import fingerprint_digest

SUMMARY = {
    "run_id": "20261207-160000-abcdef",
    "scenario": "ingest_mix",
    "verdict": "fail",
    "exit_code": 1,
    "duration_s": 60.0,
    "metrics": {
        "http_req_duration": {"count": 3000.0, "p(50)": 12.0, "p(95)": 40.5, "p(99)": 88.0},
        "http_req_duration{name:report}": {"count": 2000.0, "p(50)": 10.0, "p(95)": 30.0},
        "http_req_duration{name:heartbeat}": {"count": 1000.0, "p(99)": float("nan")},
        "http_req_failed": {"rate": 0.004},
        "http_reqs": {"count": 3000.0, "rate": 50.0},
    },
    "thresholds": [
        {"metric": "http_req_duration", "expression": "p(95)<30", "observed": 40.5,
         "outcome": "failed"},
        {"metric": "agents_connected", "expression": "share>0.99", "observed": None,
         "outcome": "no data"},
    ],
    "fingerprint": {"scenario": "ingest_mix", "config": "49213ba1beee1584", "runners": 2,
                    "backend": "local"},
}  # fmt: skip


def test_a_run_reads_back_as_recorded_and_its_unmeasured_figures_stay_none(tmp_path):
    entry = entry_of(SUMMARY, run_dir="results/x", build="b41")
    with Store(tmp_path / "history.db") as store:
        assert store.version == SCHEMA_VERSION
        store.record(entry, recorded_at=1.0)
        (back,) = store.entries()
    assert back == entry
    assert back.figures["http_req_duration p(95)"] == 40.5
    assert back.figures["http_req_duration{name:report} p(99)"] is None  # not in k6's output
    assert back.figures["http_req_duration{name:heartbeat} p(99)"] is None  # NaN: not measured
    assert back.thresholds[1] == ("agents_connected", "share>0.99", None, "no data")
    # The series is the digest of the whole fingerprint, as the live endpoint names it.
    assert back.fingerprint == fingerprint_digest(SUMMARY["fingerprint"])
    assert back.fingerprint_fields == SUMMARY["fingerprint"]
    assert (back.build, back.backend, back.runners) == ("b41", "local", 2)
    assert back.started_at == 1796659200.0  # 2026-12-07 16:00:00 UTC, from the run id


def test_recording_a_run_again_replaces_it(tmp_path):
    with Store(tmp_path / "history.db") as store:
        store.record(entry_of(SUMMARY), recorded_at=1.0)
        store.record(entry_of({**SUMMARY, "verdict": "pass", "thresholds": []}), recorded_at=2.0)
        (back,) = store.entries()
    assert (back.verdict, back.thresholds) == ("pass", ())


def _writer(path: str, who: int, count: int) -> None:
    with Store(path) as store:
        for i in range(count):
            store.record(entry_of({**SUMMARY, "run_id": f"w{who}-{i:03d}"}), recorded_at=i)


def test_two_writers_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "history.db")
    Store(path).close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(path, who, 200)) for who in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [w.exitcode for w in writers] == [0, 0]
    with Store(path) as store:
        entries = store.entries()
    assert len(entries) == 400
    assert {e.run_id for e in entries} == {f"w{w}-{i:03d}" for w in (1, 2) for i in range(200)}
    assert all(e.figures["http_req_duration p(95)"] == 40.5 for e in entries)


def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "history.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError) as caught:
        Store(path)
    assert (
        f"schema version 99, written by a newer stressbed; this one knows version {SCHEMA_VERSION}"
        in str(caught.value)
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta").fetchone() == ("99",)


def test_a_file_that_is_not_a_store_is_said_so(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(StoreError, match="not usable"):
        Store(path)
