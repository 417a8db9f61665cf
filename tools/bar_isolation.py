"""Issue 29's bar for the neighbour, for real: `stressbed run --scenario noisy_neighbour` on the
local backend (one agent replica with a CPU limit and a request; a neighbour burning every core
of this machine from 25 s for 25 s, in a cgroup of its own beside the agent's). Prints the
isolation verdict (p95, p99, error rate before vs under the neighbour) and the findings; exits
1 when there is no verdict, or when the verdict is `broken` by latency and no finding says why.

python tools/bar_isolation.py [--runs 1] [--duration 60s] [--io] [--keep DIR]

Needs root (the replica's and the neighbour's cgroups). `--io` gives the neighbour an IO writer
on the agent's disk too.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: The findings that explain a neighbour's effect on latency.
EXPLAINING = {"cpu-contended", "cpu-throttled", "latency-step-at-cpu-limit", "io-throttled"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--duration", default="60s")
    parser.add_argument("--io", action="store_true", help="the neighbour writes to the disk too")
    parser.add_argument("--keep", type=Path, help="keep the results here")
    args = parser.parse_args()
    results = args.keep or Path(tempfile.mkdtemp(prefix="stressbed-bar-")) / "results"
    env = {
        **os.environ,
        "K6_NO_USAGE_REPORT": "true",
        "STRESSBED_AGENT_TOKEN": secrets.token_hex(16),
    }
    scenario = "noisy_neighbour"
    if args.io:  # the shipped scenario with io=True, written beside the results
        results.mkdir(parents=True, exist_ok=True)
        module = results / "noisy_neighbour_io.py"
        module.write_text(
            "from scenarios.noisy_neighbour import noisy_neighbour, stack\n"
            "scenario = noisy_neighbour(io=True)\n"
        )
        scenario = str(module)
    met, p95_changes = True, []
    for i in range(1, args.runs + 1):
        code = subprocess.run(
            [
                *(sys.executable, "-m", "stressbed", "run", "--scenario", scenario),
                *("--duration", args.duration, "--no-live", "--results", str(results)),
                *("--history", "off"),
            ],
            env=env,
            check=False,
            stdout=subprocess.DEVNULL,
        ).returncode
        summary = json.loads((results / "latest" / "summary.json").read_text())
        met &= _show(i, code, summary, p95_changes)
    if p95_changes:
        print(f"p95 change under the neighbour, median of {len(p95_changes)} run(s): "
              f"{statistics.median(p95_changes):+.0%}")  # fmt: skip
    print("bar met" if met else "bar NOT met")
    return 0 if met else 1


def _show(i: int, code: int, summary: dict, p95_changes: list[float]) -> bool:
    faults = (summary.get("resilience") or {}).get("faults") or []
    neighbour = next((f for f in faults if f.get("kind") == "neighbour"), None)
    if neighbour is None or not neighbour.get("applied"):
        print(f"run {i}: exit {code}: the neighbour was not applied: {neighbour}")
        return False
    verdict = neighbour.get("isolation") or {}
    print(f"run {i}: exit {code}; isolation {verdict.get('verdict')}: {verdict.get('reason')}")
    for metric in verdict.get("metrics", []):
        shown = f"change {metric['change']}, 95% CI {metric['ci95']}"
        print(f"  {metric['metric']}: {metric['base']} -> {metric['candidate']} "
              f"({metric['verdict']}, {shown})")  # fmt: skip
        if metric["metric"] == "http_req_duration p(95)" and metric["change"] is not None:
            p95_changes.append(metric["change"])
    found = summary.get("findings") or []
    for finding in found:
        print(f"  finding {finding['kind']} at {finding['t']} s: {finding['message']}")
    if verdict.get("verdict") in (None, "no data"):
        return False
    slowed = any(
        m.get("verdict") == "regressed" and "duration" in m["metric"]
        for m in verdict.get("metrics", [])
    )
    explained = any(f["kind"] in EXPLAINING for f in found)
    if slowed and not explained:
        print("  latency rose under the neighbour and no finding says why")
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
