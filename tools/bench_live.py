"""What the live path costs (issue 26). Prints figures; asserts nothing.

python tools/bench_live.py cost [--rounds 7] [--seconds 15] [--vus 16] [--runners 2]
    the same full-speed `stressbed run` pipeline (real k6 runners against nginx on loopback)
    with the live path off (no series at all) and on (the live page and /metrics served, a
    scraper asking /metrics and a page asking /live.json once a second, remote write to a
    receiver on loopback), alternating round after round: achieved requests/s of each, and
    the median of the paired ratios
python tools/bench_live.py scale [--runners 256] [--seconds 30] [--names 8]
    a coordinator's second, at fleet scale: stand-in runners (in a child process, each a real
    control endpoint on loopback) serve recorded snapshots; each second the coordinator takes
    every runner's snapshot over HTTP (16 threads), merges them (LiveMerge), seals the second
    into the live series, writes /metrics and the live page's update. The CPU time of that
    second (this process only), its wall time, and this process's peak RSS

All traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_runtime import nginx_target

from stressbed.app.execute import execute
from stressbed.app.live_page import LivePage
from stressbed.app.live_server import LiveServer
from stressbed.app.plan import RunOptions, plan
from stressbed.app.remote_writer import RemoteWriter
from stressbed.fleet import control
from stressbed.fleet.live import LiveMerge
from stressbed.results.aggregates import Window
from stressbed.results.live_series import LiveSeries
from stressbed.results.sketch import Sketch
from stressbed.thresholds import latency

TOKEN = "bench-live-token"

SCENARIO = """
from stressbed import *
from stressbed.thresholds import error_rate, latency
scenario = Scenario("live_bench", description="full speed on nginx",
    workloads=[Workload("w", get("/", name="root"), ConstantVUs(vus={vus}, duration="{seconds}s"))],
    thresholds=[latency("p(95) < 500ms"), error_rate("< 1%")])
"""


# -- cost ------------------------------------------------------------------------------------


class _Consumers:
    """A scraper of /metrics and a page asking /live.json, once a second each, and a
    remote-write receiver on loopback that takes every push."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.asked = 0
        self.threads = [
            threading.Thread(target=self._ask, args=(path,), daemon=True)
            for path in ("/metrics", "/live.json")
        ]
        for thread in self.threads:
            thread.start()

    def _ask(self, path: str) -> None:
        while not self.stop.wait(1.0):
            try:
                with urllib.request.urlopen(self.url + path, timeout=5) as reply:
                    reply.read()
                    self.asked += 1
            except OSError:
                pass  # not up yet, or gone: asked again next second

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=5)


def _receiver() -> tuple[Any, str]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: PLC0415

    class Take(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Take)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/api/v1/write"


def one_run(folder: Path, target: str, *, live: bool, args: argparse.Namespace) -> float:
    path = folder / "live_bench.py"
    path.write_text(SCENARIO.format(vus=args.vus, seconds=args.seconds))
    the_plan = plan(
        RunOptions(scenario=str(path), target_url=target, runners=args.runners,
                   results=folder / "r")
    )  # fmt: skip
    if not live:
        report = execute(the_plan)
    else:
        series = LiveSeries(lock=threading.Lock())
        page = LivePage(series)
        server = LiveServer(series, page=page)
        series.url = server.url
        httpd, write_url = _receiver()
        writer = RemoteWriter(write_url, series).start()
        consumers = _Consumers(server.url)
        try:
            report = execute(the_plan, live=series, page=page)
        finally:
            consumers.close()
            writer.stop(flush_s=2.0)
            server.close()
            httpd.shutdown()
            httpd.server_close()
        if consumers.asked < args.seconds or writer.stats.pushed < args.seconds // 2:
            raise SystemExit(f"the live path was not used: {consumers.asked} asks, "
                             f"{writer.stats.pushed} pushes")  # fmt: skip
    if report.exit_code not in (0, 1):
        raise SystemExit(f"the run failed: {report.message}")
    reqs = report.fleet.aggregates["http_reqs"]
    return reqs.total / report.fleet.duration_s


def cost(args: argparse.Namespace) -> None:
    off: list[float] = []
    on: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, nginx_target(Path(tmp)) as target:
        for i in range(args.rounds):
            # Alternate which goes first, so neither always meets the machine's state first.
            order = (False, True) if i % 2 == 0 else (True, False)
            got = {}
            for live in order:
                got[live] = one_run(Path(tmp), target, live=live, args=args)
            off.append(got[False])
            on.append(got[True])
            print(f"round {i + 1}: off {got[False]:,.0f} req/s, on {got[True]:,.0f} req/s, "
                  f"on/off {got[True] / got[False]:.3f}", flush=True)  # fmt: skip
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    print(f"median off {statistics.median(off):,.0f} req/s, on {statistics.median(on):,.0f}")
    print(f"median on/off ratio {statistics.median(ratios):.4f} "
          f"(cost {100 * (1 - statistics.median(ratios)):.2f} %), "
          f"ratios {', '.join(f'{r:.3f}' for r in ratios)}")  # fmt: skip


# -- scale -----------------------------------------------------------------------------------


