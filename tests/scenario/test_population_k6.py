"""Populations in real k6 against the real reference agent: many agents per VU, split exactly
across runners, connected, checking in on schedule, refused past a limit, registering twice,
and reconnecting after a restart with and without jitter."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from scenarios.agent_population import CHANNEL, HEARTBEAT, REGISTER
from stressbed import Scenario, render
from stressbed.population import (
    Agent,
    WebSocket,
    every,
    population,
    reconnect,
)

from ..agent.helpers import AgentProcess, call
from ..conftest import K6, needs_k6

pytestmark = [needs_k6, pytest.mark.k6]


IDENTITY = {"host": "node-{{agent_index}}", "os": "linux"}
#: k6's exit code when a signal interrupted the run (what it measured is written).
K6_INTERRUPTED = 105


def reference_agent(**kwargs) -> Agent:
    """The shipped scenarios' agent (scenarios.agent_population), checking in every second."""
    fields = {
        "identity": IDENTITY,
        "register": REGISTER,
        "channel": CHANNEL,
        "activities": [every("1s", HEARTBEAT, jitter="10%")],
        "reconnect": reconnect.backoff("500ms", cap="4s", jitter="full"),
    }
    return Agent(**{**fields, **kwargs})


def bundle(tmp_path: Path, *workloads, name: str = "b") -> Path:
    scenario = Scenario("pop", description="a population", workloads=list(workloads))
    return render(scenario, tmp_path / name).script


@pytest.fixture
def target() -> Iterator[AgentProcess]:
    agent = AgentProcess(env={"STRESSBED_AGENT_CHANNEL_TASK_INTERVAL_S": "1"})
    agent.wait_listening()
    try:
        yield agent
    finally:
        agent.stop()


