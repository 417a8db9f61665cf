"""The runner fleet's manifests: the k6 bundle in a ConfigMap, the runners as an Indexed Job
(segment from the completion index, k6's REST API and the runner's control endpoint on the pod
IP) behind a headless Service, the coordinator Job that releases them together and follows
them (merged progress in its log, ``abort_on_fail`` judged live), and a NetworkPolicy letting
only the coordinator reach the runners.

The fleet's Secret always exists: beside the scenario's secrets it holds the run's control
token (:data:`~stressbed.fleet.control.TOKEN_ENV`), which the runners' control endpoints
require and the coordinator bears. Both read it through ``secretKeyRef`` (never argv, never
the ConfigMap), and it goes with the fleet's other resources when the run's stack is
destroyed or the next fleet replaces this one."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ...fleet.control import TOKEN_ENV
from .manifests import (
    CONTROL_PORT,
    COORDINATOR,
    COORDINATOR_LIMITS,
    COORDINATOR_REQUESTS,
    K6_API_PORT,
    RUNNER,
    Cluster,
    ClusterFleet,
    Manifest,
    container_security,
    labels,
    meta,
    pod_security,
    resources,
    secret,
    selector,
)

__all__ = ["bundle_key", "coordinator_job", "fleet_manifests", "runner_job", "secret_name"]


def bundle_key(path: str) -> str:
    """A ConfigMap key for a bundle-relative path (keys may not hold '/')."""
    key = re.sub(r"[^-._a-zA-Z0-9]", "_", path.replace("/", "__"))
    return key[:253]


def fleet_manifests(fleet: ClusterFleet, cluster: Cluster, target_url: str) -> list[Manifest]:
    """The bundle ConfigMap, runner identities, the runners' Indexed Job and the coordinator."""
    if not 1 <= fleet.runners <= 64:
        raise ValueError(f"runners must be 1..64, got {fleet.runners}")
    name = fleet.name
    keys = {path: bundle_key(path) for path in sorted(fleet.bundle)}
    if len(set(keys.values())) != len(keys):
        raise ValueError("two bundle files map to one ConfigMap key")
    out: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(f"{name}-bundle", cluster, RUNNER),
            "data": {keys[path]: fleet.bundle[path] for path in keys},
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(name, cluster, RUNNER),
            "automountServiceAccountToken": False,
        },
        {
            # Headless: runner i answers as <name>-<i>.<name> (the Indexed Job's hostnames).
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(name, cluster, RUNNER),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": selector(RUNNER, name),
                "ports": [
                    {"name": "k6-api", "port": K6_API_PORT, "targetPort": K6_API_PORT},
                    {"name": "control", "port": CONTROL_PORT, "targetPort": CONTROL_PORT},
                ],
            },
        },
        runner_job(fleet, cluster, target_url, keys),
        coordinator_job(fleet, cluster),
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta(name, cluster, RUNNER),
            "spec": {
                "podSelector": {"matchLabels": selector(RUNNER, name)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": selector(COORDINATOR, name)}}],
                        "ports": [
                            {"protocol": "TCP", "port": K6_API_PORT},
                            {"protocol": "TCP", "port": CONTROL_PORT},
                        ],
                    }
                ],
            },
        },
    ]
    secret_keys = (*(k for k in fleet.secret_env if k != TOKEN_ENV), TOKEN_ENV)
    out.insert(1, secret(secret_name(fleet), cluster, RUNNER, secret_keys))
    return out


def secret_name(fleet: ClusterFleet) -> str:
    """The fleet's Secret: the scenario's secrets and the run's control token."""
    return f"{fleet.name}-secrets"


