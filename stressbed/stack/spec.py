"""StackSpec: the agent stack a run provisions, the same for the local and Kubernetes backends.

Kubernetes semantics throughout: requests and limits (``cpu: "250m"``, ``memory: "256Mi"``),
startup/readiness/liveness probes, a HorizontalPodAutoscaler (autoscaling/v2), a ResourceQuota
and a LimitRange, a restricted security context, a termination grace period. The spec is
validated as a whole before anything starts (``ConfigError``, exit 2). Quantities are parsed
in :mod:`stressbed.stack.quantities`; the reference agent's spec is
:func:`stressbed.stack.agent.reference_agent`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import ConfigError
from ..results.target_metrics import parse_selector
from .quantities import Resources, show_quantity

__all__ = [
    "Autoscaler",
    "FaultHook",
    "IoLimits",
    "LimitRange",
    "Metrics",
    "Probe",
    "Quota",
    "Resources",
    "ScalePolicy",
    "Security",
    "StackSpec",
    "Target",
    "quota_capped",
    "quota_denial",
]


#: Series a Metrics block selects at most (each may match several label sets).
MAX_METRIC_SERIES = 16
#: An IO weight's range (cgroup v1 ``blkio.weight``, Docker's ``blkio_weight``).
MIN_IO_WEIGHT, MAX_IO_WEIGHT = 10, 1000
#: The fewest processes (threads included) a replica may be limited to: an interpreter and
#: its threads need a few.
MIN_PIDS = 8
#: The fewest open files a replica may be limited to (its listening socket, logs, imports).
MIN_NOFILE = 64


@dataclass(frozen=True)
class Metrics:
    """Where the target exposes Prometheus metrics, and which of them the report draws:
    ``series`` holds metric families, optionally with labels (``agent_requests{status="429"}``).
    Every replica is scraped once a second while the fleet runs."""

    path: str = "/metrics"
    port: int | None = None  # None: the target's port
    series: tuple[str, ...] = ()

    def check(self, where: str) -> None:
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}.path", self.path, "a path starting with '/'")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ConfigError(f"{where}.port", self.port, "a port 1..65535")
        if not 1 <= len(self.series) <= MAX_METRIC_SERIES:
            raise ConfigError(
                f"{where}.series", list(self.series), f"1 to {MAX_METRIC_SERIES} metric families"
            )
        for i, text in enumerate(self.series):
            parse_selector(text, f"{where}.series[{i}]")


@dataclass(frozen=True)
class FaultHook:
    """Where the target injects faults of its own (the reference agent's ``/admin/faults``):
    ``POST path`` with ``{"kind", "duration_s"}`` starts one, ``DELETE path/<kind>`` ends it,
    both with ``header`` carrying a token made for the run and given to the replicas in
    ``token_env`` (never written anywhere; ``Authorization`` carries it as ``Bearer <token>``,
    any other header as it is: a cluster's API server proxy keeps a header of the target's own).
    ``dependencies`` maps the names a scenario's ``fault.dependency(name)`` uses to the hook's
    kinds."""

    path: str = "/admin/faults"
    token_env: str = "STRESSBED_AGENT_ADMIN_TOKEN"
    header: str = "X-Admin-Token"
    dependencies: tuple[tuple[str, str], ...] = (("sink", "sink_failure"),)

    def check(self, where: str) -> None:
        if not self.path.startswith("/"):
            raise ConfigError(f"{where}.path", self.path, "a path starting with '/'")
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", self.token_env):
            raise ConfigError(
                f"{where}.token_env", self.token_env, "an environment variable's name"
            )
        if not re.fullmatch(r"[A-Za-z0-9-]+", self.header):
            raise ConfigError(f"{where}.header", self.header, "an HTTP header's name")
        for name, kind in self.dependencies:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name) or not kind:
                raise ConfigError(
                    f"{where}.dependencies", f"{name}: {kind}", "name: hook kind, like sink"
                )

    def kind_of(self, dependency: str) -> str | None:
        return dict(self.dependencies).get(dependency)

    def headers(self, token: str) -> dict[str, str]:
        """The request headers that carry ``token`` to the hook."""
        value = f"Bearer {token}" if self.header.lower() == "authorization" else token
        return {self.header: value, "Content-Type": "application/json"}


@dataclass(frozen=True)
class Probe:
    """A Kubernetes probe: HTTP GET on ``path``, a TCP connect, or a command (exit 0 passes)."""

    kind: Literal["http", "tcp", "exec"] = "http"
    path: str = "/healthz"
    port: int | None = None  # the target's port when None
    command: tuple[str, ...] = ()
    initial_delay_s: float = 0.0
    period_s: float = 10.0
    timeout_s: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    def check(self, field_name: str) -> None:
        if self.kind not in ("http", "tcp", "exec"):
            raise ConfigError(f"{field_name}.kind", self.kind, "'http', 'tcp' or 'exec'")
        if self.kind == "http" and not self.path.startswith("/"):
            raise ConfigError(f"{field_name}.path", self.path, "a path starting with '/'")
        if self.kind == "exec" and not self.command:
            raise ConfigError(f"{field_name}.command", self.command, "a command to run")
        if self.initial_delay_s < 0:
            raise ConfigError(f"{field_name}.initial_delay_s", self.initial_delay_s, "seconds >= 0")
        for name in ("period_s", "timeout_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{field_name}.{name}", getattr(self, name), "seconds > 0")
        for name in ("success_threshold", "failure_threshold"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{field_name}.{name}", getattr(self, name), "an integer >= 1")


@dataclass(frozen=True)
class ScalePolicy:
    """At most ``value`` pods (``kind="Pods"``) or percent of current (``"Percent"``) per period."""

    kind: Literal["Pods", "Percent"]
    value: int
    period_s: int


@dataclass(frozen=True)
class Autoscaler:
    """autoscaling/v2 HPA: target utilisations are percents of the replica's requests."""

    min_replicas: int = 1
    max_replicas: int = 4
    cpu_utilization: int | None = 70
    memory_utilization: int | None = None
    scale_up_stabilization_s: int = 0
    scale_down_stabilization_s: int = 300
    scale_up_policies: tuple[ScalePolicy, ...] = (
        ScalePolicy("Percent", 100, 15),
        ScalePolicy("Pods", 4, 15),
    )
    scale_down_policies: tuple[ScalePolicy, ...] = (ScalePolicy("Percent", 100, 15),)
    tolerance: float = 0.1


@dataclass(frozen=True)
class Quota:
    """ResourceQuota hard caps for the namespace; None where not capped."""

    pods: int | None = None
    requests: Resources = Resources()
    limits: Resources = Resources()


@dataclass(frozen=True)
class LimitRange:
    """Container defaults (limits), default requests, and min/max bounds."""

    default: Resources = Resources()
    default_request: Resources = Resources()
    minimum: Resources = Resources()
    maximum: Resources = Resources()


@dataclass(frozen=True)
class IoLimits:
    """A replica's IO on the device of its writable paths: ``weight``, its share against other
    cgroups (10..1000, as cgroup v1 blkio and Docker's ``blkio_weight``); read and write
    limits in bytes per second (``10Mi``) and in operations per second. None: not limited."""

    weight: int | None = None
    read_bps: int | None = None
    write_bps: int | None = None
    read_iops: int | None = None
    write_iops: int | None = None

    @property
    def throttles(self) -> dict[str, int]:
        """The throughput limits set, by name."""
        names = ("read_bps", "write_bps", "read_iops", "write_iops")
        return {n: v for n in names if (v := getattr(self, n)) is not None}

    @property
    def limited(self) -> list[str]:
        """The limits set, as summary.json's ``stack.isolation`` names them (``io.weight``,
        ``io.write_bps``, ...)."""
        names = ["weight"] if self.weight is not None else []
        return [f"io.{n}" for n in [*names, *self.throttles]]

    def check(self, where: str) -> None:
        if self.weight is not None and not MIN_IO_WEIGHT <= self.weight <= MAX_IO_WEIGHT:
            raise ConfigError(
                f"{where}.weight", self.weight, f"a weight {MIN_IO_WEIGHT}..{MAX_IO_WEIGHT}"
            )
        for name, value in self.throttles.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                unit = "bytes per second ('10Mi')" if name.endswith("bps") else "operations/s"
                raise ConfigError(f"{where}.{name}", value, f"a positive number of {unit}")


@dataclass(frozen=True)
class Security:
    run_as_non_root: bool = True
    run_as_user: int = 10001
    read_only_root_filesystem: bool = True
    #: Paths the target may write (an emptyDir in a cluster, a temp dir locally).
    writable_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """What runs: ``command`` on the local backend, ``image`` in a cluster.

    ``{port}`` in the command or args becomes the port the replica must listen on: a free
    loopback port per replica locally (also in ``$PORT``), ``port`` in a cluster. ``{data}``
    in the command, args or env values becomes a writable directory: locally one the stack's
    replicas share (``results/<run>/stack/data``, kept with the run), in a cluster the pod's
    own ``/tmp``.
    """

    name: str
    port: int
    command: tuple[str, ...] = ()
    image: str = ""
    args: tuple[str, ...] = ()
    #: The image's arguments in a cluster (``{port}`` substituted); empty: the image's own.
    image_args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    #: Secret environment variables: taken from the run's environment (a Secret in a
    #: cluster), never from the spec. Where the environment lacks one, a run that provisions
    #: the stack makes a random value for itself and hands it to the runners as well.
    secret_env: tuple[str, ...] = ()


@dataclass(frozen=True)
class StackSpec:
    target: Target
    replicas: int = 2
    requests: Resources = Resources()
    limits: Resources = Resources()
    startup_probe: Probe | None = None
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    autoscaler: Autoscaler | None = None
    #: The target's own Prometheus metrics, scraped during the run (None: not scraped).
    metrics: Metrics | None = None
    quota: Quota | None = None
    limit_range: LimitRange | None = None
    security: Security = field(default_factory=Security)
    termination_grace_period_s: int = 30
    #: The target's own fault injection, for ``fault.dependency`` (None: it has none).
    fault_hook: FaultHook | None = None
    #: IO weight and throughput limits on the writable paths' device (None: not limited).
    io: IoLimits | None = None
    #: The most processes and threads a replica may run (a fork bomb stops there); None:
    #: the backend's default.
    pids: int | None = None
    #: A replica's open-file limit (RLIMIT_NOFILE); None: the backend's default.
    nofile: int | None = None

    def effective(self) -> StackSpec:
        """The spec with the LimitRange's defaults applied, as the API server would."""
        if self.limit_range is None:
            return self
        lr = self.limit_range
        limits = Resources(
            self.limits.cpu_m if self.limits.cpu_m is not None else lr.default.cpu_m,
            self.limits.memory if self.limits.memory is not None else lr.default.memory,
            self.limits.ephemeral_storage,
        )
        # Kubernetes: a missing request is the container's own limit when it set one, else
        # the LimitRange's default request, else the (defaulted) limit.
        requests = Resources(
            _first(self.requests.cpu_m, self.limits.cpu_m, lr.default_request.cpu_m, limits.cpu_m),
            _first(
                self.requests.memory, self.limits.memory, lr.default_request.memory, limits.memory
            ),
            self.requests.ephemeral_storage,
        )
        return replace(self, requests=requests, limits=limits)

    def validate(self) -> StackSpec:
        """The effective spec, or ConfigError naming the field, value and what is allowed."""
        spec = self.effective()
        target = spec.target
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?", target.name):
            raise ConfigError("stack.target.name", target.name, "a DNS label (a-z, 0-9, -)")
        if not 1 <= target.port <= 65535:
            raise ConfigError("stack.target.port", target.port, "a port 1..65535")
        if not target.command and not target.image:
            raise ConfigError(
                "stack.target", target.name, "a command (local) or an image (cluster)"
            )
        if spec.replicas < 1:
            raise ConfigError("stack.replicas", spec.replicas, "an integer >= 1")
        for kind in ("cpu_m", "memory", "ephemeral_storage"):
            _at_most(
                f"stack.requests.{_name(kind)}",
                kind,
                getattr(spec.requests, kind),
                getattr(spec.limits, kind),
                "the limit",
            )
        _check_isolation(spec)
        for name in ("startup_probe", "readiness_probe", "liveness_probe"):
            probe = getattr(spec, name)
            if probe is None:
                continue
            probe.check(f"stack.{name}")
            if probe.kind != "exec" and probe.port not in (None, target.port):
                raise ConfigError(
                    f"stack.{name}.port", probe.port, f"the target's port ({target.port})"
                )
            if name != "readiness_probe" and probe.success_threshold != 1:
                raise ConfigError(
                    f"stack.{name}.success_threshold",
                    probe.success_threshold,
                    "1 (Kubernetes requires it for startup and liveness probes)",
                )
        if spec.termination_grace_period_s < 0:
            raise ConfigError(
                "stack.termination_grace_period_s", spec.termination_grace_period_s, "seconds >= 0"
            )
        if spec.metrics is not None:
            spec.metrics.check("stack.metrics")
        if spec.fault_hook is not None:
            spec.fault_hook.check("stack.fault_hook")
        _check_autoscaler(spec)
        _check_limit_range(spec)
        _check_quota(spec)
        return spec

    @property
    def min_replicas(self) -> int:
        return self.autoscaler.min_replicas if self.autoscaler else self.replicas

    @property
    def initial_replicas(self) -> int:
        """How many replicas a stack starts with (an HPA bounds the Deployment's count)."""
        hpa = self.autoscaler
        if hpa is None:
            return self.replicas
        return min(max(self.replicas, hpa.min_replicas), hpa.max_replicas)


def _check_isolation(spec: StackSpec) -> None:
    if spec.io is not None:
        spec.io.check("stack.io")
    for name, least in (("pids", MIN_PIDS), ("nofile", MIN_NOFILE)):
        value = getattr(spec, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"stack.{name}", value, f"a whole number >= {least}")


def _check_autoscaler(spec: StackSpec) -> None:
    hpa = spec.autoscaler
    if hpa is None:
        return
    if hpa.min_replicas < 1:
        raise ConfigError("stack.autoscaler.min_replicas", hpa.min_replicas, "an integer >= 1")
    if hpa.max_replicas < hpa.min_replicas:
        raise ConfigError(
            "stack.autoscaler.max_replicas",
            hpa.max_replicas,
            f"at least min_replicas ({hpa.min_replicas})",
        )
    if hpa.cpu_utilization is None and hpa.memory_utilization is None:
        raise ConfigError(
            "stack.autoscaler", "no metric", "a cpu_utilization or memory_utilization"
        )
    for name, resource in (("cpu_utilization", "cpu_m"), ("memory_utilization", "memory")):
        target = getattr(hpa, name)
        if target is None:
            continue
        if not 1 <= target <= 1000:
            raise ConfigError(f"stack.autoscaler.{name}", target, "a percent of requests, 1..1000")
        if getattr(spec.requests, resource) is None:
            raise ConfigError(
                f"stack.requests.{_name(resource)}",
                None,
                f"a request: autoscaler.{name} is a percent of it",
            )
    if not 0 <= hpa.tolerance < 1:
        raise ConfigError("stack.autoscaler.tolerance", hpa.tolerance, "a fraction in [0, 1)")
    for direction in ("up", "down"):
        window = getattr(hpa, f"scale_{direction}_stabilization_s")
        if not 0 <= window <= 3600:
            raise ConfigError(
                f"stack.autoscaler.scale_{direction}_stabilization_s", window, "seconds 0..3600"
            )
        for i, policy in enumerate(getattr(hpa, f"scale_{direction}_policies")):
            where = f"stack.autoscaler.scale_{direction}_policies[{i}]"
            if policy.kind not in ("Pods", "Percent"):
                raise ConfigError(f"{where}.kind", policy.kind, "'Pods' or 'Percent'")
            if policy.value < 1:
                raise ConfigError(f"{where}.value", policy.value, "an integer >= 1")
            if not 1 <= policy.period_s <= 1800:
                raise ConfigError(f"{where}.period_s", policy.period_s, "seconds 1..1800")


def _check_limit_range(spec: StackSpec) -> None:
    lr = spec.limit_range
    if lr is None:
        return
    for kind in ("cpu_m", "memory"):
        low, high = getattr(lr.minimum, kind), getattr(lr.maximum, kind)
        _at_most(f"stack.limit_range.min.{_name(kind)}", kind, low, high, "max")
        for what in ("requests", "limits"):
            value = getattr(getattr(spec, what), kind)
            where = f"stack.{what}.{_name(kind)}"
            if value is not None and low is not None and value < low:
                raise ConfigError(
                    where,
                    show_quantity(kind, value),
                    f"at least the LimitRange min ({show_quantity(kind, low)})",
                )
            _at_most(where, kind, value, high, "the LimitRange max")


def quota_capped(spec: StackSpec) -> list[tuple[str, str, int | None, int]]:
    """What the quota caps, in checking order: (``requests``/``limits``, the resource kind
    ``cpu_m``/``memory``, one replica's amount or None, the cap)."""
    quota = spec.quota
    if quota is None:
        return []
    capped = []
    for what in ("requests", "limits"):
        for kind in ("cpu_m", "memory"):
            cap = getattr(getattr(quota, what), kind)
            if cap is not None:
                capped.append((what, kind, getattr(getattr(spec, what), kind), cap))
    return capped


def quota_denial(spec: StackSpec, pods: int) -> str | None:
    """Why one more replica beside ``pods`` existing ones (terminating ones count, as pods do)
    would break the ResourceQuota, in the API server's words; None if it fits."""
    quota = spec.quota
    if quota is None:
        return None
    count = pods + 1
    if quota.pods is not None and count > quota.pods:
        return f"exceeded quota: pods, requested 1, used {count - 1}, limited {quota.pods}"
    for what, kind, each, cap in quota_capped(spec):
        if each is not None and each * count > cap:
            unit = "cpu" if kind == "cpu_m" else "memory"
            return (
                f"exceeded quota: {what}.{unit}, requested {show_quantity(kind, each)}, "
                f"used {show_quantity(kind, each * (count - 1))}, "
                f"limited {show_quantity(kind, cap)}"
            )
    return None


def _check_quota(spec: StackSpec) -> None:
    quota = spec.quota
    if quota is None:
        return
    need = spec.initial_replicas
    if quota.pods is not None and quota.pods < need:
        raise ConfigError("stack.quota.pods", quota.pods, f"room for the initial {need} replicas")
    for what, kind, each, cap in quota_capped(spec):
        if each is None:
            raise ConfigError(
                f"stack.{what}.{_name(kind)}",
                None,
                f"a value: the quota caps {what}.{_name(kind)}",
            )
        if cap < each * need:
            raise ConfigError(
                f"stack.quota.{what}.{_name(kind)}",
                show_quantity(kind, cap),
                f"room for the initial {need} replicas ({show_quantity(kind, each * need)})",
            )


def _at_most(where: str, kind: str, value: int | None, bound: int | None, what: str) -> None:
    """Raise unless ``value <= bound`` (when both are set)."""
    if value is not None and bound is not None and value > bound:
        raise ConfigError(
            where, show_quantity(kind, value), f"at most {what} ({show_quantity(kind, bound)})"
        )


def _first(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)


def _name(kind: str) -> str:
    return {"cpu_m": "cpu", "ephemeral_storage": "ephemeral-storage"}.get(kind, kind)
