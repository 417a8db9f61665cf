"""Run directories: ``results/<run-id>/`` with the rendered bundle in it, and
``results/latest`` pointing at the newest; and what a finished one holds, read back
(:func:`read_run`, for ``stressbed report`` and comparisons)."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DocumentError
from ..results.runner_result import RunnerResult
from ..scenario.model import Scenario
from ..scenario.render import Bundle, render

__all__ = ["FinishedRun", "RunDirectory", "new_run", "point_latest", "read_run"]


@dataclass(frozen=True)
class RunDirectory:
    run_id: str
    path: Path
    bundle: Bundle

    def keep_results(self, results: Sequence[RunnerResult]) -> None:
        """Write each runner's document as ``runners/<i>/result.json``."""
        for result in results:
            out = self.path / "runners" / str(result.index)
            out.mkdir(parents=True, exist_ok=True)
            result.write(out / "result.json")


def new_run(results: Path, scenario: Scenario) -> RunDirectory:
    """A fresh results/<run-id>/ with the scenario's bundle in it, and results/latest on it."""
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)
    path = results / run_id
    bundle = render(scenario, path / "bundle")
    point_latest(results, run_id)
    return RunDirectory(run_id, path, bundle)


def point_latest(results: Path, run_id: str) -> None:
    latest = results / "latest"
    tmp = results / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(latest)
    except OSError as exc:  # a filesystem without symlinks: results are still complete
        print(f"stressbed: note: cannot point {latest} at {run_id}: {exc}", file=sys.stderr)


@dataclass(frozen=True)
class FinishedRun:
    """A run directory read back: its summary document and every runner's result."""

    path: Path
    summary: dict[str, Any]
    runners: list[RunnerResult]
    #: Runner index -> why its result.json was there but could not be read.
    unread: dict[int, str] = field(default_factory=dict)


def read_run(where: Path) -> FinishedRun:
    """The run in directory ``where`` (or the directory of the summary.json ``where`` names).
    ConfigError (exit 2) when it is not a run directory; a runner whose result cannot be read
    is left out, said on stderr and kept in ``unread`` (a comparison refuses such a run unless
    allowed partial: :func:`stressbed.app.compare.incomplete`)."""
    directory = where.parent if where.name == "summary.json" else where
    path = directory / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "RUN_DIR", str(where), "a run directory (results/<run-id>/, with summary.json)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError("RUN_DIR", str(path), f"a readable summary.json ({exc})") from None
    if not isinstance(summary, dict) or "schema_version" not in summary:
        raise ConfigError("RUN_DIR", str(path), "a summary.json written by stressbed")
    runners = []
    unread = {}
    for result in sorted((directory / "runners").glob("*/result.json")):
        try:
            runners.append(RunnerResult.read(result))
        except DocumentError as exc:
            print(f"stressbed: note: {result} left out: {exc}", file=sys.stderr)
            if result.parent.name.isdigit():
                unread[int(result.parent.name)] = f"runners/{result.parent.name}/result.json: {exc}"
    runners.sort(key=lambda r: r.index)
    return FinishedRun(directory, summary, runners, unread)
