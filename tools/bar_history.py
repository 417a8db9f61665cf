"""Issue 28's bar, for real: 30 runs of one scenario with a 20 % p95 step at run 20, recorded
in the history, then `stressbed trend` and `--gate` on it, in SQLite and in PostgreSQL.
Prints what it found; exits 1 when the bar is not met.

python tools/bar_history.py [--runs 30] [--step-at 20] [--duration 5s] [--keep DIR]

One reference agent is started on loopback and loaded with `stressbed run --target-url` (so
every run is the same fingerprint: one series). The "builds" differ only by the agent's
latency fault hook (POST /admin/faults {"kind": "latency", "ms": ...}): runs before the step
wait FAST_MS per request, runs from it SLOW_MS (the p95 about 20 % higher). Each run is
recorded with --build b<i>. Then, on SQLite:

- `stressbed trend --gate` on runs 1..step-1 alone (a store holding only those): exit 0;
- the same after run step+1: exit 1, naming p95 and the build of run `step`;
- `stressbed trend --json` after all runs: p95's change points, expected one at step (±1).

And the same three on a PostgreSQL store (a throwaway cluster on loopback) holding the same
runs, copied run by run. PostgreSQL is skipped (said) when its binaries are not installed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FAST_MS = 50
SLOW_MS = 61
P95 = "http_req_duration p(95)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--step-at", type=int, default=20)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--keep", type=Path, help="keep the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="stressbed-bar-"))
    results = args.keep or work / "results"
    env = {
        **os.environ,
        "K6_NO_USAGE_REPORT": "true",
        "STRESSBED_AGENT_TOKEN": secrets.token_hex(16),
        "STRESSBED_AGENT_ADMIN_TOKEN": secrets.token_hex(16),
    }
    for name in ("STRESSBED_BUILD", "GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        env.pop(name, None)
    port = _free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "stressbed_agent", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    ok = True
    try:
        _wait_ready(url)
        store = results / "history.db"
        codes = []
        for i in range(1, args.runs + 1):
            _slow_down(url, env, SLOW_MS if i >= args.step_at else FAST_MS)
            began = time.monotonic()
            run = subprocess.run(
                [
                    *(sys.executable, "-m", "stressbed", "run", "--scenario", "ingest_mix"),
                    *("--target-url", url, "--duration", args.duration, "--no-live"),
                    *("--results", str(results), "--history", str(store), "--build", f"b{i}"),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            codes.append(run.returncode)
            print(f"run {i:2d} (b{i}): exit {run.returncode} in {time.monotonic() - began:.1f} s")
        ok &= _judge("sqlite", store, args, results, env)
        pg = _postgres()
        if pg is None:
            print("postgresql: not installed here: skipped")
        else:
            with pg as cluster:
                os.environ.update(cluster.env)  # this process's store reads the passfile too
                ok &= _judge(
                    "postgresql", store, args, results, {**env, **cluster.env}, cluster=cluster
                )
    finally:
        agent.terminate()
        agent.wait(10)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print("bar: MET" if ok else "bar: NOT MET")
    return 0 if ok else 1


def _judge(name, store, args, results, env, *, cluster=None) -> bool:
    """The three answers on a store holding runs 1..k, for k = step-1, step+1, all."""
    from stressbed.history.store import Store  # noqa: PLC0415

    with Store(store) as source:
        entries = source.entries()
    ok = True
    for upto, expect in ((args.step_at - 1, 0), (args.step_at + 1, 1), (len(entries), None)):
        if cluster is not None:
            target = cluster.create_database("bar")  # a store holding runs 1..upto only
        else:
            target = str(results / f"bar-{name}-{upto}.db")
        with Store(target) as copy:
            for entry in entries[:upto]:
                copy.record(entry, recorded_at=time.time())
        cmd = [sys.executable, "-m", "stressbed", "trend", "--history", target]
        if expect is None:
            out = subprocess.run(
                [*cmd, "--json"], env=env, capture_output=True, text=True, check=False
            )
            document = json.loads(out.stdout)
            (p95,) = [m for m in document["metrics"] if m["metric"] == P95]
            found = [
                (c["index"] + 1, c["kind"], round(c["relative"] * 100, 1)) for c in p95["changes"]
            ]
            print(f"{name}: trend over {upto} runs: p95 change points (run, kind, %): {found}")
            ok &= len(found) == 1 and abs(found[0][0] - args.step_at) <= 1
            continue
        out = subprocess.run([*cmd, "--gate"], env=env, capture_output=True, text=True, check=False)
        said = [line for line in out.stdout.splitlines() if line.startswith("gate:")]
        print(f"{name}: trend --gate after run {upto}: exit {out.returncode}: {said}")
        ok &= out.returncode == expect
        if expect == 1:
            ok &= any(P95 in line and f"build b{args.step_at}" in line for line in said)
    return ok


def _postgres():
    """A throwaway PostgreSQL cluster (tests/pgcluster.py), or None when not installed."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
    from pgcluster import throwaway_cluster, unavailable  # noqa: PLC0415

    return None if unavailable() else throwaway_cluster()


def _slow_down(url: str, env: dict[str, str], ms: int) -> None:
    body = json.dumps({"kind": "latency", "duration_s": 3600, "ms": ms}).encode()
    request = urllib.request.Request(
        f"{url}/admin/faults",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Admin-Token": env["STRESSBED_AGENT_ADMIN_TOKEN"],
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


def _wait_ready(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the agent at {url} never got ready")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
