"""``stressbed history``: the runs a history store holds, and back-filling it from run
directories (issue 28, begun: runs do not record themselves yet).

    stressbed history [--history FILE] [--scenario S] [--fingerprint F] [--verdict V] [--json]
    stressbed history import DIR... [--history FILE] [--build ID]

The store is ``results/history.db`` unless ``--history`` says otherwise (a SQLite file, or a
``postgresql://`` URL with no password in it). ``import`` reads
every run directory given, or found one level below a directory given (a ``results/``
folder): each one's summary.json, recorded again if it was (importing twice changes nothing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..history.entry import Entry, entry_of, shown_time
from ..history.store import Store, store_file
from .trend_cli import add_trend_command

__all__ = ["history_commands"]

DEFAULT_STORE = Path("results") / "history.db"
_HEADLINE = ("http_req_duration p(95)", "http_req_failed rate", "http_reqs rate")


def history_commands(commands: Any) -> None:
    """Add ``history`` to the command line's subcommands."""
    cmd = commands.add_parser(
        "history",
        help="the runs a history store holds; `history import DIR...` back-fills it",
        description="List the runs a history store holds (newest last), or import run "
        "directories into it (idempotent). Exit 0, or 2 for a store that cannot be used.",
    )
    cmd.add_argument("what", nargs="?", choices=("import",), help="import run directories")
    cmd.add_argument("dirs", nargs="*", type=Path, metavar="DIR", help="run directories to import")
    cmd.add_argument(
        "--history",
        default=str(DEFAULT_STORE),
        metavar="FILE|URL",
        help="a SQLite file, or postgresql://USER@HOST/DB (the password from PGPASSWORD or "
        "~/.pgpass, never the URL)",
    )
    cmd.add_argument("--scenario", help="the runs of this scenario")
    cmd.add_argument("--fingerprint", help="the runs of this series (its fingerprint)")
    cmd.add_argument(
        "--verdict", choices=("pass", "fail", "error"), help="only the runs of this verdict"
    )
    cmd.add_argument(
        "--build", help="the runs of this build (import: the build the runs imported tested)"
    )
    cmd.add_argument(
        "--since", type=_moment, metavar="TIME", help="runs started at or after (UTC: 2026-12-01)"
    )
    cmd.add_argument(
        "--until", type=_moment, metavar="TIME", help="runs started before (UTC: 2026-12-07T12:00)"
    )
    cmd.add_argument("--json", action="store_true", help="the runs as JSON, one list")
    cmd.set_defaults(handler=cmd_history)
    add_trend_command(commands, str(DEFAULT_STORE))


def cmd_history(args: argparse.Namespace) -> int:
    if args.what == "import":
        return _import(args)
    if args.dirs:
        raise ConfigError("history", [str(d) for d in args.dirs], "`history import DIR...`")
    file = store_file(args.history)
    if file is not None and not file.exists():
        raise ConfigError("--history", str(args.history), "an existing history store")
    with Store(args.history) as store:
        entries = store.entries(
            scenario=args.scenario,
            fingerprint=args.fingerprint,
            build=args.build,
            since=args.since,
            until=args.until,
            metrics=None if args.json else _HEADLINE,  # the table shows these alone
        )
    if args.verdict is not None:
        entries = [e for e in entries if e.verdict == args.verdict]
    entries.sort(key=lambda e: (e.started_at or 0.0, e.run_id))
    if args.json:
        # One run a line: readable, and a third of indent=2's time at 10,000 runs.
        print("[\n" + ",\n".join(json.dumps(_as_json(e)) for e in entries) + "\n]")
        return 0
    if not entries:
        print(f"{args.history}: no runs")
        return 0
    print(f"{'run':<28} {'started (UTC)':<19} {'scenario':<20} {'verdict':<7} build        "
          "p95 ms   errors   req/s")  # fmt: skip
    for e in entries:
        p95, errors, rate = (e.figures.get(name) for name in _HEADLINE)
        print(
            f"{e.run_id:<28} {shown_time(e.started_at, seconds=True):<19} "
            f"{(e.scenario or '-'):<20.20} "
            f"{(e.verdict or '-'):<7} {(e.build or '-'):<12.12} {_n(p95, '.1f'):>7} "
            f"{_n(None if errors is None else errors * 100, '.2f', '%'):>8} {_n(rate, '.1f'):>7}"
        )
    return 0


def _import(args: argparse.Namespace) -> int:
    if not args.dirs:
        raise ConfigError("history import", [], "one run directory or results folder at least")
    found: list[Path] = []
    for folder in args.dirs:
        if (folder / "summary.json").is_file():
            found.append(folder)
        elif folder.is_dir():
            # Not results/latest: a link to a run already there.
            found += sorted(
                p.parent for p in folder.glob("*/summary.json") if not p.parent.is_symlink()
            )
        else:
            raise ConfigError("history import", str(folder), "a run directory or a folder")
    recorded: set[str] = set()
    file = store_file(args.history)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    with Store(args.history) as store:
        for folder in found:
            try:
                summary = json.loads((folder / "summary.json").read_text())
                entry = entry_of(summary, run_dir=str(folder.resolve()), build=args.build)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"{folder}: not imported ({exc})", file=sys.stderr)
                continue
            store.record(entry, recorded_at=time.time())
            recorded.add(entry.run_id)
    print(f"imported {len(recorded)} run(s) into {args.history}")
    return 0


def _as_json(entry: Entry) -> dict[str, Any]:
    # Shallow: the entry's own dicts are not copied (dataclasses.asdict's deep copy cost a
    # second at 10,000 runs).
    out = {f.name: getattr(entry, f.name) for f in fields(entry)}
    out["thresholds"] = [
        {"metric": m, "expression": x, "observed": o, "outcome": r}
        for m, x, o, r in entry.thresholds
    ]
    return out


def _n(value: float | None, spec: str, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def _moment(text: str) -> float:
    """An argparse type: an ISO date or date and time, in UTC unless it says its offset."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"got {text!r}; expected an ISO date or time (2026-12-01, 2026-12-07T12:00)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
