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

__all__ = ["PULL_POLICIES", "ClusterAccess", "KubernetesOptions", "preflight"]

PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass(frozen=True)
class KubernetesOptions:
    kubeconfig: Path | None = None  # default: $KUBECONFIG, else ~/.kube/config
    context: str | None = None  # default: the kubeconfig's current context
    state: str | None = None  # Pulumi state backend URL; default: file:// in the run's dir
    agent_image: str | None = None  # default: the StackSpec's target.image
    runner_image: str = "stressbed-runner:latest"
    image_pull_policy: str = "IfNotPresent"
    pending_deadline_s: float = 300.0  # a runner Pending longer than this fails the run
    destroy_timeout_s: float = 900.0  # teardown gives up on `pulumi destroy` after this
    #: Where each run's Pulumi state and passphrase live (never in the results, which CI
    #: uploads): default $XDG_STATE_HOME/stressbed/pulumi (~/.local/state/stressbed/pulumi).
    state_home: Path | None = None
    namespace_prefix: str = "stressbed"

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> KubernetesOptions:
        """From the run's settings (``kubeconfig``, ``context``, ``agent_image``,
        ``runner_image``, ``image_pull_policy``); ConfigError for a bad value."""
        policy = options.get("image_pull_policy") or cls.image_pull_policy
        if policy not in PULL_POLICIES:
            raise ConfigError("--image-pull-policy", policy, "Always, IfNotPresent or Never")
        kubeconfig = options.get("kubeconfig")
        return cls(
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
            context=options.get("context") or None,
            agent_image=options.get("agent_image") or None,
            runner_image=options.get("runner_image") or cls.runner_image,
            image_pull_policy=policy,
        )


@dataclass(frozen=True)
class ClusterAccess:
    """Where the preflight found the cluster: the kubeconfig file and the context in it."""

    kubeconfig: Path
    context: str


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
    path = options.kubeconfig
    if path is None:
        first = (env.get("KUBECONFIG") or "").split(os.pathsep)[0]
        path = Path(first) if first else Path(env.get("HOME", "~")).expanduser() / ".kube/config"
    if not path.is_file():
        raise ConfigError("--kubeconfig", str(path), "an existing kubeconfig file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raise ConfigError("--kubeconfig", str(path), "a readable kubeconfig (YAML)") from None
    names = [str(c.get("name")) for c in config.get("contexts") or [] if isinstance(c, dict)]
    context = options.context or config.get("current-context")
    if not context:
        raise ConfigError("--context", None, f"a context of {path}: {', '.join(names) or 'none'}")
    if context not in names:
        raise ConfigError(
            "--context", context, f"a context of {path}: {', '.join(names) or 'none'}"
        )
    return ClusterAccess(path, context)
