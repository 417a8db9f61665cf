"""The Docker engine as a run sees it: the connection, the labels, and the sweep of leftovers.

Every container, network and volume a run creates carries :data:`LABEL_RUN` (the run's ID)
and :data:`LABEL_OWNER` (this host, stressbed's PID and that process's start time), and is
recorded in the run's :class:`Registry` before it is created, so teardown removes what exists
whatever state it got to. What a stressbed killed with ``-9`` left is found by its owner
label: a process of this host that no longer runs (:func:`sweep`, at the start of the next
run, and ``stressbed gc``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ConfigError

__all__ = [
    "LABEL_OWNER",
    "LABEL_ROLE",
    "LABEL_RUN",
    "Registry",
    "connect",
    "owner",
    "sweep",
]

LABEL_RUN = "stressbed.run"
LABEL_OWNER = "stressbed.owner"
LABEL_ROLE = "stressbed.role"
#: The Engine API calls' own timeout (a build or a pull has its own).
API_TIMEOUT_S = 60


def connect() -> Any:
    """A client of the engine ``$DOCKER_HOST`` names (its Unix socket by default), checked
    to answer; ConfigError (exit 2) naming the cause and the fix where it does not."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        # The stack's balancer and probes reach the containers' own addresses.
        raise ConfigError(
            "DOCKER_HOST",
            host,
            "an engine on this machine (a unix:// socket): stressbed reaches the containers' "
            "addresses on their bridge network",
        )
    path = Path(host.removeprefix("unix://"))
    if not path.exists():
        raise ConfigError(
            "the Docker engine",
            f"no socket at {path}",
            "a running engine (apt-get install docker.io, then start dockerd as root)",
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(
            "the Docker engine",
            f"permission denied on {path}",
            "run as root, or as a member of the socket's group (docker)",
        )
    try:
        client = docker.DockerClient(base_url=host, timeout=API_TIMEOUT_S)
        client.ping()
    except docker.errors.DockerException as exc:
        raise ConfigError(
            "the Docker engine", f"{path} does not answer: {exc}", "a running dockerd"
        ) from None
    return client


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot ("" when it does not exist): a PID
    reused by another process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner(pid: int | None = None) -> str:
    """This stressbed as the owner label says it: ``host:pid:start``."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(label: str) -> bool:
    """Whether the stressbed that owns an object still runs (one of another host is taken to:
    it is not this machine's to judge)."""
    host, _, rest = label.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return _start_time(int(pid)) == started


@dataclass
class Registry:
    """What a run created on the engine, recorded before it is created, removed at the end."""

    client: Any
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    containers: list[str] = field(default_factory=list)  # names
    networks: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def labels(self, role: str) -> dict[str, str]:
        return {LABEL_RUN: self.run, LABEL_OWNER: owner(), LABEL_ROLE: role}

    def name(self, what: str) -> str:
        """A name of this run's: ``stressbed-<run>-<what>``."""
        return f"stressbed-{self.run}-{what}"

    def container(self, name: str) -> str:
        with self._lock:
            self.containers.append(name)
        return name

    def network(self, name: str) -> str:
        with self._lock:
            self.networks.append(name)
        return name

    def remove_container(self, name: str) -> None:
        """Remove one (killed first if it runs); a container already gone is fine."""
        with contextlib.suppress(docker.errors.NotFound):
            self.client.api.remove_container(name, force=True, v=True)
        with self._lock, contextlib.suppress(ValueError):
            self.containers.remove(name)

    def remove_all(self) -> list[str]:
        """Remove every container, then every network, of the run; what could not be."""
        left: list[str] = []
        for name in list(self.containers):
            try:
                self.remove_container(name)
            except docker.errors.DockerException as exc:
                left.append(f"container {name}: {exc}")
        for name in list(self.networks):
            try:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_network(name)
                with self._lock:
                    self.networks.remove(name)
            except docker.errors.DockerException as exc:
                left.append(f"network {name}: {exc}")
        return left


def sweep(
    client: Any, *, everything: bool = False, say: Callable[[str], None] | None = None
) -> int:
    """Remove what runs whose stressbed is gone left on the engine (with ``everything``, what
    any run left, live ones too); how many objects were removed."""

    def dead(labels: dict[str, str] | None) -> bool:
        return everything or not owner_alive((labels or {}).get(LABEL_OWNER, ""))

    removed = 0
    containers = client.api.containers(all=True, filters={"label": LABEL_RUN})
    for found in containers:
        if dead(found.get("Labels")):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(found["Id"], force=True, v=True)
                removed += 1
                if say is not None:
                    say(f"removed container {found['Names'][0].lstrip('/')}")
    for found in client.api.networks(filters={"label": LABEL_RUN}):
        if dead(found.get("Labels")):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_network(found["Id"])
                removed += 1
                if say is not None:
                    say(f"removed network {found['Name']}")
    for found in client.api.volumes(filters={"label": LABEL_RUN}).get("Volumes") or []:
        if dead(found.get("Labels")):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_volume(found["Name"], force=True)
                removed += 1
    return removed
