"""Benchmarks of the runner fleet (issue 3). Prints figures; asserts nothing.

python tools/bench_fleet.py collection [--rounds 3] [--duration 10s] [--against CHECKOUT]
    requests/s of one stressbed runner (k6 + CSV stream + aggregation) vs plain `k6 run`
    with no outputs and vs k6 writing the CSV stream to /dev/null, same bundle, alternating,
    against nginx on loopback; --against: also the runner of another checkout, each round
python tools/bench_fleet.py merge [--runners 16] [--minutes 10] [--version 2]
    time and peak memory to read and merge runner results holding 1 s windows, and write
    summary.json and junit.xml (in a child process, whose peak RSS is the merge's own)
python tools/bench_fleet.py gogc [--values 100,200,400,800] [--rounds 3]
    k6 writing the runner's CSV stream to /dev/null at each GOGC beside plain k6: requests/s
    and k6's peak RSS (why a runner's k6 runs at GOGC=400)
python tools/bench_fleet.py collector --samples SAMPLES.csv.gz
    the collector's own CPU per line and per request on a raw stream
python tools/bench_fleet.py memory [--short 10s] [--long 120s] [--rate 2000]
    the runner wrapper's peak RSS for a short and a long run at the same arrival rate
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_runtime import k6_rate, nginx_target, quiet

from stressbed import render
from stressbed.results.aggregates import Aggregate, Window
from stressbed.results.merge import merge
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.samples import Collector, parse_selector
from stressbed.results.sketch import ACCURACY
from stressbed.results.summary import RunReport
from stressbed.results.verdict import Verdict
from stressbed.scenario import catalog
from stressbed.scenario.render import Bundle

HERE = Path(__file__).parent / "bench"


def collection(args: argparse.Namespace) -> None:
    """Three loads of the same bundle per round, alternating: plain `k6 run` with no outputs,
    `k6 run` writing the CSV stream the runner reads (with the runner's system tags) to
    /dev/null, and a stressbed runner (k6 + the stream + the collector). The second is the
    ceiling of any collector fed by k6's CSV output."""
    env = _bench_env(args)
    scenario_path = HERE / "scenario.py"
    rates: dict[str, list[float]] = {"plain": [], "csv": [], "runner": [], "against": []}
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        work = Path(tmp)
        bundle, tags = _bundle(work)
        with nginx_target(work) as url:
            env["TARGET_URL"] = url
            for i in range(args.rounds):
                summary = work / "plain.json"
                k6 = ["k6", "run", "--quiet", "--no-usage-report", "--summary-export"]
                quiet([*k6, str(summary), str(bundle.script)], env)
                rates["plain"].append(k6_rate(summary))
                csv = ["--system-tags", tags, "--out", "csv=/dev/null"]
                quiet([*k6, str(summary), *csv, str(bundle.script)], env)
                rates["csv"].append(k6_rate(summary))
                runs = [("runner", env)]
                if args.against:  # the same runner from another checkout, in the same round
                    extra = dict(item.split("=", 1) for item in args.against_env)
                    runs.append(("against", {**env, "PYTHONPATH": str(args.against), **extra}))
                for label, run_env in runs:
                    results = work / f"{label}{i}"
                    # From the scratch folder: no stressbed.yaml (its 60 s) and, for
                    # --against, no checkout on sys.path ahead of PYTHONPATH.
                    quiet(
                        stressbed_run(scenario_path, url, results, args.duration), run_env, cwd=work
                    )
                    summary = results / "latest" / "runners" / "0" / "k6-summary.json"
                    rates[label].append(k6_rate(summary))
                print(
                    f"round {i + 1}: plain k6 {rates['plain'][-1]:.0f} req/s, "
                    f"k6 + CSV to /dev/null {rates['csv'][-1]:.0f} req/s, "
                    f"stressbed runner {rates['runner'][-1]:.0f} req/s"
                    + (
                        f", runner of {args.against} {rates['against'][-1]:.0f}"
                        if args.against
                        else ""
                    ),
                    flush=True,
                )
    plain, csv, runner = (statistics.median(rates[k]) for k in ("plain", "csv", "runner"))
    pairs = [r / p for r, p in zip(rates["runner"], rates["plain"], strict=True)]
    print(
        f"median plain k6 {plain:.0f} req/s, k6 + CSV to /dev/null {csv:.0f} req/s, "
        f"stressbed runner {runner:.0f} req/s"
    )
    print(f"ratio CSV-to-/dev/null/plain {csv / plain:.3f}")
    if args.against:
        against = statistics.median(rates["against"])
        print(f"ratio runner of {args.against}/plain {against / plain:.3f}")
    print(
        f"ratio runner/plain {runner / plain:.3f} (median of the rounds' own ratios "
        f"{statistics.median(pairs):.3f})"
    )
    if args.accuracy:
        accuracy(args, env, scenario_path)


def accuracy(args: argparse.Namespace, env: dict[str, str], scenario: Path) -> None:
    """A 3-runner run with --keep-raw: its merged p50/p95/p99 against the exact percentiles
    of the union of every runner's raw samples, and its counts against the raw lines and k6's
    own summaries."""
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        work = Path(tmp)
        with nginx_target(work) as url:
            env = {**env, "TARGET_URL": url}
            command = stressbed_run(scenario, url, work / "r", args.duration, runners=3)
            quiet([*command, "--keep-raw"], env, cwd=work)
        run = work / "r" / "latest"
        raw: list[float] = []
        k6_count = 0
        for i in range(3):
            with gzip.open(run / "runners" / str(i) / "samples.csv.gz", "rt") as stream:
                raw += [
                    float(line.split(",")[2])
                    for line in stream
                    if line.startswith("http_req_duration,")
                ]
            k6 = json.loads((run / "runners" / str(i) / "k6-summary.json").read_text())
            k6_count += k6["metrics"]["http_reqs"]["count"]
        metrics = json.loads((run / "summary.json").read_text())["metrics"]
        merged, requests = metrics["http_req_duration"], metrics["http_reqs"]["count"]
        ordered = sorted(raw)
        print(
            f"accuracy, 3 runners: {len(raw):,} raw http_req_duration samples, merged count "
            f"{merged['count']:,.0f}, http_reqs {requests:,.0f}, k6's own summaries {k6_count:,}"
        )
        for stat, q in (("p(50)", 0.5), ("p(95)", 0.95), ("p(99)", 0.99)):
            rank = q * (len(ordered) - 1)
            low = int(rank)
            high = min(low + 1, len(ordered) - 1)
            exact = ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
            error = abs(merged[stat] - exact) / exact
            print(
                f"  {stat}: merged {merged[stat]:.4f} ms, exact {exact:.4f} ms, "
                f"relative error {error:.3%}"
            )


def stressbed_run(
    scenario: Path, url: str, results: Path, duration: str | None = None, runners: int = 1
) -> list[str]:
    """``stressbed run`` of ``scenario`` against ``url`` (``duration``: its --duration). Run
    it from a scratch folder: a checkout's stressbed.yaml would set a duration of its own."""
    command = [sys.executable, "-m", "stressbed", "run", "--scenario", str(scenario)]
    command += ["--target-url", url, "--runners", str(runners), "--results", str(results)]
    return command + (["--duration", duration] if duration else [])


def _bench_env(args: argparse.Namespace) -> dict[str, str]:
    """The environment of a bench of tools/bench/scenario.py: its VUs and duration."""
    os.environ.update({"BENCH_VUS": str(args.vus), "BENCH_DURATION": args.duration})
    return {**os.environ, "K6_NO_USAGE_REPORT": "true"}


def _bundle(work: Path) -> tuple[Bundle, str]:
    """tools/bench/scenario.py rendered into ``work``, and the system tags a runner's k6
    attaches for it (``--system-tags``)."""
    # Imported here: `collector` also runs under an older checkout's PYTHONPATH, which has none.
    from stressbed.fleet.runner import selectors_of, system_tags  # noqa: PLC0415

    bundle = render(catalog.load(str(HERE / "scenario.py")), work / "bundle")
    config = json.loads((bundle.script.parent / "config.json").read_text())
    return bundle, ",".join(system_tags(selectors_of(config)))


def _fake_result(
    index: int, runners: int, seconds: int, rng: np.random.Generator, version: int
) -> dict[str, object]:
    """A runner document of ``seconds`` 1 s windows, each with a latency sketch of 500
    lognormal samples and a few failures (built with numpy: the inputs of a 64-runner hour
    are 115 million samples)."""
    log_gamma = math.log((1 + ACCURACY) / (1 - ACCURACY))  # the sketch's own bucket width
    start = 1_800_000_000
    windows: dict[int, Window] = {}
    total = Aggregate("trend")
    reqs = Aggregate("counter")
    for t in range(start, start + seconds):
        window = Window(requests=500, failed=int(rng.integers(0, 4)), iterations=500, vus=50)
        values = rng.lognormal(1.5, 0.8, 500)
        keys, counts = np.unique(
            np.ceil(np.log(values) / log_gamma).astype(np.int64), return_counts=True
        )
        sketch = window.duration
        sketch.buckets = dict(zip(keys.tolist(), counts.tolist(), strict=True))
        sketch.count, sketch.total = 500, float(values.sum())
        sketch.minimum, sketch.maximum = float(values.min()), float(values.max())
        total.sketch.merge(sketch)
        reqs.total += 500
        reqs.count += 500
        windows[t] = window
    result = RunnerResult(
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
    document = result.to_dict()
    if version == 1:  # the document as runners wrote it before issue 16
        document["version"] = 1
        document["windows"] = {str(t): w.to_dict() for t, w in sorted(windows.items())}
    return document


def merge_bench(args: argparse.Namespace) -> None:
    """Runner documents made here, then read, merged and reported in a child process of its
    own: its peak RSS is the merge's, not the generator's."""
    rng = np.random.default_rng(1)
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        for i in range(args.runners):
            path = Path(tmp) / f"r{i}.json"
            path.write_text(json.dumps(_fake_result(i, args.runners, seconds, rng, args.version)))
        size = sum(p.stat().st_size for p in Path(tmp).glob("r*.json")) / 1e6
        child = [sys.executable, __file__, "merge-files", tmp]
        figures = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
    print(
        f"{args.runners} runner results (v{args.version}) x {seconds} windows "
        f"({size:.1f} MB, {size / args.runners / args.minutes * 60:.2f} MB a runner-hour): "
        f"read + merge + summary/junit in {figures['elapsed_s']:.2f} s; "
        f"peak RSS {figures['peak_mb']:.0f} MB ({figures['before_mb']:.0f} MB before reading); "
        f"all of it again with report.html: {figures['html_s']:.2f} s"
    )


def merge_files(args: argparse.Namespace) -> None:
    paths = sorted(Path(args.directory).glob("r*.json"))
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
    out = Path(args.directory) / "out"
    report.write(out, html=False)
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    report.write(out)  # again, with report.html (Bokeh imported and drawn)
    html = time.perf_counter() - started
    print(json.dumps({"elapsed_s": elapsed, "peak_mb": peak, "before_mb": before, "html_s": html}))


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
                quiet(stressbed_run(module, url, results), env, cwd=work)  # no stressbed.yaml
                result = RunnerResult.read(results / "latest" / "runners" / "0" / "result.json")
                rss[label] = result.peak_rss_mb
                print(
                    f"{label} ({duration}): {result.requests:,} requests, "
                    f"{result.samples:,} samples, runner peak RSS {result.peak_rss_mb:.1f} MB",
                    flush=True,
                )
    print(f"growth long - short: {rss['long'] - rss['short']:+.1f} MB")


def collector(args: argparse.Namespace) -> None:
    """The collector's own CPU on a raw stream (a --keep-raw run's samples.csv.gz), per line
    and per request; run it under two checkouts' PYTHONPATH, each on its own stream, to
    compare them (their k6 attaches different tags)."""
    with gzip.open(args.samples, "rt", encoding="utf-8") as stream:
        lines = stream.readlines()[: args.lines]
    requests = sum(1 for line in lines if line.startswith("http_req_duration,"))
    selectors = [
        parse_selector("http_req_duration{name:report}"),
        parse_selector("http_req_failed{name:report}"),
    ]
    timings = []
    for _ in range(5):
        collect = Collector(selectors)
        started = time.perf_counter()
        collect.feed_lines(lines)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings)
    print(
        f"{len(lines):,} lines, {requests:,} requests ({collect.samples:,} samples folded): "
        f"median {median / len(lines) * 1e6:.3f} us/line, "
        f"{median / max(1, requests) * 1e6:.2f} us/request over 5 passes"
    )


def gogc(args: argparse.Namespace) -> None:
    """k6 writing the runner's CSV stream to /dev/null at each GOGC, alternating, beside plain
    k6: requests/s and k6's peak RSS."""
    env = _bench_env(args)
    values = args.values.split(",")
    rates: dict[str, list[float]] = {v: [] for v in ["plain", *values]}
    peaks: dict[str, list[float]] = {v: [] for v in ["plain", *values]}
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        work = Path(tmp)
        bundle, tags = _bundle(work)
        with nginx_target(work) as url:
            for _ in range(args.rounds):
                for value, found in rates.items():
                    summary = work / "k6.json"
                    k6 = ["k6", "run", "--quiet", "--no-usage-report", "--summary-export"]
                    k6 += [str(summary)]
                    if value != "plain":
                        k6 += ["--system-tags", tags, "--out", "csv=/dev/null"]
                    run_env = {
                        **env,
                        "TARGET_URL": url,
                        "GOGC": "100" if value == "plain" else value,
                    }
                    peaks[value].append(quiet([*k6, str(bundle.script)], run_env))
                    found.append(k6_rate(summary))
                print(
                    "  ".join(
                        f"{v}: {r[-1]:.0f} req/s {peaks[v][-1]:.0f} MB" for v, r in rates.items()
                    ),
                    flush=True,
                )
    plain = statistics.median(rates["plain"])
    for value, found in rates.items():
        rate = statistics.median(found)
        label = "plain k6" if value == "plain" else f"CSV at GOGC={value}"
        print(
            f"{label}: median {rate:.0f} req/s ({rate / plain:.3f}x plain), "
            f"peak RSS {statistics.median(peaks[value]):.0f} MB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("collection")
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--duration", default="10s")
    c.add_argument("--vus", type=int, default=20)
    c.add_argument(
        "--against", type=Path, help="also the runner of this checkout, in every round (A/B)"
    )
    c.add_argument(
        "--accuracy", action="store_true", help="then a 3-runner --keep-raw run, checked exactly"
    )
    c.add_argument(
        "--against-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable of the --against runs only (e.g. GOGC=100)",
    )
    c.set_defaults(run=collection)
    m = sub.add_parser("merge")
    m.add_argument("--runners", type=int, default=16)
    m.add_argument("--minutes", type=int, default=10)
    m.add_argument("--version", type=int, choices=(1, 2), default=2, help="document version")
    m.set_defaults(run=merge_bench)
    f = sub.add_parser("merge-files")  # the child of merge: its peak RSS is the merge's
    f.add_argument("directory")
    f.set_defaults(run=merge_files)
    k = sub.add_parser("collector")
    k.add_argument("--samples", type=Path, required=True)
    k.add_argument("--lines", type=int, default=300_000)
    k.set_defaults(run=collector)
    g = sub.add_parser("gogc")
    g.add_argument("--values", default="100,200,400,800")
    g.add_argument("--rounds", type=int, default=3)
    g.add_argument("--duration", default="10s")
    g.add_argument("--vus", type=int, default=20)
    g.set_defaults(run=gogc)
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
