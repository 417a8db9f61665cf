"""``stressbed capacity`` end to end with real k6: against a target whose capacity is known by
construction (C requests at a time, S ms each: C/S req/s), against one far faster than the
runners can drive, and against the reference agent on the local backend; its report in the
browser; and bad input refused before anything starts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest

from stressbed.app.capacity_plan import CapacityOptions, plan_capacity
from stressbed.app.cli import main
from stressbed.app.plan import RunOptions
from stressbed.backends import registry
from stressbed.backends.base import Capability
from stressbed.backends.local.fleet import runner_cgroup
from stressbed.errors import ConfigError
from stressbed.fleet.process import free_port
from stressbed.results.schemas import CAPACITY
from stressbed.testing import FakeBackend

from .. import leftovers
from ..browser import needs_browser
from ..conftest import needs_k6
from .test_execute import STUBBORN, alive, children_running, nothing_left_of

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = '''
"""One GET of the work route."""
from stressbed import Capacity, ConstantArrivalRate, Scenario, Workload, get

scenario = Scenario(
    "known_capacity",
    description="one GET of a target with a known capacity",
    workloads=[
        Workload(
            "work",
            get("/work", name="work"),
            ConstantArrivalRate(rate=10, duration="10s", pre_allocated_vus=5),
        )
    ],
)
capacity = Capacity(slos=["p(50)<100ms"], step_duration="8s", warmup="3s", budget="5m")
'''


class Target:
    """tests/capacity_target.py in a process of its own, on a free loopback port."""

    def __init__(
        self, concurrency: int, service_ms: float, mode: str = "queue", queue: int = 0
    ) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.capacity_target",
                *("--concurrency", str(concurrency), "--service-ms", str(service_ms)),
                *("--mode", mode, "--queue", str(queue)),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "known_capacity.py"
    path.write_text(SCENARIO)
    return path


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, str]:
    """One search against C=4, S=20 ms (200 req/s) with the declaration's short steps.

    Its SLO is on the median: a load generator late by 100 ms on a busy machine sends a burst
    that queues for a second at 90% of the capacity, enough to break a p95 of 100 ms but not
    the median, while a rate over the capacity queues without end and breaks both."""
    base = tmp_path_factory.mktemp("known")
    (base / "known_capacity.py").write_text(SCENARIO)
    target = Target(4, 20.0)
    try:
        code, document, err = _capacity(
            base,
            "--scenario", str(base / "known_capacity.py"),
            "--target-url", target.url,
            "--min-rate", "120",
            "--max-rate", "1000",
            "--resolution", "40",  # 180..240 is close enough: 120, 240, 180 and two trials
        )  # fmt: skip
    finally:
        target.stop()
    return code, document, err


class _Watcher:
    """Asks a live server for /metrics and /live.json twice a second until stopped."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.metrics: list[str] = []
        self.updates: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(self.url + "/metrics", timeout=5) as reply:
                    self.metrics.append(reply.read().decode())
                with urllib.request.urlopen(self.url + "/live.json", timeout=5) as reply:
                    self.updates.append(json.loads(reply.read()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _capacity(base: Path, *args: str) -> tuple[int, dict, str]:
    """``stressbed capacity ARGS`` in a process of its own: exit code, capacity.json, output
    (capacity.json's ``path`` added)."""
    results = base / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "stressbed", "capacity", "--results", str(results), *args],
        cwd=base,  # no profile file: the options are all there is
        capture_output=True,
        check=False,
        text=True,
        timeout=900,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
    )
    found = sorted(p for p in results.glob("*/capacity.json") if p.parent.name != "latest")
    document = json.loads(found[-1].read_text()) if found else {}
    if found:
        document["path"] = str(found[-1])
    return proc.returncode, document, proc.stderr + proc.stdout


@needs_k6
def test_the_search_finds_a_known_capacity_and_names_the_target(known):
    code, document, out = known
    assert code == 0, out
    assert 180 <= document["max_sustainable_rate"] <= 220, out
    assert document["limited_by"] == "target"
    low, high = document["interval"]
    assert low == document["max_sustainable_rate"] < high == document["first_failing_rate"]
    assert document["elapsed_s"] <= document["settings"]["budget_s"]
    for key in ("max_sustainable_rate", "first_failing_rate", "limited_by", "cause", "knee"):
        assert key in document
    # Without a stack, the cause rests on what the client saw: a fixed service rate.
    assert document["cause"]["kind"] == "saturation"
    assert document["answer"].startswith(f"capacity: {low:,} req/s")
    assert "capacity: " in out  # the table's answer line in the terminal
    # Every field a real search writes is named in the documentation's capacity.json
    # paragraph (a field added without its documentation fails here).
    page = (Path(__file__).parent.parent.parent / "docs" / "reference" / "results.md").read_text()
    (said,) = [p for p in page.split("\n\n") if p.startswith("capacity.json (`format`")]
    assert [k for k in document if k != "path" and f"`{k}`" not in said] == []
    # ... and the document is what its schema says (the schema the site publishes).
    jsonschema.validate({k: v for k, v in document.items() if k != "path"}, CAPACITY)


