"""The history store: one versioned schema, migrated forward by stressbed itself, in a SQLite
file or a PostgreSQL database.

:func:`open_store` opens the store a location names: a ``postgresql://`` (or ``postgres://``)
URL names a PostgreSQL database (the ``postgresql`` extra, psycopg 3; the password comes from
``PGPASSWORD`` or a password file, a URL holding one is refused), anything else a SQLite file.
Both hold the same tables, made by the same statements, and a store behaves the same on either
(:mod:`._database` says where the two differ).

The schema's version is in ``meta``; opening a store runs the migrations it lacks, in one
transaction (on PostgreSQL under an advisory lock: two stressbeds opening a new database at
once do not both migrate it), and refuses a store whose version is newer than this stressbed
knows (:class:`StoreError`, naming both versions and what to do). SQLite runs in WAL mode with
a busy timeout, so two runs on one machine record at once; a run is written in one
transaction, and writing it again replaces it (importing the same run directory twice is a
no-op). A reader sees one snapshot: a run and its figures as one writer wrote them.

Tables: ``runs`` (one row a run: who it was), ``figures`` (its headline metrics, one row a
metric: what a trend reads), ``thresholds`` (each with its observed value and outcome).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._database import Database, Mode, SQLiteDatabase, StoreError, one_line
from ._postgres import PostgresDatabase, is_postgresql
from .entry import Entry

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError", "open_store", "store_file"]

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

#: A run's columns in ``runs``, named as :class:`Entry` names them (``recorded_at`` aside).
RUN_COLUMNS = (
    *("run_id", "kind", "scenario", "fingerprint", "verdict", "exit_code", "run_dir", "build"),
    *("backend", "runners", "started_at", "duration_s", "ended_at", "fingerprint_fields"),
)
_COLUMNS = (*RUN_COLUMNS, "recorded_at")
_FIGURE = ("run_id", "metric", "value")
_THRESHOLD = ("run_id", "metric", "expression", "observed", "outcome")
#: A condition of a query, and its arguments.
_Condition = tuple[str, Sequence[object]]
#: A run written, or written again over its earlier record (which another writer may be
#: writing at the same moment: the second waits for the first's row, then replaces it).
_UPSERT = (
    f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
    " ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _COLUMNS[1:])
)


def open_store(location: str | Path) -> Store:
    """The history store ``location`` names: a ``postgresql://`` or ``postgres://`` URL (with
    no password in it), or a SQLite file (made when missing). Its schema is migrated forward
    when it is older; :class:`StoreError` when it cannot be used."""
    return Store(location)


def store_file(location: str | Path) -> Path | None:
    """The SQLite file ``location`` names; None when it names a PostgreSQL database."""
    return None if is_postgresql(location) else Path(location)


class Store:
    """An open history store (a SQLite file or a PostgreSQL database, as :func:`open_store`
    reads ``location``); close it, or use it as a context manager."""

    def __init__(self, location: str | Path) -> None:
        self._db = _connect(location)
        #: The store as messages name it: its path, or its URL (which holds no password).
        self.location = self._db.where
        try:
            with self._failing("not usable"):
                self._migrate()
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        with self._failing("not usable"):
            return self._version()

    def record(self, entry: Entry, recorded_at: float) -> None:
        """Write ``entry`` (replacing the run's earlier record), in one transaction."""
        run: dict[str, Any] = {column: getattr(entry, column) for column in RUN_COLUMNS}
        run["fingerprint_fields"] = json.dumps(entry.fingerprint_fields, sort_keys=True)
        run["recorded_at"] = recorded_at
        failing = self._failing(f"cannot record run {entry.run_id}")
        with failing, self._db.transaction(Mode.WRITE):
            self._db.execute(_UPSERT, [run[column] for column in _COLUMNS])
            for table in ("figures", "thresholds"):
                self._db.execute(f"DELETE FROM {table} WHERE run_id = ?", [entry.run_id])
            self._db.executemany(
                "INSERT INTO figures (run_id, metric, value) VALUES (?, ?, ?)",
                [(entry.run_id, metric, _measured(value))
                 for metric, value in entry.figures.items()],
            )  # fmt: skip
            self._db.executemany(
                "INSERT INTO thresholds (run_id, position, metric, expression, observed,"
                " outcome) VALUES (?, ?, ?, ?, ?, ?)",
                [(entry.run_id, i, metric, expression, _measured(observed), outcome)
                 for i, (metric, expression, observed, outcome) in enumerate(entry.thresholds)],
            )  # fmt: skip

    def entries(
        self,
        *,
        scenario: str | None = None,
        fingerprint: str | None = None,
        build: str | None = None,
        since: float | None = None,
        until: float | None = None,
        metrics: Collection[str] | None = None,
    ) -> list[Entry]:
        """The runs recorded, oldest first by when they were recorded: those of ``scenario``,
        ``fingerprint`` and ``build`` when given, that started at ``since`` or later and
        before ``until`` (seconds since the epoch; a run whose start is not known is left out
        by either bound); each with its figures, only those named in ``metrics`` when given
        (a listing that shows three reads three, not thirty)."""
        selected: list[_Condition] = [
            (f"runs.{column} = ?", [value])
            for column, value in (("scenario", scenario), ("fingerprint", fingerprint),
                                  ("build", build))
            if value is not None
        ]  # fmt: skip
        if since is not None:
            selected.append(("runs.started_at >= ?", [since]))
        if until is not None:
            selected.append(("runs.started_at < ?", [until]))
        wanted = None if metrics is None else sorted(set(metrics))
        named: list[_Condition] = []
        if wanted is not None:
            named.append((f"figures.metric IN ({', '.join('?' * len(wanted))})", wanted))
        with self._failing("cannot read"), self._db.transaction(Mode.READ):
            runs = self._db.execute(*_select("runs", _COLUMNS, selected))
            figure_rows = (
                self._db.execute(*_select("figures", _FIGURE, selected, named))
                if wanted != []  # (PostgreSQL has no empty IN list)
                else []
            )
            threshold_rows = self._db.execute(
                *_select("thresholds", _THRESHOLD, selected, order="position")
            )
        figures: dict[str, dict[str, float | None]] = {}
        for run_id, metric, value in figure_rows:
            figures.setdefault(run_id, {})[metric] = value
        thresholds: dict[str, list[tuple[str, str, float | None, str]]] = {}
        for run_id, metric, expression, observed, outcome in threshold_rows:
            thresholds.setdefault(run_id, []).append((metric, expression, observed, outcome))
        # Sorted here, not by the database: a PostgreSQL collation orders text as SQLite's
        # bytes do not, and ties of recorded_at fall to the run id.
        runs.sort(key=lambda row: (row[-1], row[0]))
        return [_entry(row, figures, thresholds) for row in runs]

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """The driver's errors as :class:`StoreError`: the store, what failed, and why."""
        try:
            yield
        except self._db.errors as exc:
            raise StoreError(f"history store {self.location}: {what} ({one_line(exc)})") from exc

    def _migrate(self) -> None:
        with self._db.transaction(Mode.MIGRATE):
            found = self._version()
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"history store {self.location}: schema version {found}, written by a newer "
                    f"stressbed; this one knows version {SCHEMA_VERSION} at most (upgrade "
                    "stressbed, or give another --history)"
                )
            for version in range(found, SCHEMA_VERSION):
                for statement in MIGRATIONS[version]:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    [json.dumps(version + 1)],
                )

    def _version(self) -> int:
        if not self._db.has_table("meta"):
            return 0
        found = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(json.loads(found[0][0])) if found else 0


