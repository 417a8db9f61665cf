"""A StackSpec as a Compose file: the stack this backend runs, for ``docker compose up``.

One pure translation (``stressbed export compose`` writes it): the target's image as one
service with the limits and the security :class:`._container.ContainerReplica` gives each
replica (the same defaults: :data:`._container.PIDS_LIMIT`, :data:`._container.NOFILE`,
:data:`._container.TMPFS_SIZE`), following the Compose Specification. What Compose has no field
for (the autoscaler, a startup probe's gate, a liveness probe's restarts, the quota, the
LimitRange) is left out and said in the file's header, as is an IO throttle without
``io_device`` (the spec names no disk; a run uses the data folder's).
"""

from __future__ import annotations

import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

import yaml

from ...errors import ConfigError
from ...stack.spec import Probe, StackSpec
from ._container import DATA_DIR, NOFILE, PIDS_LIMIT, TMPFS_SIZE

__all__ = ["ComposeFile", "compose_file"]

#: Where ``{data}`` lives: a named volume every replica shares, as the run's data folder is
#: (on tmpfs: a volume on disk would be root's, and the replicas run as their user).
DATA_VOLUME = "data"
LEFT_OUT = "Not in Compose, left out:"
_DEVICE = re.compile(r"/dev/[A-Za-z0-9][A-Za-z0-9._/-]*")


@dataclass(frozen=True)
class ComposeFile:
    """The document and the header lines that say what it holds and what it left out."""

    document: dict[str, Any]
    header: list[str] = field(default_factory=list)

    def text(self, first: tuple[str, ...] = ()) -> str:
        """The file: ``first`` lines, the header, then the YAML."""
        lines = [
            "# " + wrapped
            for line in (*first, *self.header)
            for wrapped in textwrap.wrap(line, 96, subsequent_indent="  " * line.startswith("- "))
        ]
        body = yaml.safe_dump(self.document, sort_keys=False, default_flow_style=False, width=100)
        return "\n".join(lines) + "\n\n" + body