@needs_k6
def test_every_probe_is_a_run_of_its_own_judged_on_its_steady_window(known):
    _, document, _ = known
    probes = document["probes"]
    assert probes[0]["rate"] == 120
    assert probes[0]["status"] == "held"
    assert all(p["status"] in ("held", "failed") for p in probes)
    # Bracketing doubles from the lowest rate; the last two repeat the boundary.
    assert probes[1]["rate"] == 240
    assert [p["trial"] for p in probes[-2:]] == [2, 2]
    failed = [p for p in probes if p["status"] == "failed"]
    assert all(p["reasons"] for p in failed)
    for probe in probes:
        assert probe["steady"][1] - probe["steady"][0] + 1 == probe["seconds"] >= 3
        assert set(probe["conditions"]) >= {"achieved", "latency_trend", "slo:p(50)<100ms"}


@needs_k6
def test_a_target_that_rejects_what_it_cannot_serve_is_named_backpressure(tmp_path, scenario_file):
    # 40 slots of 200 ms (200 req/s) and a queue of 10: a burst that a busy machine bunches
    # together (k6 late by 100 ms at 180 req/s) fits in the free slots and the queue, a rate
    # over 200 req/s fills them and is shed; the queue adds at most 50 ms, so latency stays
    # flat. From 120 req/s the search probes 240 and 180 (twice each), well clear of 200.
    target = Target(40, 200.0, mode="reject", queue=10)
    try:
        code, document, out = _capacity(
            tmp_path,
            "--scenario", str(scenario_file),
            "--target-url", target.url,
            "--slo", "error_rate<1%",
            "--min-rate", "120",
            "--max-rate", "1000",
            "--step-duration", "6s",
            "--warmup", "2s",
            "--resolution", "40",
            "--no-confirm",
        )  # fmt: skip
    finally:
        target.stop()
    assert code == 0, out
    assert 150 <= document["max_sustainable_rate"] <= 220, out
    assert document["failure"]["slo"] == "error_rate<1%"
    assert document["cause"]["kind"] == "backpressure"
    assert "503" in document["cause"]["message"]


@needs_k6
def test_a_target_faster_than_the_runners_can_drive_reports_the_generator(tmp_path, scenario_file):
    trial = runner_cgroup("trial", 100)
    if trial is None:
        pytest.skip("cgroups are not writable here: no --runner-cpu for local runners")
    trial.remove()
    target = Target(100_000, 0.0)
    try:
        code, document, out = _capacity(
            tmp_path,
            "--scenario", str(scenario_file),
            "--target-url", target.url,
            "--runners", "2",
            "--runner-cpu", "150m",
            "--min-rate", "240",  # 150m drives about 500 req/s: 240, 480, then the limit
            "--step-duration", "6s",
            "--warmup", "2s",
        )  # fmt: skip
    finally:
        target.stop()
    assert document["limited_by"] == "generator", out
    assert document["cause"]["kind"] == "generator"
    invalid = document["probes"][-1]
    assert invalid["status"] == "invalid"
    assert invalid["runner_cpu_share"] >= 0.9 or invalid["conditions"]["vu_pool"] is False
    if document["max_sustainable_rate"] is not None:
        assert code == 0, out
        assert "at least" in document["answer"]
        assert "load generator" in document["answer"]
    else:  # the first probe was already more than the runners could offer
        assert code == 3, out


JOURNEY = '''
"""Two GETs of the work route, 3 s apart."""
from stressbed import ConstantArrivalRate, Scenario, Workload, get, journey, think_constant

scenario = Scenario(
    "thinking",
    description="a journey that pauses longer than the latency headroom",
    workloads=[
        Workload(
            "visit",
            journey(get("/work"), get("/work"), think=think_constant("3s")),
            ConstantArrivalRate(rate=5, duration="10s", pre_allocated_vus=5),
        )
    ],
)
'''


