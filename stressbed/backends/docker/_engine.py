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
import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from ...errors import ConfigError

__all__ = [
    "LABEL_OWNER",
    "LABEL_ROLE",
    "LABEL_RUN",
    "Registry",
    "connect",
    "copy_log",
    "owner",
    "sweep",
    "wait_exit",
    "writable_by",
]

LABEL_RUN = "stressbed.run"
LABEL_OWNER = "stressbed.owner"
LABEL_ROLE = "stressbed.role"
#: The Engine API calls' own timeout (a build or a pull has its own).
API_TIMEOUT_S = 60
#: What a call to the engine may raise: its answer, or the connection's failure.
FAILURES = (docker.errors.DockerException, requests.RequestException)


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


def wait_exit(client: Any, container_id: str) -> tuple[int, bool]:
    """Block until the container ends: its exit code (137 when it cannot be known: the engine
    went away, or the container was removed) and whether the kernel OOM-killed it."""
    for _ in range(3):  # the wait's connection may drop: ask again
        try:
            code = int(client.api.wait(container_id)["StatusCode"])
            state = client.api.inspect_container(container_id)["State"]
            return code, bool(state.get("OOMKilled"))
        except Exception:
            time.sleep(0.5)
    return 137, False


def copy_log(client: Any, container_id: str, path: Path, *, stdout: bool = True) -> None:
    """Append the container's output (stderr, and stdout unless told not to) to ``path``
    as it comes, until the container ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out, contextlib.suppress(Exception):
        for chunk in client.api.logs(
            container_id, stream=True, follow=True, stdout=stdout, stderr=True
        ):
            out.write(chunk)
            out.flush()


def writable_by(directory: Path, uid: int) -> None:
    """Give a host directory mounted into a container to the container's user (any user may
    write it where this process may not chown: not root)."""
    try:
        os.chown(directory, uid, uid)
    except OSError:
        directory.chmod(0o777)


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
        """Remove one (killed first if it runs); one already gone, or going, is fine."""
        try:
            self.client.api.remove_container(name, force=True, v=True)
        except docker.errors.APIError as exc:
            # 404: gone already; 409: its removal is under way.
            if exc.status_code not in (404, 409):
                raise
        with self._lock, contextlib.suppress(ValueError):
            self.containers.remove(name)

    def remove_role(self, role: str) -> list[str]:
        """Remove the run's containers of ``role`` (``runner``), found by their labels too
        (one whose creation was still in flight when it was asked to go); what could not be."""
        selector = [f"{LABEL_RUN}={self.run}", f"{LABEL_ROLE}={role}"]
        left: list[str] = []
        try:
            found = self.client.api.containers(all=True, filters={"label": selector})
        except FAILURES as exc:
            return [f"the {role} containers could not be listed: {exc}"]
        for container in found:
            name = container["Names"][0].lstrip("/")
            try:
                self.remove_container(name)
            except FAILURES as exc:
                left.append(f"container {name}: {exc}")
        return left

    def remove_all(self) -> list[str]:
        """Remove every container, then every network, of the run (by name, then by label:
        nothing whose creation was in flight is missed); what could not be removed."""
        left: list[str] = []
        for name in list(self.containers):
            try:
                self.remove_container(name)
            except FAILURES as exc:
                left.append(f"container {name}: {exc}")
        try:
            labelled = self.client.api.containers(
                all=True, filters={"label": f"{LABEL_RUN}={self.run}"}
            )
        except FAILURES:
            labelled = []
        for container in labelled:
            name = container["Names"][0].lstrip("/")
            try:
                self.remove_container(name)
            except FAILURES as exc:
                left.append(f"container {name}: {exc}")
        for name in list(self.networks):
            try:
                with contextlib.suppress(docker.errors.NotFound):
                    self.client.api.remove_network(name)
                with self._lock:
                    self.networks.remove(name)
            except FAILURES as exc:
                left.append(f"network {name}: {exc}")
        return left


def sweep(
    client: Any, *, everything: bool = False, say: Callable[[str], None] | None = None
) -> int:
    """Remove what runs whose stressbed is gone left on the engine (with ``everything``, what
    any run left, live ones too); how many objects were removed. One that cannot be removed
    (another sweep has it) is said and left."""

    def dead(labels: dict[str, str] | None) -> bool:
        return everything or not owner_alive((labels or {}).get(LABEL_OWNER, ""))

    def remove(what: str, name: str, call: Callable[[], object]) -> int:
        try:
            call()
        except docker.errors.NotFound:
            return 0
        except FAILURES as exc:
            if say is not None:
                say(f"could not remove {what} {name}: {exc}")
            return 0
        if say is not None:
            say(f"removed {what} {name}")
        return 1

    api = client.api
    removed = 0
    for found in api.containers(all=True, filters={"label": LABEL_RUN}):
        if dead(found.get("Labels")):
            removed += remove(
                "container",
                found["Names"][0].lstrip("/"),
                functools.partial(api.remove_container, found["Id"], force=True, v=True),
            )
    for found in api.networks(filters={"label": LABEL_RUN}):
        if dead(found.get("Labels")):
            removed += remove(
                "network", found["Name"], functools.partial(api.remove_network, found["Id"])
            )
    for found in api.volumes(filters={"label": LABEL_RUN}).get("Volumes") or []:
        if dead(found.get("Labels")):
            removed += remove(
                "volume",
                found["Name"],
                functools.partial(api.remove_volume, found["Name"], force=True),
            )
    return removed
