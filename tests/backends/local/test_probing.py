"""Running probes as the kubelet does, leaving nothing behind."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from stressbed.backends.local._probing import run_probe
from stressbed.backends.local._replica import run_command
from stressbed.stack.spec import Probe


class Beside:
    """Runs an exec probe as a local replica does: a process with this environment."""

    def exec_probe(self, command, timeout_s):
        return run_command(command, dict(os.environ), timeout_s)


def running(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in args and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.mark.parametrize(
    ("script", "passed", "seen"),
    [
        # Times out with a child and a grandchild still running.
        ("sleep {m} & sleep {m}", False, "timed out after 0.5 s"),
        # Passes at once, but leaves a child in the background.
        ("sleep {m} & exit 0", True, "exit code 0"),
    ],
)
def test_an_exec_probe_leaves_no_process_behind(script, passed, seen):
    marker = f"{37 + os.getpid() % 1000 / 1000:.3f}"  # a sleep length nobody else uses
    # The passing case gets time to start on a busy machine; the failing one must time out.
    timeout = 0.5 if not passed else 5.0
    probe = Probe("exec", command=("sh", "-c", script.format(m=marker)), timeout_s=timeout)
    assert run_probe(probe, "127.0.0.1", 0, Beside()) == (passed, seen)
    deadline = time.monotonic() + 5
    while running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)  # SIGKILLed; the kernel reaps them as init adopts them
    assert running(marker) == []


def test_an_exec_probe_fails_with_its_exit_code():
    probe = Probe("exec", command=("sh", "-c", "exit 3"), timeout_s=5)
    assert run_probe(probe, "127.0.0.1", 0, Beside()) == (False, "exit code 3")