def _from_secret(fleet: ClusterFleet, key: str) -> dict[str, object]:
    return {"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name(fleet), "key": key}}}


def runner_job(
    fleet: ClusterFleet, cluster: Cluster, target_url: str, keys: Mapping[str, str]
) -> Manifest:
    name = fleet.name
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        # The Job controller sets it too; declared here so that $(...) in args expands it.
        {
            "name": "JOB_COMPLETION_INDEX",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                }
            },
        },
        {"name": "TARGET_URL", "value": target_url},
        {"name": "K6_NO_USAGE_REPORT", "value": "true"},
        {"name": "HOME", "value": "/work"},
        *({"name": k, "value": v} for k, v in sorted(fleet.extra_env.items())),
        *(_from_secret(fleet, k) for k in fleet.secret_env if k != TOKEN_ENV),
        _from_secret(fleet, TOKEN_ENV),
    ]
    container = {
        "name": RUNNER,
        "image": fleet.image,
        "imagePullPolicy": cluster.image_pull_policy,
        "command": ["python", "-m", "stressbed.runner"],
        # JOB_COMPLETION_INDEX is set by the Indexed Job: runner i runs segment i/N.
        "args": [
            "--bundle",
            "/bundle",
            "--index",
            "$(JOB_COMPLETION_INDEX)",
            "--count",
            str(fleet.runners),
            "--out",
            "/work/out",
            "--api-host",
            "$(POD_IP)",
            "--api-port",
            str(K6_API_PORT),
            "--control-port",
            str(CONTROL_PORT),
            "--ready-timeout",
            str(fleet.ready_timeout_s),
            "--result-stdout",
        ],
        "env": env,
        "ports": [
            {"name": "k6-api", "containerPort": K6_API_PORT, "protocol": "TCP"},
            {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"},
        ],
        "resources": resources(fleet.requests, fleet.limits),
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "bundle", "mountPath": "/bundle", "readOnly": True},
            {"name": "work", "mountPath": "/work"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(name, cluster, RUNNER),
        "spec": {
            "completionMode": "Indexed",
            "completions": fleet.runners,
            "parallelism": fleet.runners,
            "backoffLimit": 0,  # a failed runner fails the run; never a silent retry
            "activeDeadlineSeconds": fleet.deadline_s,
            "suspend": fleet.suspend,
            "template": {
                "metadata": {"labels": labels(RUNNER, cluster, name)},
                "spec": {
                    "subdomain": name,
                    "restartPolicy": "Never",
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(10001),
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "bundle",
                            "configMap": {
                                "name": f"{name}-bundle",
                                "items": [{"key": keys[p], "path": p} for p in keys],
                            },
                        },
                        {"name": "work", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }


def coordinator_job(fleet: ClusterFleet, cluster: Cluster) -> Manifest:
    """One pod that waits for every runner, runs setup() once, releases them together, then
    follows them: the fleet's merged progress in its log, and every runner stopped when an
    ``abort_on_fail`` threshold fails on the merged data."""
    name = fleet.name
    runner = f"http://{name}-{{index}}.{name}.{cluster.namespace}.svc"
    container = {
        "name": COORDINATOR,
        "image": fleet.image,
        "imagePullPolicy": cluster.image_pull_policy,
        "command": ["python", "-m", "stressbed.coordinator"],
        "args": [
            "--runners",
            str(fleet.runners),
            "--runner-url",
            f"{runner}:{K6_API_PORT}",
            "--ready-timeout",
            str(fleet.ready_timeout_s),
            "--setup-timeout",
            str(fleet.setup_timeout_s),
            "--control-url",
            f"{runner}:{CONTROL_PORT}",
            "--abort-thresholds",
            json.dumps([t.to_dict() for t in fleet.abort_thresholds], separators=(",", ":")),
            # From its own start, which is about the Job's: it ends by itself before the
            # Job's deadline would end it as Failed.
            "--watch-timeout",
            str(max(60, fleet.deadline_s - 30)),
        ],
        # The control token only: none of the scenario's secrets reach the coordinator.
        "env": [{"name": "HOME", "value": "/tmp"}, _from_secret(fleet, TOKEN_ENV)],
        "resources": resources(COORDINATOR_REQUESTS, COORDINATOR_LIMITS),
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta(fleet.coordinator_name, cluster, COORDINATOR),
        "spec": {
            "completions": 1,
            "parallelism": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": fleet.deadline_s,
            "suspend": fleet.suspend,
            "template": {
                "metadata": {"labels": labels(COORDINATOR, cluster, name)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(10001),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
