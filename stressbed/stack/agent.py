"""The reference agent's stack: the default target of ``stressbed run`` and ``nox -s stress``."""

from __future__ import annotations

import sys

from .quantities import Resources
from .spec import (
    Autoscaler,
    FaultHook,
    LimitRange,
    Metrics,
    Probe,
    Quota,
    StackSpec,
    Target,
)

__all__ = ["AGENT_SERIES", "reference_agent"]

#: What the report draws of the agent's own metrics: its backpressure and its failures.
AGENT_SERIES = (
    "agent_queue_points",
    "agent_in_flight_requests",
    "agent_points_accepted",
    "agent_points_dropped",
    'agent_requests{status="429"}',
    "agent_circuit_breaker_state",
    "agent_request_duration_seconds",
    # A population's channels, and the registrations it made (duplicates: a bug somewhere).
    "agent_channel_connected",
    "agent_channel_refused",
    "agent_registrations",
    "agent_duplicate_registrations",
)


def reference_agent(port: int = 8080) -> StackSpec:
    """The reference agent's stack: the defaults of ``nox -s stress``."""
    return StackSpec(
        target=Target(
            name="agent",
            port=port,
            command=(sys.executable, "-m", "stressbed_agent", "--port", "{port}"),
            image="stressbed-agent:latest",
            # In a pod the agent listens on the pod's address, on the spec's port.
            image_args=("--host", "0.0.0.0", "--port", "{port}"),
            secret_env=("STRESSBED_AGENT_TOKEN",),
        ),
        replicas=2,
        requests=Resources.of({"cpu": "250m", "memory": "128Mi"}, "stack.requests"),
        limits=Resources.of({"cpu": "1", "memory": "256Mi"}, "stack.limits"),
        startup_probe=Probe("http", "/healthz", period_s=1, failure_threshold=30),
        readiness_probe=Probe("http", "/readyz", period_s=2, failure_threshold=2),
        liveness_probe=Probe("http", "/healthz", period_s=5, timeout_s=2, failure_threshold=3),
        autoscaler=Autoscaler(
            min_replicas=2, max_replicas=4, cpu_utilization=70, scale_down_stabilization_s=30
        ),
        quota=Quota(
            pods=8,
            requests=Resources.of({"cpu": "2", "memory": "1Gi"}, "q"),
            limits=Resources.of({"cpu": "8", "memory": "2Gi"}, "q"),
        ),
        limit_range=LimitRange(
            default=Resources.of({"cpu": "500m", "memory": "256Mi"}, "lr"),
            default_request=Resources.of({"cpu": "100m", "memory": "64Mi"}, "lr"),
            minimum=Resources.of({"cpu": "10m", "memory": "16Mi"}, "lr"),
            maximum=Resources.of({"cpu": "2", "memory": "1Gi"}, "lr"),
        ),
        metrics=Metrics(path="/metrics", series=AGENT_SERIES),
        # Its /admin/faults: a failing sink for fault.dependency("sink").
        fault_hook=FaultHook(),
        # The agent drains within 20 s by default; leave it room to finish.
        termination_grace_period_s=25,
    ).validate()
