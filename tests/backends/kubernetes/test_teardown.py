"""The Kubernetes stack's teardown as steps: a step that raises or hangs costs only itself, the
destroy always runs, a teardown abandoned during the destroy stops the Pulumi CLI before it
says how to finish, and the command it prints works from any directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from stressbed.backends.kubernetes._engine import finish_commands, stop_sessions
from stressbed.backends.kubernetes._preflight import ClusterAccess, KubernetesOptions
from stressbed.backends.kubernetes._stack import KubeStack, RunState
from stressbed.backends.kubernetes.manifests import Cluster
from stressbed.errors import TeardownError
from stressbed.fleet.process import TeardownAbandoned
from stressbed.stack.agent import reference_agent

from .fakes import FakeEngine


class Chaos:
    """Stands in for ChaosFaults: its undo raises, or hangs."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang

    def undo_all(self) -> list[str]:
        if self.hang:
            time.sleep(30)
        raise RuntimeError("the API server went away")


def kube_stack(tmp_path: Path, engine: Any, **options: Any) -> KubeStack:
    run = RunState(
        spec=reference_agent(),
        cluster=Cluster(namespace="stressbed-x1"),
        access=ClusterAccess(tmp_path / "kubeconfig", "kind"),
        engine=engine,
        cluster_api=None,  # type: ignore[arg-type]  # the teardown does not call it
        options=KubernetesOptions(**options),
        secret_values={},
        state_dir=tmp_path / "state",
    )
    run.created = True
    return KubeStack(run)


def test_faults_that_will_not_undo_still_leave_the_destroy_to_run(tmp_path):
    calls: list[str] = []
    stack = kube_stack(tmp_path, FakeEngine(calls))
    stack._chaos = Chaos()  # type: ignore[assignment]
    with pytest.raises(TeardownError) as raised:
        stack.teardown()
    assert calls == ["destroy", "remove"]
    assert raised.value.failures == ["undo the faults: RuntimeError: the API server went away"]
    (failed,) = [e for e in stack.events if e["event"] == "teardown-step-failed"]
    assert (failed["step"], failed["reason"]) == ("undo the faults", raised.value.failures[0])
    assert stack.events[-1]["event"] == "stack-removed"


