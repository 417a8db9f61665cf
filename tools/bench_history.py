"""What the run history costs at 10,000 runs (issue 28). Prints figures; asserts nothing.

python tools/bench_history.py [--runs 10000] [--series 20] [--long 500] [--repeat 5]
                              [--stores sqlite postgresql]
    fills a store with --runs runs, recorded one by one as `stressbed history import` records
    them (29 figures each: p50/p95/p99 overall and for eight request names, the error and
    request rates; two thresholds; a build every ten runs), in --series fingerprints, one of
    them --long runs long (every so many runs), on SQLite (a temporary file) and on PostgreSQL
    (a throwaway cluster, tests/pgcluster.py, with the server's own durability settings), then
    times, the median of --repeat:
      - `python -m stressbed history --history STORE`: the whole command in a child process
        (start-up, imports, connecting, reading, the table printed to a pipe), and with
        `--json` (every figure of every run)
      - `store.entries()`: every run with every figure, in this process
      - `store.entries(fingerprint=F)` of the long series
      - `python -m stressbed trend --history STORE --fingerprint F --gate`: the whole command
        (the series' runs read, each of its 29 metrics' change points, the gate, the table)

The child's bytecode is cached, as an installed stressbed's is (an untimed run writes it).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from pgcluster import throwaway_cluster, unavailable

from stressbed.history.entry import entry_of
from stressbed.history.store import open_store
from stressbed.results.compare import fingerprint_digest

START = 1_796_652_000  # 2026-12-07 00:00 UTC
#: Request names a run's figures are kept for (entry.TOP_REQUESTS is ten: a run has eight).
NAMES = ("report", "config", "tasks", "heartbeat", "register", "upload", "poll", "ack")


def summary(i: int, series: int, rng: random.Random) -> dict[str, Any]:
    """Run ``i`` of fingerprint ``series``: a summary.json as a run writes it."""
    t = START + i * 600
    metrics: dict[str, Any] = {
        "http_req_failed": {"rate": rng.uniform(0, 0.01)},
        "http_reqs": {"count": 30_000.0, "rate": rng.uniform(400, 600)},
    }
    for key, count in [("http_req_duration", 30_000.0)] + [
        (f"http_req_duration{{name:{name}}}", 5_000.0 - 100 * n) for n, name in enumerate(NAMES)
    ]:
        p50 = rng.uniform(5, 20)
        metrics[key] = {"count": count, "p(50)": p50, "p(95)": p50 * 3, "p(99)": p50 * 6}
    return {
        "run_id": time.strftime("%Y%m%d-%H%M%S", time.gmtime(t)) + f"-{i:06x}",
        "scenario": f"scenario_{series % 5}",
        "verdict": "pass" if rng.random() < 0.9 else "fail",
        "exit_code": 0,
        "duration_s": 60.0,
        "metrics": metrics,
        "thresholds": [
            {"metric": "http_req_duration", "expression": "p(95)<80",
             "observed": metrics["http_req_duration"]["p(95)"], "outcome": "passed"},
            {"metric": "http_req_failed", "expression": "rate<0.01",
             "observed": metrics["http_req_failed"]["rate"], "outcome": "passed"},
        ],
        "fingerprint": {"scenario": f"scenario_{series % 5}", "config": f"{series:016x}",
                        "runners": 1 + series // 5, "backend": "local", "duration": "60s"},
    }  # fmt: skip


def fill(location: str, runs: int, series: int, long: int) -> float:
    """Record the runs; how long it took. The long series has every (runs // long)-th run."""
    rng = random.Random(28)
    every = max(1, runs // long)
    started = time.monotonic()
    with open_store(location) as store:
        for i in range(runs):
            which = 0 if i % every == 0 else 1 + i % (series - 1)
            entry = entry_of(summary(i, which, rng), run_dir=f"results/{i}", build=f"b{i // 10}")
            store.record(entry, recorded_at=START + i * 600 + 90)
    return time.monotonic() - started


def median_of(repeat: int, measure: Callable[[], object]) -> float:
    walls = []
    for _ in range(repeat):
        started = time.perf_counter()
        measure()
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def command(
    location: str, env: dict[str, str], *more: str, name: str = "history"
) -> Callable[[], None]:
    argv = [sys.executable, "-m", "stressbed", name, "--history", location, *more]

    def run() -> None:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode not in (0, 1):  # trend --gate: 1 when the series' newest regressed
            sys.exit(f"bench: {' '.join(argv)} exited {done.returncode}: {done.stderr}")

    return run


@contextmanager
def store_at(kind: str, folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A new store of ``kind`` and what a client needs in its environment for it."""
    if kind == "sqlite":
        yield str(folder / "history.db"), {}
        return
    reason = unavailable()
    if reason is not None:
        sys.exit(f"bench: no PostgreSQL: {reason}")
    with throwaway_cluster(settings={}) as cluster:
        yield cluster.create_database("bench"), cluster.env


def size(kind: str, location: str) -> float:
    """The store's size on disk, in MB."""
    if kind == "sqlite":
        return sum(p.stat().st_size for p in Path(location).parent.glob("history.db*")) / 1e6
    import psycopg  # noqa: PLC0415

    with psycopg.connect(location) as db:
        row = db.execute("SELECT pg_database_size(current_database())").fetchone()
    return float(row[0] if row else 0) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--long", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--stores", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    long_series = fingerprint_digest(summary(0, 0, random.Random(0))["fingerprint"])
    rows = []
    for kind in args.stores:
        with (
            tempfile.TemporaryDirectory(prefix="bench-history-") as tmp,
            store_at(kind, Path(tmp)) as (location, client_env),
        ):
            os.environ.update(client_env)
            filled = fill(location, args.runs, args.series, args.long)
            env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached
            command(location, env)()  # untimed: writes the bytecode
            listing = median_of(args.repeat, command(location, env))
            as_json = median_of(args.repeat, command(location, env, "--json"))
            with open_store(location) as store:
                count = len(store.entries(fingerprint=long_series))
                every = median_of(args.repeat, store.entries)
                series = median_of(args.repeat, lambda: store.entries(fingerprint=long_series))
            trend = command(location, env, "--fingerprint", long_series, "--gate", name="trend")
            analysed = median_of(args.repeat, trend)
            rows.append((kind, filled, listing, as_json, every, count, series, analysed,
                         size(kind, location)))  # fmt: skip
    print(f"{args.runs:,} runs, {args.series} fingerprints, median of {args.repeat}; seconds")
    print(f"{'store':<11} {'fill':>6} {'runs/s':>7} {'history':>8} {'--json':>7} "
          f"{'entries()':>10} {'series':>7} {'(runs)':>6} {'trend':>7} {'MB':>6}")  # fmt: skip
    for kind, filled, listing, as_json, every, count, series, analysed, mb in rows:
        print(
            f"{kind:<11} {filled:>6.1f} {args.runs / filled:>7,.0f} {listing:>8.3f} "
            f"{as_json:>7.3f} {every:>10.3f} {series:>7.3f} {count:>6} {analysed:>7.3f} "
            f"{mb:>6.1f}"
        )


if __name__ == "__main__":
    main()
