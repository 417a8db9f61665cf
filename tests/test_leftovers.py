"""The suite's own cleanup check: a process of stressbed's that a test leaves is found, named
and ended; another program, or one that was there before, is not counted."""

from __future__ import annotations

import subprocess
import sys
import time

from . import leftovers

#: A stand-in for a replica: a process whose argv runs one of stressbed's modules.
SLEEPER = "import time; time.sleep(60)"


def _spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *argv], stdin=subprocess.DEVNULL)


def test_a_process_of_stressbeds_left_behind_is_found_and_ended(monkeypatch):
    monkeypatch.setattr(leftovers, "GRACE_S", 0.5)
    before = leftovers.snapshot()
    time.sleep(0.05)  # /proc's start times count in ticks: started strictly after
    # `python -c CODE -m stressbed_agent`: the argv of an agent, a process that sleeps.
    agent = _spawn("-c", SLEEPER, "-m", "stressbed_agent")
    other = _spawn("-c", SLEEPER)
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


def test_what_ran_before_the_span_is_not_counted():
    agent = _spawn("-c", SLEEPER, "-m", "stressbed_agent")
    try:
        time.sleep(0.05)
        later = leftovers.snapshot()
        assert agent.pid not in leftovers.processes(later.ticks)
    finally:
        agent.kill()
        agent.wait()
