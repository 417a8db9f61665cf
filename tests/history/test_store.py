"""The history store, on SQLite and on PostgreSQL alike: a run recorded reads back the same,
again replaces it, two writers at once lose nothing, a store of the schema before is migrated
and one of a newer schema refused with a clear message; the filters select in the database; a
password in a URL is refused and never shown."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from stressbed.fleet.process import free_port
from stressbed.history.entry import Entry, entry_of
from stressbed.history.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Store,
    StoreError,
    open_store,
    store_file,
)
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


Run = Callable[..., list[tuple[Any, ...]]]


@contextmanager
def behind_its_back(location: str) -> Iterator[Run]:
    """Statements run on a store's database without the store (``?`` placeholders)."""
    if location.startswith("postgresql://"):
        import psycopg  # noqa: PLC0415

        with psycopg.connect(location, autocommit=True) as db:

            def run(sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
                cursor = db.execute(sql.replace("?", "%s"), args)
                return cursor.fetchall() if cursor.description is not None else []

            yield run
    else:
        db = sqlite3.connect(location, isolation_level=None)
        try:
            yield lambda sql, args=(): db.execute(sql, args).fetchall()
        finally:
            db.close()


def test_a_run_reads_back_as_recorded_and_its_unmeasured_figures_stay_none(store_location):
    entry = entry_of(SUMMARY, run_dir="results/x", build="b41")
    with open_store(store_location) as store:
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


def test_a_figure_given_as_nan_reads_back_as_not_measured_on_either_store(store_location):
    entry = dataclasses.replace(
        entry_of(SUMMARY),
        figures={"http_reqs rate": float("nan"), "http_req_failed rate": float("inf")},
        thresholds=(("http_reqs", "rate>1", float("nan"), "no data"),),
    )
    with open_store(store_location) as store:
        store.record(entry, recorded_at=1.0)
        (back,) = store.entries()
    assert back.figures == {"http_reqs rate": None, "http_req_failed rate": float("inf")}
    assert back.thresholds == (("http_reqs", "rate>1", None, "no data"),)


def test_recording_a_run_again_replaces_it(store_location):
    with open_store(store_location) as store:
        store.record(entry_of(SUMMARY), recorded_at=1.0)
        store.record(entry_of({**SUMMARY, "verdict": "pass", "thresholds": []}), recorded_at=2.0)
        (back,) = store.entries()
    assert (back.verdict, back.thresholds) == ("pass", ())
    assert back.figures == entry_of(SUMMARY).figures


def test_runs_come_oldest_recorded_first_ties_by_run_id(store_location):
    with open_store(store_location) as store:
        for run_id, at in (("b", 2.0), ("B", 2.0), ("a", 2.0), ("_c", 1.0)):
            store.record(entry_of({**SUMMARY, "run_id": run_id}), recorded_at=at)
        # Byte order on both stores, whatever the PostgreSQL database's collation (the
        # tests' sorts a before B).
        assert [e.run_id for e in store.entries()] == ["_c", "B", "a", "b"]


def _writer(location: str, who: int, count: int) -> None:
    with Store(location) as store:
        for i in range(count):
            store.record(entry_of({**SUMMARY, "run_id": f"w{who}-{i:03d}"}), recorded_at=i)


def test_two_writers_at_once_lose_nothing(store_location):
    open_store(store_location).close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_writer, args=(store_location, w, 200)) for w in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [w.exitcode for w in writers] == [0, 0]
    with open_store(store_location) as store:
        entries = store.entries()
    assert len(entries) == 400
    assert {e.run_id for e in entries} == {f"w{w}-{i:03d}" for w in (1, 2) for i in range(200)}
    assert all(e.figures == entry_of(SUMMARY).figures for e in entries)
    assert all(len(e.thresholds) == 2 for e in entries)


def _v1(run: Run, entry: Entry, recorded_at: float) -> None:
    """``entry`` as stressbed wrote it at schema version 1 (no end, no fingerprint fields)."""
    run(
        "INSERT INTO runs (run_id, kind, scenario, fingerprint, verdict, exit_code, run_dir,"
        " build, backend, runners, started_at, duration_s, recorded_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (entry.run_id, entry.kind, entry.scenario, entry.fingerprint, entry.verdict,
         entry.exit_code, entry.run_dir, entry.build, entry.backend, entry.runners,
         entry.started_at, entry.duration_s, recorded_at),
    )  # fmt: skip
    for metric, value in entry.figures.items():
        run("INSERT INTO figures (run_id, metric, value) VALUES (?, ?, ?)",
            (entry.run_id, metric, value))  # fmt: skip
    for i, threshold in enumerate(entry.thresholds):
        run("INSERT INTO thresholds (run_id, position, metric, expression, observed, outcome)"
            " VALUES (?, ?, ?, ?, ?, ?)", (entry.run_id, i, *threshold))  # fmt: skip


