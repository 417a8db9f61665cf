"""``stressbed compare BASE CANDIDATE`` and ``stressbed run --baseline BASE``: a run judged
against an earlier one (:mod:`stressbed.results.compare` does the statistics).

BASE and CANDIDATE are run directories (or their summary.json). Their fingerprints must match
(the same rendered scenario, duration, runners, backend and stack), else the comparison is
refused (ConfigError, exit 2) naming what differs, unless ``allow_different``. Each must be
whole, too: a run with fewer runner results than its fingerprint's runners, or whose verdict
was ``error``, is refused naming why (:func:`incomplete`), unless ``allow_partial``: one lost
runner of two would otherwise read as a 50% change in requests/s, and an interrupted run's
seconds as a change in anything.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..results.compare import (
    MIN_SECONDS,
    Comparison,
    Tolerances,
    compare,
    differences,
    fingerprint,
    loaded_seconds,
)
from ..results.merge import merge
from ..scenario.model import Scenario
from ..scenario.render import config_text
from ..stack.spec import StackSpec
from .rundir import FinishedRun, read_run

__all__ = [
    "ALLOW_PARTIAL",
    "Baseline",
    "chosen",
    "exit_code_for",
    "incomplete",
    "load_baseline",
    "run_fingerprint",
    "versus",
]

#: What a refused partial run's message ends with.
ALLOW_PARTIAL = "pass --allow-partial to compare anyway"


def run_fingerprint(
    scenario: Scenario, runners: int, backend: str | None, stack: StackSpec | None
) -> dict[str, Any]:
    """What a planned run will run, as its summary.json records it."""
    return fingerprint(
        scenario=scenario.name,
        config=config_text(scenario),
        duration_s=scenario.duration_ms() / 1000,
        runners=runners,
        backend=backend,
        stack=_portable(stack),
    )


def _portable(stack: StackSpec | None) -> dict[str, Any] | None:
    """The stack spec as data that is the same on every machine: a program that is a Python
    interpreter (the reference agent runs ``sys.executable``, a path of this venv) by a fixed
    token, and 2.0 the same as 2."""
    if stack is None:
        return None
    command = stack.target.command
    if command and (
        command[0] == sys.executable or re.fullmatch(r"python\d*(\.\d+)?", Path(command[0]).name)
    ):
        command = ("<python>", *command[1:])
    return dataclasses.asdict(replace(stack, target=replace(stack.target, command=command)))


@dataclass(frozen=True)
class Baseline:
    """A run to judge against, checked to be like for like before anything starts."""

    run: FinishedRun
    tolerances: Tolerances = field(default_factory=Tolerances)
    strict: bool = False
    metrics: tuple[str, ...] = ()  # shell-style patterns of the metrics to compare; () all
    allow_partial: bool = False  # judge this run even if it ends incomplete

    @property
    def path(self) -> Path:
        return self.run.path


def load_baseline(
    where: Path,
    planned: dict[str, Any] | None = None,
    *,
    allow_different: bool = False,
    allow_partial: bool = False,
    option: str = "--baseline",
) -> FinishedRun:
    """The run at ``where``, refused (exit 2) when it is partial (unless ``allow_partial``)
    or when ``planned`` is not like it (unless ``allow_different``)."""
    try:
        found = read_run(where)
    except ConfigError as exc:
        raise ConfigError(option, str(where), exc.expected) from None
    why = _partial(found)
    if why is not None:
        if not allow_partial:
            raise ConfigError(option, str(where), f"a complete run: {why}; {ALLOW_PARTIAL}")
        print(f"stressbed: note: {option} {where} compared though partial: {why}", file=sys.stderr)
    seconds = len(loaded_seconds(merge(found.runners).windows))
    if seconds < MIN_SECONDS:
        raise ConfigError(
            option,
            str(where),
            f"a run with {MIN_SECONDS} s of load or more to compare (it has {seconds})",
        )
    if planned is not None and not allow_different:
        _same(found.summary.get("fingerprint") or {}, planned, option, where)
    return found


def _partial(run: FinishedRun) -> str | None:
    """Why the finished ``run`` is not comparable as it stands, or None when it is whole."""
    summary = run.summary
    expected = (summary.get("fingerprint") or {}).get("runners")
    if not isinstance(expected, int):  # a summary without a fingerprint: its settings
        expected = (summary.get("settings") or {}).get("runners")
    return incomplete(
        summary.get("verdict"),
        expected if isinstance(expected, int) else None,
        {r.index for r in run.runners},
        run.unread,
        message=str(summary.get("message") or ""),
    )


def incomplete(
    verdict: object,
    expected: int | None,
    present: Collection[int],
    unread: Mapping[int, str] | None = None,
    *,
    message: str = "",
) -> str | None:
    """Why a run is not comparable, or None: a runner of the ``expected`` without a result
    among ``present`` (``unread``: why one that is there could not be read), or a verdict of
    ``error`` (``message``: the run's own account of it)."""
    for index in range(expected or 0):
        if index not in present:
            why = (unread or {}).get(index) or f"runners/{index}/result.json missing"
            return f"runner {index} of {expected} has no result ({why})"
    if verdict == "error":
        said = message if len(message) <= 120 else message[:119] + "…"
        return "its verdict was error" + (f" ({said})" if said else "")
    return None


def _same(base: dict[str, Any], candidate: dict[str, Any], option: str, where: Path) -> None:
    if not base:
        raise ConfigError(option, str(where), "a run of this stressbed (it has no fingerprint)")
    differ = differences(base, candidate)
    if differ:
        raise ConfigError(
            option,
            str(where),
            "a run of the same thing: "
            + "; ".join(differ)
            + " (--allow-different compares anyway)",
        )


def versus(
    base: FinishedRun,
    candidate: FinishedRun,
    *,
    tolerances: Tolerances | None = None,
    allow_different: bool = False,
    metrics: Sequence[str] = (),
) -> Comparison:
    """``stressbed compare``: CANDIDATE against BASE (both finished runs)."""
    if not allow_different:
        _same(
            base.summary.get("fingerprint") or {},
            candidate.summary.get("fingerprint") or {},
            "CANDIDATE",
            candidate.path,
        )
    found = compare(merge(base.runners).windows, merge(candidate.runners).windows, tolerances)
    return chosen(found, metrics)


def chosen(found: Comparison, metrics: Sequence[str]) -> Comparison:
    chosen = found.only(metrics)
    if metrics and not chosen.metrics and found.metrics:
        raise ConfigError(
            "--metric",
            ", ".join(metrics),
            "patterns matching compared metrics, such as "
            + ", ".join(repr(m.metric) for m in found.metrics[:3]),
        )
    return chosen


def exit_code_for(comparison: Comparison, *, strict: bool) -> int:
    """0 unchanged or improved (inconclusive too, unless ``strict``), 1 regressed."""
    if comparison.verdict == "regressed":
        return 1
    if comparison.verdict == "inconclusive" and strict:
        return 1
    return 0
