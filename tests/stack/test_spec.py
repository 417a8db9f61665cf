"""StackSpec: the reference agent's spec, LimitRange defaults, and whole-spec validation."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stressbed import ConfigError
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import (
    Autoscaler,
    LimitRange,
    Metrics,
    Probe,
    Quota,
    Resources,
    ScalePolicy,
    StackSpec,
    Target,
)


def test_the_reference_agent_spec_is_valid_and_complete():
    spec = reference_agent()
    assert spec.target.port == 8080
    assert spec.requests == Resources(250, 128 * 2**20)
    assert spec.limits.to_k8s() == {"cpu": "1000m", "memory": "256Mi"}
    assert spec.autoscaler is not None
    assert (spec.autoscaler.min_replicas, spec.autoscaler.max_replicas) == (2, 4)
    assert spec.readiness_probe is not None
    assert spec.readiness_probe.path == "/readyz"


def test_limit_range_defaults_fill_what_the_target_leaves_unset():
    bare = StackSpec(
        target=Target("agent", 8080, command=("agent",)),
        limit_range=LimitRange(
            default=Resources(500, 256 * 2**20), default_request=Resources(100, None)
        ),
    )
    spec = bare.validate()
    assert spec.limits == Resources(500, 256 * 2**20)
    # No default request for memory: Kubernetes takes the limit.
    assert spec.requests == Resources(100, 256 * 2**20)


def base() -> StackSpec:
    return reference_agent()


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        (
            lambda s: replace(s, requests=Resources(2000, s.requests.memory)),
            "stack.requests.cpu",
            "at most the limit (1000m)",
        ),
        (
            lambda s: replace(s, autoscaler=replace(s.autoscaler, min_replicas=5)),
            "stack.autoscaler.max_replicas",
            "at least min_replicas (5)",
        ),
        (
            lambda s: replace(s, readiness_probe=Probe("http", "/readyz", port=9999)),
            "stack.readiness_probe.port",
            "the target's port (8080)",
        ),
        (
            lambda s: replace(s, liveness_probe=Probe("tcp", success_threshold=2)),
            "stack.liveness_probe.success_threshold",
            "1 (Kubernetes requires it",
        ),
        (
            lambda s: replace(s, quota=Quota(pods=1)),
            "stack.quota.pods",
            "room for the initial 2 replicas",
        ),
        (
            lambda s: replace(s, quota=Quota(requests=Resources(300, None))),
            "stack.quota.requests.cpu",
            "room for the initial 2 replicas (500m)",
        ),
        (
            lambda s: replace(s, requests=Resources(5, s.requests.memory)),
            "stack.requests.cpu",
            "at least the LimitRange min (10m)",
        ),
        (
            lambda s: replace(s, autoscaler=replace(s.autoscaler, cpu_utilization=0)),
            "stack.autoscaler.cpu_utilization",
            "a percent of requests",
        ),
        (
            lambda s: replace(
                s, autoscaler=replace(s.autoscaler, scale_up_policies=(ScalePolicy("Pods", 0, 15),))
            ),
            "stack.autoscaler.scale_up_policies[0].value",
            "an integer >= 1",
        ),
        (
            lambda s: replace(s, target=replace(s.target, name="Agent_1")),
            "stack.target.name",
            "a DNS label",
        ),
        (
            lambda s: replace(s, startup_probe=Probe("exec")),
            "stack.startup_probe.command",
            "a command to run",
        ),
        (lambda s: replace(s, replicas=0, autoscaler=None), "stack.replicas", "an integer >= 1"),
        (
            lambda s: replace(s, metrics=Metrics(path="metrics", series=("x",))),
            "stack.metrics.path",
            "a path starting with '/'",
        ),
        (
            lambda s: replace(s, metrics=Metrics(series=())),
            "stack.metrics.series",
            "1 to 16 metric families",
        ),
        (
            lambda s: replace(s, metrics=Metrics(series=("ok", "bad{status=429}"))),
            "stack.metrics.series[1]",
            'labels as name="value"',
        ),
    ],
)
def test_invalid_specs_name_the_field_and_what_is_allowed(change, field, expected):
    with pytest.raises(ConfigError) as info:
        change(base()).validate()
    assert info.value.field == field
    assert expected in info.value.expected


def test_an_autoscaler_needs_the_request_its_target_is_a_percent_of():
    spec = StackSpec(
        target=Target("agent", 8080, command=("agent",)),
        autoscaler=Autoscaler(min_replicas=1, max_replicas=3, cpu_utilization=50),
    )
    with pytest.raises(ConfigError) as info:
        spec.validate()
    assert info.value.field == "stack.requests.cpu"


def test_a_limit_without_a_request_becomes_the_request_as_kubernetes_does():
    bare = StackSpec(
        target=Target("agent", 8080, command=("agent",)),
        limits=Resources(50, None),
        limit_range=LimitRange(
            default=Resources(500, 256 * 2**20), default_request=Resources(100, 64 * 2**20)
        ),
    )
    spec = bare.validate()
    # cpu: the container's own limit (50m), not the LimitRange's default request (100m);
    # memory: no limit of its own, so the LimitRange's default request.
    assert spec.requests == Resources(50, 64 * 2**20)
    assert spec.limits == Resources(50, 256 * 2**20)
