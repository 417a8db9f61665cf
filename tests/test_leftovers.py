"""The suite's own cleanup check: a process of stressbed's that a test leaves is found, named
and ended; another program, or one that was there before, is not counted."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from . import leftovers

SLEEPER = "import time; time.sleep(60)"


def _agent(folder: Path) -> subprocess.Popen[bytes]:
    """A stand-in for a replica: ``python -m stressbed_agent`` that only sleeps (the module
    found first in the working directory)."""
    (folder / "stressbed_agent.py").write_text(SLEEPER)
    return subprocess.Popen(
        [sys.executable, "-m", "stressbed_agent"], cwd=folder, stdin=subprocess.DEVNULL
    )


def test_a_process_of_stressbeds_left_behind_is_found_and_ended(monkeypatch, tmp_path):
    monkeypatch.setattr(leftovers, "GRACE_S", 0.5)
    before = leftovers.snapshot()
    time.sleep(0.05)  # /proc's start times count in ticks: started strictly after
    agent = _agent(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while agent.pid not in leftovers.processes(before.ticks) and time.monotonic() < deadline:
            time.sleep(0.05)
        found = leftovers.end(before)
        assert [f.pid for f in found] == [agent.pid]
        assert "stressbed_agent" in str(found[0])
        assert agent.wait(timeout=10) == -9  # ended by the check
        assert other.poll() is None  # not stressbed's: left alone
    finally:
        for proc in (agent, other):
            proc.kill()
            proc.wait()


def test_what_ran_before_the_span_is_not_counted(tmp_path):
    agent = _agent(tmp_path)
    try:
        time.sleep(0.05)
        later = leftovers.snapshot()
        assert agent.pid not in leftovers.processes(later.ticks)
    finally:
        agent.kill()
        agent.wait()
