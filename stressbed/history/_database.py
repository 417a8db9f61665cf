"""What the history store asks of the database it lives in, and the SQLite file that answers
by default (:mod:`._postgres` answers for PostgreSQL).

The store writes its SQL once, in the dialect both databases share, with ``?`` placeholders;
a :class:`Database` runs it, and differs only where the two do: how a transaction starts (a
SQLite writer takes the file's write lock at once, a PostgreSQL migration an advisory lock),
how a table is found, and which errors its driver raises (the store translates those into
:class:`StoreError`).
"""

from __future__ import annotations

import enum
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import StressbedError

__all__ = ["BUSY_TIMEOUT_S", "Database", "Mode", "SQLiteDatabase", "StoreError", "one_line"]

#: How long a SQLite writer waits for another one's transaction before it gives up.
BUSY_TIMEOUT_S = 30.0


class StoreError(StressbedError):
    """The history store cannot be used (a newer schema, a file that is not a store, a
    server that cannot be reached, a password in a URL)."""

    exit_code = 2


class Mode(enum.Enum):
    """What a transaction does: reads (one consistent snapshot), writes a run, or migrates the
    schema (one at a time per database, whoever else opens it)."""

    READ = "read"
    WRITE = "write"
    MIGRATE = "migrate"


class Database(ABC):
    """One connection to the database a store lives in. Statements use ``?`` placeholders and
    hold no other ``?`` or ``%``; rows come back as tuples of Python values (TEXT as str,
    INTEGER as int, DOUBLE PRECISION as float, NULL as None)."""

    #: The store as messages name it: a path, or a URL (never one with a password).
    where: str
    #: The driver's errors: the store says what it could not do when one is raised.
    errors: tuple[type[Exception], ...]

    @abstractmethod
    def execute(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Run one statement; its rows (none for a statement that returns none)."""

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        """Run one statement for each of ``rows``."""

    @abstractmethod
    def has_table(self, name: str) -> bool:
        """Whether the database has the table ``name``."""

    @abstractmethod
    def begin(self, mode: Mode) -> Sequence[str]:
        """The statements that start a transaction of ``mode``."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection."""

    @contextmanager
    def transaction(self, mode: Mode) -> Iterator[None]:
        """A transaction of ``mode``: committed when the block ends, rolled back when it
        raises (a rollback that fails too, the connection gone, leaves the first error)."""
        for statement in self.begin(mode):
            self.execute(statement)
        try:
            yield
        except BaseException:
            with suppress(*self.errors):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")


class SQLiteDatabase(Database):
    """A SQLite file in WAL mode with a busy timeout: two processes record at once, the second
    waiting for the first's transaction (writers take the write lock when they begin, so
    neither finds it taken half way)."""

    errors = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.where = str(path)
        try:
            # isolation_level None: the transactions are the store's own BEGIN and COMMIT.
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"history store {path}: not usable ({one_line(exc)})") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"history store {path}: not usable ({one_line(exc)})") from exc

    def execute(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        self._db.executemany(sql, rows)

    def has_table(self, name: str) -> bool:
        found = self.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [name]
        )
        return bool(found)

    def begin(self, mode: Mode) -> Sequence[str]:
        # A reader's deferred BEGIN holds one snapshot of the WAL for all its statements.
        return ["BEGIN"] if mode is Mode.READ else ["BEGIN IMMEDIATE"]

    def close(self) -> None:
        self._db.close()


def one_line(exc: BaseException) -> str:
    """A driver's message on one line (libpq's run over several, indented)."""
    return " ".join(str(exc).split()) or type(exc).__name__