@needs_k6
def test_a_journey_with_think_time_is_not_blamed_on_the_generator(tmp_path):
    # 20 iterations/s of a 3 s journey keep about 60 VUs busy against a target with room to
    # spare. A pool sized from the latency alone (17 VUs for p(50)<100ms) ran out at once,
    # and the search said "the load generator was the limit" (exit 3).
    (tmp_path / "thinking.py").write_text(JOURNEY)
    target = Target(200, 5.0)
    try:
        code, document, out = _capacity(
            tmp_path,
            "--scenario", str(tmp_path / "thinking.py"),
            "--target-url", target.url,
            "--slo", "p(50)<100ms",
            "--min-rate", "20",
            "--max-rate", "20",
            "--step-duration", "10s",
        )  # fmt: skip
    finally:
        target.stop()
    assert code == 0, out
    (probe,) = document["probes"]
    assert probe["status"] == "held", out
    assert probe["conditions"]["vu_pool"] is True
    assert document["limited_by"] == "max_rate"
    assert document["settings"]["warmup_s"] >= 3.2  # the longest iteration has passed
    assert 50 <= probe["vus_active"] <= 70  # 20/s x 3 s, Little's law
    assert probe["concurrency_littles_law"] < 2  # the requests themselves take milliseconds


@needs_k6
@needs_browser
def test_the_report_shows_the_answer_the_cause_and_every_probe(known, browser, tmp_path):
    _, document, _ = known
    page = browser.open(Path(document["path"]).parent / "report.html", tmp_path / "capacity.png")
    assert page.errors() == []
    assert {url.split(":", 1)[0] for url in page.requests} <= {"file", "data"}
    assert page.text("#answer") == [document["answer"]]
    assert document["cause"]["message"] in page.text("#cause")[0]
    rows = page.driver.execute_script("return document.querySelectorAll('#probes tbody tr').length")
    assert rows == len(document["probes"])
    titles = [c["title"].split("  (")[0] for c in page.charts()]
    assert titles == [
        "latency against throughput (steady windows)",
        "achieved against offered (on the diagonal: keeping up)",
        "errors per probe",
    ]
    assert all(c["points"] > 0 for c in page.charts())


@needs_k6
def _agents_since(started: leftovers.Snapshot) -> list[str]:
    """The reference agent's processes this test started that are still there (another test
    session's on the machine are not its)."""
    return [
        p.what for p in leftovers.processes(started.ticks).values() if "stressbed_agent" in p.what
    ]


def test_the_reference_agent_is_provisioned_once_probed_and_torn_down(tmp_path, scenario_file):
    """The local backend: the stack's replicas and their CPU are in every probe, the stack is
    gone afterwards; while it searches, its live page shows the probes so far and its
    /metrics the probes' requests and the stack's replicas."""
    started = leftovers.snapshot()
    port = free_port()
    watched = _Watcher(f"http://127.0.0.1:{port}")
    code, document, out = _capacity(
        tmp_path,
        "--scenario", "ingest_mix",
        "--slo", "p(95)<500ms",
        "--min-rate", "20",
        "--max-rate", "40",
        "--step-duration", "6s",
        "--warmup", "2s",
        "--budget", "3m",
        "--no-confirm",
        "--no-scale-out",  # the scale-out after a search is tested on its own
        "--live", f"127.0.0.1:{port}",
    )  # fmt: skip
    watched.stop()
    assert code == 0, out
    run_id = Path(document["path"]).parent.name
    assert any(f'run_id="{run_id}"' in text and "stressbed_http_requests_total{" in text
               for text in watched.metrics), out  # fmt: skip
    assert any("stressbed_stack_replicas{" in text for text in watched.metrics)
    headers = [update["header"] for update in watched.updates]
    assert any("probe 1: 20 " in h for h in headers), headers[-1:]
    assert any("probe 2: 40 " in h and "probe 1: 20 " in h for h in headers)
    assert document["scale_out"] is None
    assert document["limited_by"] == "max_rate"
    assert document["answer"].startswith("capacity: at least 40 req/s")
    probes = document["probes"]
    assert [p["rate"] for p in probes] == [20, 40]
    for probe in probes:
        assert probe["replicas"] == 2
        assert len(probe["pods"]) == 2
        assert all(u["cpu_m"] is not None for u in probe["pods"].values())
    assert document["stack"]["limits"]["cpu_m"] == 1000.0
    assert out.count("stack ready at") == 1  # provisioned once, for every probe
    assert _agents_since(started) == []
    probe_dirs = sorted((Path(document["path"]).parent / "probes").iterdir())
    assert [d.name for d in probe_dirs] == ["01-20", "02-40"]
    for directory in probe_dirs:
        summary = json.loads((directory / "summary.json").read_text())
        assert summary["settings"]["probe"]["rate"] == int(directory.name.split("-")[1])


