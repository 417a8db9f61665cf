"""A population's probe judged from per-second windows built to show each verdict: held,
failed on its connected share or on an agent that gave up, invalid when k6 ran out of open
files or CPU; trends judged where they happen, and "no data" never a failure or a 0."""

from __future__ import annotations

from stressbed.results.agents import AgentWindow
from stressbed.results.aggregates import Window
from stressbed.results.population_probe import judge_population, open_files_errors
from stressbed.results.probe import ProbeSetup
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.scenario.capacity import parse_slo
from stressbed.thresholds import checkin_lateness, connect_time, connected

T0 = 1_000_000
SLOS = [connected(">= 99%"), checkin_lateness("p(99) < 2s"), connect_time("p(99) < 1s")]


def agents_of(
    count: int,
    held: int,
    seconds: int = 12,
    *,
    connect_ms: float = 20.0,
    late_ms: float = 5.0,
    gave_up: int = 0,
) -> dict[int, Window]:
    """``count`` agents joining in the first second, ``held`` of them connected at once (the
    others refused with 'handshake' every second), checking in each second after."""
    windows = {}
    for i in range(seconds):
        agents = AgentWindow()
        if i == 0:
            agents.joined = count
            agents.connects = held
            agents.connect_time.extend([connect_ms] * held)
        if count > held:
            agents.connect_attempts = count - held
            agents.connect_failures = {"handshake": count - held}
        if i == seconds - 1:
            agents.gave_up = gave_up
        if i > 0:
            agents.checkin_lateness.extend([late_ms] * held)
        windows[T0 + i] = Window(agents=agents)
    return windows


def judged(windows, slos=SLOS, count=400, **kw):
    setup = ProbeSetup(3, count, 1, step_s=10.0, warmup_s=2.0, max_vus=2)
    return judge_population(setup, windows, T0 + 0.0, join_s=1.0, slos=slos, **kw)


def test_every_agent_connected_holds():
    probe = judged(agents_of(400, 400))
    assert probe.status == "held", probe.reasons
    assert probe.steady == (T0 + 3, T0 + 10)
    assert probe.figures["connected_share"] == 1.0
    assert probe.figures["peak_connected"] == 400
    assert probe.figures["agents"] == 400
    assert probe.conditions == {
        "runner_cpu": True,
        "runner_open_files": True,
        "slo:connected>=99%": True,
        "slo:checkin_lateness p(99)<2000ms": True,
        "slo:connect_time p(99)<1000ms": True,
        "gave_up": True,
    }


def test_agents_the_target_refused_fail_the_connected_share():
    probe = judged(agents_of(400, 300))
    assert probe.status == "failed"
    assert probe.reasons == ["connected>=99%: 75.00%"]
    assert probe.figures["connected_share"] == 0.75
    assert probe.figures["connect_failures_by_reason"] == {"handshake": 100 * 12}


def test_connect_time_is_judged_over_the_join_where_connections_are_made():
    # Every connect falls in the first second, before the steady window: still judged.
    probe = judged(agents_of(400, 400, connect_ms=1500.0))
    assert probe.status == "failed"
    assert probe.reasons == ["connect_time p(99)<1000ms: 1,500.0 ms"]


def test_late_check_ins_in_the_steady_window_fail():
    probe = judged(agents_of(400, 400, late_ms=3000.0))
    assert probe.reasons == ["checkin_lateness p(99)<2000ms: 3,000.0 ms"]


def test_an_agent_that_gave_up_fails_the_probe():
    probe = judged(agents_of(400, 400, gave_up=1))
    assert probe.status == "failed"
    assert probe.conditions["gave_up"] is False
    assert probe.reasons == ["1 agent(s) gave up reconnecting"]


def test_a_trend_without_a_sample_is_not_judged_and_says_no_data():
    slos = [*SLOS, parse_slo("command_rtt p(99)<500ms"), parse_slo("p(95)<300ms")]
    probe = judged(agents_of(400, 400), slos=slos)
    assert probe.status == "held"
    no_data = [s for s in probe.slos if s["no_data"]]
    assert [s["slo"] for s in no_data] == ["command_rtt p(99)<500ms", "p(95)<300ms"]
    assert all(s["observed"] is None for s in no_data)
    assert probe.figures["command_rtt_p99_ms"] is None
    assert probe.figures["error_rate"] is None  # no request: not measured, never 0


def test_k6_out_of_open_files_makes_the_probe_invalid():
    line = 'level=warning msg="Request Failed" error="dial tcp: socket: too many open files"'
    runner = RunnerResult(
        0, 1, "0:1", RunnerStatus.OK, 0, T0, T0 + 12, stderr_tail=[line] * 3
    )  # fmt: skip
    errors = open_files_errors([runner])
    assert errors == 3
    assert open_files_errors([runner], ["too many open files\ntoo many open files"] * 4) == 8
    probe = judged(agents_of(400, 300), runners=[runner], open_files=errors)
    assert probe.status == "invalid"
    assert probe.reasons[0].startswith("k6 ran out of open files (3 'too many open files' in its")
    assert probe.conditions["runner_open_files"] is False


def test_a_runner_at_its_cpu_limit_makes_the_probe_invalid():
    runner = RunnerResult(
        0, 1, "0:1", RunnerStatus.OK, 0, T0, T0 + 12,
        cpu={T0 + i: 0.97 for i in range(14)}, cpu_capacity=1.0,
    )  # fmt: skip
    probe = judged(agents_of(400, 400), runners=[runner])
    assert probe.status == "invalid"
    assert probe.figures["runner_cpu_share"] == 0.97
    assert "the load generator is the limit" in probe.reasons[0]


def test_a_probe_with_no_agent_wanted_is_an_error():
    probe = judged({T0 + i: Window() for i in range(12)})
    assert probe.status == "error"
    assert probe.reasons == ["nothing was measured in the steady window (no agent wanted)"]
    assert judged({}, count=400).status == "error"