def test_a_store_of_the_schema_before_is_migrated_and_its_runs_read_back(store_location):
    if store_file(store_location) is not None:
        sqlite3.connect(store_location).close()
    old = [
        dataclasses.replace(entry_of({**SUMMARY, "run_id": f"20261207-16000{i}-v1"}),
                            build=f"b{i}", run_dir=f"results/{i}")
        for i in range(3)
    ]  # fmt: skip
    with behind_its_back(store_location) as run:
        for statement in MIGRATIONS[0]:
            run(statement)
        run("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
        for i, entry in enumerate(old):
            _v1(run, entry, recorded_at=float(i))
    with open_store(store_location) as store:
        assert store.version == SCHEMA_VERSION
        back = store.entries()
        store.record(dataclasses.replace(old[0], ended_at=5.0), recorded_at=9.0)
        assert store.entries(build="b0")[0].ended_at == 5.0  # the new column is written
    # What version 1 kept, the same; what it did not, None or empty.
    assert back == [dataclasses.replace(e, ended_at=None, fingerprint_fields={}) for e in old]
    assert [e.fingerprint_fields for e in back] == [{}, {}, {}]
    with behind_its_back(store_location) as run:
        assert run("SELECT value FROM meta WHERE key = 'schema_version'") == [
            (str(SCHEMA_VERSION),)
        ]


def test_a_store_of_a_newer_schema_is_refused_and_left_as_it_is(store_location):
    open_store(store_location).close()
    with behind_its_back(store_location) as run:
        run("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError) as caught:
        open_store(store_location)
    assert str(caught.value) == (
        f"history store {store_location}: schema version 99, written by a newer stressbed; "
        f"this one knows version {SCHEMA_VERSION} at most (upgrade stressbed, or give another "
        "--history)"
    )
    assert caught.value.exit_code == 2
    with behind_its_back(store_location) as run:
        assert run("SELECT value FROM meta") == [("99",)]
        assert run("SELECT count(*) FROM runs") == [(0,)]


def test_a_database_with_another_programs_meta_table_is_said_so(store_location):
    if store_file(store_location) is not None:
        sqlite3.connect(store_location).close()
    with behind_its_back(store_location) as run:
        run("CREATE TABLE meta (name TEXT)")
    with pytest.raises(StoreError, match=rf"^history store {store_location}: not usable \("):
        open_store(store_location)


def test_a_file_that_is_not_a_store_is_said_so(tmp_path):
    path = tmp_path / "history.db"
    path.write_bytes(b"not a database at all, " * 100)
    with pytest.raises(StoreError, match="not usable"):
        Store(path)


def _series(store: Store) -> None:
    for i, (build, scenario) in enumerate([("b1", "s"), ("b1", "t"), ("b2", "s"), ("b2", "s")]):
        summary = {
            **SUMMARY,
            "run_id": f"20261207-16000{i}-r",
            "scenario": scenario,
            "fingerprint": {**SUMMARY["fingerprint"], "scenario": scenario},
        }
        entry = entry_of(summary, build=build)
        figures = {**entry.figures, "http_reqs rate": float(i)}
        store.record(dataclasses.replace(entry, figures=figures), recorded_at=float(i))
    store.record(entry_of({**SUMMARY, "run_id": "no-start"}, build="b1"), recorded_at=9.0)


def test_the_filters_select_by_build_scenario_fingerprint_and_start(store_location):
    start = 1796659200.0  # the first run's, 2026-12-07 16:00:00 UTC; one a second after
    t_series = fingerprint_digest({**SUMMARY["fingerprint"], "scenario": "t"})
    with open_store(store_location) as store:
        _series(store)

        def ids(**given: Any) -> list[str]:
            return [e.run_id[-3:] for e in store.entries(**given)]

        assert ids() == ["0-r", "1-r", "2-r", "3-r", "art"]
        assert ids(build="b1") == ["0-r", "1-r", "art"]
        assert ids(build="b2", scenario="s") == ["2-r", "3-r"]
        assert ids(fingerprint=t_series) == ["1-r"]
        assert ids(since=start + 1) == ["1-r", "2-r", "3-r"]  # from since on
        assert ids(until=start + 2) == ["0-r", "1-r"]  # before until
        assert ids(since=start + 1, until=start + 3, build="b2") == ["2-r"]
        assert ids(build="b9") == []
        # Each run with its own figures and thresholds, whichever were selected.
        for entry in store.entries(build="b2"):
            assert entry.figures["http_reqs rate"] == int(entry.run_id[14])
            assert len(entry.thresholds) == 2
        # Only the figures asked for, when some are.
        named = ("http_reqs rate", "http_req_duration p(95)", "not recorded")
        (first, *_) = store.entries(build="b2", metrics=named)
        assert first.figures == {"http_reqs rate": 2.0, "http_req_duration p(95)": 40.5}
        assert len(first.thresholds) == 2
        assert [e.figures for e in store.entries(build="b2", metrics=())] == [{}, {}]


# -- PostgreSQL: how a store is named, the lock a migration holds ------------------------------

SECRET = "s3cr3t-Pa55"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://ci:{SECRET}@db.example:5432/history",
         "postgresql://ci:***@db.example:5432/history"),
        (f"postgres://ci:{SECRET}@db.example/history?sslmode=require",
         "postgres://ci:***@db.example/history?sslmode=require"),
        (f"postgresql://ci@db.example/history?sslmode=require&password={SECRET}",
         "postgresql://ci@db.example/history?sslmode=require&password=***"),
        (f"postgresql://ci@db.example/history?pass%77ord={SECRET}",
         "postgresql://ci@db.example/history?pass%77ord=***"),
        (f"postgresql://ci:{SECRET}@{SECRET}@db.example/history",  # an unescaped @ in it
         "postgresql://ci:***@db.example/history"),
        (f"postgresql://:{SECRET}@db.example/history", "postgresql://:***@db.example/history"),
    ],
)  # fmt: skip
def test_a_password_in_the_url_is_refused_and_never_shown(url, shown):
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith(f"history store {shown}: a password in the URL is refused")
    for told in ("PGPASSWORD", "PGPASSFILE", "~/.pgpass", "libpq reads them itself"):
        assert told in message
    assert caught.value.exit_code == 2
    for seen in (message, repr(caught.value), repr(caught.value.__cause__),
                 repr(caught.value.__context__)):  # fmt: skip
        assert SECRET not in seen