def recorded_window(rng: random.Random, names: int, rate: int) -> dict[str, object]:
    """One runner's second as its snapshot carries it: ``rate`` requests over ``names``
    request names, lognormal latencies, a few failures."""
    window = Window(vus=20.0, vus_max=20.0, iterations=rate)
    for n in range(names):
        sketch = Sketch()
        sketch.extend(rng.lognormvariate(3.0 + n / 4, 0.5) for _ in range(rate // names))
        window.names[f"request-{n}"] = sketch
        window.duration.merge(sketch)
        window.requests += sketch.count
    window.failed = 2
    window.statuses = {"503": 2}
    return window.to_dict()


def _stand_ins(shape: tuple[int, int, int], ports: Any, ready: Any, done: Any) -> None:
    """``count`` control endpoints (``shape``: count, request names, requests a second), each
    serving the second just closed from a recording."""
    count, names, rate = shape
    rng = random.Random(7)
    recorded = [recorded_window(rng, names, rate) for _ in range(8)]
    servers = []
    for i in range(count):

        def take(since: int, i: int = i) -> tuple[dict[str, object], int]:
            latest = int(time.time()) - 1
            windows = {str(t): recorded[(t + i) % len(recorded)]
                       for t in range(max(since + 1, latest - 2), latest + 1)}  # fmt: skip
            return {"windows": windows, "aggregates": {}}, latest

        server = control.ControlServer(
            "127.0.0.1", 0, take, lambda: True, lambda: None, token=TOKEN
        )
        servers.append(server)
        ports.append(server.port)
    ready.set()
    done.wait()
    for server in servers:
        server.close()


def scale(args: argparse.Namespace) -> None:
    manager = multiprocessing.Manager()
    ports, ready, done = manager.list(), manager.Event(), manager.Event()
    child = multiprocessing.Process(
        target=_stand_ins, args=((args.runners, args.names, args.rate), ports, ready, done)
    )
    child.start()
    try:
        if not ready.wait(120):
            raise SystemExit("the stand-in runners never came up")
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        series = LiveSeries(identity={"run_id": "bench", "scenario": "live_bench"},
                            lock=threading.Lock())  # fmt: skip
        series.thresholds = [latency("p(95) < 500ms")]
        page = LivePage(series)
        merge = LiveMerge(len(urls), series)
        since = [0] * len(urls)
        lock = threading.Lock()

        def take(i: int) -> None:
            data = control.snapshot(urls[i], since[i], TOKEN, timeout=5)
            with lock:
                merge.feed(i, data)
            since[i] = int(data["latest"])

        cpu, wall, sizes, parts = [], [], [], []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for tick in range(args.seconds):
                begin_cpu, begin = time.process_time(), time.perf_counter()
                list(pool.map(take, range(len(urls))))
                taken = time.process_time()
                body = series.exposition()
                exposed = time.process_time()
                update = page.update()
                cpu.append(time.process_time() - begin_cpu)
                parts.append((taken - begin_cpu, exposed - taken, time.process_time() - exposed))
                wall.append(time.perf_counter() - begin)
                sizes.append((len(body), len(update)))
                if tick == 0:
                    page.html()  # a browser's first load, once
                time.sleep(max(0.0, 1.0 - (time.perf_counter() - begin)))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        steady = cpu[3:] or cpu
        print(f"{len(urls)} stand-in runners, {args.names} request names, {args.seconds} s; "
              f"{series.seconds()} seconds sealed")  # fmt: skip
        print(f"per second: CPU median {1000 * statistics.median(steady):.1f} ms, "
              f"max {1000 * max(steady):.1f} ms; wall median "
              f"{1000 * statistics.median(wall[3:] or wall):.1f} ms")  # fmt: skip
        take_ms, expose_ms, page_ms = (
            1000 * statistics.median(p[i] for p in parts[3:] or parts) for i in range(3)
        )
        print(f"of which: snapshots taken and merged {take_ms:.1f} ms, /metrics {expose_ms:.1f} "
              f"ms, the page's update {page_ms:.1f} ms (medians)")  # fmt: skip
        print(f"/metrics {sizes[-1][0]:,} bytes, /live.json {sizes[-1][1]:,} bytes; "
              f"peak RSS {peak:,.0f} MiB")  # fmt: skip
        print(json.dumps({"runners": len(urls), "cpu_ms_median": 1000 * statistics.median(steady),
                          "peak_rss_mib": peak}))  # fmt: skip
    finally:
        done.set()
        child.join(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="what", required=True)
    one = sub.add_parser("cost")
    one.add_argument("--rounds", type=int, default=7)
    one.add_argument("--seconds", type=int, default=15)
    one.add_argument("--vus", type=int, default=16)
    one.add_argument("--runners", type=int, default=2)
    two = sub.add_parser("scale")
    two.add_argument("--runners", type=int, default=256)
    two.add_argument("--seconds", type=int, default=30)
    two.add_argument("--names", type=int, default=8)
    two.add_argument("--rate", type=int, default=200, help="requests a second per runner")
    args = parser.parse_args()
    {"cost": cost, "scale": scale}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
