"""The Docker backend beside the local one: what containers cost a run, side by side.

The same `stressbed run` (the reference agent, 2 replicas at a fixed count, the ingest mix at
its 50 req/s from 2 runners) on `--backend local` and on `--backend docker` (runner
containers), alternating round after round on one machine. Printed per backend, as medians:
the time to provision (stack-created to stack-ready), the teardown (the fleet's end to
stack-deleted), the whole run, and the requests' p50 and p95 through the balancer; then the
ratios docker / local. The images are built (or found) before the first round and are not
counted; the first line says how long that took.

    python tools/bench_docker.py --rounds 5 --seconds 20      (= nox -s bench_docker)

All traffic is on 127.0.0.1 and on the runs' own bridge networks.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.docker import connect, images
from stressbed.stack.agent import reference_agent


def one_run(folder: Path, backend: str, seconds: int) -> dict[str, float]:
    spec = replace(reference_agent(), autoscaler=None, replicas=2)
    started = time.monotonic()
    report = execute(
        plan(
            RunOptions(
                scenario="ingest_mix",
                backend=backend,
                runners=2,
                duration=f"{seconds}s",
                results=folder / backend,
                stack=spec,
            )
        )
    )
    wall = time.monotonic() - started
    if report.exit_code != 0:
        raise SystemExit(f"the {backend} run failed: {report.message}")
    run = folder / backend / report.run_id
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    at = {e["event"]: e["t"] for e in events if e.get("source") == "stack"}
    # The teardown starts with its first SIGTERM and ends when the last replica is gone.
    teardown_from = min(
        e["t"] for e in events if e["event"] == "terminating" and e.get("reason") == "teardown"
    )
    duration = report.fleet.aggregates["http_req_duration"]
    return {
        "provision_s": at["stack-ready"] - at["stack-created"],
        "teardown_s": at["stack-deleted"] - teardown_from,
        "run_s": wall,
        "p50_ms": duration.sketch.quantile(0.5),
        "p95_ms": duration.sketch.quantile(0.95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    started = time.monotonic()
    client = connect()
    base = images.ensure_base(client, None, print)
    for which in ("agent", "runner"):
        images.ensure_image(client, which, base, images.find_checkout(), print)
    print(f"images ready in {time.monotonic() - started:.1f} s (built, or found by their hash)")
    seen: dict[str, list[dict[str, float]]] = {"local": [], "docker": []}
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        for i in range(args.rounds):
            for backend in ("local", "docker") if i % 2 == 0 else ("docker", "local"):
                seen[backend].append(one_run(Path(tmp), backend, args.seconds))
                print(f"round {i + 1} {backend}: {seen[backend][-1]}", file=sys.stderr)
    medians = {
        b: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for b, rows in seen.items()
    }
    print(f"{'':8} {'provision s':>12} {'teardown s':>11} {'run s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for backend, m in medians.items():
        print(
            f"{backend:8} {m['provision_s']:12.2f} {m['teardown_s']:11.2f} {m['run_s']:7.1f} "
            f"{m['p50_ms']:8.3f} {m['p95_ms']:8.3f}"
        )
    ratio = {k: medians["docker"][k] / medians["local"][k] for k in medians["local"]}
    print("docker / local: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratio.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
