"""The live endpoint during a real run: real k6 runners against a recording server on loopback,
``/metrics`` scraped while they run and once they have ended. The counters only grow, and at
the end they equal summary.json's counts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stressbed.app.execute import execute
from stressbed.app.live_server import LiveServer
from stressbed.app.plan import RunOptions, plan
from stressbed.fleet.process import free_port
from stressbed.results.compare import fingerprint_digest
from stressbed.results.live_series import LiveSeries
from stressbed.results.remote_write import Series, write_request

from ..conftest import needs_k6

SCENARIO = """
from stressbed import *
scenario = Scenario('live', description='live', workloads=[
    Workload('w', get('/ok', name='ok'), ConstantArrivalRate(rate=40, duration='8s',
                                                            pre_allocated_vus=4))])
"""


def scrape(url: str) -> dict[str, float]:
    """The exposition's samples, by name and labels (the run's identity left out)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            extra = ",".join(
                f"{k}={v}"
                for k, v in sorted(sample.labels.items())
                if k not in ("run_id", "fingerprint")
            )
            out[f"{sample.name}{{{extra}}}"] = sample.value
    return out


@needs_k6
def test_a_run_s_live_counters_grow_while_it_runs_and_end_equal_to_its_summary(server, tmp_path):
    path = tmp_path / "live.py"
    path.write_text(SCENARIO)
    series = LiveSeries(lock=threading.Lock())  # sealed by the fleet, read by the server
    reports = []
    options = RunOptions(
        scenario=str(path), target_url=server.url, runners=2, results=tmp_path / "r"
    )
    with LiveServer(series) as live:
        run = threading.Thread(target=lambda: reports.append(execute(plan(options), live=series)))
        run.start()
        seen: list[float] = []
        deadline = time.monotonic() + 120
        while run.is_alive() and time.monotonic() < deadline:  # bounded by the run's end
            seen.append(
                scrape(live.url).get("stressbed_http_requests_total{request=ok,scenario=live}", 0.0)
            )
            time.sleep(0.5)
        run.join(timeout=60)
        end = scrape(live.url)
        with urllib.request.urlopen(live.url + "/metrics", timeout=10) as reply:
            text = reply.read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(live.url + "/elsewhere", timeout=10)
    (report,) = reports
    assert report.exit_code == 0, report.message
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    total = summary["metrics"]["http_reqs"]["count"]
    # Seen while it ran: a count that grew (a second sealed once every runner had closed it).
    assert any(0 < n < total for n in seen), seen
    assert seen == sorted(seen)
    # At the end, the fleet's counts exactly.
    latency = "stressbed_http_request_duration_seconds"
    assert end["stressbed_http_requests_total{request=ok,scenario=live}"] == total
    assert end[f"{latency}_count{{request=ok,scenario=live}}"] == total
    assert end[f"{latency}_bucket{{le=+Inf,request=ok,scenario=live}}"] == total
    # Every series carries the run's identity, what ran as a digest of its fingerprint too.
    digest = fingerprint_digest(summary["fingerprint"])
    assert text.count(f'fingerprint="{digest}"') == text.count("run_id=") > 0