CAPPED_AGENTS = '''
"""The shipped population's agents against the reference agent capped at 300 channels."""
from stressbed import Scenario
from stressbed.population import population
from stressbed.thresholds import connect_time, connected

from scenarios.agent_population import agent

scenario = Scenario(
    "capped_agents",
    description="agents holding a WebSocket each; the agent takes 300 channels at most",
    workloads=[population("agents", agent(), agents=300, join="5s", lasting="30s", per_vu=250)],
    thresholds=[connected(">= 99%"), connect_time("p(99) < 2s")],
)
stack = {
    "replicas": 1,
    "autoscaler": None,
    "target": {"env": {"STRESSBED_AGENT_MAX_CONNECTIONS": "300"}},
}
'''


@needs_k6
def test_a_population_s_capacity_is_bracketed_by_the_target_s_connection_limit(tmp_path):
    """Real k6 and real WebSockets against the reference agent on the local backend, which
    takes 300 channels at most (its max_connections, set by the scenario's stack): the
    search along the agent count brackets 300 agents and names the target's own limit."""
    (tmp_path / "capped_agents.py").write_text(CAPPED_AGENTS)
    started = leftovers.snapshot()
    code, document, out = _capacity(
        tmp_path,
        "--scenario", str(tmp_path / "capped_agents.py"),
        "--min-agents", "100",
        "--max-agents", "800",
        "--step-duration", "8s",
        "--warmup", "2s",
        "--cooldown", "10s",
        "--budget", "3m",
        "--resolution", "50%",  # 100, 200, 400, then 300: close enough
        "--no-confirm",
    )  # fmt: skip
    assert code == 0, out
    assert document["unit"] == "agents"
    low, high = document["interval"]
    assert low <= 300 < high, out
    assert document["max_sustainable_agents"] == low
    assert document["answer"].startswith(f"capacity: {low} agents ({low}-{high}) within "), out
    cause = document["cause"]
    assert cause["kind"] == "connection-limit", cause
    assert cause["message"].startswith("the target's own connection limit: it refused ")
    assert cause["evidence"]["refused_at_limit"] > 0
    assert cause["evidence"]["target_connected_peak"] == 300
    failed = next(p for p in document["probes"] if p["rate"] == high)
    assert failed["connect_failures_by_reason"]["handshake"] > 0
    assert failed["peak_connected"] == 300
    for probe in document["probes"]:  # the stack's open files, as the local backend reads them
        (usage,) = probe["pods"].values()
        assert usage["open_files"] >= min(probe["peak_connected"], 300)
        assert usage["nofile_limit"] > 0
    assert _agents_since(started) == []


# -- bad input: exit 2, one line, nothing started ------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--min-rate", "500", "--max-rate", "100"], "--min-rate: got 500; expected at most"),
        (["--slo", "p95 under 300"], "--slo: got 'p95 under 300'"),
        (["--budget", "20s"], "--budget: got '20s'; expected at least"),
        (["--step-duration", "8s", "--warmup", "6s"], "--warmup: got '6s'"),
        (["--duration", "10s"], None),  # not an option of capacity (argparse: exit 2)
        (["--baseline", "results/x"], None),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_provisioned(
    tmp_path, scenario_file, capsys, args, says
):
    with pytest.raises(SystemExit) if says is None else _nothing():
        code = main(
            [
                "capacity",
                "--scenario", str(scenario_file),
                "--target-url", "http://127.0.0.1:9",
                "--results", str(tmp_path / "results"),
                *args,
            ]
        )  # fmt: skip
        assert code == 2
    err = capsys.readouterr().err
    if says is not None:
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"stressbed: error: {says}"), err
    assert not (tmp_path / "results").exists()


def test_rates_that_are_not_positive_whole_numbers_are_refused(tmp_path, scenario_file, capsys):
    for bad in ("0", "-5", "1.5"):
        with pytest.raises(SystemExit) as caught:
            main(["capacity", "--scenario", str(scenario_file), "--min-rate", bad])
        assert caught.value.code == 2
        assert "--min-rate" in capsys.readouterr().err


