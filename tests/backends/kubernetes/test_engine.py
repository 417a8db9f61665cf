"""The engine seam's own parts that run here: the Pulumi CLI in a session of its own, and an
interrupt passed on to it once, waited for, before anything else touches the state. (No Pulumi
CLI can run on these machines: a stand-in CLI plays it, a real process.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from stressbed.backends.kubernetes._engine import interruptible, prepare_state, pulumi_wrapper

FAKE_PULUMI = """#!{python}
import os, signal, sys, time
out = {out!r}
open(os.path.join(out, "own-session"), "w").write(str(os.getsid(0) == os.getpid()))
def stop(signum, frame):
    with open(os.path.join(out, "interrupts"), "a") as f:
        f.write("INT\\n")
    time.sleep(0.3)  # cancelling the update takes a moment
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
open(os.path.join(out, "started"), "w").write(" ".join(sys.argv[1:]))
time.sleep(30)
"""


def test_an_interrupt_during_up_reaches_pulumi_once_and_is_waited_for(tmp_path):
    fake = tmp_path / "real-pulumi"
    fake.write_text(FAKE_PULUMI.format(python=sys.executable, out=str(tmp_path)))
    fake.chmod(0o755)
    wrapper = pulumi_wrapper(tmp_path / "cli", str(fake))
    done: list[int] = []

    def up() -> None:  # what the Automation API does: run the CLI and wait for it
        done.append(subprocess.run([str(wrapper), "up", "--yes"], check=False).returncode)

    def press_ctrl_c() -> None:
        deadline = threading.Event()
        for _ in range(300):
            if (tmp_path / "started").exists():
                break
            deadline.wait(0.05)
        os.kill(os.getpid(), signal.SIGINT)  # to stressbed only: the CLI's session is its own

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        interruptible(up, tmp_path / "cli" / "pids", wait_s=20)
    assert (tmp_path / "started").read_text() == "up --yes"
    assert (tmp_path / "own-session").read_text() == "True"
    assert (tmp_path / "interrupts").read_text() == "INT\n"  # passed on exactly once
    assert done == [0]  # and waited for: the operation had ended when the interrupt came out


def test_an_operation_that_fails_raises_its_own_error(tmp_path):
    def up() -> None:
        raise RuntimeError("error: the server could not find the requested resource")

    with pytest.raises(RuntimeError, match="could not find"):
        interruptible(up, tmp_path / "pids")


def test_the_state_directory_is_private(tmp_path):
    passphrase = prepare_state(tmp_path / "s")
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700
    assert passphrase.stat().st_mode & 0o777 == 0o600
    assert len(passphrase.read_text()) >= 32
    assert prepare_state(tmp_path / "s").read_text() == passphrase.read_text()  # kept