def test_a_url_without_psycopg_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://ci@127.0.0.1:9/history")
    assert str(caught.value) == (
        "history store postgresql://ci@127.0.0.1:9/history: PostgreSQL needs psycopg 3, which "
        "is not installed (pip install 'stressbed[postgresql]')"
    )


def test_where_a_store_is(tmp_path):
    assert store_file(tmp_path / "h.db") == tmp_path / "h.db"
    assert store_file("results/history.db") == tmp_path.__class__("results/history.db")
    assert store_file("postgresql://ci@db/history") is None
    assert store_file("postgres://ci@db/history") is None


def test_a_server_that_does_not_answer_is_one_line(postgres_cluster):
    # (Not on the cluster: asking for it skips, or fails on CI, where PostgreSQL is missing.)
    port = free_port()  # nothing listens there
    url = f"postgresql://ci@127.0.0.1:{port}/history?connect_timeout=5"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith(f"history store {url}: cannot connect (")
    assert "Connection refused" in message
    assert "\n" not in message


def test_a_wrong_password_is_refused_by_the_server_and_not_shown(postgres_cluster, monkeypatch):
    monkeypatch.delenv("PGPASSFILE", raising=False)
    monkeypatch.setenv("PGPASSWORD", SECRET)
    url = postgres_cluster.url("postgres")
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith(f"history store {url}: cannot connect (")
    assert 'password authentication failed for user "stressbed"' in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value)


def test_two_stores_opening_one_new_database_migrate_it_once(postgres_cluster, monkeypatch):
    """Each waits for the migration's advisory lock (held here until both wait), then one
    makes the tables and the other finds them made."""
    from stressbed.history._postgres import MIGRATION_LOCK  # noqa: PLC0415

    monkeypatch.setenv("PGPASSFILE", str(postgres_cluster.passfile))
    url = postgres_cluster.create_database()
    versions: list[int] = []
    failures: list[BaseException] = []

    def opener() -> None:
        try:
            with open_store(url) as store:
                versions.append(store.version)
        except BaseException as exc:
            failures.append(exc)

    with behind_its_back(url) as run:
        run("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
        openers = [threading.Thread(target=opener) for _ in range(2)]
        for thread in openers:
            thread.start()
        deadline = time.monotonic() + 30
        waiting = 0
        while waiting < 2 and time.monotonic() < deadline:
            ((waiting,),) = run(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            time.sleep(0.05)
        assert waiting == 2
        assert run("SELECT to_regclass('meta')") == [(None,)]  # neither went past the lock
        run("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))
    for thread in openers:
        thread.join(60)
    assert not any(thread.is_alive() for thread in openers)
    assert failures == []
    assert versions == [SCHEMA_VERSION, SCHEMA_VERSION]