def stressbed_run(
    tmp_path,
    server,
    *args: str,
    ci: str = "",
    seconds: str = "2s",
    env: dict[str, str] | None = None,
    scenario: str = SCENARIO,
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "live.py"
    path.write_text(scenario)
    return subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--scenario", str(path), "--target-url",
         server.url, "--duration", seconds, "--results", str(tmp_path / "r"), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true", "CI": ci, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("nope", "--live: got 'nope'; expected HOST:PORT"),
        ("127.0.0.1:99999", "--live: got '127.0.0.1:99999'; expected HOST:PORT"),
        ("192.0.2.1:0", "--live: got '192.0.2.1:0'; expected an address this machine can serve"),
    ],
)
def test_a_bad_live_address_is_one_line_and_exit_2_before_anything_runs(tmp_path, given, says):
    done = subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--target-url", "http://127.0.0.1:9",
         "--live", given, "--results", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    errors = [x for x in done.stderr.splitlines() if x.startswith("stressbed: error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith(f"stressbed: error: {says}"), errors
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "r").exists()


PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="no prometheus on PATH (Debian's prometheus; .ci/run installs it)"
)


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str | None = None) -> Iterator[str]:
    """A real Prometheus on loopback scraping ``target`` (host:port) every second, its
    remote-write receiver on; its URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    scrape = (
        f"  - {{job_name: stressbed, static_configs: [{{targets: ['{target}']}}]}}\n"
        if target
        else "  []\n"
    )
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n" + scrape
    )
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}", "--web.enable-remote-write-receiver"],
        stdout=subprocess.DEVNULL, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until it says it is ready
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url + "/-/ready", timeout=2) as reply,
            ):
                if reply.status == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError((tmp_path / "prometheus.log").read_text()[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query_range(url: str, expression: str, start: float, end: float) -> list[dict[str, Any]]:
    params = {"query": expression, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
    address = f"{url}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(address, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def query(url: str, expression: str, at: float | None = None) -> list[dict[str, Any]]:
    """``expression`` now, or ``at`` (unix time): once a target is gone, Prometheus marks its
    series stale at the next scrape, and a query after that finds nothing of them."""
    params = {"query": expression, **({"time": f"{at:.3f}"} if at is not None else {})}
    address = f"{url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(address, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


@needs_prometheus
def test_a_real_prometheus_takes_the_remote_write_body_as_written(tmp_path):
    now_ms = int(time.time() * 1000)
    long_value = "x" * 300  # a label past one-byte and two-byte literal tags
    series = [
        Series({"__name__": "stressbed_probe_total", "run_id": "rw", "i": str(i)},
               [(float(i), now_ms - 2000), (i + 0.5, now_ms - 1000)])
        for i in range(2000)  # a body of several 64 KiB literals
    ] + [Series({"__name__": "stressbed_probe_long", "run_id": "rw", "v": long_value},
                [(-1.25, now_ms)])]  # fmt: skip
    body = write_request(series)
    assert len(body) > 2 * 65536
    with prometheus(tmp_path) as url:
        request = urllib.request.Request(
            url + "/api/v1/write",
            data=body,
            method="POST",
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.status == 204
        got = query(url, 'stressbed_probe_total{run_id="rw"}')
        assert len(got) == 2000
        assert {r["metric"]["i"]: float(r["value"][1]) for r in got} == {
            str(i): i + 0.5 for i in range(2000)
        }
        (long,) = query(url, 'stressbed_probe_long{run_id="rw"}')
        assert (long["metric"]["v"], float(long["value"][1])) == (long_value, -1.25)
        # Bodies under 60 bytes, under 256 and over: each literal tag's form.
        for pad, low, high in ((0, 0, 60), (120, 60, 256), (900, 256, 65536)):
            one = write_request([Series({"__name__": "s", "p": "y" * pad}, [(1.0, now_ms)])])
            assert low < len(one) < high
            posted = urllib.request.Request(url + "/api/v1/write", data=one, method="POST",
                                            headers=dict(request.headers))  # fmt: skip
            with urllib.request.urlopen(posted, timeout=30) as reply:
                assert reply.status == 204
        assert len(query(url, "s")) == 3


@needs_k6
@needs_prometheus
def test_a_run_pushed_by_remote_write_reaches_prometheus_with_its_counts(server, tmp_path):
    with prometheus(tmp_path) as url:
        done = stressbed_run(
            tmp_path, server, "--no-live", "--remote-write", url + "/api/v1/write",
            seconds="5s", env={"STRESSBED_REMOTE_WRITE_BEARER_TOKEN": "rw-sekret-7"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (said,) = [x for x in done.stderr.splitlines() if x.startswith("stressbed: remote")]
        assert said.endswith(" 0 retried, 0 dropped"), said
        summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
        pushed = summary["live"]["remote_write"]  # what the push did, in the summary too
        assert pushed["pushed"] >= 2
        assert (pushed["retried"], pushed["dropped"], pushed["last_error"]) == (0, 0, None)
        run = f'run_id="{summary["run_id"]}"'
        (requests,) = query(url, f"sum(stressbed_http_requests_total{{{run}}})")
        assert float(requests["value"][1]) == summary["metrics"]["http_reqs"]["count"]
    # The credential came from the environment and went nowhere else.
    assert "rw-sekret-7" not in done.stdout + done.stderr
    written = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert not [p for p in written if b"rw-sekret-7" in p.read_bytes()]


@needs_k6
def test_receivers_that_are_not_there_do_not_fail_the_run(server, tmp_path):
    """Nothing listens where the push and the alerts go: the run passes, and says so."""
    gone = f"http://127.0.0.1:{free_port()}"
    done = stressbed_run(
        tmp_path, server, "--no-live", "--remote-write", f"{gone}/api/v1/write",
        "--notify", f"{gone}/hook",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (said,) = [x for x in done.stderr.splitlines() if x.startswith("stressbed: remote")]
    assert said.startswith("stressbed: remote write: 0 pushed, "), said
    assert "ConnectionRefusedError" in said or "URLError" in said, said
    (told,) = [x for x in done.stderr.splitlines() if x.startswith("stressbed: notify")]
    assert told.startswith("stressbed: notify: 0 sent, 1 not delivered (last error:"), told
    summary = json.loads((tmp_path / "r" / "latest" / "summary.json").read_text())
    assert summary["live"]["notify"]["not_delivered"] == 1
    assert summary["live"]["remote_write"]["pushed"] == 0


def test_credentials_in_the_receiver_url_are_refused_before_anything_runs(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--target-url", "http://127.0.0.1:9",
         "--remote-write", "https://user:pw@example.invalid/api/v1/write",
         "--results", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "stressbed: error: --remote-write: got '(a URL with credentials)'" in done.stderr
    assert "pw@" not in done.stderr
    assert not (tmp_path / "r").exists()
