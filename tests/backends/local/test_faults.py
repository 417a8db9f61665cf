"""Faults applied for real on the local backend, against the reference agent under load: a kill
restarts the replica and requests recover; a pause is detected through the readiness probe and
routed around, then resumed; 200 ms of latency shows in its window's p50 and not outside it;
nothing stays applied after the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.results.table import table

from ... import leftovers
from ...conftest import needs_k6


def _processes(word: str, since: leftovers.Snapshot) -> list[str]:
    """This test's processes running ``word`` (stopped, frozen or running), started since
    ``since``: another test session's on the same machine are not this run's."""
    return [p.what for p in leftovers.processes(since.ticks).values() if word in p.what]


def _paused_by_the_freezer_where_there_is_one(summary: dict, pause: dict, ended: dict) -> None:
    """Where replicas have cgroups, the kernel's freezer holds the whole replica (SIGSTOP
    otherwise); the report says which."""
    frozen = str(summary["stack"].get("enforcement", "")).startswith("cgroup")
    assert pause["how"] == ("the cgroup freezer" if frozen else "SIGSTOP of the process group")
    assert ended["how"] == ("thawed" if frozen else "SIGCONT")


def _no_write_lost(summary: dict) -> None:
    """Every report acknowledged was stored (the declared stack acknowledges once flushed),
    read back agent id by agent id; no fault lost one."""
    writes = summary["writes"]
    assert writes["problem"] is None
    assert writes["acknowledged"] > 1000
    assert writes["lost"] == 0
    assert [f["lost_writes"] for f in summary["resilience"]["faults"]] == [0, 0, 0]


@needs_k6
def test_the_shipped_resilience_scenario_applies_detects_recovers_and_undoes_its_faults(
    tmp_path: Path, monkeypatch
):
    # scenarios/resilience.py: 60 s of the ingest mix; a kill at 5 s, a 10 s pause at 15 s,
    # 200 ms on the path for 10 s at 45 s.
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "faults-test-token")
    started = leftovers.snapshot()
    report = execute(plan(RunOptions(scenario="resilience", results=tmp_path / "r", runners=1)))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    assert report.exit_code in (0, 1), report.message
    kill, pause, slow = summary["resilience"]["faults"]
    events = summary["events"]

    # The kill: one replica SIGKILLed at about 5 s, seen to end, restarted, ready again.
    assert kill["applied"]
    assert kill["kind"] == "kill"
    (killed,) = kill["replicas"]
    assert kill["how"] == "SIGKILL of the process group"
    after = [e for e in events if e["t"] >= kill["at"] and e.get("replica") == killed]
    kinds = [e["event"] for e in after]
    assert "crashed" in kinds
    assert "ready" in kinds[kinds.index("crashed") :]  # restarted and ready again
    assert kill["time_to_detect_s"] is not None
    assert kill["time_to_detect_s"] < 5

    # The pause: frozen for 10 s, found unready by its readiness probe (every 2 s, two
    # failures of 1 s timeouts: at most about 6 s), resumed at its end.
    assert pause["applied"]
    assert pause["kind"] == "pause"
    (paused,) = pause["replicas"]
    assert pause["end"] - pause["at"] == pytest.approx(10, abs=1.0)
    assert pause["at"] - kill["at"] == pytest.approx(10, abs=1.0)
    unready = [
        e
        for e in events
        if e["event"] == "unready" and e.get("replica") == paused and pause["at"] <= e["t"]
    ]
    assert unready, "the readiness probe never noticed the pause"
    assert pause["time_to_detect_s"] is not None
    (ended,) = [e for e in events if e["event"] == "fault-ended" and e["fault"] == "pause"]
    assert ended["resumed"] == [paused]
    _paused_by_the_freezer_where_there_is_one(summary, pause, ended)
    assert ended["reason"] == "its end"

    # The latency: on the path to every replica for 8 s, seen in that window's p50 only.
    assert slow["applied"]
    assert slow["how"] == "a latency toxic in the balancer"
    assert slow["end"] - slow["at"] == pytest.approx(10, abs=1.0)
    assert slow["during"]["p50_ms"] - slow["baseline"]["p50_ms"] >= 150
    assert slow["baseline"]["p50_ms"] < 100
    assert slow["time_to_recover_s"] == 0  # 220 ms stays within p(95) < 500ms
    assert slow["requests"] >= 10 * 40  # the fault's whole window, not just its first second

    # What users saw: figures for each fault, and the verdicts on them.
    for found in (kill, pause, slow):
        assert found["requests"] > 0
        assert found["baseline"]["requests"] > 0 or found is kill
        assert "errors_during_fault" in found
    verdicts = summary["resilience"]["verdicts"]
    # Each threshold on each fault; lost_writes on the whole run too (a loss outside them).
    assert [v["fault"] for v in verdicts] == [*["kill", "pause", "latency"] * 3, "the whole run"]
    _no_write_lost(summary)
    assert (report.exit_code == 1) == (not all(v["passed"] for v in verdicts)) or (
        report.message.startswith("thresholds failed")
    )
    # junit.xml has a case per resilience verdict; the terminal table a line per fault.
    junit = (tmp_path / "r" / report.run_id / "junit.xml").read_text()
    for name in ("kill", "pause", "latency"):
        for case in ("recovery_time &lt; 30s", "errors_during_fault &lt; 5%", "lost_writes == 0"):
            assert f'name="{case} on {name}"' in junit
    shown = table(report)
    assert "  faults\n    kill: kill on 1 replica at 5s [" in shown
    assert "pause: pause on 1 replica at 15s for 10s [" in shown

    # Nothing a toxic held was left behind: no request waited out k6's graceful stop.
    assert summary["duration_s"] < 60 + 15
    # Nothing of the stack is left, stopped or running.
    assert _processes("stressbed_agent", started) == []


INTERRUPTED = """
from stressbed import ConstantArrivalRate, Scenario, Workload, fault, get
scenario = Scenario(
    "interrupted",
    description="faults applied when Ctrl-C comes",
    workloads=[Workload("w", get("/healthz", name="health"),
        ConstantArrivalRate(rate=10, duration="2m", pre_allocated_vus=5, max_vus=20))],
    faults=[
        fault.pause("90s", at="1s", seed=1),
        fault.cpu(share=0.5, replicas=1, at="1s", lasting="90s", seed=2),
        fault.latency("50ms", at="1s", lasting="90s"),
    ],
)
"""


@needs_k6
def test_ctrl_c_with_faults_applied_undoes_every_one_and_leaves_nothing(tmp_path: Path):
    path = tmp_path / "interrupted.py"
    path.write_text(INTERRUPTED)
    started = leftovers.snapshot()
    proc = subprocess.Popen(
        [sys.executable, "-m", "stressbed", "run", "--scenario", str(path), "--runners", "1",
         "--results", str(tmp_path / "r")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and sum("applied:" in line for line in seen) < 3:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
    assert sum("applied:" in line for line in seen) == 3, "".join(seen)
    assert _processes("stressbed.backends.local._hog", started)  # the hog runs
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it to the group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + err
    assert "fault pause ended (teardown)" in err
    assert "fault cpu ended (teardown)" in err
    assert _processes("stressbed.backends.local._hog", started) == []
    assert _processes("stressbed_agent", started) == []  # resumed (or thawed), then stopped
    assert _processes("stressbed.balancer", started) == []
    (run,) = (tmp_path / "r").glob("2*")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["exit_code"] == 130
    ended = {e["fault"]: e["reason"] for e in summary["events"] if e["event"] == "fault-ended"}
    assert ended == {"pause": "teardown", "cpu": "teardown", "latency": "teardown"}


RESET = """
from stressbed import ConstantArrivalRate, Scenario, Workload, fault, post
# A POST: Go's HTTP client (k6's) retries an idempotent GET on a reset connection by itself.
BEAT = post("/v1/heartbeat", name="heartbeat", json={"agent_id": "a1", "status": "ok"})
scenario = Scenario(
    "reset",
    description="connections reset while answers are held on the path",
    workloads=[Workload("w", BEAT,
        ConstantArrivalRate(rate=20, duration="8s", pre_allocated_vus=20, max_vus=40))],
    faults=[
        fault.latency("800ms", at="2s", lasting="4s"),
        fault.reset_connections(at="4s"),
    ],
)
"""


@needs_k6
def test_a_reset_fails_the_requests_in_flight_and_the_load_goes_on(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "reset-test-token")
    path = tmp_path / "reset.py"
    path.write_text(RESET)
    options = RunOptions(scenario=str(path), results=tmp_path / "r", runners=1)
    report = execute(plan(options))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    _, reset = summary["resilience"]["faults"]
    assert reset["applied"], reset
    assert reset["how"] == "the balancer's open connections reset"
    # The answers held 800 ms on the path were in flight: each of them failed with no
    # response (status 0), and only around the reset.
    at = int(reset["at"])
    unanswered = {
        s: w.statuses.get("0", 0) for s, w in report.fleet.windows.items() if w.statuses.get("0")
    }
    assert sum(unanswered.values()) >= 5, unanswered
    assert all(at - 1 <= s <= at + 2 for s in unanswered), (at, unanswered)
    assert reset["failed_requests"] >= 5
    # Requests after it were answered again (800 ms late), through new connections.
    after = [w for s, w in report.fleet.windows.items() if s >= at + 3]
    assert sum(w.requests - w.failed for w in after) > 0
