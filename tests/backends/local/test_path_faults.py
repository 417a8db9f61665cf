"""Faults on the path to a service stressbed does not run (``--target-url``): the local
balancer goes in front of it, the fleet through it, and 200 ms of latency shows in the fault's
window only; nothing of it is left after the run. Faults that need a replica stay refused."""

from __future__ import annotations

import json
import socket
import time

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.errors import ConfigError

from ... import leftovers
from ...conftest import needs_k6

SCENARIO = """
from stressbed import ConstantArrivalRate, Scenario, Workload, fault, get, latency
scenario = Scenario(
    "path",
    description="a slow path to someone else's service",
    workloads=[Workload("w", get("/ping", name="ping"),
        ConstantArrivalRate(rate=20, duration="9s", pre_allocated_vus=10, max_vus=40))],
    thresholds=[latency("p(95) < 1s")],
    faults=[%s],
)
"""


def _balancers(since: leftovers.Snapshot) -> list[str]:
    """The balancers this test started that are still there (another test session's on the
    machine are not its)."""
    return [p.what for p in leftovers.processes(since.ticks).values() if "balancer" in p.what]


@needs_k6
def test_latency_on_the_path_to_an_existing_service(tmp_path, server):
    path = tmp_path / "path.py"
    path.write_text(SCENARIO % 'fault.latency("200ms", at="3s", lasting="3s")')
    before = leftovers.snapshot()
    options = RunOptions(
        scenario=str(path), target_url=server.url, runners=1, results=tmp_path / "r"
    )
    report = execute(plan(options))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    (slow,) = summary["resilience"]["faults"]
    assert slow["applied"], slow
    assert slow["how"] == "a latency toxic in the balancer"
    assert slow["during"]["p50_ms"] - slow["baseline"]["p50_ms"] >= 150
    assert slow["baseline"]["p50_ms"] < 100
    ended = [e for e in summary["events"] if e["event"] == "fault-ended"]
    assert [e["reason"] for e in ended] == ["its end"]
    # The fleet went through the balancer in front; the service saw every request.
    assert summary["stack"]["url"] == server.url
    assert summary["stack"]["through"].startswith("http://127.0.0.1:")
    assert sum(1 for r in server.received if r.path == "/ping") >= 100
    assert _balancers(before) == []  # nothing of it is left


@needs_k6
@pytest.mark.parametrize(
    ("declared", "url", "field", "expected"),
    [
        ('fault.kill(at="3s")', "http://127.0.0.1:9", "faults.kill", "a provisioned stack"),
        (
            'fault.latency("1ms", at="3s", lasting="1s")',
            "https://127.0.0.1:9",
            "faults.latency",
            "a plain-http --target-url",
        ),
        (
            'fault.loss("5%", replicas=1, at="3s", lasting="1s")',
            "http://127.0.0.1:9",
            "faults.loss.replicas",
            "none with --target-url",
        ),
    ],
)
def test_what_the_path_cannot_hold_is_refused(tmp_path, declared, url, field, expected):
    path = tmp_path / "path.py"
    path.write_text(SCENARIO % declared)
    with pytest.raises(ConfigError) as caught:
        plan(RunOptions(scenario=str(path), target_url=url, results=tmp_path / "r"))
    assert caught.value.field == field
    assert caught.value.expected.startswith(expected)


@needs_k6
def test_a_bandwidth_limit_on_the_path_holds_every_answer_to_the_rate(tmp_path, server):
    body = b"x" * 50_000  # at 100 KB/s: half a second an answer, at the least
    server.routes["/ping"] = lambda _req: (200, {"Content-Type": "text/plain"}, body)
    path = tmp_path / "path.py"
    path.write_text(SCENARIO % 'fault.bandwidth("100KB/s", at="3s", lasting="4s")')
    options = RunOptions(
        scenario=str(path), target_url=server.url, runners=1, results=tmp_path / "r"
    )
    report = execute(plan(options))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    (slow,) = summary["resilience"]["faults"]
    assert slow["how"].startswith("a bandwidth toxic in the balancer")
    assert slow["during"]["p50_ms"] >= 450
    assert slow["baseline"]["p50_ms"] < 200


def test_the_balancer_process_holds_a_close_for_a_slow_close_toxic(tmp_path):
    from stressbed.backends.local.balancer_pool import BalancerProcess  # noqa: PLC0415

    upstream = socket.create_server(("127.0.0.1", 0))
    balancer = BalancerProcess()
    try:
        balancer.add("u", "127.0.0.1", upstream.getsockname()[1])
        balancer.set_ready("u", True)
        balancer.add_toxic("slow", "slow_close", None, close_s=0.6)
        time.sleep(0.2)  # the process reads its commands in order: the toxic is in first
        client = socket.create_connection(("127.0.0.1", balancer.port), timeout=10)
        started = time.monotonic()
        accepted, _ = upstream.accept()
        accepted.sendall(b"hello")
        accepted.close()  # the upstream closes at once...
        got = b""
        while chunk := client.recv(100):
            got += chunk
        took = time.monotonic() - started  # ...the client sees the close 0.6 s later
        client.close()
    finally:
        balancer.close()
        upstream.close()
    assert got == b"hello"
    assert took >= 0.6