def _nothing():
    import contextlib  # noqa: PLC0415

    return contextlib.nullcontext()


def test_a_closed_model_is_converted_and_a_fixed_iteration_count_refused(tmp_path):
    path = tmp_path / "closed.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('closed', description='closed', workloads=["
        "Workload('a', get('/a'), ConstantVUs(vus=2, duration='5s'))])\n"
    )
    found = plan_capacity(
        CapacityOptions(
            RunOptions(scenario=str(path), target_url="http://127.0.0.1:9"),
            slos=("p(95)<300ms",),
        )
    )
    assert found.converted_from == "constant-vus"
    fixed = tmp_path / "fixed.py"
    fixed.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('fixed', description='fixed', workloads=["
        "Workload('a', get('/a'), SharedIterations(vus=2, iterations=10))])\n"
    )
    with pytest.raises(ConfigError) as caught:
        plan_capacity(
            CapacityOptions(
                RunOptions(scenario=str(fixed), target_url="http://127.0.0.1:9"),
                slos=("p(95)<300ms",),
            )
        )
    assert caught.value.field == "workloads.a"
    assert "closed model hides the ceiling" in str(caught.value)


def test_several_workloads_need_the_one_to_search_with(tmp_path):
    path = tmp_path / "two.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('two', description='two', workloads=["
        "Workload('a', get('/a'), ConstantArrivalRate(rate=5, duration='5s', pre_allocated_vus=2)),"
        "Workload('b', get('/b'), ConstantArrivalRate(rate=5, duration='5s', pre_allocated_vus=2))"
        "], thresholds=[latency('p(95)<200ms'), error_rate('<1%')])\n"
    )
    options = RunOptions(scenario=str(path), target_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError) as caught:
        plan_capacity(CapacityOptions(options))
    assert caught.value.field == "--workload"
    assert "a, b" in str(caught.value)
    chosen = plan_capacity(CapacityOptions(options, workload="b"))
    assert chosen.workload.name == "b"
    # No --slo: the scenario's thresholds a window can judge are the SLOs.
    assert [t.metric for t in chosen.capacity.slo_thresholds] == [
        "http_req_duration",
        "http_req_failed",
    ]


def test_the_scenario_module_s_capacity_is_the_default_and_options_override_it(scenario_file):
    options = RunOptions(scenario=str(scenario_file), target_url="http://127.0.0.1:9")
    declared = plan_capacity(CapacityOptions(options)).capacity
    assert (declared.step_s, declared.warmup_s, declared.budget_s) == (8.0, 3.0, 300.0)
    overridden = plan_capacity(CapacityOptions(options, budget="4m", slos=("p(99)<1s",)))
    assert overridden.capacity.budget_s == 240.0
    assert overridden.capacity.step_s == 8.0
    assert [t.aggregation for t in overridden.capacity.slo_thresholds] == ["p(99)"]


@needs_k6
def test_an_interrupted_search_tears_the_stack_down_and_still_writes_its_answer(tmp_path):
    results = tmp_path / "results"
    started = leftovers.snapshot()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "stressbed", "capacity",
            "--scenario", "ingest_mix",
            "--runners", "1",
            "--step-duration", "20s",
            "--results", str(results),
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        # A shell's background job ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # bounded: the search prints a line per probe, and ends
        seen.append(line)
        if "probe 1:" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    (found,) = [p for p in results.glob("*/capacity.json") if p.parent.name != "latest"]
    document = json.loads(found.read_text())
    assert document["exit_code"] == 130
    assert document["ended_by"] == "interrupted"
    assert _agents_since(started) == []


