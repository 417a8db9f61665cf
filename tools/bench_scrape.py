"""What scraping the target's own metrics costs the load: the same run with it on and off.

`stressbed run`'s pipeline (plan, the local backend with the reference agent, a fleet of real
k6 runners at full speed: constant VUs, no think time) is run with the StackSpec's `metrics`
block as shipped (every replica scraped once a second) and with it removed, alternating
round after round on the same machine, so the figure is a ratio taken side by side. The
load's achieved requests/s is read from each run's merged result.

    python tools/bench_scrape.py --rounds 9 --seconds 15      (= nox -s bench_scrape)

All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.stack.agent import reference_agent

SCENARIO = """
from stressbed import *
scenario = Scenario("scrape_bench", description="full speed on /healthz",
    workloads=[Workload("w", get("/healthz"), ConstantVUs(vus={vus}, duration="{seconds}s"))])
"""


def one_run(folder: Path, *, scrape: bool, seconds: int, vus: int, runners: int) -> float:
    path = folder / "scrape_bench.py"
    path.write_text(SCENARIO.format(vus=vus, seconds=seconds))
    spec = reference_agent()
    if not scrape:
        spec = replace(spec, metrics=None)
    # A fixed count of replicas: the autoscaler must not make the two runs differ.
    spec = replace(spec, autoscaler=None, replicas=2)
    report = execute(
        plan(RunOptions(scenario=str(path), runners=runners, results=folder / "r", stack=spec))
    )
    if report.exit_code not in (0, 1):
        raise SystemExit(f"the run failed: {report.message}")
    scraped = report.stack.get("target_metrics", {}).get("series", {})
    if scrape and not scraped:
        raise SystemExit("scraping was on, and nothing was scraped")
    reqs = report.fleet.aggregates["http_reqs"]
    return reqs.total / report.fleet.duration_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--vus", type=int, default=16)
    parser.add_argument("--runners", type=int, default=2)
    args = parser.parse_args()
    on: list[float] = []
    off: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-scrape-") as tmp:
        for r in range(args.rounds):
            # Alternate which goes first, so a drift of the machine favours neither.
            order = (True, False) if r % 2 == 0 else (False, True)
            for scrape in order:
                rate = one_run(
                    Path(tmp),
                    scrape=scrape,
                    seconds=args.seconds,
                    vus=args.vus,
                    runners=args.runners,
                )
                (on if scrape else off).append(rate)
                print(f"round {r + 1}: scrape {'on ' if scrape else 'off'} {rate:9.1f} req/s")
    med_on, med_off = statistics.median(on), statistics.median(off)
    # Each round's pair ran back to back: their ratio is the least disturbed by the machine.
    paired = statistics.median(a / b for a, b in zip(on, off, strict=True))
    print(
        f"median requests/s: scraping on {med_on:.1f}, off {med_off:.1f}; "
        f"on/off = {med_on / med_off:.3f}; median of the rounds' on/off = {paired:.3f} "
        f"({(1 - paired) * 100:+.1f}% cost)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