class Left:
    """Stands in for ChaosFaults: what would not go, as its undo names it."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def undo_all(self) -> list[str]:
        return list(self.names)


def test_a_neighbours_namespace_that_will_not_go_is_named_whatever_the_destroy_did(tmp_path):
    calls: list[str] = []
    stack = kube_stack(tmp_path, FakeEngine(calls))
    space = "namespace/stressbed-x1-nb-neighbour"
    stack._chaos = Left(["stressbed-x1-loss", space])  # type: ignore[assignment]
    with pytest.raises(TeardownError) as raised:
        stack.teardown()
    assert calls == ["destroy", "remove"]  # the run's namespace went; the neighbour's is its own
    assert raised.value.failures == [
        "a fault stayed applied until the namespace was destroyed: its Chaos Mesh objects "
        "stressbed-x1-loss would not delete",
        f"a neighbour's {space} would not delete (`kubectl delete {space}`; owned by namespace "
        "stressbed-x1, the cluster deletes it once that is gone)",
    ]
    assert stack.leftovers() == f"a neighbour's {space} (`kubectl delete {space}`)"
    calls.clear()
    kept = kube_stack(tmp_path, FakeEngine(calls, {"destroy": RuntimeError("refused")}))
    kept._chaos = Left([space])  # type: ignore[assignment]
    with pytest.raises(TeardownError) as raised:
        kept.teardown()
    assert raised.value.failures[0].startswith("pulumi destroy failed: refused; ")
    assert raised.value.failures[1].startswith(f"a neighbour's {space} would not delete")


def test_faults_whose_undo_hangs_cost_their_step_only(tmp_path, monkeypatch):
    from stressbed.backends.kubernetes import _stack  # noqa: PLC0415

    monkeypatch.setattr(_stack, "FAULTS_UNDO_S", 0.3)
    calls: list[str] = []
    stack = kube_stack(tmp_path, FakeEngine(calls))
    stack._chaos = Chaos(hang=True)  # type: ignore[assignment]
    started = time.monotonic()
    with pytest.raises(TeardownError, match=r"^undo the faults: did not finish within 0.3 s$"):
        stack.teardown()
    assert time.monotonic() - started < 10
    assert calls == ["destroy", "remove"]


def test_a_teardown_abandoned_during_the_destroy_stops_pulumi_first(tmp_path):
    class Slow(FakeEngine):
        def destroy(self) -> None:
            self.calls.append("destroy")
            time.sleep(5)

    calls: list[str] = []
    stack = kube_stack(tmp_path, Slow(calls))

    def abandon() -> None:
        while "destroy" not in calls:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    def raise_abandoned(signum: int, frame: object) -> None:
        raise TeardownAbandoned

    previous = signal.signal(signal.SIGINT, raise_abandoned)
    try:
        threading.Thread(target=abandon, daemon=True).start()
        with pytest.raises(TeardownAbandoned):
            stack.teardown()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls == ["destroy", "stop"]  # interrupted, not left running detached
    assert "pulumi destroy --cwd" in stack.leftovers()


def test_the_command_to_finish_works_from_any_directory_and_names_no_secret(tmp_path):
    state = tmp_path / "state" / "stressbed-x1"
    # KUBECONFIG as the run read it: every file of its list, absolute (preflight made them so).
    kubeconfig = f"{tmp_path / 'a.yaml'}:{tmp_path / 'b.yaml'}"
    text = finish_commands(state, "stressbed-x1", None, kubeconfig)
    destroy = text.split("`")[1]
    assert destroy == (
        f"PULUMI_BACKEND_URL=file://{state / 'state'} "
        f"PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase'} "
        f"KUBECONFIG={kubeconfig} "
        f"pulumi destroy --cwd {state / 'project'} --stack organization/stressbed/stressbed-x1 "
        "--yes"
    )
    shared = finish_commands(state, "s", "postgres://pulumi:hunter2@db/state", "/k")
    assert "hunter2" not in shared
    assert "PULUMI_BACKEND_URL=postgres://db/state " in shared
    assert "--stack organization/stressbed/s " in shared
    cloud = finish_commands(state, "s", "https://api.pulumi.com", "/k")
    assert "--stack s --yes" in cloud
    assert cloud.endswith("(with PULUMI_ACCESS_TOKEN set, as for the run)")


STUBBORN_PULUMI = """#!{python}
import os, signal, sys, time
os.setsid()
with open({pids!r}, "a") as out:
    out.write(f"{{os.getpid()}}\\n")
signal.signal(signal.SIGINT, lambda s, f: open({seen!r}, "a").write("INT\\n"))
time.sleep(60)
"""


def stubborn_pulumi(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A Pulumi CLI in a session of its own that notes a SIGINT and goes on."""
    pids = tmp_path / "pids"
    fake = tmp_path / "pulumi"  # named so: only pulumi processes are ever signalled
    fake.write_text(
        STUBBORN_PULUMI.format(python=sys.executable, pids=str(pids), seen=str(tmp_path / "int"))
    )
    fake.chmod(0o755)
    proc = subprocess.Popen([str(fake)], stdin=subprocess.DEVNULL)
    while not pids.exists() or not pids.read_text().strip():
        time.sleep(0.01)
    return proc, pids


def test_stopping_pulumi_interrupts_it_once_then_kills_it(tmp_path):
    proc, pids = stubborn_pulumi(tmp_path)
    try:
        started = time.monotonic()
        killed = stop_sessions(pids, 1.0)
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert time.monotonic() - started < 5
        assert killed == [proc.pid]
        assert (tmp_path / "int").read_text() == "INT\n"
    finally:
        proc.kill()
        proc.wait()


def test_a_ctrl_c_while_pulumi_is_being_stopped_kills_it_at_once(tmp_path):
    proc, pids = stubborn_pulumi(tmp_path)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        started = time.monotonic()
        timer.start()
        stop_sessions(pids, 60.0)
        assert time.monotonic() - started < 10  # not the 60 s
        assert proc.wait(timeout=5) == -signal.SIGKILL
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
