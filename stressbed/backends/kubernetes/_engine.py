"""The engine seam: what the Kubernetes backend asks of Pulumi for one ephemeral stack, and
the real implementation through the Automation API.

A run's stack keeps its state in a file backend and its secrets under a passphrase made for
the run, both in a directory of the user's own (mode 0700, the passphrase 0600), outside the
results directory that CI uploads: whoever holds the results cannot decrypt the state. The
backend removes that directory once the stack is destroyed.

The Pulumi CLI runs in a session of its own (through a small wrapper that calls setsid and
records its pid), so a Ctrl-C at the terminal or a SIGTERM to stressbed never reaches it
directly: on an interrupt during ``up``, stressbed passes one SIGINT on (Pulumi cancels the
update cleanly), waits for the operation to end, bounded, and only then destroys; a destroy
never races an ``up`` still running on the same state. A teardown abandoned during the destroy
stops it the same way (:func:`stop_sessions`) before it prints the commands that finish it
(:func:`finish_commands`): none of them ever races a destroy left running detached.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ...fleet.process import uninterrupted
from ._preflight import ClusterAccess, KubernetesOptions

__all__ = [
    "INTERRUPT_WAIT_S",
    "Engine",
    "EngineFactory",
    "automation_engine",
    "bounded",
    "finish_commands",
    "interruptible",
    "prepare_state",
    "pulumi_wrapper",
    "state_dir",
    "stop_sessions",
]

#: After passing an interrupt on to Pulumi, how long to wait for it to stop its operation.
INTERRUPT_WAIT_S = 120.0
#: The Pulumi project every run's stack belongs to.
PROJECT = "stressbed"
#: State backends Pulumi calls self-managed ("DIY"): stacks named organization/project/stack.
DIY_SCHEMES = ("file", "s3", "gs", "azblob", "postgres")

_WRAPPER = """#!{python}
# stressbed: runs the Pulumi CLI in a session of its own and records its pid.
import os, sys
os.setsid()
with open({pids!r}, "a") as out:
    out.write(f"{{os.getpid()}}\\n")
