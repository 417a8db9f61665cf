"""What `stressbed model` costs on a big log (issue 27). Prints figures; asserts nothing.

python tools/bench_model.py [--megabytes 1000] [--gzip] [--keep-log DIR]
    writes a `combined` access log of that size (20,000 agents behind 5,000 addresses, a day
    of traffic: 50 % `GET /v1/agents/{uuid}/config?limit=&os=`, 30 % `POST
    /v1/agents/{uuid}/report`, 15 % `GET /v1/tasks/{n}`, 5 % `GET /healthz`), then runs
    `stressbed model` on it in a child process, with ``--workers 1`` and then ``--workers 2``
    (``--workers N...``): each one's wall time, MB/s, lines per second and peak RSS (the
    command's own, by wait4, and its largest process's), the ratio of the wall times; and the
    module's weights against the mix written (the largest difference in percentage points)

The log is written to a temporary directory and removed (``--keep-log DIR`` keeps it there,
and reuses it when it is already there at that size).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

SHARES = {
    "GET /v1/agents/{agent_id}/config": 0.50,
    "POST /v1/agents/{agent_id}/report": 0.30,
    "GET /v1/tasks/{task_id}": 0.15,
    "GET /healthz": 0.05,
}
START = 1_796_652_000  # 2026-12-07 00:00 UTC
DAY = 86_400


def write_log(path: Path, megabytes: int, compress: bool) -> int:
    """The log, ``megabytes`` of it (uncompressed); the number of lines."""
    rng = random.Random(7)
    agents = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(20_000)]
    addresses = [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                 for _ in range(5_000)]  # fmt: skip
    target = megabytes * 1_000_000
    lines_total = target // 190  # about 190 bytes a line: spread the day over them
    opener = gzip.open if compress else open
    written = 0
    i = 0
    with opener(path, "wt") as out:  # type: ignore[operator]
        while written < target:
            block = []
            for _ in range(10_000):
                t = START + i * DAY / lines_total
                stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
                agent = agents[i % len(agents)]
                r = rng.random()
                if r < 0.5:
                    limit, os_name = rng.choice((10, 20, 50)), rng.choice(("linux", "windows"))
                    request = f"GET /v1/agents/{agent}/config?limit={limit}&os={os_name}"
                elif r < 0.8:
                    request = f"POST /v1/agents/{agent}/report"
                elif r < 0.95:
                    request = f"GET /v1/tasks/{rng.randrange(1, 1_000_000)}"
                else:
                    request = "GET /healthz"
                block.append(
                    f'{addresses[i % len(addresses)]} - - [{stamp}] "{request} HTTP/1.1" 200 '
                    f'{rng.randrange(10, 5000)} "-" "agent/2.3.1 (linux; x86_64)"\n'
                )
                i += 1
            text = "".join(block)
            written += len(text)
            out.write(text)
    return i


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=1000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--keep-log", type=Path)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="each run's --workers, in turn"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        folder = args.keep_log or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / f"access-{args.megabytes}m.log{'.gz' if args.gzip else ''}"
        if not log.exists():
            started = time.monotonic()
            lines = write_log(log, args.megabytes, args.gzip)
            print(f"wrote {log} ({lines:,} lines) in {time.monotonic() - started:.1f} s")
        size_mb = log.stat().st_size / 1e6
        walls = {}
        for workers in args.workers:
            module = Path(tmp) / "modelled.py"
            command = [
                *(sys.executable, "-m", "stressbed", "model", str(log), "-o", str(module)),
                *("--workers", str(workers)),
            ]
            started = time.monotonic()
            child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.monotonic() - started
            out = child.stdout.read().decode() if child.stdout else ""
            child.returncode = os.waitstatus_to_exitcode(status)
            if child.returncode != 0:
                sys.exit(f"bench: stressbed model exited {child.returncode}:\n{out}")
            read = re.search(r"read ([0-9,]+) records", out)
            lines = int(read.group(1).replace(",", "")) if read else 0
            # Its own peak, and the largest of the processes it started and waited for (this
            # process has no other children).
            own = usage.ru_maxrss / 1024
            largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"--workers {workers}: {wall:.1f} s wall, {size_mb / wall:,.1f} MB/s, "
                f"{lines / wall:,.0f} lines/s, peak RSS {own:,.0f} MiB (its largest process "
                f"{largest:,.0f} MiB), {lines:,} lines of {size_mb:,.0f} MB"
            )
            walls[workers] = wall
        if len(walls) > 1:
            first, *rest = walls
            for other in rest:
                print(f"wall time --workers {first} / --workers {other}: "
                      f"{walls[first] / walls[other]:.2f}")  # fmt: skip
        text = module.read_text()
        worst = 0.0
        for key, share in SHARES.items():
            found = re.search(rf"# {re.escape(key)}: [0-9,]+ requests \(([0-9.]+)%\)", text)
            if found is None:
                print(f"  {key}: not in the module")
                continue
            worst = max(worst, abs(float(found.group(1)) / 100 - share) * 100)
        print(f"weights: largest difference from the mix written {worst:.2f} pp")


if __name__ == "__main__":
    main()
