"""The engine seam: what the Kubernetes backend asks of Pulumi for one ephemeral stack, and
the real implementation through the Automation API (state in a file backend in the run's
directory, secrets under a passphrase made for the run)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ._preflight import ClusterAccess, KubernetesOptions

__all__ = ["Engine", "EngineFactory", "automation_engine"]


class Engine(Protocol):
    """What the backend asks of Pulumi for one stack (the Automation API behind it)."""

    def up(self, program: Callable[[], None]) -> None: ...

    def destroy(self) -> None: ...

    def remove(self) -> None: ...


#: ``make(stack name, the run's stack directory, cluster access) -> Engine``
EngineFactory = Callable[[str, Path, ClusterAccess], Engine]


class _AutomationEngine:
    """One ephemeral stack through Pulumi's Automation API, state in a file backend."""

    def __init__(self, name: str, work_dir: Path, access: ClusterAccess, state: str | None) -> None:
        from pulumi import automation as auto  # noqa: PLC0415 - only with the kubernetes extra

        self._auto = auto
        self.name = name
        state_url = state or f"file://{(work_dir / 'pulumi-state').resolve()}"
        if state_url.startswith("file://"):
            Path(state_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
        self.options = auto.LocalWorkspaceOptions(
            project_settings=auto.ProjectSettings(
                name="stressbed",
                runtime="python",
                backend=auto.ProjectBackend(url=state_url),
            ),
            # The stack lives for one run: a passphrase of its own encrypts its secrets. It is
            # kept beside the state (mode 0600) so that a destroy that failed can be finished.
            env_vars={
                "PULUMI_CONFIG_PASSPHRASE_FILE": str(_passphrase_file(work_dir)),
                "KUBECONFIG": str(access.kubeconfig),
            },
        )
        self.stack: Any = None
        self.log = work_dir / "pulumi.log"

    def _select(self, program: Callable[[], None]) -> Any:
        if self.stack is None:
            self.stack = self._auto.create_or_select_stack(
                stack_name=self.name, project_name="stressbed", program=program, opts=self.options
            )
        else:
            self.stack.workspace.program = program
        return self.stack

    def _out(self, text: str) -> None:
        with self.log.open("a", encoding="utf-8") as out:
            out.write(text + "\n")

    def up(self, program: Callable[[], None]) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._select(program).up(on_output=self._out, color="never")

    def destroy(self) -> None:
        if self.stack is not None:
            self.stack.destroy(on_output=self._out, color="never")

    def remove(self) -> None:
        if self.stack is not None:
            self.stack.workspace.remove_stack(self.name)


def _passphrase_file(work_dir: Path) -> Path:
    path = work_dir / "pulumi-passphrase"
    work_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path


def automation_engine(options: KubernetesOptions) -> EngineFactory:
    def make(name: str, work_dir: Path, access: ClusterAccess) -> Engine:
        return _AutomationEngine(name, work_dir, access, options.state)

    return make
