"""Each run, capacity search and collected fleet recorded in the history store, and read back
for report.html's history strip and the history gate.

Where: ``--history`` (``STRESSBED_HISTORY``, the profile's ``history:``), else ``history.db``
in the results folder; ``off`` records nothing. The build under test: ``--build``
(``STRESSBED_BUILD``, ``build:``), else the first of the CI systems' own variables that is
set (:data:`BUILD_VARIABLES`), else none.

Recording never fails a run: a store that cannot be opened or written is said once, on
stderr, and the run's exit code is its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..history.entry import Entry, capacity_entry_of, entry_of
from ..history.store import open_store, store_file
from ..results.compare import fingerprint_digest
from ..results.summary import RunReport
from ..results.verdict import Verdict

__all__ = [
    "BUILD_VARIABLES",
    "HISTORY_FILE",
    "MAX_GATE_RUNS",
    "MIN_GATE_RUNS",
    "OFF",
    "Recorder",
    "among_earlier",
    "build_of",
    "capacity_entry",
    "location_of",
    "run_entry",
]

#: The store's file in the results folder when ``--history`` is not given.
HISTORY_FILE = "history.db"
#: ``--history off``: record nothing.
OFF = "off"
#: The earlier runs report.html's history strip shows, the newest.
STRIP_RUNS = 50
#: The figures it shows of each.
STRIP_FIGURES = ("http_req_duration p(95)", "http_req_failed rate", "http_reqs rate")
#: ``--gate-history N``'s bounds: fewer earlier runs make no range worth gating on.
MIN_GATE_RUNS = 5
MAX_GATE_RUNS = 1000
#: Where CI systems say which commit they build, read in this order: stressbed's own, GitHub
#: Actions, GitLab CI, Buildkite, CircleCI, Jenkins (Git plugin), Travis CI, Bitbucket
#: Pipelines, Drone / Woodpecker, Azure Pipelines.
BUILD_VARIABLES = (
    "STRESSBED_BUILD",
    "GITHUB_SHA",
    "CI_COMMIT_SHA",
    "BUILDKITE_COMMIT",
    "CIRCLE_SHA1",
    "GIT_COMMIT",
    "TRAVIS_COMMIT",
    "BITBUCKET_COMMIT",
    "DRONE_COMMIT_SHA",
    "BUILD_SOURCEVERSION",
)


def build_of(given: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The build under test: ``given`` (``--build`` or a settings layer), else the first CI
    variable set, else None (not known: never made up)."""
    if given:
        return given
    env = os.environ if env is None else env
    return next((env[name] for name in BUILD_VARIABLES if env.get(name)), None)


def location_of(history: str | None, results: Path) -> str | None:
    """Where the store is: ``history`` as given, ``results/history.db`` by default, None for
    ``off``."""
    if history is None:
        return str(results / HISTORY_FILE)
    return None if history == OFF else history


@dataclass
class Recorder:
    """One command's way to the store: what it holds of a series, and a run recorded. Every
    problem is said once (``say``) and then kept quiet; nothing here raises."""

    location: str | None
    build: str | None = None
    say: Callable[[str], None] = field(
        default=lambda text: print(f"stressbed: warning: {text}", file=sys.stderr)
    )
    problem: str | None = None

    def series(self, fingerprint: str | None) -> list[Entry]:
        """The runs recorded of ``fingerprint`` (oldest first); none when the store is off,
        absent or unusable (said once)."""
        if self.location is None or fingerprint is None or self.problem is not None:
            return []
        file = store_file(self.location)
        if file is not None and not file.exists():
            return []  # nothing recorded yet: not a problem
        try:
            with open_store(self.location) as store:
                return store.entries(fingerprint=fingerprint)
        except Exception as exc:  # the run goes on without its history
            self._failed(f"history not read from {self.location}: {_one_line(exc)}")
            return []

    def record(self, entry: Entry | None) -> bool:
        """Write ``entry`` (with this command's build); False, said once, when it could not
        be."""
        if self.location is None or self.problem is not None or entry is None:
            return False
        try:
            file = store_file(self.location)
            if file is not None:
                file.parent.mkdir(parents=True, exist_ok=True)
            with open_store(self.location) as store:
                store.record(replace(entry, build=self.build), recorded_at=time.time())
        except Exception as exc:  # a run never fails because its history could not be written
            self._failed(f"run {entry.run_id} not recorded in {self.location}: {_one_line(exc)}")
            return False
        return True

    def _failed(self, text: str) -> None:
        self.problem = text
        self.say(text)


def among_earlier(
    report: RunReport, recorder: Recorder, run_dir: Path, *, gate: int | None = None
) -> None:
    """Before the run's documents are written: where it sits among the earlier runs of its
    series (``report.history``, report.html's history strip), nothing when there are none;
    with ``gate``, the history gate on it against the ``gate`` runs before it (a run that
    passed and fails the gate fails, exit 1). Runs that ended in error are no level: left
    out."""
    series = fingerprint_digest(report.fingerprint) if report.fingerprint else None
    earlier = [e for e in recorder.series(series) if e.verdict != "error"]
    if not earlier and gate is None:
        return
    shown = earlier[-STRIP_RUNS:]
    report.history = {
        "store": recorder.location,
        "series": series,
        "earlier_runs": len(earlier),
        "earlier": [_strip_row(e, run_dir) for e in shown],
        "gate": None,
    }
    if gate is None or report.verdict is Verdict.ERROR:
        return
    from ..history.trend import gate as gate_on  # noqa: PLC0415 - numpy, for a gate only

    this = entry_of(report.to_dict(with_findings=False), build=recorder.build)
    answer = gate_on([*earlier, this], gate)
    report.history["gate"] = answer.to_dict()
    if answer.passed:
        return
    reasons = "history gate: " + "; ".join(f.message() for f in answer.failures)
    if report.verdict is Verdict.PASS:
        report.verdict, report.exit_code, report.message = Verdict.FAIL, 1, reasons
    else:
        report.message += f"; {reasons}"


def run_entry(run_dir: Path, *, kind: str = "run") -> Entry | None:
    """The history's entry of the run written to ``run_dir`` (None: its summary.json cannot
    be read, which the run has said already)."""
    try:
        summary = read_document(run_dir / "summary.json")
        return entry_of(summary, run_dir=str(run_dir.resolve()), kind=kind)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def capacity_entry(path: Path) -> Entry | None:
    """The history's entry of the capacity search whose capacity.json is ``path``."""
    try:
        document = read_document(path)
        return capacity_entry_of(document, run_dir=str(path.parent.resolve()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _strip_row(entry: Entry, run_dir: Path) -> dict[str, Any]:
    report = None
    if entry.run_dir is not None:
        found = Path(entry.run_dir) / "report.html"
        try:
            report = os.path.relpath(found, run_dir.resolve())
        except ValueError:  # another drive
            report = str(found)
    return {
        "run_id": entry.run_id,
        "build": entry.build,
        "started_at": entry.started_at,
        "verdict": entry.verdict,
        **{name: entry.figures.get(name) for name in STRIP_FIGURES},
        "report": report,
    }


def read_document(path: Path) -> dict[str, Any]:
    """A run's summary.json (or a search's capacity.json) as written."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a JSON object")
    return document


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
