"""Run directories: ``results/<run-id>/`` with the rendered bundle in it, and
``results/latest`` pointing at the newest."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..results.runner_result import RunnerResult
from ..scenario.model import Scenario
from ..scenario.render import Bundle, render

__all__ = ["RunDirectory", "new_run"]


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
    _point_latest(results, run_id)
    return RunDirectory(run_id, path, bundle)


def _point_latest(results: Path, run_id: str) -> None:
    latest = results / "latest"
    tmp = results / f".latest-{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        tmp.replace(latest)
    except OSError as exc:  # a filesystem without symlinks: results are still complete
        print(f"stressbed: note: cannot point {latest} at {run_id}: {exc}", file=sys.stderr)
