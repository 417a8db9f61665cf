"""The history store: SQLite, one versioned schema, migrated forward by stressbed itself.

The schema's version is in ``meta``; opening a store runs the migrations it lacks, in one
transaction each, and refuses a store whose version is newer than this stressbed knows
(:class:`StoreError`, naming both versions and what to do). SQLite runs in WAL mode with a
busy timeout, so two runs on one machine record at once; a run is written in one
transaction, and writing it again replaces it (importing the same run directory twice is a
no-op).

Tables: ``runs`` (one row a run: who it was), ``figures`` (its headline metrics, one row a
metric: what a trend reads), ``thresholds`` (each with its observed value and outcome).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import StressbedError
from .entry import Entry

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError"]

#: Each version's statements, applied in order to reach it from the one before.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE runs ("
        " run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, scenario TEXT, fingerprint TEXT,"
        " verdict TEXT, exit_code INTEGER, run_dir TEXT, build TEXT, backend TEXT,"
        " runners INTEGER, started_at DOUBLE PRECISION, duration_s DOUBLE PRECISION,"
        " recorded_at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX runs_series ON runs (fingerprint, started_at)",
        "CREATE TABLE figures ("
        " run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,"
        " metric TEXT NOT NULL, value DOUBLE PRECISION, PRIMARY KEY (run_id, metric))",
        "CREATE TABLE thresholds ("
        " run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,"
        " position INTEGER NOT NULL, metric TEXT NOT NULL, expression TEXT NOT NULL,"
        " observed DOUBLE PRECISION, outcome TEXT NOT NULL, PRIMARY KEY (run_id, position))",
    ),
    # 2: when a run ended, and the fields of its fingerprint (JSON) beside their digest.
    (
        "ALTER TABLE runs ADD COLUMN ended_at DOUBLE PRECISION",
        "ALTER TABLE runs ADD COLUMN fingerprint_fields TEXT",
        "CREATE INDEX runs_build ON runs (build)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
#: How long a writer waits for another one's transaction before it gives up.
BUSY_TIMEOUT_S = 30.0


class StoreError(StressbedError):
    """The history store cannot be used (a newer schema, a file that is not a store)."""

    exit_code = 2


class Store:
    """An open history store (a SQLite file); close it, or use it as a context manager."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"history store {self.path}: not usable ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        return _version(self._db)

    def record(self, entry: Entry, recorded_at: float) -> None:
        """Write ``entry`` (replacing the run's earlier record), in one transaction."""
        with self._transaction() as db:
            db.execute("DELETE FROM runs WHERE run_id = ?", (entry.run_id,))
            db.execute(
                "INSERT INTO runs (run_id, kind, scenario, fingerprint, verdict, exit_code,"
                " run_dir, build, backend, runners, started_at, duration_s, recorded_at,"
                " ended_at, fingerprint_fields)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *(entry.run_id, entry.kind, entry.scenario, entry.fingerprint),
                    *(entry.verdict, entry.exit_code, entry.run_dir, entry.build),
                    *(entry.backend, entry.runners, entry.started_at, entry.duration_s),
                    recorded_at,
                    entry.ended_at,
                    json.dumps(entry.fingerprint_fields, sort_keys=True),
                ),
            )
            db.executemany(
                "INSERT INTO figures (run_id, metric, value) VALUES (?, ?, ?)",
                [(entry.run_id, metric, value) for metric, value in entry.figures.items()],
            )
            db.executemany(
                "INSERT INTO thresholds (run_id, position, metric, expression, observed,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?)",
                [(entry.run_id, i, *t) for i, t in enumerate(entry.thresholds)],
            )

    def entries(
        self, *, scenario: str | None = None, fingerprint: str | None = None
    ) -> list[Entry]:
        """The runs recorded (those of ``scenario`` / ``fingerprint`` when given), oldest
        first by when they were recorded."""
        where, args = [], []
        for column, value in (("scenario", scenario), ("fingerprint", fingerprint)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT run_id, kind, scenario, fingerprint, verdict, exit_code, run_dir, build,"
        sql += " backend, runners, started_at, duration_s, ended_at, fingerprint_fields FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY recorded_at, run_id"
        rows = self._db.execute(sql, args).fetchall()
        figures: dict[str, dict[str, float | None]] = {}
        for run_id, metric, value in self._db.execute("SELECT run_id, metric, value FROM figures"):
            figures.setdefault(run_id, {})[metric] = value
        thresholds: dict[str, list[tuple[str, str, float | None, str]]] = {}
        for run_id, metric, expression, observed, outcome in self._db.execute(
            "SELECT run_id, metric, expression, observed, outcome FROM thresholds"
            " ORDER BY run_id, position"
        ):
            thresholds.setdefault(run_id, []).append((metric, expression, observed, outcome))
        return [
            Entry(
                run_id=row[0],
                kind=row[1],
                scenario=row[2],
                fingerprint=row[3],
                verdict=row[4],
                exit_code=row[5],
                run_dir=row[6],
                build=row[7],
                backend=row[8],
                runners=row[9],
                started_at=row[10],
                duration_s=row[11],
                ended_at=row[12],
                fingerprint_fields=json.loads(row[13]) if row[13] else {},
                figures=figures.get(row[0], {}),
                thresholds=tuple(thresholds.get(row[0], ())),
            )
            for row in rows
        ]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._transaction() as db:
            found = _version(db)
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"history store {self.path}: schema version {found}, written by a newer "
                    f"stressbed; this one knows version {SCHEMA_VERSION} at most (upgrade "
                    "stressbed, or give another --history)"
                )
            for version in range(found, SCHEMA_VERSION):
                _apply(db, MIGRATIONS[version])
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (json.dumps(version + 1),),
                )


def _version(db: sqlite3.Connection) -> int:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if exists is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(json.loads(row[0])) if row is not None else 0


def _apply(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        db.execute(statement)
