"""One run of a replica as a container, with the limits and the security a pod's has.

:class:`ContainerReplica` is what the local stack's controller drives in place of a process
(a :class:`~stressbed.backends.local.ReplicaRun`, as a process is; the Docker stack's runtime
launches them): each start is
a new container of the target's image on the run's network, with the StackSpec's limits as
Docker's (``mem_limit`` with no swap, ``nano_cpus``, ``pids_limit``; the requests as
``cpu_shares`` and ``mem_reservation``; an open-file limit of :data:`NOFILE`), as user 10001
with a read-only root filesystem, a tmpfs ``/tmp``, every capability dropped and
``no-new-privileges``. Three threads follow it:
one waits for it to end and reads ``State.OOMKilled`` (an OOM kill is read, not guessed), one
copies its output into the replica's log, one reads the Engine's stats stream (CPU time,
working set, CFS throttling) for the usage series and the autoscaler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import docker
import docker.errors
import requests

from ...fleet.oom import CGROUP_ROOT
from ...stack.spec import IoLimits, StackSpec
from ..local import Exit, ReplicaCgroup, ReplicaRun, Usage, device_of
from ._engine import Registry, copy_log, wait_exit

__all__ = ["NOFILE", "ContainerReplica", "Limits", "Placement"]

#: A pod's PID limit is the kubelet's; a replica's here (a fork bomb stops at it).
PIDS_LIMIT = 512
#: The open-file limit (soft and hard) of every container stressbed starts, replicas and
#: runners: each connection held is a descriptor. Explicit, so a run does not depend on the
#: engine's default (1,048,576 on most hosts, 1,024 soft on some); 20,000 is what many CI
#: containers allow a process, and an engine that runs with a lower hard limit itself (a
#: nested or rootless one) cannot grant more (the container would not start).
NOFILE = 20000
#: How big the tmpfs on /tmp may grow (it counts against the memory limit).
TMPFS_SIZE = "64m"
#: Where ``{data}`` is in a container: a directory of the host every replica shares.
DATA_DIR = "/data"
#: How long a container create and start may take before the start counts as failed.
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Placement:
    """Where a run's replicas go: the engine, the run's registry and network, the image, the
    user, the shared data directory."""

    registry: Registry
    network: str
    image: str
    data: Path
    user: str = "10001:10001"


@dataclass(frozen=True)
class Limits:
    """A replica's limits beyond CPU and memory, as the Engine holds them: processes, open
    files, the /tmp tmpfs's size, IO (on ``device_path``, the data folder's disk, or None
    with ``device_reason``)."""

    pids: int | None = None
    nofile: int | None = None
    ephemeral_storage: int | None = None
    io: IoLimits | None = None
    device_path: str | None = None
    device_reason: str = ""

    @classmethod
    def of(cls, spec: StackSpec, data: Path) -> Limits:
        path, reason = None, ""
        if spec.io is not None and spec.io.throttles:
            path, reason = _device_path(data)
        return cls(
            pids=spec.pids,
            nofile=spec.nofile,
            ephemeral_storage=spec.limits.ephemeral_storage,
            io=spec.io,
            device_path=path,
            device_reason=reason,
        )


def _device_path(folder: Path) -> tuple[str | None, str]:
    """``/dev/<disk>`` holding ``folder`` (the Engine names a device by its path), or why
    there is none."""
    device = device_of(folder)
    if device.major is None:
        return None, device.reason
    for line in Path(f"/sys/dev/block/{device.key}/uevent").read_text().splitlines():
        if line.startswith("DEVNAME="):
            return f"/dev/{line.split('=', 1)[1]}", ""
    return None, f"no device name for {device.key}"


class ContainerReplica(ReplicaRun):
    """Start, watch, measure and stop one container of a replica."""

    how: ClassVar[Mapping[str, str]] = {
        "kill": "docker kill (SIGKILL)",
        "freeze": "docker pause (the cgroup freezer)",
        "pause": "SIGSTOP of the container's processes",
        "restart": "SIGTERM through the container's init, SIGKILL after the grace period, a new "
        "container at once",
    }

    def __init__(
        self,
        name: str,
        placement: Placement,
        args: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        *,
        cpu_limit_m: int | None,
        memory_limit: int | None,
        cpu_request_m: int | None,
        memory_request: int | None,
        security: Any,
        limits: Limits | None = None,
    ) -> None:
        self.name = name
        self.placement = placement
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.memory_limit = memory_limit
        self.cpu_limit_m = cpu_limit_m
        self.cpu_request_m = cpu_request_m
        self.memory_request = memory_request
        self.security = security
        self.limits = limits or Limits()
        self._isolation: dict[str, str] = {}
        self.container = ""  # its name on the engine, once created
        self.id = ""
        self.host = ""
        self.exit: Exit | None = None
        self.started_at = 0.0
        #: The container's cgroups on this host (for a hog to enter), or None.
        self.group: ReplicaCgroup | None = None
        self._usage: Usage | None = None
        self._ended = threading.Event()
        self._threads: list[threading.Thread] = []
        self._paused = False

    @property
    def enforcement(self) -> str:
        return "docker"

    @property
    def enforced(self) -> bool:
        return True  # the engine holds the container to its limits

    @property
    def isolation(self) -> dict[str, str]:
        return self._isolation

    @property
    def client(self) -> Any:
        return self.placement.registry.client

    # -- starting ---------------------------------------------------------------------

    @property
    def nofile_limit(self) -> int:
        return self.limits.nofile or NOFILE

    def _io_config(self) -> dict[str, Any]:
        """The IO limits as the Engine's host config takes them: a weight, and each throughput
        limit on the data folder's disk (``{data}``'s, bind-mounted: what the replica writes
        there is written to it)."""
        io = self.limits.io
        if io is None:
            return {}
        config: dict[str, Any] = {}
        if io.weight is not None:
            config["blkio_weight"] = io.weight
        path = self.limits.device_path
        if path is not None:
            for name, value in io.throttles.items():
                config[f"device_{name}"] = [{"Path": path, "Rate": value}]
        return config

    def _held(self, warnings: Sequence[str]) -> dict[str, str]:
        """How each limit beyond CPU and memory is held, from what the Engine said when it
        created the container (it discards what the kernel cannot hold, with a warning)."""
        limits = self.limits
        held = {"pids": f"docker pids_limit {limits.pids}"} if limits.pids is not None else {}
        if limits.nofile is not None:
            held["nofile"] = f"docker ulimit nofile {limits.nofile}"
        if limits.ephemeral_storage is not None:
            held["ephemeral-storage"] = f"docker tmpfs /tmp size={limits.ephemeral_storage}"
        io = limits.io
        if io is None:
            return held
        if io.weight is not None:
            discarded = [w for w in warnings if "weight" in w.lower()]
            held["io.weight"] = (
                f"not enforced: the engine discarded it ({discarded[0]})"
                if discarded
                else f"docker blkio_weight {io.weight}"
            )
        for name, value in io.throttles.items():
            if limits.device_path is None:
                held[f"io.{name}"] = f"not enforced: {limits.device_reason}"
                continue
            discarded = [w for w in warnings if name.replace("_", " ") in w.lower()]
            held[f"io.{name}"] = (
                f"not enforced: the engine discarded it ({discarded[0]})"
                if discarded
                else f"docker device_{name} {limits.device_path} {value}"
            )
        return held

    def start(self) -> dict[str, object]:
        """Create and start the container; raises OSError when the engine will not (a start
        that fails, as the kubelet's: a crash, then back-off)."""
        placement = self.placement
        registry = placement.registry
        self.container = registry.container(registry.name(f"{self.name}-{time.time_ns() % 10**9}"))
        host_config = self.client.api.create_host_config(
            mem_limit=self.memory_limit,
            memswap_limit=self.memory_limit,  # no swap: the limit is the limit
            mem_reservation=self.memory_request,
            nano_cpus=self.cpu_limit_m * 1_000_000 if self.cpu_limit_m else None,
            cpu_shares=max(2, self.cpu_request_m * 1024 // 1000) if self.cpu_request_m else None,
            pids_limit=self.limits.pids or PIDS_LIMIT,
            ulimits=[
                docker.types.Ulimit(name="nofile", soft=self.nofile_limit, hard=self.nofile_limit)
            ],
            read_only=bool(self.security.read_only_root_filesystem),
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.limits.ephemeral_storage or TMPFS_SIZE}"},
            **self._io_config(),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,  # signals reach the target, and its children are reaped
            binds={str(placement.data): {"bind": DATA_DIR, "mode": "rw"}},
            network_mode=placement.network,
        )
        try:
            created = self.client.api.create_container(
                placement.image,
                command=self.args or None,
                environment=self.env,
                user=placement.user,
                labels=registry.labels("replica") | {"stressbed.replica": self.name},
                host_config=host_config,
                name=self.container,
                hostname=self.name,
            )
            self.id = created["Id"]
            self._isolation = self._held(created.get("Warnings") or [])
            self.client.api.start(self.id)
            info = self.client.api.inspect_container(self.id)
            network = info["NetworkSettings"]["Networks"].get(placement.network) or {}
            self.host = str(network.get("IPAddress") or "")
            if not self.host:  # it ended at once: nothing answers for it (not loopback either)
                said = self.client.api.logs(self.id, tail=1).decode(errors="replace").strip()
                raise OSError(
                    f"it ended at once (exit {info['State'].get('ExitCode')})"
                    + (f": {said[:200]}" if said else "")
                )
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            self._never_started()
            raise OSError(f"the engine did not start {self.container}: {exc}") from None
        self.started_at = time.monotonic()
        self.nofile = self.nofile_limit
        self.group = _cgroup_of(int(info["State"].get("Pid") or 0))
        for target in (self._wait, self._copy_logs, self._read_stats):
            thread = threading.Thread(
                target=target, name=f"{self.name}-{target.__name__}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return {"container": self.container, "address": self.host}

    def _never_started(self) -> None:
        """A start that failed half way: the container goes now, and nothing waits for it."""
        self.exit = _exit_of(127, False)
        self._ended.set()
        with contextlib.suppress(Exception):
            self.placement.registry.remove_container(self.container)
        self.id = ""

    # -- following it -----------------------------------------------------------------

    def _wait(self) -> None:
        """Block until the container ends; then how it ended, OOM kill included."""
        self.exit = _exit_of(*wait_exit(self.client, self.id))
        self._ended.set()

    def _copy_logs(self) -> None:
        copy_log(self.client, self.id, self.log)

    def _read_stats(self) -> None:
        with contextlib.suppress(Exception):
            for stats in self.client.api.stats(self.id, stream=True, decode=True):
                if self._ended.is_set():
                    return
                seen = _usage_of(stats)
                if seen is not None:
                    self._usage = seen

    def poll(self) -> Exit | None:
        """How the container ended, or None while it runs."""
        return self.exit

    def usage(self) -> Usage | None:
        """CPU time and working set as the Engine's stats last said; None once it ended."""
        if self.exit is not None:
            return None
        seen = self._usage
        if seen is not None and self.group is not None:  # its processes, read here
            group = self.group
            seen = replace(
                seen, pids=group.pids_state(), io=group.io_state(), cpu_wait_s=group.run_delay()
            )
        return seen

    # -- acting on it ----------------------------------------------------------------------

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the container (its init passes it on to the target); SIGSTOP
        and SIGCONT, which an init does not pass on, to each of its processes here."""
        if self.exit is not None or not self.id:
            return
        if signum in (signal.SIGSTOP, signal.SIGCONT) and self.group is not None:
            for pid in self.group.pids():
                with contextlib.suppress(OSError):
                    os.kill(pid, signum)
            return
        with contextlib.suppress(Exception):
            self.client.api.kill(self.id, signal=int(signum))

    def kill(self) -> None:
        """SIGKILL the container, and wait (bounded) until it has ended."""
        if not self.id:
            return
        if self._paused:
            self.freeze(False)  # a paused container cannot be killed
        self.signal(signal.SIGKILL)
        self._ended.wait(timeout=10)

    @property
    def can_freeze(self) -> bool:
        return bool(self.id) and self.exit is None

    def freeze(self, frozen: bool) -> bool:
        """``docker pause`` (the cgroup freezer: every process stopped at once) or unpause."""
        try:
            if frozen:
                self.client.api.pause(self.id)
            else:
                self.client.api.unpause(self.id)
        except Exception:
            return False
        self._paused = frozen
        if self.group is not None:
            self.group.frozen = frozen  # a hog enters a frozen cgroup only after its exec
        return True

    def exec_probe(self, command: Sequence[str], timeout_s: float) -> tuple[bool, str]:
        """An exec probe run in the container (``docker exec``), bounded by ``timeout`` in
        there, as the kubelet's exec probe runs in the pod's container."""
        if self.exit is not None or not self.id:
            return False, "the container has ended"
        bounded = ["timeout", "-s", "KILL", f"{timeout_s:g}", *command]
        try:
            made = self.client.api.exec_create(self.id, bounded, environment=self.env)
            self.client.api.exec_start(made["Id"])
            code = self.client.api.exec_inspect(made["Id"]).get("ExitCode")
        except Exception as exc:
            return False, f"docker exec failed: {exc}"
        if code in (124, 137):
            return False, f"timed out after {timeout_s:g} s"
        return code == 0, f"exit code {code}"

    def close(self) -> None:
        """Kill whatever is left and remove the container (its logs are in the replica's
        log file)."""
        if self.id:
            self.kill()
        for thread in self._threads:
            thread.join(timeout=2)
        if self.container:
            with contextlib.suppress(Exception):
                self.placement.registry.remove_container(self.container)


def _exit_of(code: int, oom: bool) -> Exit:
    """An exit as the local replicas say it: a code above 128 is a signal's (128 + n)."""
    if code > 128:
        return Exit(None, code - 128, oom)
    return Exit(code, None, oom)


def _usage_of(stats: Mapping[str, Any]) -> Usage | None:
    cpu = stats.get("cpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    memory = stats.get("memory_stats") or {}
    if total is None or "usage" not in memory:
        return None
    details = memory.get("stats") or {}
    # The working set, as the kubelet counts it: usage less the inactive file cache.
    inactive = details.get("total_inactive_file", details.get("inactive_file", 0))
    throttling = cpu.get("throttling_data") or {}
    periods = (
        (int(throttling["periods"]), int(throttling["throttled_periods"]))
        if throttling.get("periods")
        else None
    )
    return Usage(int(total) / 1e9, max(0, int(memory["usage"]) - int(inactive)), periods)


def _cgroup_of(pid: int) -> ReplicaCgroup | None:
    """The container's cgroups on this host, read from its main process (v1 or v2)."""
    if pid <= 0:
        return None
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    dirs: dict[str, Path] = {}
    version = 1
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not controllers:
            version = 2 if len(lines) == 1 else version
            dirs[""] = CGROUP_ROOT / path.lstrip("/")
        for controller in controllers.split(","):
            if controller in ("memory", "cpu", "cpuacct", "freezer", "pids", "blkio"):
                dirs[controller] = CGROUP_ROOT / controller / path.lstrip("/")
    # Only where this process may move a hog in (root, as the engine's cgroups are root's).
    dirs = {k: v for k, v in dirs.items() if os.access(v / "cgroup.procs", os.W_OK)}
    if version == 1:
        dirs.pop("", None)
    if not dirs:
        return None
    return ReplicaCgroup(version, dirs)