os.execvp({real!r}, [{real!r}, *sys.argv[1:]])
"""


def pulumi_wrapper(directory: Path, real: str) -> Path:
    """A Pulumi "installation" at ``directory`` (``bin/pulumi``) whose CLI is ``real`` run in
    a new session; the pids it ran as are appended to ``directory/pids``."""
    wrapper = directory / "bin" / "pulumi"
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    wrapper.write_text(
        _WRAPPER.format(python=sys.executable, pids=str(directory / "pids"), real=real)
    )
    wrapper.chmod(0o700)
    return wrapper


def pulumi_sessions(pids: Path) -> list[int]:
    """The Pulumi CLI processes of ``pids`` still running: session leaders (the wrapper made
    each one) named pulumi, so a pid reused by anything else is never signalled."""
    found = []
    with contextlib.suppress(OSError):
        for word in pids.read_text().split():
            pid = int(word)
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if os.getsid(pid) == pid and "pulumi" in comm:
                    found.append(pid)
            except (OSError, ValueError):
                continue  # gone
    return found


def kill_sessions(pids: Path) -> None:
    """SIGKILL every Pulumi CLI session of ``pids`` still running (an operation given up)."""
    for pid in pulumi_sessions(pids):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def stop_sessions(pids: Path, wait_s: float) -> list[int]:
    """Stop the Pulumi CLI sessions of ``pids`` still running: one SIGINT each (Pulumi ends
    its operation cleanly), a wait of up to ``wait_s``, then SIGKILL; the pids it had to
    kill. Nothing of it is left running detached once this returns."""
    running = pulumi_sessions(pids)
    for pid in running:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + wait_s
    try:
        while running and time.monotonic() < deadline:
            time.sleep(0.1)
            running = pulumi_sessions(pids)
    except KeyboardInterrupt:  # pressed again meanwhile: no more waiting, killed now
        running = pulumi_sessions(pids)
    for pid in running:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    return running


def finish_commands(state: Path, name: str, backend_url: str | None, kubeconfig: str) -> str:
    """How to finish by hand the destroy of stack ``name`` whose state and passphrase are in
    ``state`` (:func:`state_dir`): commands that work from any directory (absolute paths, the
    project's directory by ``--cwd``, the stack's full name) and name the variables they
    need, never a secret's value (the passphrase is a file's path; a cloud token is named).
    ``kubeconfig``: KUBECONFIG's value, its files' absolute paths (a list, as the run read it)."""
    url = _without_credentials(backend_url) if backend_url else f"file://{state / 'state'}"
    diy = url.split("://", 1)[0] in DIY_SCHEMES
    # A self-managed backend's stacks are organization/<project>/<stack>; Pulumi Cloud's are
    # under the user's own organisation, as the run created it.
    stack = f"organization/{PROJECT}/{name}" if diy else name
    env = (
        f"PULUMI_BACKEND_URL={url} PULUMI_CONFIG_PASSPHRASE_FILE={state / 'passphrase'} "
        f"KUBECONFIG={kubeconfig}"
    )
    where = f"--cwd {state / 'project'} --stack {stack}"
    text = (
        f"finish with `{env} pulumi destroy {where} --yes`, "
        f"then `{env} pulumi stack rm {where} --yes`"
    )
    if not diy:
        text += " (with PULUMI_ACCESS_TOKEN set, as for the run)"
    return text


def _without_credentials(url: str) -> str:
    """``url`` without a ``user:password@`` (a postgres:// backend's, say)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{path}"


def _in_thread(step: Callable[[], None]) -> tuple[threading.Event, list[BaseException]]:
    """Start ``step`` in a daemon thread; the event it sets when done, and what it raised.
    (An Event, not Thread.join: a join interrupted by Ctrl-C can mark the thread stopped.)"""
    finished = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # handed to the caller
            failed.append(exc)
        finally:
            finished.set()

    threading.Thread(target=run, name="pulumi", daemon=True).start()
    return finished, failed


def bounded(
    step: Callable[[], None], timeout_s: float, on_timeout: Callable[[], None] | None = None
) -> None:
    """Run ``step`` (a Pulumi operation) for at most ``timeout_s``; then ``on_timeout`` (kill
    it) and TimeoutError. The main thread waits, so it stays free for Ctrl-C."""
    finished, failed = _in_thread(step)
    if not finished.wait(timeout_s):
        if on_timeout is not None:
            on_timeout()
        raise TimeoutError(f"it did not finish within {timeout_s:g} s")
    if failed:
        raise failed[0]


def interruptible(step: Callable[[], None], pids: Path, wait_s: float = INTERRUPT_WAIT_S) -> None:
    """Run ``step`` (a Pulumi operation) in a worker thread. On Ctrl-C (KeyboardInterrupt in
    this, the main thread): SIGINT once to each Pulumi CLI session it runs (one it starts
    meanwhile too), wait up to ``wait_s`` for the operation to end, SIGKILL what still runs,
    then raise KeyboardInterrupt: whatever comes next (a destroy) never races this operation."""
    finished, failed = _in_thread(step)
    try:
        while not finished.wait(0.1):
            continue  # short waits: a Ctrl-C is raised here, in the main thread
    except KeyboardInterrupt:
        signalled: set[int] = set()
        deadline = time.monotonic() + wait_s
        with uninterrupted():
            while not finished.is_set() and time.monotonic() < deadline:
                for pid in set(pulumi_sessions(pids)) - signalled:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGINT)
                    signalled.add(pid)
                finished.wait(0.2)
            if not finished.is_set():
                kill_sessions(pids)
                finished.wait(5.0)
        raise
    if failed:
        raise failed[0]


