"""Benchmark of the reference agent (issue 4). Prints figures; asserts nothing.

    python tools/bench_agent.py [--seconds 10]

1. capacity: wrk (1 thread, 32 connections) on POST /v1/report with 2-point batches;
2. latency at a fixed rate (default 2,500/s, half the 5,000/s target): `stressbed run` (k6,
   constant arrival rate), merged p50/p99;
3. overload: the sink fails (fault hook) so the queue fills while wrk pushes 256
   connections; counts 429s, samples /healthz latency every 100 ms, reads peak RSS;
4. recovery: the sink returns; the half-rate run again, same process, no restart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "agent"))
from helpers import AgentProcess, call

BATCH = (
    '{"agent_id":"a1","points":[{"ts":1,"name":"cpu","value":3.5,"labels":{"h":"x"}},'
    '{"ts":2,"name":"mem","value":7,"labels":{"h":"x"}}]}'
)
LUA = f"""wrk.method = "POST"
wrk.body = '{BATCH}'
wrk.headers["Content-Type"] = "application/json"
"""
SCENARIO = """from stressbed import *
scenario = Scenario("agent_rate", description="report at a fixed rate", workloads=[Workload("w",
    post("/v1/report", name="report", json={{"agent_id": "a1", "points": [
        {{"ts": 1, "name": "cpu", "value": 3.5, "labels": {{"h": "x"}}}},
        {{"ts": 2, "name": "mem", "value": 7, "labels": {{"h": "x"}}}}]}}, expect=202),
    ConstantArrivalRate(rate={rate}, duration="{seconds}s", pre_allocated_vus=50, max_vus=400),
    graceful_stop="2s")], thresholds=[latency("p(99) < 20ms")])
"""


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            "--latency",
            url + "/v1/report",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "rate": rate,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        "total": float(total.group(1)) if total else 0.0,
    }


def hey_rate(url: str, rate: int, seconds: int, workers: int = 50) -> dict[str, float] | None:
    """p50/p99 at ``rate`` from `hey` (Debian package hey), a light Go client: on two cores
    k6's own scheduling adds tail latency (see BENCHMARKS.md), hey much less."""
    if shutil.which("hey") is None:
        return None
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{seconds}s",
            "-c",
            str(workers),
            "-q",
            str(rate // workers),
            "-m",
            "POST",
            "-T",
            "application/json",
            "-d",
            BATCH,
            url + "/v1/report",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def seconds_at(pct: str) -> float:
        found = re.search(rf"{pct}% in ([\d.]+) secs", out)
        return float(found.group(1)) * 1000 if found else float("nan")

    served = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {
        "rate": float(served.group(1)) if served else 0.0,
        "p50": seconds_at("50"),
        "p99": seconds_at("99"),
    }


def half_rate(url: str, rate: int, seconds: int, work: Path, label: str) -> dict[str, float]:
    module = work / f"{label}.py"
    module.write_text(SCENARIO.format(rate=rate, seconds=seconds))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stressbed",
            "run",
            "--scenario",
            str(module),
            "--target-url",
            url,
            "--results",
            str(work / label),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    summary = json.loads((work / label / "latest" / "summary.json").read_text())
    duration = summary["metrics"]["http_req_duration"]
    return {
        "rate": summary["metrics"]["http_reqs"]["rate"],
        "p50": duration["p(50)"],
        "p99": duration["p(99)"],
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--rate",
        type=int,
        default=2500,
        help="the fixed rate of the latency runs (half of the 5,000/s target)",
    )
    args = parser.parse_args()
    env = {
        "STRESSBED_AGENT_ADMIN_TOKEN": "bench",
        "STRESSBED_AGENT_QUEUE_MAX_POINTS": "50000",
        "STRESSBED_AGENT_BREAKER_RESET_S": "1",
        "K6_NO_USAGE_REPORT": "true",
    }
    os.environ["K6_NO_USAGE_REPORT"] = "true"
    agent = AgentProcess(env=env)
    agent.wait_listening()
    admin = {"Authorization": "Bearer bench"}
    with tempfile.TemporaryDirectory(prefix="stressbed-agent-bench-") as tmp:
        work = Path(tmp)
        lua = work / "report.lua"
        lua.write_text(LUA)
        try:
            capacity = wrk(agent.url, lua, 32, args.seconds)
            print(f"capacity: {capacity['rate']:.0f} req/s (wrk -t1 -c32, {args.seconds} s)")
            rate = args.rate
            light = hey_rate(agent.url, rate, args.seconds)
            if light is not None:
                print(
                    f"at {rate}/s (hey, 50 workers): {light['rate']:.0f} req/s served, "
                    f"p50 {light['p50']:.2f} ms, p99 {light['p99']:.2f} ms"
                )
            before = half_rate(agent.url, rate, args.seconds, work, "before")
            print(
                f"at {rate}/s (stressbed run, k6): {before['rate']:.0f} req/s served, "
                f"p50 {before['p50']:.2f} ms, p99 {before['p99']:.2f} ms"
            )
            call(
                agent.url + "/admin/faults",
                "POST",
                {"kind": "sink_failure", "duration_s": args.seconds},
                headers=admin,
            )
            health: list[float] = []
            done = threading.Event()

            def probe() -> None:
                while not done.is_set():
                    started = time.monotonic()
                    with contextlib.suppress(OSError):  # a timed-out probe counts its wait
                        call(agent.url + "/healthz", timeout=5)
                    health.append(time.monotonic() - started)
                    time.sleep(0.1)

            prober = threading.Thread(target=probe)
            prober.start()
            overload = wrk(agent.url, lua, 256, args.seconds)
            done.set()
            prober.join()
            rss = [
                line
                for line in call(agent.url + "/metrics").body.decode().splitlines()
                if line.startswith("agent_process_max_rss_bytes ")
            ]
            peak = float(rss[0].split()[1]) / 2**20
            print(
                f"overload (sink failing, wrk -c256): {overload['total']:.0f} requests, "
                f"{overload['non2xx']:.0f} shed with 429 "
                f"({overload['non2xx'] / max(1, overload['total']) * 100:.1f}%), "
                f"/healthz max {max(health) * 1000:.1f} ms over {len(health)} probes, "
                f"peak RSS {peak:.0f} MB"
            )
            time.sleep(2)  # the sink is back; the breaker closes and the queue drains
            after = half_rate(agent.url, rate, args.seconds, work, "after")
            print(
                f"after, at {rate}/s: {after['rate']:.0f} req/s served, "
                f"p50 {after['p50']:.2f} ms, p99 {after['p99']:.2f} ms (same process)"
            )
        finally:
            code, _ = agent.stop()
            print(f"agent exit code after SIGTERM: {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
