"""`nox -s stress` hands each signal to stressbed once and waits for its teardown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("nox")

ROOT = Path(__file__).parent.parent

CHILD = """
import signal, sys, time
from pathlib import Path
log = Path(sys.argv[1])
def handle(signum, frame):
    log.write_text(log.read_text() + signal.Signals(signum).name + "\\n")
    time.sleep(1.0)  # a teardown that takes a while
    sys.exit(130)
signal.signal(signal.SIGINT, handle)
signal.signal(signal.SIGTERM, handle)
log.write_text("")
time.sleep(60)
sys.exit(0)
"""

WRAPPER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("noxfile", {noxfile!r})
noxfile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(noxfile)
sys.exit(noxfile._run_to_the_end([sys.executable, {child!r}, {log!r}], dict(os.environ)))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_stress_session_passes_a_signal_once_and_keeps_the_exit_code(tmp_path, signum):
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    log = tmp_path / "signals.log"
    code = WRAPPER.format(noxfile=str(ROOT / "noxfile.py"), child=str(child), log=str(log))
    wrapper = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.exists(), "the child never started"
    os.kill(wrapper.pid, signum)
    assert wrapper.wait(timeout=20) == 130  # waited through the child's teardown
    assert log.read_text() == signal.Signals(signum).name + "\n"  # exactly once