class Engine(Protocol):
    """What the backend asks of Pulumi for one stack (the Automation API behind it)."""

    def up(self, program: Callable[[], None]) -> None: ...

    def destroy(self) -> None: ...

    def remove(self) -> None: ...

    def kill(self) -> None:
        """Kill whatever Pulumi CLI of this stack still runs (an operation given up)."""
        ...

    def stop(self, wait_s: float) -> None:
        """Interrupt whatever Pulumi CLI of this stack still runs (one SIGINT), wait up to
        ``wait_s`` for it to end, kill what still runs (a teardown abandoned)."""
        ...


#: ``make(stack name, the run's stack directory, cluster access) -> Engine``
EngineFactory = Callable[[str, Path, ClusterAccess], Engine]


def state_dir(options: KubernetesOptions, name: str) -> Path:
    """The directory of stack ``name``'s state and passphrase."""
    home = options.state_home
    if home is None:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        home = Path(base) / "stressbed" / "pulumi"
    return (home / name).resolve()


def prepare_state(directory: Path) -> Path:
    """The directory (0700) with a passphrase (0600) made for the run; the passphrase file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    (directory / "state").mkdir(mode=0o700, exist_ok=True)
    path = directory / "passphrase"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path


class _AutomationEngine:
    """One ephemeral stack through Pulumi's Automation API, state in a file backend."""

    def __init__(
        self, name: str, log_dir: Path, state: Path, access: ClusterAccess, url: str | None
    ) -> None:
        from pulumi import automation as auto  # noqa: PLC0415 - only with the kubernetes extra

        self._auto = auto
        self.name = name
        passphrase = prepare_state(state)
        state_url = url or f"file://{state / 'state'}"
        # The project's files (Pulumi.yaml, the stack's settings with its encryption salt) in
        # a directory of the state's, not a temporary one: a destroy finished by hand
        # (``--cwd`` there, :func:`finish_commands`) needs them.
        project = state / "project"
        project.mkdir(mode=0o700, exist_ok=True)
        self.pids = state / "cli" / "pids"
        real = shutil.which("pulumi") or "pulumi"
        pulumi_wrapper(state / "cli", real)
        self.options = auto.LocalWorkspaceOptions(
            work_dir=str(project),
            project_settings=auto.ProjectSettings(
                name=PROJECT,
                runtime="python",
                backend=auto.ProjectBackend(url=state_url),
            ),
            # The stack lives for one run: a passphrase of its own encrypts its secrets. It is
            # kept beside the state (mode 0600) so that a destroy that failed can be finished.
            pulumi_command=auto.PulumiCommand(root=str(state / "cli")),
            env_vars={
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase),
                "KUBECONFIG": access.path_list,  # every file: the provider merges them
            },
        )
        self.stack: Any = None
        self.log = log_dir / "pulumi.log"

    def _select(self, program: Callable[[], None]) -> Any:
        if self.stack is None:
            self.stack = self._auto.create_or_select_stack(
                stack_name=self.name, project_name=PROJECT, program=program, opts=self.options
            )
        else:
            self.stack.workspace.program = program
        return self.stack

    def _out(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            out.write(text + "\n")

    def up(self, program: Callable[[], None]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        stack = self._select(program)
        interruptible(lambda: stack.up(on_output=self._out, color="never"), self.pids)

    def destroy(self) -> None:
        if self.stack is not None:
            self.stack.destroy(on_output=self._out, color="never")

    def remove(self) -> None:
        if self.stack is not None:
            self.stack.workspace.remove_stack(self.name)

    def kill(self) -> None:
        kill_sessions(self.pids)

    def stop(self, wait_s: float) -> None:
        stop_sessions(self.pids, wait_s)


def automation_engine(options: KubernetesOptions) -> EngineFactory:
    def make(name: str, work_dir: Path, access: ClusterAccess) -> Engine:
        return _AutomationEngine(name, work_dir, state_dir(options, name), access, options.state)

    return make
