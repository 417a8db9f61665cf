"""The Docker fleet: runner containers of the runner image, driven as the local fleet drives
its processes.

The stages are the local fleet's (:class:`~stressbed.backends.local.LocalFleet`): each runner
is the same ``python -m stressbed.runner`` the pods run, in a container on the run's network
with its k6 REST API on the container's own address (``--api-host auto``); stressbed releases
them together through those APIs and reads their stdout (the Engine's log stream) for
progress. The bundle is mounted read-only, each runner's results directory read-write, so
results are collected and merged exactly as for local runners. The stack's URL is reached
through the balancer's address on the network's gateway; a ``--target-url`` on loopback
through the host's network (the runners then share this machine's network namespace).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import docker
import docker.errors

from ...errors import ProvisionError
from ...fleet.environment import declared_environment
from ...fleet.release import ReleaseFailed
from ..base import FleetOutcome, FleetSpec
from ..local.fleet import LocalFleet, RunnerHandle
from ._container import NOFILE
from ._engine import Registry, copy_log, wait_exit, writable_by
from .stack import RunNetwork

__all__ = ["ContainerRunner", "DockerFleet"]

#: Where a runner container finds its bundle and writes its results.
BUNDLE_DIR = "/bundle"
OUT_DIR = "/out"
RUNNER_USER = 10001
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class ContainerRunner:
    """One runner container, as :class:`~stressbed.backends.local.fleet.RunnerHandle`."""

    def __init__(self, registry: Registry, container_id: str, name: str, log: Path) -> None:
        self.registry = registry
        self.id = container_id
        self.name = name
        self.log = log
        self.code: int | None = None
        self._ended = threading.Event()
        self._waiter = threading.Thread(target=self._wait, name=f"{name}-wait", daemon=True)
        self._waiter.start()
        self._stderr = threading.Thread(target=self._copy_stderr, name=f"{name}-log", daemon=True)
        self._stderr.start()

    @property
    def client(self) -> Any:
        return self.registry.client

    def _wait(self) -> None:
        code, _ = wait_exit(self.client, self.id)
        # As a process's: killed by signal n is -n (the init passes 128 + n on).
        self.code = -(code - 128) if code > 128 else code
        self._ended.set()

    def _copy_stderr(self) -> None:  # stdout is the runner's events: lines() reads it
        copy_log(self.client, self.id, self.log, stdout=False)

    def lines(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self.client.api.logs(
            self.id, stream=True, follow=True, stdout=True, stderr=False
        ):
            pending += chunk
            *whole, pending = pending.split(b"\n")
            for line in whole:
                yield line + b"\n"
        if pending:
            yield pending

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        if self.code is None:
            with contextlib.suppress(Exception):
                self.client.api.kill(self.id, signal=int(signal.SIGTERM))

    def wait(self, timeout_s: float) -> int | None:
        self._ended.wait(timeout=max(0.0, timeout_s))
        return self.code

    def kill(self) -> None:
        if self.code is None:
            with contextlib.suppress(Exception):
                self.client.api.kill(self.id, signal=int(signal.SIGKILL))
            self._ended.wait(timeout=10)
        self._stderr.join(timeout=2)
        with contextlib.suppress(Exception):  # DockerFleet.run removes what is left by label
            self.registry.remove_container(self.name)


class DockerFleet(LocalFleet):
    """N runner containers released together; none outlives :meth:`run`."""

    def __init__(
        self,
        bundle: Path,
        out_dir: Path,
        spec: FleetSpec,
        env: Mapping[str, str],
        *,
        registry: Registry,
        network: RunNetwork,
        image: Callable[[], str],
        runner_cpu_m: int | None = None,
    ) -> None:
        super().__init__(bundle, out_dir, spec, env)
        self.registry = registry
        self.network = network
        self._image_of = image
        self.container_cpu_m = runner_cpu_m
        self._made_network = False
        self._image = ""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        try:
            self._image = self._image_of()
            if not self._host_network():
                self._made_network = not self.network.name
                self.network.ensure()
        except ProvisionError as exc:
            return FleetOutcome(results=[], failure=str(exc))
        try:
            return super().run(*args, **kwargs)
        finally:
            # Every runner container goes with the fleet, one whose start was interrupted too.
            self.registry.remove_role("runner")
            if self._made_network:  # a fleet without a stack: its network goes with it
                self.registry.remove_all()
                self.network.forget()

    def _host_network(self) -> bool:
        """Whether the target is this machine's loopback and no stack's balancer listens on
        the run's network: then the runners share the host's network."""
        host = urllib.parse.urlsplit(self.env.get("TARGET_URL", "")).hostname or ""
        return host in LOOPBACK and not self.network.gateway

    def _target_env(self) -> dict[str, str]:
        # Of stressbed's environment only what the bundle reads (its env variables, secrets
        # among them): not even a local runner's allow-list, whose PATH, HOME and proxies are
        # this machine's, not the image's; then the run's own (TARGET_URL, the stack's secrets).
        env = declared_environment(os.environ, self.bundle)
        env |= {**self.env, "K6_NO_USAGE_REPORT": "true"}
        url = urllib.parse.urlsplit(env.get("TARGET_URL", ""))
        if url.hostname in LOOPBACK and self.network.gateway:
            # The stack's balancer listens on the network's gateway at the same port.
            netloc = f"{self.network.gateway}:{url.port}" if url.port else self.network.gateway
            env["TARGET_URL"] = urllib.parse.urlunsplit(url._replace(netloc=netloc))
        return env

    def _launch(self, index: int, out: Path) -> RunnerHandle:
        registry = self.registry
        host_network = self._host_network()
        writable_by(out, RUNNER_USER)
        command = ["python", "-m", "stressbed.runner"]
        command += self.runner_args(index, BUNDLE_DIR, OUT_DIR)
        command += ["--api-host", "127.0.0.1" if host_network else "auto"]
        if not host_network:
            command += ["--api-port", "6565"]
        name = registry.container(registry.name(f"runner-{index}"))
        host_config = self.registry.client.api.create_host_config(
            nano_cpus=self.container_cpu_m * 1_000_000 if self.container_cpu_m else None,
            read_only=True,
            tmpfs={"/tmp": "rw,nosuid,nodev,size=64m", "/work": "rw,nosuid,nodev,size=64m"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,
            # k6 holds a descriptor per connection; the runner raises its soft limit to this.
            ulimits=[docker.types.Ulimit(name="nofile", soft=NOFILE, hard=NOFILE)],
            binds={
                str(self.bundle.resolve()): {"bind": BUNDLE_DIR, "mode": "ro"},
                str(out.resolve()): {"bind": OUT_DIR, "mode": "rw"},
            },
            network_mode="host" if host_network else self.network.name,
        )
        try:
            created = registry.client.api.create_container(
                self._image,
                command=command,
                environment=self._target_env(),
                user=f"{RUNNER_USER}:{RUNNER_USER}",
                labels=registry.labels("runner") | {"stressbed.runner": str(index)},
                host_config=host_config,
                name=name,
            )
            registry.client.api.start(created["Id"])
        except docker.errors.DockerException as exc:
            registry.remove_container(name)
            raise ReleaseFailed(f"runner {index}: its container did not start: {exc}") from None
        return ContainerRunner(registry, created["Id"], name, out / "runner.log")
