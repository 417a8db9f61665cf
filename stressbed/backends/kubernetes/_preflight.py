"""What the Kubernetes backend needs, checked before anything is created (exit 2): the Pulumi
CLI, the Python packages of the ``kubernetes`` extra, a kubeconfig and a context in it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ...errors import ConfigError
from ...stack.network import parse_cidrs
from ...stack.quantities import Resources, parse_cpu, parse_memory
from .manifests import RUNNER_LIMITS, RUNNER_REQUESTS

__all__ = ["PULL_POLICIES", "ClusterAccess", "KubernetesOptions", "preflight"]

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


#: A runner's memory besides its agents: k6, its VUs' runtimes, stressbed's runner.
RUNNER_BASE_MEMORY = 256 * 2**20
#: What one simulated agent costs a runner at most, its WebSocket included (BENCHMARKS.md
#: measures it; this keeps a margin over the measure).
AGENT_MEMORY = 128 * 2**10


def population_memory(agents: int) -> int:
    """The memory a runner holding ``agents`` simulated agents needs, rounded up to a MiB."""
    need = RUNNER_BASE_MEMORY + agents * AGENT_MEMORY
    return -(-need // 2**20) * 2**20


@dataclass(frozen=True)
class KubernetesOptions:
    kubeconfig: Path | None = None  # default: $KUBECONFIG, else ~/.kube/config
    context: str | None = None  # default: the kubeconfig's current context
    state: str | None = None  # Pulumi state backend URL; default: file:// in the run's dir
    agent_image: str | None = None  # default: the StackSpec's target.image
    runner_image: str = "stressbed-runner:latest"
    image_pull_policy: str = "IfNotPresent"
    pending_deadline_s: float = 300.0  # a runner Pending longer than this fails the run
    #: Every runner ready (k6 up, paused) within this of the coordinator's start; with the
    #: pending deadline and setup()'s, it bounds the time before the run's own deadline starts.
    ready_timeout_s: float = 300.0
    destroy_timeout_s: float = 900.0  # teardown gives up on `pulumi destroy` after this
    #: Where each run's Pulumi state and passphrase live (never in the results, which CI
    #: uploads): default $XDG_STATE_HOME/stressbed/pulumi (~/.local/state/stressbed/pulumi).
    state_home: Path | None = None
    runner_cpu: int | None = None  # millicores; None: requests 500m, limit 2
    runner_memory: int | None = None  # bytes; None: requests 256Mi, limit 1Gi
    #: Where the API server's requests to pods come from (the pod proxy the agent's metrics
    #: and fault hook are reached through): admitted by the agent's NetworkPolicy.
    control_plane_cidrs: tuple[str, ...] = ()

    def runner_resources(self, agents: int = 0) -> tuple[Resources, Resources]:
        """The runner pods' (requests, limits): what --runner-cpu/--runner-memory set, as both
        request and limit (a Guaranteed pod: the load generator is not throttled first).
        ``agents``: the simulated agents a runner holds at most; without --runner-memory its
        pods then request and are limited to what they need (:func:`population_memory`), the
        default limit at least."""
        memory = self.runner_memory
        if memory is None and agents > 0:
            memory = max(RUNNER_LIMITS.memory or 0, population_memory(agents))
        requests = Resources(
            self.runner_cpu or RUNNER_REQUESTS.cpu_m, memory or RUNNER_REQUESTS.memory
        )
        limits = Resources(self.runner_cpu or RUNNER_LIMITS.cpu_m, memory or RUNNER_LIMITS.memory)
        return requests, limits

    namespace_prefix: str = "stressbed"

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> KubernetesOptions:
        """From the run's settings (``kubeconfig``, ``context``, ``agent_image``,
        ``runner_image``, ``image_pull_policy``, ``runner_cpu``, ``runner_memory``,
        ``control_plane_cidrs``); ConfigError for a bad value."""
        policy = options.get("image_pull_policy") or cls.image_pull_policy
        if policy not in PULL_POLICIES:
            raise ConfigError("--image-pull-policy", policy, "Always, IfNotPresent or Never")
        kubeconfig = options.get("kubeconfig")
        cpu, memory = options.get("runner_cpu"), options.get("runner_memory")
        return cls(
            runner_cpu=parse_cpu(cpu, "--runner-cpu") if cpu else None,
            runner_memory=parse_memory(memory, "--runner-memory") if memory else None,
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
            context=options.get("context") or None,
            agent_image=options.get("agent_image") or None,
            runner_image=options.get("runner_image") or cls.runner_image,
            image_pull_policy=policy,
            control_plane_cidrs=parse_cidrs(
                options.get("control_plane_cidrs"), "--control-plane-cidrs"
            ),
        )


@dataclass(frozen=True)
class ClusterAccess:
    """Where the preflight found the cluster: the kubeconfig file (the first of $KUBECONFIG's
    list, which are merged as kubectl merges them) and the context in it."""

    kubeconfig: Path
    context: str
    merged_with: tuple[Path, ...] = ()  # the rest of $KUBECONFIG's files, in its order

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.kubeconfig, *self.merged_with)

    @property
    def path_list(self) -> str:
        """Every file, as KUBECONFIG lists them (what kubectl, client-go and the Python client
        merge: the first file to name a context or set current-context wins)."""
        return os.pathsep.join(str(path) for path in self.files)


def preflight(
    options: KubernetesOptions, env: Mapping[str, str] | None = None, *, engine: bool = True
) -> ClusterAccess:
    """Everything the backend needs, checked before anything is created (ConfigError, exit 2).
    ``engine=False``: only the cluster (``stressbed collect`` needs no Pulumi)."""
    env = os.environ if env is None else env
    if engine and shutil.which("pulumi", path=env.get("PATH")) is None:
        raise ConfigError(
            "--backend kubernetes",
            "no pulumi CLI on PATH",
            "the Pulumi CLI (curl -fsSL https://get.pulumi.com | sh, then open a new shell)",
        )
    try:
        import kubernetes  # noqa: F401, PLC0415
        import pulumi  # noqa: F401, PLC0415
        import pulumi_kubernetes  # noqa: F401, PLC0415
    except ImportError as exc:
        raise ConfigError(
            "--backend kubernetes",
            f"missing Python package {exc.name}",
            "pip install 'stressbed[kubernetes]'",
        ) from None
    # Absolute: Pulumi runs elsewhere, and a printed command must work from any directory.
    files = [path.absolute() for path in _kubeconfigs(options.kubeconfig, env)]
    names: list[str] = []
    current = None
    for path in files:  # as kubectl merges them: the first to name or set a thing wins
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            raise ConfigError("--kubeconfig", str(path), "a readable kubeconfig (YAML)") from None
        if not isinstance(config, dict):
            raise ConfigError("--kubeconfig", str(path), "a kubeconfig (a YAML mapping)")
        for item in config.get("contexts") or []:
            if isinstance(item, dict) and str(item.get("name")) not in names:
                names.append(str(item.get("name")))
        current = current or config.get("current-context") or None
    where = os.pathsep.join(str(p) for p in files)
    context = options.context or current
    if not context or context not in names:
        raise ConfigError(
            "--context", context, f"a context of {where}: {', '.join(names) or 'none'}"
        )
    return ClusterAccess(files[0], str(context), tuple(files[1:]))


def _kubeconfigs(given: Path | None, env: Mapping[str, str]) -> list[Path]:
    """The kubeconfig files to merge: --kubeconfig's one file; else each of $KUBECONFIG's list
    that exists (kubectl skips the missing ones); else ~/.kube/config."""
    if given is not None:
        if not given.is_file():
            raise ConfigError("--kubeconfig", str(given), "an existing kubeconfig file")
        return [given]
    listed = [p for p in (env.get("KUBECONFIG") or "").split(os.pathsep) if p]
    if not listed:
        home = Path(env.get("HOME", "~")).expanduser() / ".kube/config"
        if not home.is_file():
            raise ConfigError("--kubeconfig", str(home), "an existing kubeconfig file")
        return [home]
    found = [Path(p).expanduser() for p in listed if Path(p).expanduser().is_file()]
    if not found:
        raise ConfigError(
            "KUBECONFIG", env["KUBECONFIG"], "a list of kubeconfig files, one existing"
        )
    return list(dict.fromkeys(found))
