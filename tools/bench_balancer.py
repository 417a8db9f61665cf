"""The local backend's load balancer: what one hop through it costs in front of the agent.

One reference agent replica; the same replica behind a balancer process (uvloop where
installed) and behind a balancer on asyncio's own loop. Measured alternately, round after
round, on the same machine, so the figures are ratios taken side by side:

1. throughput: wrk -t1 -c32 on POST /v1/report, direct vs through each balancer;
2. latency at a fixed rate (default 2,500/s, half the agent's capacity target) with hey:
   p50 and p99 direct vs through each balancer. hey paces each worker on its own ticker and
   the tickers fire together, so N workers arrive as bursts of N; the default 10 workers keep
   the bursts small enough that p99 measures the path, not the burst (with 50 workers even
   the direct p99 is mostly a burst queueing in the agent).

    python tools/bench_balancer.py --rounds 5 --seconds 8      (= nox -s bench_balancer)

Needs wrk and hey (Debian packages wrk, hey). All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "agent"))
from bench_agent import LUA, hey_rate, wrk
from helpers import AgentProcess

from stressbed.backends.local.balancer_pool import BalancerProcess


def balancer(backend_port: int, loop: str) -> BalancerProcess:
    previous = os.environ.get("STRESSBED_BALANCER_LOOP")
    os.environ["STRESSBED_BALANCER_LOOP"] = loop
    try:
        made = BalancerProcess()
    finally:
        if previous is None:
            os.environ.pop("STRESSBED_BALANCER_LOOP", None)
        else:
            os.environ["STRESSBED_BALANCER_LOOP"] = previous
    made.add("agent-0", "127.0.0.1", backend_port)
    made.set_ready("agent-0", True)
    made.sync()  # routed on every worker before the first request
    return made


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rate", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=10, help="hey's paced workers")
    args = parser.parse_args()
    agent = AgentProcess(env={"STRESSBED_AGENT_QUEUE_MAX_POINTS": "1000000"})
    agent.wait_listening()
    port = int(agent.url.rsplit(":", 1)[1])
    fast = balancer(port, "uvloop")
    plain = balancer(port, "asyncio")
    targets = {"direct": agent.url, "balancer": fast.url, "balancer-asyncio": plain.url}
    rates: dict[str, list[float]] = {k: [] for k in targets}
    p50: dict[str, list[float]] = {k: [] for k in targets}
    p99: dict[str, list[float]] = {k: [] for k in targets}
    try:
        with tempfile.TemporaryDirectory(prefix="stressbed-bench-balancer-") as tmp:
            lua = Path(tmp) / "report.lua"
            lua.write_text(LUA)
            for round_no in range(args.rounds):
                # Alternate the order so no target always runs on a warmer machine.
                order = list(targets) if round_no % 2 == 0 else list(reversed(targets))
                for name in order:
                    rates[name].append(wrk(targets[name], lua, 32, args.seconds)["rate"])
                for name in order:
                    light = hey_rate(targets[name], args.rate, args.seconds, args.workers)
                    if light is None:
                        print("hey is not installed: apt-get install hey", file=sys.stderr)
                        return 2
                    p50[name].append(light["p50"])
                    p99[name].append(light["p99"])
                print(
                    f"round {round_no + 1}: "
                    + ", ".join(
                        f"{n} {rates[n][-1]:,.0f} req/s p99 {p99[n][-1]:.2f} ms" for n in targets
                    ),
                    flush=True,
                )
    finally:
        fast.close()
        plain.close()
        agent.stop()
    direct = statistics.median(rates["direct"])
    print(f"\nmedians over {args.rounds} rounds ({args.seconds} s each):")
    for name in targets:
        rate = statistics.median(rates[name])
        print(
            f"  {name:<17} wrk -c32 {rate:8,.0f} req/s ({rate / direct:.3f}x direct)   "
            f"at {args.rate}/s (hey -c{args.workers}): p50 {statistics.median(p50[name]):6.2f} ms, "
            f"p99 {statistics.median(p99[name]):6.2f} ms"
        )
    for name in ("balancer", "balancer-asyncio"):
        added = [b - d for b, d in zip(p99[name], p99["direct"], strict=True)]
        print(
            f"  {name}: p99 added per round {', '.join(f'{a:+.2f}' for a in added)} ms; "
            f"median {statistics.median(added):+.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
