"""Benchmark: requests/s of k6 running a rendered scenario vs a hand-written script.

Starts nginx on loopback (Debian's nginx-light) as a fast fixed target, renders
tools/bench/scenario.py, and runs it alternately with tools/bench/baseline.js (plain and with
response bodies discarded), so all three see the same machine conditions. Prints every run,
the medians and the ratios. Usage:

    nox -s bench                        # 5 rounds, 20 VUs, 10 s per run
    nox -s bench -- --rounds 3 --vus 50 --duration 15s
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from stressbed import render
from stressbed.scenario import catalog

HERE = Path(__file__).parent / "bench"
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type application/json; return 200 '{{"ok":true,"id":"42"}}'; }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        sys.exit("bench: nginx not found; install it with: apt-get install -y nginx-light")
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    proc = subprocess.Popen(
        [nginx, "-c", str(conf)], stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("bench: nginx did not start listening within 10 s")


@contextlib.contextmanager
def nginx_target(workdir: Path) -> Iterator[str]:
    """nginx on a free loopback port for the duration of the block; yields its base URL."""
    nginx, url = start_nginx(workdir)
    try:
        yield url
    finally:
        nginx.send_signal(signal.SIGTERM)
        try:
            nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            nginx.kill()


def quiet(command: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    """Run a benchmark step with its output discarded (figures come from its files); the
    step's own peak RSS in MB (its process's, not its children's), killed after 900 s."""
    child = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 900
    while True:
        # wait4, not wait: the rusage of this child alone (RUSAGE_CHILDREN is a running max).
        pid, _, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = 0  # reaped here: Popen must not wait for it again
            return usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            child.kill()
        time.sleep(0.05)


def k6_rate(summary: Path) -> float:
    """k6's own http_reqs rate from a --summary-export file."""
    value: float = json.loads(summary.read_text())["metrics"]["http_reqs"]["rate"]
    return value


def rate(script: Path, env: dict[str, str], workdir: Path) -> float:
    summary = workdir / "summary.json"
    summary.unlink(missing_ok=True)
    k6 = ["k6", "run", "--quiet", "--no-usage-report", "--summary-export", str(summary)]
    quiet([*k6, str(script)], env)
    return k6_rate(summary)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--vus", type=int, default=20)
    parser.add_argument("--duration", default="10s")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 20:
        parser.error("--rounds must be 1..20")

    env = {
        **os.environ,
        "K6_NO_USAGE_REPORT": "true",
        "BENCH_VUS": str(args.vus),
        "BENCH_DURATION": args.duration,
    }
    os.environ.update({"BENCH_VUS": str(args.vus), "BENCH_DURATION": args.duration})
    with tempfile.TemporaryDirectory(prefix="stressbed-bench-") as tmp:
        workdir = Path(tmp)
        bundle = render(catalog.load(str(HERE / "scenario.py")), workdir / "bundle")
        runs: dict[str, list[float]] = {"baseline": [], "baseline-tuned": [], "rendered": []}
        with nginx_target(workdir) as url:
            env["TARGET_URL"] = url
            for i in range(args.rounds):
                runs["baseline"].append(rate(HERE / "baseline.js", env, workdir))
                runs["baseline-tuned"].append(
                    rate(HERE / "baseline.js", {**env, "BASELINE_TUNED": "1"}, workdir)
                )
                runs["rendered"].append(rate(bundle.script, env, workdir))
                print(
                    f"round {i + 1}: "
                    + ", ".join(f"{k} {v[-1]:.0f} req/s" for k, v in runs.items()),
                    flush=True,
                )
    medians = {k: statistics.median(v) for k, v in runs.items()}
    print(", ".join(f"median {k} {v:.0f} req/s" for k, v in medians.items()))
    print(f"ratio rendered/baseline {medians['rendered'] / medians['baseline']:.3f}")
    print(f"ratio rendered/baseline-tuned {medians['rendered'] / medians['baseline-tuned']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