def compose_file(
    spec: StackSpec,
    *,
    image: str | None = None,
    host_port: int | None = None,
    io_device: str | None = None,
) -> ComposeFile:
    """``spec`` (validated here) as a Compose file: ``image`` in place of the target's,
    the replicas published on 127.0.0.1 from ``host_port`` (default: the target's port) on,
    IO throttles on ``io_device`` (``/dev/sda``) when given."""
    spec = spec.validate()
    target = spec.target
    image = image or target.image
    if not image:
        raise ConfigError("stack.target.image", "", "an image to run (or --image)")
    if io_device is not None and not _DEVICE.fullmatch(io_device):
        raise ConfigError("--io-device", io_device, "a block device's path like /dev/sda")
    port = target.port
    first = host_port or port
    replicas = spec.initial_replicas
    if not 1 <= first <= 65536 - replicas:
        raise ConfigError("--port", first, f"a port with room for {replicas} after it")
    header = _header(spec, replicas)
    uses_data = any("{data}" in text for text in (*target.image_args, *(v for _, v in target.env)))
    service: dict[str, Any] = {"image": image}
    if target.image_args:
        service["command"] = [_literal(_fill(a, port)) for a in target.image_args]
    service["user"] = f"{spec.security.run_as_user}:{spec.security.run_as_user}"
    service["read_only"] = spec.security.read_only_root_filesystem
    size = _size(spec.limits.ephemeral_storage) if spec.limits.ephemeral_storage else TMPFS_SIZE
    service["tmpfs"] = [
        f"{path}:rw,nosuid,nodev,size={size}" for path in ("/tmp", *spec.security.writable_paths)
    ]
    if uses_data:
        service["volumes"] = [{"type": "volume", "source": DATA_VOLUME, "target": DATA_DIR}]
    service |= {
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "init": True,
        "restart": "always",
        "stop_grace_period": f"{spec.termination_grace_period_s}s",
        "ports": [_published(first, replicas, port)],
    }
    service["environment"] = _environment(spec)
    service["deploy"] = _deploy(spec, replicas)
    if spec.limits.memory is not None:
        service["memswap_limit"] = _size(spec.limits.memory)  # no swap beyond the limit
    if spec.requests.cpu_m is not None:  # the CPU request as the kubelet (and a run) set it
        service["cpu_shares"] = max(2, spec.requests.cpu_m * 1024 // 1000)
    service["pids_limit"] = spec.pids or PIDS_LIMIT
    nofile = spec.nofile or NOFILE
    service["ulimits"] = {"nofile": {"soft": nofile, "hard": nofile}}
    blkio = _blkio(spec, io_device, header)
    if blkio:
        service["blkio_config"] = blkio
    if header[-1] == LEFT_OUT:
        header.append("- nothing")
    probe = spec.readiness_probe or spec.liveness_probe
    if probe is not None:
        service["healthcheck"] = _healthcheck(probe, port, spec.startup_probe)
    service["labels"] = {"stressbed.export": "compose"}
    document: dict[str, Any] = {"services": {target.name: service}}
    if uses_data:  # the user owns it, as a run's data folder is made writable for it
        user = spec.security.run_as_user
        options = {"type": "tmpfs", "device": "tmpfs", "o": f"uid={user},gid={user}"}
        document["volumes"] = {DATA_VOLUME: {"driver_opts": options}}
        header.insert(
            header.index(LEFT_OUT),
            f"{{data}} is {DATA_DIR}: a named volume on tmpfs the replicas share, owned by "
            "their user (a run's is a folder on its disk, kept with the run).",
        )
    return ComposeFile(document, header)


def _header(spec: StackSpec, replicas: int) -> list[str]:
    lines = [
        "The Compose Specification: `docker compose up -d` (or docker-compose 1.29) starts it.",
        "CPU and memory: deploy.resources, which `docker compose up` honours without swarm "
        "(limits: cpus and memory; reservations: memory), memswap_limit equal to the memory "
        "limit (no swap), and the CPU request as cpu_shares (reservations.cpus binds only in "
        "swarm). The rest as stressbed's Docker backend runs a replica: pids_limit, the nofile "
        "ulimit, a read-only root with a tmpfs /tmp, the user, every capability dropped, "
        "no-new-privileges, an init; published on 127.0.0.1 only (each replica on a free port "
        "of the range).",
        "Secrets come from the environment `docker compose` runs in (${NAME:?...}), never "
        "from this file.",
        LEFT_OUT,
    ]
    hpa = spec.autoscaler
    if hpa is not None:
        lines.append(
            f"- the autoscaler ({hpa.min_replicas}..{hpa.max_replicas} replicas): {replicas} "
            "fixed replicas, the count a run starts with"
        )
    if spec.startup_probe is not None:
        lines.append(
            "- the startup probe's gate: its failure budget is the healthcheck's start_period"
        )
    if spec.readiness_probe is not None and spec.liveness_probe is not None:
        lines.append(
            "- the liveness probe: the healthcheck is the readiness probe's (an unhealthy "
            "container is marked, not restarted)"
        )
    elif spec.liveness_probe is not None:
        lines.append("- the liveness probe's restarts: an unhealthy container is only marked")
    if spec.quota is not None:
        lines.append("- the ResourceQuota")
    if spec.limit_range is not None:
        lines.append("- the LimitRange (its defaults are applied to the requests and limits)")
    if spec.requests.ephemeral_storage is not None:
        lines.append("- the ephemeral-storage request (its limit is the tmpfs's size)")
    if spec.metrics is not None or spec.fault_hook is not None:
        lines.append("- what a run does itself: the metrics scrape, the fault hook's faults")
    return lines


def _environment(spec: StackSpec) -> dict[str, str]:
    """The spec's variables, ``PORT`` and ``HOST`` as a run sets them; each secret named, its
    value taken from the environment of ``docker compose`` (never written here)."""
    target = spec.target
    environment = {k: _literal(_fill(v, target.port)) for k, v in target.env}
    environment |= {"PORT": str(target.port), "HOST": "0.0.0.0"}
    for name in target.secret_env:
        environment[name] = f"${{{name}:?set {name}}}"
    if spec.fault_hook is not None:  # optional: the target's fault hook stays off without it
        environment[spec.fault_hook.token_env] = f"${{{spec.fault_hook.token_env}:-}}"
    return environment


def _deploy(spec: StackSpec, replicas: int) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if spec.limits.cpu_m is not None:
        limits["cpus"] = f"{spec.limits.cpu_m / 1000:g}"
    if spec.limits.memory is not None:
        limits["memory"] = _size(spec.limits.memory)
    resources: dict[str, Any] = {"limits": limits} if limits else {}
    if spec.requests.memory is not None:
        resources["reservations"] = {"memory": _size(spec.requests.memory)}
    deploy: dict[str, Any] = {"replicas": replicas}
    if resources:
        deploy["resources"] = resources
    return deploy


def _blkio(spec: StackSpec, device: str | None, header: list[str]) -> dict[str, Any]:
    io = spec.io
    if io is None:
        return {}
    blkio: dict[str, Any] = {"weight": io.weight} if io.weight is not None else {}
    if io.throttles and device is None:
        header.append(
            f"- stack.io's {', '.join(io.throttles)}: a throttle needs a device's path, which "
            "the spec does not name (a run throttles its data folder's disk): "
            "export with --io-device /dev/X"
        )
    elif io.throttles:
        for name, value in io.throttles.items():
            blkio[f"device_{name}"] = [{"path": device, "rate": value}]
    return blkio


def _healthcheck(probe: Probe, port: int, startup: Probe | None) -> dict[str, Any]:
    timeout = max(1, math.ceil(probe.timeout_s))
    if probe.kind == "exec":
        test = ["CMD", *(_literal(part) for part in probe.command)]
    elif probe.kind == "tcp":  # the image's Python: every stressbed image has one
        test = [
            "CMD",
            "python",
            "-c",
            f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout={timeout})",
        ]
    else:  # urlopen raises on a status of 400 and above: a failing probe, as the kubelet's
        url = f"http://127.0.0.1:{port}{probe.path}"
        test = [
            "CMD",
            "python",
            "-c",
            f"import urllib.request; urllib.request.urlopen({url!r}, timeout={timeout})",
        ]
    check: dict[str, Any] = {
        "test": test,
        "interval": _seconds(probe.period_s),
        "timeout": _seconds(probe.timeout_s),
        "retries": probe.failure_threshold,
    }
    grace = probe.initial_delay_s
    if startup is not None:
        grace = max(grace, startup.initial_delay_s + startup.period_s * startup.failure_threshold)
    if grace > 0:
        check["start_period"] = _seconds(grace)
    return check


def _published(first: int, replicas: int, port: int) -> str:
    host = str(first) if replicas == 1 else f"{first}-{first + replicas - 1}"
    return f"127.0.0.1:{host}:{port}"


def _fill(text: str, port: int) -> str:
    for key, value in (("{port}", str(port)), ("{host}", "0.0.0.0"), ("{data}", DATA_DIR)):
        text = text.replace(key, value)
    return text


def _literal(text: str) -> str:
    """``text`` as Compose reads it literally (``$`` starts an interpolation there)."""
    return text.replace("$", "$$")


def _size(size: int) -> str:
    for unit, scale in (("g", 2**30), ("m", 2**20), ("k", 2**10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}b"


def _seconds(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{round(seconds * 1000)}ms"