def start_k6(script: Path, url: str, out: Path, *segment: str) -> subprocess.Popen[str]:
    assert K6 is not None
    return subprocess.Popen(
        [
            *(K6, "run", "--quiet", "--no-usage-report", "--no-summary"),
            *("--out", f"csv={out}", *segment, str(script)),
        ],
        env={**os.environ, "K6_NO_USAGE_REPORT": "true", "TARGET_URL": url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> None:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-2000:]


class Samples:
    """k6's CSV sample stream of one or more runners: totals and per-second counts."""

    def __init__(self, *paths: Path) -> None:
        self.rows: list[dict[str, str]] = []
        for path in paths:
            with path.open(newline="") as handle:
                self.rows.extend(csv.DictReader(handle))

    def total(self, metric: str, reason: str | None = None) -> float:
        return sum(
            float(r["metric_value"])
            for r in self.rows
            if r["metric_name"] == metric
            and (reason is None or f"reason={reason}" in r["extra_tags"])
        )

    def values(self, metric: str) -> list[float]:
        return [float(r["metric_value"]) for r in self.rows if r["metric_name"] == metric]

    def per_second(self, metric: str) -> dict[int, float]:
        counts: dict[int, float] = defaultdict(float)
        for r in self.rows:
            if r["metric_name"] == metric:
                counts[int(r["timestamp"])] += float(r["metric_value"])
        return dict(counts)

    def reasons(self, metric: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for r in self.rows:
            if r["metric_name"] == metric:
                found[r["extra_tags"].removeprefix("reason=")] += int(float(r["metric_value"]))
        return found


def test_two_runners_run_each_agent_of_the_population_once(tmp_path: Path, target):
    """Agent i belongs to one VU of one runner: two runners on their execution segments run
    the 600 agents one runner would, each registered once, all connected, all checking in."""
    fleet = population("fleet", reference_agent(), agents=600, join="2s", lasting="5s", per_vu=40)
    script = bundle(tmp_path, fleet)
    sequence = "0,1/2,1"
    outs = [tmp_path / "r0.csv", tmp_path / "r1.csv"]
    runners = [
        start_k6(
            script,
            target.url,
            outs[i],
            "--execution-segment",
            segment,
            "--execution-segment-sequence",
            sequence,
        )
        for i, segment in enumerate(("0:1/2", "1/2:1"))
    ]
    for runner in runners:
        finish(runner)
    seen = call(target.url + "/v1/registrations?ids=1").json()
    assert seen["duplicates"] == 0
    assert sorted(seen["ids"]) == sorted(f"fleet-{i}" for i in range(600))
    assert set(seen["ids"].values()) == {1}
    both = Samples(*outs)
    assert both.total("agents_joined") == 600
    assert both.total("agent_registrations") == 600
    assert both.total("agent_connects") == 600
    assert both.total("agent_connect_failures") == 0
    assert both.total("agent_disconnects", "end") == 600
    # Each runner ran its share, neither the whole.
    assert 0 < Samples(outs[0]).total("agents_joined") < 600
    # Pushed tasks were answered and confirmed: a round trip measured for each.
    assert both.total("agent_commands") > 0
    assert len(both.values("agent_command_rtt")) > 0


def test_check_ins_follow_their_schedule(tmp_path: Path, target):
    """Each agent checks in every second (+-10 %) while connected: the agent service sees as
    many heartbeats as were sent late or on time, and each agent about one a second."""
    fleet = population("fleet", reference_agent(), agents=50, join="0s", lasting="6s", per_vu=50)
    out = tmp_path / "r.csv"
    finish(start_k6(bundle(tmp_path, fleet), target.url, out))
    samples = Samples(out)
    lateness = samples.values("agent_checkin_lateness")
    # 6 s of 1 s check-ins from a random phase: 5 or 6 each, never a burst of catch-ups.
    assert 50 * 4 <= len(lateness) <= 50 * 7
    assert min(lateness) >= 0
    assert sorted(lateness)[int(len(lateness) * 0.99)] < 1000  # an idle VU is on time
    metrics = call(target.url + "/metrics").body.decode()
    received = _metric(metrics, 'agent_channel_messages_total{direction="in",type="heartbeat"}')
    assert received == len(lateness)


def test_the_service_refusing_past_its_limit_is_a_handshake_failure(tmp_path: Path):
    """Past its connection limit the agent answers the upgrade with 503: those agents fail to
    connect (reason "handshake"), and with no reconnect they give up."""
    agent = AgentProcess(env={"STRESSBED_AGENT_MAX_CONNECTIONS": "100"})
    agent.wait_listening()
    try:
        fleet = population(
            "fleet",
            reference_agent(reconnect=reconnect.none()),
            agents=150,
            join="1s",
            lasting="4s",
            per_vu=50,
        )
        out = tmp_path / "r.csv"
        finish(start_k6(bundle(tmp_path, fleet), agent.url, out))
    finally:
        agent.stop()
    samples = Samples(out)
    assert samples.total("agent_connects") == 100
    assert samples.reasons("agent_connect_failures") == Counter({"handshake": 50})
    assert samples.total("agent_gave_up") == 50
    assert samples.total("agent_registrations") == 150  # registered, then refused a channel


class SlowRefusal:
    """A service that holds each WebSocket upgrade ``hold_s`` and then refuses it (503)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held += 1
            threading.Thread(target=self._refuse, args=(conn,), daemon=True).start()

    def _refuse(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                if self._stop.wait(self.hold_s):
                    return
                conn.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass  # the runner gave up on this upgrade first: nothing to answer

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(timeout=5)


def test_handshakes_in_flight_at_a_timeout_or_the_end_do_not_hold_the_runner(tmp_path: Path):
    """A service that answers each upgrade only after 1.5 s, and then with 503: one population
    gives up on its handshakes after 300 ms (its connect timeout), the other ends with its
    handshakes in flight. k6 1.1 blocks a VU for good when a socket is closed in its handshake
    and that handshake then fails; the runner must not: it finishes, counting the timeouts."""
    service = SlowRefusal(hold_s=1.5)
    quick = Agent(
        identity=IDENTITY,
        channel=WebSocket("/v1/channel", connect_timeout="300ms"),
        reconnect=reconnect.backoff("100ms", cap="200ms"),
    )
    patient = Agent(identity=IDENTITY, channel=WebSocket("/v1/channel"), reconnect=reconnect.none())
    try:
        timeouts = population("timeouts", quick, agents=20, lasting="3s", per_vu=20)
        ending = population("ending", patient, agents=20, join="500ms", lasting="1s", per_vu=20)
        out = tmp_path / "r.csv"
        finish(start_k6(bundle(tmp_path, timeouts, ending), service.url, out), timeout=90)
    finally:
        service.close()
    samples = Samples(out)
    assert samples.total("agent_connects") == 0
    assert samples.reasons("agent_connect_failures")["timeout"] >= 20
    assert service.held >= 40


def test_the_service_sees_duplicate_registrations(tmp_path: Path, target):
    """Two populations claiming the same ids: every second registration is a duplicate the
    agent service counts."""
    twin = reference_agent(identity={**IDENTITY, "agent_id": "node-{{agent_index}}"})
    first = population("first", twin, agents=40, lasting="2s", per_vu=40)
    second = population("second", twin, agents=40, lasting="2s", per_vu=40)
    finish(start_k6(bundle(tmp_path, first, second), target.url, tmp_path / "r.csv"))
    seen = call(target.url + "/v1/registrations?ids=1").json()
    assert seen["count"] == 40
    assert seen["duplicates"] == 40
    assert set(seen["ids"].values()) == {2}


def _storm(tmp_path: Path, jitter: str) -> dict[int, float]:
    """400 agents connected; the service restarted (it drains: 1001 to every channel, then a
    new process on the same port); the agents' reconnects per second afterwards. The run
    ends (k6 interrupted: it writes what it measured) once the new process has all 400
    back, however long the restart took on a busy machine."""
    agent = AgentProcess()
    agent.wait_listening()
    fleet = population(
        "fleet",
        reference_agent(reconnect=reconnect.backoff("8s", cap="16s", jitter=jitter)),
        agents=400,
        lasting="3m",  # an upper bound: the run is interrupted once all are back
        per_vu=100,
    )
    out = tmp_path / f"{jitter}.csv"
    runner = start_k6(bundle(tmp_path, fleet, name=jitter), agent.url, out)
    try:
        _wait_connected(agent.url, 400, deadline_s=60)
        agent.stop()  # SIGTERM: every channel closed with 1001 "going away"
        agent = _agent_on(agent.port)
        _wait_connected(agent.url, 400, deadline_s=90)
        # The service has all 400 back; k6 counts a reconnect once the welcome is read, and
        # writes it to its CSV a flush later: wait for all 400 there before interrupting.
        _wait_counted(out, "agent_reconnects", 400, deadline_s=60)
        runner.send_signal(signal.SIGINT)
        _, err = runner.communicate(timeout=60)
        assert runner.returncode == K6_INTERRUPTED, err[-2000:]
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.communicate()
        agent.stop()
    samples = Samples(out)
    # A drain's 1001 "going away" (k6 says "closed" of 1000 and 1001 alike).
    assert samples.reasons("agent_disconnects")["closed"] == 400
    assert samples.total("agent_reconnects") == 400
    return samples.per_second("agent_reconnects")


class _AgentOn(AgentProcess):
    """A reference agent on a given port: a replica started again where it listened."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stressbed_agent", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )


def _agent_on(port: int) -> AgentProcess:
    agent = _AgentOn(port)
    agent.wait_listening()
    return agent


def _wait_connected(url: str, count: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        metrics = call(url + "/metrics").body.decode()
        if _metric(metrics, "agent_channel_connected") >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{count} agents did not connect in {deadline_s} s")


def _wait_counted(path: Path, metric: str, count: int, deadline_s: float) -> None:
    """Until k6's CSV stream at ``path`` holds ``count`` of ``metric`` (a bounded wait)."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        total = 0.0
        with contextlib.suppress(OSError), path.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("metric_name") == metric:
                    with contextlib.suppress(TypeError, ValueError):  # a line half written
                        total += float(row["metric_value"])
        if total >= count:
            return
        time.sleep(0.25)
    raise AssertionError(f"k6 wrote {count} {metric} within {deadline_s} s: not so")


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_full_jitter_spreads_the_reconnect_storm(tmp_path: Path):
    """The same 400 agents, the same seed, the service restarted once: without jitter every
    agent comes back in the same instant; with full jitter the peak is under half of that."""
    unjittered = max(_storm(tmp_path, "none").values())
    jittered = max(_storm(tmp_path, "full").values())
    assert unjittered >= 200  # all 400 at one instant: at worst split over two seconds
    assert jittered < unjittered / 2, (jittered, unjittered)
