"""The history store on PostgreSQL, through psycopg 3 (the ``postgresql`` extra).

A store is a database named by a ``postgresql://`` (or ``postgres://``) URL. Its password never
comes in the URL (a command line is seen by every user of the machine, and kept in shell
history): a URL that holds one is refused, shown with ``***`` for it, and libpq reads the
password itself from ``PGPASSWORD``, or the file ``PGPASSFILE`` names (``~/.pgpass`` by
default). A migration holds an advisory lock, so two stressbeds that open one new database at
once do not both create its tables; a wait for a lock gives up after the busy timeout SQLite
uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ._database import BUSY_TIMEOUT_S, Database, Mode, StoreError, one_line

__all__ = ["MIGRATION_LOCK", "SCHEMES", "PostgresDatabase", "is_postgresql", "redacted"]

SCHEMES = ("postgresql://", "postgres://")
#: The advisory lock key a migration holds ("stressbd"): the same in every stressbed.
MIGRATION_LOCK = int.from_bytes(b"stressbd", "big")
#: How long connecting may take, unless the URL's ``connect_timeout`` says otherwise.
CONNECT_TIMEOUT_S = 10
HIDDEN = "***"


def is_postgresql(location: str | Path) -> bool:
    """Whether ``location`` names a PostgreSQL database (anything else is a SQLite file)."""
    return isinstance(location, str) and location.startswith(SCHEMES)


def redacted(url: str) -> str:
    """``url`` with its password, if it has one, shown as ``***``: the password of its user
    (``user:PASSWORD@``: everything between the first ``:`` and the last ``@`` of the host
    part, so an unescaped ``@`` in it hides too) and a ``password=`` parameter's value. (Not
    :func:`stressbed.results.redact.redact`, which drops the user and every parameter's value:
    here they are whose store it is and how it is reached, and hide nothing.)"""
    return _hidden(url)[0]


def _hidden(url: str) -> tuple[str, bool]:
    """``url`` with its password shown as ``***``, and whether it had one."""
    scheme, _, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    found = bool(at) and ":" in userinfo
    if found:
        authority = f"{userinfo.partition(':')[0]}:{HIDDEN}@{host}"
    head, asked, query = f"{authority}{slash}{tail}".partition("?")
    if asked:
        parts = []
        for key, equals, value in (part.partition("=") for part in query.split("&")):
            if _is_password(key):
                found = True
                parts.append(f"{key}={HIDDEN}")
            else:
                parts.append(f"{key}{equals}{value}")
        head += "?" + "&".join(parts)
    return f"{scheme}://{head}", found


def _is_password(key: str) -> bool:
    # libpq decodes a parameter's name as it decodes its value.
    return unquote(key).strip() == "password"


def _parameters(url: str) -> set[str]:
    _, _, query = url.partition("?")
    return {unquote(part.partition("=")[0]) for part in query.split("&") if part}


class PostgresDatabase(Database):
    """A connection to the PostgreSQL database ``url`` names (in autocommit mode: the store's
    own BEGIN and COMMIT make its transactions)."""

    def __init__(self, url: str) -> None:
        self.where = url
        shown, has_password = _hidden(url)
        if has_password:
            raise _refused(shown)
        try:
            import psycopg  # noqa: PLC0415 - the postgresql extra, only for a URL
            from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415
        except ImportError:
            raise StoreError(
                f"history store {url}: PostgreSQL needs psycopg 3, which is not installed "
                "(pip install 'stressbed[postgresql]')"
            ) from None
        self.errors = (psycopg.Error,)
        try:
            # libpq's own reading of the URL: a password there that redacted() missed.
            has_password = "password" in conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(
                f"history store {url}: not a PostgreSQL URL ({one_line(exc)})"
            ) from exc
        if has_password:
            raise _refused(f"{url.partition('://')[0]}://{HIDDEN}")
        options: dict[str, Any] = {}
        if "connect_timeout" not in _parameters(url):
            options["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in _parameters(url):
            options["application_name"] = "stressbed"
        try:
            self._db = psycopg.connect(url, autocommit=True, **options)
        except psycopg.Error as exc:
            raise StoreError(f"history store {url}: cannot connect ({one_line(exc)})") from exc
        try:
            # A wait for a lock (a migration's, a row another writer holds) ends as SQLite's.
            self.execute(f"SET lock_timeout = '{round(BUSY_TIMEOUT_S * 1000)}ms'")
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"history store {url}: not usable ({one_line(exc)})") from exc

    def execute(self, sql: str, args: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        # Values in binary: a float read without parsing its text, a quarter faster.
        cursor = self._db.execute(_placeholders(sql), args, binary=True)
        return cursor.fetchall() if cursor.description is not None else []

    def executemany(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        with self._db.cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def has_table(self, name: str) -> bool:
        ((found,),) = self.execute("SELECT to_regclass(?) IS NOT NULL", [name])
        return bool(found)

    def begin(self, mode: Mode) -> Sequence[str]:
        if mode is Mode.READ:
            # One snapshot for the runs and their figures, as SQLite's reader has.
            return ["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"]
        if mode is Mode.WRITE:
            return ["BEGIN"]
        return ["BEGIN", f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"]

    def close(self) -> None:
        self._db.close()


def _placeholders(sql: str) -> str:
    """The store's ``?`` placeholders as psycopg's ``%s`` (its statements hold no other ``?``
    or ``%``)."""
    return sql.replace("?", "%s")


def _refused(shown: str) -> StoreError:
    return StoreError(
        f"history store {shown}: a password in the URL is refused (a command line is seen by "
        "every user of the machine and kept in shell history); give it in PGPASSWORD, or in "
        "the file PGPASSFILE names (~/.pgpass by default): libpq reads them itself"
    )