def _connect(location: str | Path) -> Database:
    if is_postgresql(location):
        return PostgresDatabase(str(location))
    return SQLiteDatabase(Path(location))


def _select(
    table: str,
    columns: Sequence[str],
    runs: Sequence[_Condition],
    own: Sequence[_Condition] = (),
    *,
    order: str | None = None,
) -> tuple[str, list[object]]:
    """A query of ``table``'s ``columns`` in the rows of the runs that ``runs`` select (its
    conditions on ``runs``) and that its ``own`` conditions select; its arguments."""
    sql = f"SELECT {', '.join(f'{table}.{column}' for column in columns)} FROM {table}"
    if runs and table != "runs":
        # The selected runs' rows alone: one series of 500 runs reads 500 runs' figures.
        sql += f" JOIN runs ON runs.run_id = {table}.run_id"
    conditions = [*runs, *own]
    if conditions:
        sql += " WHERE " + " AND ".join(condition for condition, _ in conditions)
    if order is not None:
        sql += f" ORDER BY {table}.{order}"
    return sql, [arg for _, args in conditions for arg in args]


def _entry(
    row: tuple[Any, ...],
    figures: dict[str, dict[str, float | None]],
    thresholds: dict[str, list[tuple[str, str, float | None, str]]],
) -> Entry:
    run = dict(zip(RUN_COLUMNS, row, strict=False))
    fields = run.pop("fingerprint_fields")
    return Entry(
        **run,
        fingerprint_fields=json.loads(fields) if fields else {},
        figures=figures.get(run["run_id"], {}),
        thresholds=tuple(thresholds.get(run["run_id"], ())),
    )


def _measured(value: float | None) -> float | None:
    """A figure as stored: NaN is not measured (SQLite would store NULL, PostgreSQL NaN)."""
    return None if value is None or math.isnan(value) else value
