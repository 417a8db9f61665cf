"""`nox -s stress` hands each signal to stressbed once and waits for its teardown."""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

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


PROFILES = """\
version: 1
default_profile: here
profiles:
  here: {backend: local}
  k8s: {backend: kubernetes}
  dock: {backend: docker}
"""


class FakeSession:
    """What ``_stressbed`` uses of a nox session: its arguments, installs recorded, and
    ``python`` run for real (this checkout's stressbed) in the directory of the profiles."""

    def __init__(self, posargs: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.posargs = posargs
        self.bin = str(cwd / "bin")
        self.cwd = cwd
        self.env = env
        self.installed: list[str] = []

    def install(self, *args: str) -> None:
        self.installed.append(" ".join(args))

    def run(self, program: str, *args: str, env=None, silent: bool = False, log=True) -> str:
        assert (program, silent, log) == ("python", True, False)
        outer = {k: v for k, v in os.environ.items() if not k.startswith("STRESSBED_")}
        done = subprocess.run(
            [sys.executable, *args],
            cwd=self.cwd,
            env={**outer, **self.env, **(env or {}), "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout + done.stderr

    def log(self, *_args: object) -> None:
        """nox's log line: nothing the test reads."""


@functools.cache
def load_noxfile() -> ModuleType:
    # Once: nox warns (an error under pytest) when a session is registered again.
    spec = importlib.util.spec_from_file_location("noxfile_under_test", ROOT / "noxfile.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def noxfile(monkeypatch):
    module = load_noxfile()
    monkeypatch.setattr(module, "_run_to_the_end", lambda argv, env: 0)  # no run: installs
    return module


@pytest.mark.parametrize(
    ("posargs", "env", "extra"),
    [
        (["--profile", "k8s"], {}, ".[kubernetes]"),
        (["--runners", "2", "--profile=dock"], {}, ".[docker]"),
        ([], {"STRESSBED_PROFILE": "k8s"}, ".[kubernetes]"),
        (["--profiles", "other.yaml"], {}, ".[docker]"),  # its default_profile's backend
        ([], {"STRESSBED_PROFILES": "other.yaml"}, ".[docker]"),
        (["--backend", "docker"], {}, ".[docker]"),
        ([], {"STRESSBED_BACKEND": "kubernetes"}, ".[kubernetes]"),
        (["--profile", "k8s", "--backend", "local"], {}, None),  # the command line wins
        ([], {}, None),  # the default profile: local
        (["--profile", "missing"], {}, None),  # the run itself refuses it (exit 2)
    ],
)
def test_the_stress_session_installs_the_extra_of_the_backend_the_settings_choose(
    tmp_path, noxfile, posargs, env, extra
):
    (tmp_path / "stressbed.yaml").write_text(PROFILES)
    (tmp_path / "other.yaml").write_text(
        "version: 1\ndefault_profile: d\nprofiles:\n  d: {backend: docker}\n"
    )
    for command in ("run", "capacity"):
        session = FakeSession(posargs, tmp_path, env)
        noxfile._stressbed(session, command)
        assert session.installed == ["."] + ([extra] if extra else [])
