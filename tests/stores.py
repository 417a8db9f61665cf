"""The history stores the tests run on: a SQLite file, or a database of its own on a throwaway
PostgreSQL cluster (:mod:`tests.pgcluster`: one a session, made when a test first asks).

Without PostgreSQL here its tests skip, saying so, except on CI (``CI=true``), where
``.ci/run`` installs it: there they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pgcluster import Cluster, throwaway_cluster, unavailable

ON_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """The session's throwaway PostgreSQL cluster."""
    reason = unavailable()
    if reason is not None:
        if ON_CI:
            pytest.fail(f"no PostgreSQL for the history store's tests on CI: {reason}")
        pytest.skip(f"NO POSTGRESQL, its history store tests skipped: {reason}")
    with throwaway_cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Where a test's store is: a new SQLite file, or a new database whose password the
    store's libpq reads from the cluster's password file (PGPASSFILE), not from its URL."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    cluster: Cluster = request.getfixturevalue("postgres_cluster")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(cluster.passfile))
    return cluster.create_database()
