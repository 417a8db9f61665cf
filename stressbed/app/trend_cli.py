"""``stressbed trend``: one series' headline metrics over its runs, their change points, and
the history gate.

    stressbed trend [--history FILE|URL] [--scenario S | --fingerprint F] [--metric PAT]...
                    [--last N] [--json] [--html [FILE]] [--gate [N]]

The series is ``--fingerprint``'s (a prefix will do), else that of the newest run recorded
(of ``--scenario``, when given). Runs that ended in error (interrupted, an infrastructure
failure) are left out: what they measured is not a level. Exit codes: 0, 1 when ``--gate``
fails, 2 for bad input (no such series, a store that cannot be used).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..history.entry import Entry, shown_change, shown_time
from ..history.store import open_store, store_file
from .recording import MAX_GATE_RUNS, MIN_GATE_RUNS

if TYPE_CHECKING:  # numpy's, imported when a trend is drawn: not by every command line
    from ..history.trend import GateAnswer, MetricTrend

__all__ = ["DEFAULT_GATE_RUNS", "add_trend_command", "series_of"]

#: ``--gate`` without N: the earlier runs the newest is judged against.
DEFAULT_GATE_RUNS = 20
_SPARKS = "▁▂▃▄▅▆▇█"
#: Runs drawn in a terminal sparkline, the newest.
_SPARK_RUNS = 40


def add_trend_command(commands: Any, store_default: str) -> None:
    cmd = commands.add_parser(
        "trend",
        help="one series' metrics over its runs, with change points; --gate for CI",
        description="Each headline metric of one like-for-like series (one fingerprint) over "
        "its runs, with the change points where its level shifted: size, direction and the "
        "build where each starts. --gate: exit 1 when the newest run is in a regression "
        "(the rule: stressbed/history/trend.py, docs/guides/history.md). Exit 0, 1 (gate "
        "failed), 2.",
    )
    cmd.add_argument(
        "--history",
        default=store_default,
        metavar="FILE|URL",
        help="the history store: a SQLite file or a postgresql:// URL",
    )
    cmd.add_argument("--scenario", help="the series of this scenario's newest run")
    cmd.add_argument("--fingerprint", help="the series of this fingerprint (a prefix will do)")
    cmd.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="PATTERN",
        help="the metrics shown and gated (shell pattern, repeatable; default: all shown, "
        "the headline ones gated)",
    )
    cmd.add_argument("--last", type=int, metavar="N", help="the newest N runs only")
    cmd.add_argument("--json", action="store_true", help="the trend as one JSON document")
    cmd.add_argument(
        "--html",
        nargs="?",
        const=Path("trend.html"),
        type=Path,
        metavar="FILE",
        help="write trend.html (a chart per metric, change points marked, runs linked)",
    )
    cmd.add_argument(
        "--gate",
        nargs="?",
        const=DEFAULT_GATE_RUNS,
        type=int,
        metavar="N",
        help=f"judge the newest run against the N before it (default {DEFAULT_GATE_RUNS}): "
        "exit 1 naming the metric and the build since which it regressed",
    )
    cmd.set_defaults(handler=cmd_trend)


def cmd_trend(args: argparse.Namespace) -> int:
    if args.gate is not None and not MIN_GATE_RUNS <= args.gate <= MAX_GATE_RUNS:
        raise ConfigError("--gate", args.gate, f"earlier runs {MIN_GATE_RUNS}..{MAX_GATE_RUNS}")
    if args.last is not None and args.last < 1:
        raise ConfigError("--last", args.last, "a whole number of runs >= 1")
    location = str(args.history)
    file = store_file(location)
    if file is not None and not file.is_file():
        raise ConfigError("--history", location, "an existing history store")
    with open_store(location) as store:
        # Which series, from every run without its figures; then that series with them.
        everything = store.entries(scenario=args.scenario, metrics=())
        chosen = series_of(everything, scenario=args.scenario, fingerprint=args.fingerprint)
        wanted = {e.run_id for e in chosen}
        entries = [
            e
            for e in store.entries(fingerprint=chosen[0].fingerprint, scenario=args.scenario)
            if e.run_id in wanted
        ]
    entries.sort(key=lambda e: (e.started_at or 0.0, e.run_id))
    if args.last is not None:
        entries = entries[-args.last :]
    from ..history.trend import gate, trend  # noqa: PLC0415 - numpy

    found = trend(entries, args.metric)
    answer = gate(entries, args.gate, args.metric) if args.gate is not None else None
    if args.html is not None:
        from ..history.trend_html import write_trend_html  # noqa: PLC0415 - Bokeh

        write_trend_html(args.html, entries, found)
    if args.json:
        print(json.dumps(_document(entries, found, answer), indent=2))
    else:
        _print(entries, found, answer)
        if args.html is not None:
            print(f"trend: {args.html}")
    return 1 if answer is not None and not answer.passed else 0


def series_of(
    everything: Sequence[Entry], *, scenario: str | None = None, fingerprint: str | None = None
) -> list[Entry]:
    """The runs of one series among ``everything`` (those of ``scenario``), oldest first,
    those that ended in error left out. ConfigError (exit 2) when there is none, or when a
    fingerprint prefix names several."""
    chosen: str | None
    if fingerprint is not None:
        names = sorted(
            {f for e in everything if (f := e.fingerprint) and f.startswith(fingerprint)}
        )
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise ConfigError(
                "--fingerprint", fingerprint, f"one series's fingerprint (matching: {found})"
            )
        chosen = names[0]
    else:
        if not everything:
            if scenario is not None:
                raise ConfigError("--scenario", scenario, "a scenario with runs in the history")
            raise ConfigError("--history", None, "a store with runs recorded")
        chosen = max(everything, key=lambda e: (e.started_at or 0.0, e.run_id)).fingerprint
    runs = [e for e in everything if e.fingerprint == chosen and e.verdict != "error"]
    if not runs:
        raise ConfigError("--fingerprint", chosen, "a series with a run that did not end in error")
    runs.sort(key=lambda e: (e.started_at or 0.0, e.run_id))
    return runs


def _document(
    entries: Sequence[Entry], found: Sequence[MetricTrend], answer: GateAnswer | None
) -> dict[str, Any]:
    first = entries[0] if entries else None
    return {
        "series": first.fingerprint if first else None,
        "scenario": first.scenario if first else None,
        "fingerprint": first.fingerprint_fields if first else None,
        "runs": [
            {
                "run_id": e.run_id,
                "build": e.build,
                "started_at": e.started_at,
                "verdict": e.verdict,
                "run_dir": e.run_dir,
            }
            for e in entries
        ],
        "metrics": [m.to_dict() for m in found],
        "gate": answer.to_dict() if answer is not None else None,
    }


def _print(
    entries: Sequence[Entry], found: Sequence[MetricTrend], answer: GateAnswer | None
) -> None:
    first, last = entries[0], entries[-1]
    print(
        f"series {first.fingerprint} ({first.scenario}, {first.kind}): {len(entries)} runs, "
        f"{shown_time(first.started_at)} to {shown_time(last.started_at)}; newest {last.run_id} "
        f"(build {last.build or 'unknown'})"
    )
    width = max([len("metric"), *(len(m.metric) for m in found)])
    print(f"{'metric':<{width}}  {'first':>9} {'last':>9} {'median':>9}  trend{' ' * 36}changes")
    for m in _ordered(found):
        measured = [v for v in m.values if v is not None]
        median = sorted(measured)[len(measured) // 2] if measured else None
        changes = "; ".join(
            f"{c.kind} {shown_change(c.point.relative)} at run {c.point.index + 1}"
            f" (build {c.build or 'unknown'})"
            for c in m.changes
        )
        print(
            f"{m.metric:<{width}}  {_n(_first(m.values)):>9} {_n(m.values[-1]):>9} "
            f"{_n(median):>9}  {_spark(m.values[-_SPARK_RUNS:]):<40} {changes or '-'}"
        )
    if answer is None:
        return
    if answer.window == 0:
        print("gate: pass: no earlier run of this series to judge the newest against (no data)")
    elif answer.passed:
        judged = ", ".join(answer.judged) or "nothing measured"
        print(
            f"gate: pass: run {answer.run_id} against its {answer.window} earlier runs on {judged}"
        )
    else:
        for failure in answer.failures:
            print(f"gate: FAIL: {failure.message()}")
    if answer.not_judged:
        print(f"gate: not judged (not measured in the newest run): {', '.join(answer.not_judged)}")


def _ordered(found: Sequence[MetricTrend]) -> list[MetricTrend]:
    """The gated metrics first, then the rest as recorded."""
    from ..history.trend import GATED  # noqa: PLC0415

    rank = {name: i for i, name in enumerate(GATED)}
    return sorted(found, key=lambda m: rank.get(m.metric, len(rank)))


def _spark(values: Sequence[float | None]) -> str:
    measured = [v for v in values if v is not None]
    if not measured:
        return ""
    low, high = min(measured), max(measured)
    span = high - low
    return "".join(
        " "
        if v is None
        else _SPARKS[
            0 if span == 0 else min(len(_SPARKS) - 1, int((v - low) / span * len(_SPARKS)))
        ]
        for v in values
    )


def _first(values: Sequence[float | None]) -> float | None:
    return next((v for v in values if v is not None), None)


def _n(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"