@needs_k6
def test_a_search_killed_during_its_teardown_leaves_capacity_json(tmp_path):
    # A CI cancel, SIGINT then SIGKILL 5 s later, while the teardown waits out the grace
    # period of a replica that ignores SIGTERM.
    path = tmp_path / "stubborn.py"
    path.write_text(STUBBORN)
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "stressbed", "capacity",
            "--scenario", str(path),
            "--slo", "p(95)<500ms",
            "--runners", "1",
            "--step-duration", "20s",
            "--results", str(results),
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # bounded: the search prints a line per probe, and ends
        seen.append(line)
        if "probe 1:" in line:
            break
    (replica,) = children_running(proc.pid, "fake_target.py")
    proc.send_signal(signal.SIGINT)
    # Killed once the teardown is under way (the provisional file is written just before it),
    # while the replica deaf to SIGTERM holds it for its grace period.
    deadline = time.monotonic() + 60
    written: list[Path] = []
    while not written and time.monotonic() < deadline and proc.poll() is None:
        written = [p for p in results.glob("*/capacity.json") if p.parent.name != "latest"]
        time.sleep(0.1)
    assert written, "".join(seen)
    time.sleep(1)  # into the teardown
    assert alive(replica), "the teardown was over before the kill: the test proves nothing"
    proc.kill()
    proc.communicate(timeout=30)
    (found,) = [p for p in results.glob("*/capacity.json") if p.parent.name != "latest"]
    document = json.loads(found.read_text())
    assert document["exit_code"] == 130, "".join(seen)
    assert document["message"] == "interrupted, tearing down"
    assert not list(found.parent.glob(".*.tmp"))
    nothing_left_of(proc.pid, replica)


class OneFleetOnly(FakeBackend):
    """A backend whose fleet cannot run twice against one stack."""

    name = "one-fleet"
    capabilities = frozenset(Capability) - {Capability.REPEATED_FLEETS}

    def preflight(self, stack, scenario=None) -> None:
        raise AssertionError("the capability is checked before the preflight")


def test_a_backend_that_cannot_run_fleet_after_fleet_is_refused_before_its_preflight(
    scenario_file, monkeypatch
):
    monkeypatch.setitem(registry.BACKENDS, "one-fleet", {"class": f"{__name__}:OneFleetOnly"})
    options = RunOptions(scenario=str(scenario_file), backend="one-fleet")
    with pytest.raises(ConfigError) as caught:
        plan_capacity(CapacityOptions(options))
    assert caught.value.field == "--backend"
    assert "--backend local or kubernetes" in str(caught.value)


SMALL_REQUESTS = """
version: 1
profiles:
  scaling:
    backend: local
    # A small CPU request: 300 req/s puts the replicas far above the HPA's 70% target.
    stack: {requests: {cpu: 50m}}
"""


@needs_k6
def test_the_scale_out_is_timed_from_the_step(tmp_path):
    (tmp_path / "profiles.yaml").write_text(SMALL_REQUESTS)
    code, document, out = _capacity(
        tmp_path,
        "--scenario", "ingest_mix",
        "--profiles", str(tmp_path / "profiles.yaml"),
        "--profile", "scaling",
        "--runners", "1",
        "--slo", "p(95)<500ms",
        "--scale-out", "20:300",
        "--step-duration", "8s",
        "--scale-out-for", "20s",
        "--budget", "3m",
    )  # fmt: skip
    assert code in (0, 1), out
    found = document["scale_out"]
    assert (found["from"], found["to"]) == (20, 300)
    assert found["replicas"]["start"] == 2
    assert found["t_desired_s"] is not None, out  # the HPA scaled up after the step
    assert found["t_desired_s"] >= 0
    assert found["replicas"]["peak"] > 2
    if found["t_ready_s"] is not None:
        assert found["t_ready_s"] >= found["t_desired_s"]
    assert (code == 0) == found["recovered"]
    assert document["answer"].startswith("scale-out 20 -> 300 req/s: the autoscaler decided after")
    assert document["probes"] == []
    assert (Path(document["path"]).parent / "scale-out" / "summary.json").is_file()
    assert (Path(document["path"]).parent / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "field", "expected"),
    [
        (("--scale-out", "300:20"), "--scale-out", "FROM < TO"),
        (("--scale-out", "fast"), "--scale-out", "FROM:TO"),
        (("--scale-out", "20:300", "--scale-out-for", "5s"), "--scale-out-for", "at least 15s"),
    ],
)
def test_bad_scale_out_options_are_refused(args, field, expected):
    options = dict(zip(args[::2], args[1::2], strict=True))
    with pytest.raises(ConfigError) as caught:
        plan_capacity(
            CapacityOptions(
                RunOptions(scenario="ingest_mix"),
                scale_out=options.get("--scale-out"),
                scale_out_for=options.get("--scale-out-for"),
            )
        )
    assert caught.value.field == field
    assert expected in str(caught.value)


def test_a_scale_out_needs_a_stack_with_an_autoscaler(scenario_file):
    with pytest.raises(ConfigError) as caught:
        plan_capacity(
            CapacityOptions(
                RunOptions(scenario=str(scenario_file), target_url="http://127.0.0.1:9"),
                scale_out="20:300",
            )
        )
    assert "autoscaler" in str(caught.value)
