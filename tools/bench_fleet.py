"""Benchmarks of the runner fleet (issue 3). Prints figures; asserts nothing.

python tools/bench_fleet.py collection [--rounds 3] [--duration 10s]
    requests/s of one stressbed runner (k6 + CSV stream + aggregation) vs plain `k6 run`
    with no outputs, same bundle, alternating, against nginx on loopback
python tools/bench_fleet.py merge [--runners 16] [--minutes 10]
    time and peak memory to merge runner results holding 1 s windows, and write reports
python tools/bench_fleet.py memory [--short 10s] [--long 120s] [--rate 2000]
    the runner wrapper's peak RSS for a short and a long run at the same arrival rate
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_runtime import k6_rate, nginx_target, quiet

from stressbed import render
from stressbed.results.aggregates import Aggregate, Window
from stressbed.results.merge import merge
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.samples import Collector, parse_selector
from stressbed.results.summary import RunReport
from stressbed.results.verdict import Verdict
from stressbed.scenario import catalog

HERE = Path(__file__).parent / "bench"


def collection(args: argparse.Namespace) -> None:
    os.environ.update({"BENCH_VUS": str(args.vus), "BENCH_DURATION": args.duration})
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    scenario_path = HERE / "scenario.py"
    plain, runner = [], []
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        work = Path(tmp)
        bundle = render(catalog.load(str(scenario_path)), work / "bundle")
        with nginx_target(work) as url:
            env["TARGET_URL"] = url
            for i in range(args.rounds):
                summary = work / "plain.json"
                k6 = ["k6", "run", "--quiet", "--no-usage-report", "--summary-export"]
                quiet([*k6, str(summary), str(bundle.script)], env)
                plain.append(k6_rate(summary))
                results = work / f"results{i}"
                quiet(stressbed_run(scenario_path, url, results), env)
                runner.append(k6_rate(results / "latest" / "runners" / "0" / "k6-summary.json"))
                print(
                    f"round {i + 1}: plain k6 {plain[-1]:.0f} req/s, "
                    f"stressbed runner {runner[-1]:.0f} req/s",
                    flush=True,
                )
    a, b = statistics.median(plain), statistics.median(runner)
    print(f"median plain k6 {a:.0f} req/s, median stressbed runner {b:.0f} req/s")
    print(f"ratio runner/plain {b / a:.3f}")


def stressbed_run(scenario: Path, url: str, results: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stressbed",
        "run",
        "--scenario",
        str(scenario),
        "--target-url",
        url,
        "--runners",
        "1",
        "--results",
        str(results),
    ]


def _fake_result(index: int, runners: int, seconds: int, rng: random.Random) -> RunnerResult:
    start = 1_800_000_000
    windows: dict[int, Window] = {}
    total = Aggregate("trend")
    reqs = Aggregate("counter")
    for t in range(start, start + seconds):
        window = Window(requests=500, failed=rng.randint(0, 3), iterations=500, vus=50)
        for _ in range(500):
            value = rng.lognormvariate(1.5, 0.8)
            window.duration.add(value)
        total.sketch.merge(window.duration)
        reqs.total += 500
        reqs.count += 500
        windows[t] = window
    return RunnerResult(
        index=index,
        count=runners,
        segment=f"{index}/{runners}",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=start,
        ended_at=start + seconds,
        aggregates={"http_req_duration": total, "http_reqs": reqs},
        windows=windows,
    )


def merge_bench(args: argparse.Namespace) -> None:
    rng = random.Random(1)
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        paths = []
        for i in range(args.runners):
            path = Path(tmp) / f"r{i}.json"
            _fake_result(i, args.runners, seconds, rng).write(path)
            paths.append(path)
        size = sum(p.stat().st_size for p in paths) / 1e6
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        results = [RunnerResult.read(p) for p in paths]
        fleet = merge(results)
        report = RunReport(
            run_id="bench",
            scenario="bench",
            verdict=Verdict.PASS,
            exit_code=0,
            message="",
            fleet=fleet,
            thresholds=[],
            runners=results,
            start_skew_ms=0.0,
        )
        report.write(Path(tmp))
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.runners} runner results x {seconds} windows ({size:.1f} MB of JSON): "
        f"read + merge + summary/junit in {elapsed:.2f} s; peak RSS {peak:.0f} MB "
        f"({before:.0f} MB before reading)"
    )


def memory(args: argparse.Namespace) -> None:
    rss = {}
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        work = Path(tmp)
        with nginx_target(work) as url:
            for label, duration in (("short", args.short), ("long", args.long)):
                module = work / f"{label}.py"
                module.write_text(
                    "from stressbed import *\n"
                    "scenario = Scenario('memory', description='memory bench', workloads=["
                    f"Workload('w', get('/m'), ConstantArrivalRate(rate={args.rate}, "
                    f"duration={duration!r}, pre_allocated_vus=50, max_vus=200))])\n"
                )
                results = work / f"results-{label}"
                quiet(stressbed_run(module, url, results), env)
                result = RunnerResult.read(results / "latest" / "runners" / "0" / "result.json")
                rss[label] = result.peak_rss_mb
                print(
                    f"{label} ({duration}): {result.requests:,} requests, "
                    f"{result.samples:,} samples, runner peak RSS {result.peak_rss_mb:.1f} MB",
                    flush=True,
                )
    print(f"growth long - short: {rss['long'] - rss['short']:+.1f} MB")


def collector(args: argparse.Namespace) -> None:
    with gzip.open(args.samples, "rt", encoding="utf-8") as stream:
        lines = stream.readlines()[: args.lines]
    selectors = [
        parse_selector("http_req_duration{name:report}"),
        parse_selector("http_req_failed{name:report}"),
    ]
    timings = []
    for _ in range(5):
        collect = Collector(selectors)
        started = time.perf_counter()
        collect.feed_lines(lines)
        timings.append((time.perf_counter() - started) / len(lines) * 1e6)
    print(
        f"{len(lines):,} lines ({collect.samples:,} samples kept): median "
        f"{statistics.median(timings):.3f} us/line over 5 passes"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collection")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--duration", default="10s")
    c.add_argument("--vus", type=int, default=20)
    c.set_defaults(run=collection)
    m = sub.add_parser("merge")
    m.add_argument("--runners", type=int, default=16)
    m.add_argument("--minutes", type=int, default=10)
    m.set_defaults(run=merge_bench)
    k = sub.add_parser("collector")
    k.add_argument("--samples", type=Path, required=True)
    k.add_argument("--lines", type=int, default=300_000)
    k.set_defaults(run=collector)
    r = sub.add_parser("memory")
    r.add_argument("--short", default="10s")
    r.add_argument("--long", default="120s")
    r.add_argument("--rate", type=int, default=2000)
    r.set_defaults(run=memory)
    args = parser.parse_args()
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
