"""The Pulumi program and components, offline: Pulumi's mocks capture every resource (no
engine, no cluster can run here), the manifests validate against strict Kubernetes schemas
for 1.31 through 1.35, and policy tests check what a cluster operator relies on."""

from __future__ import annotations

import asyncio
import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

pulumi = pytest.importorskip("pulumi")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

import shlex  # noqa: E402

from stressbed import error_rate, latency  # noqa: E402
from stressbed.app.cli import _run_options, build_parser  # noqa: E402
from stressbed.app.collect import collected_scenario, declared_stack  # noqa: E402
from stressbed.app.compare import run_fingerprint  # noqa: E402
from stressbed.app.plan import plan  # noqa: E402
from stressbed.app.settings import apply_stack  # noqa: E402
from stressbed.backends.kubernetes._validate import check_stack  # noqa: E402
from stressbed.backends.kubernetes.fleet_manifests import fleet_manifests  # noqa: E402
from stressbed.backends.kubernetes.manifests import (  # noqa: E402
    CONTROL_PORT,
    K6_API_PORT,
    Cluster,
    ClusterFleet,
    deployment,
)
from stressbed.errors import ConfigError  # noqa: E402
from stressbed.fleet.control import TOKEN_ENV  # noqa: E402
from stressbed.fleet.segments import segment, sequence  # noqa: E402
from stressbed.results.compare import differences  # noqa: E402
from stressbed.scenario.thresholds import Threshold  # noqa: E402
from stressbed.stack.agent import reference_agent  # noqa: E402
from stressbed.stack.quantities import Resources, parse_cpu, parse_memory  # noqa: E402

from ...conftest import needs_k6  # noqa: E402

ROOT = Path(__file__).parents[3]
VERSIONS = ["1.31", "1.32", "1.33", "1.34", "1.35"]


@dataclass
class Captured:
    type: str
    name: str
    inputs: dict[str, Any]

    @property
    def manifest(self) -> dict[str, Any]:
        return _ints(self.inputs)


class Mocks(pulumi.runtime.Mocks):  # type: ignore[misc]
    def __init__(self) -> None:
        self.resources: list[Captured] = []
        #: Each resource's ignoreChanges as the engine is asked for it (by resource name).
        self.ignored: dict[str, list[str]] = {}

    def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
        self.resources.append(Captured(args.typ, args.name, dict(args.inputs)))
        outputs = dict(args.inputs)
        if args.typ == "docker:index/image:Image":  # what a push reports
            outputs["repoDigest"] = f"{args.inputs['imageName']}@sha256:{'0' * 64}"
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "r" * int(args.inputs["length"])
        return f"{args.name}-id", outputs

    def call(self, args: Any) -> dict[str, Any]:
        return {}


# How the engine's wire format marks a secret value.
SIG = pulumi.runtime.rpc._special_sig_key
SECRET = pulumi.runtime.rpc._special_secret_sig


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SIG) == SECRET


def _ints(value: Any) -> Any:
    """The manifest as the provider sends it: secrets unwrapped, and numbers (the engine
    carries doubles) as the integers the API server's schema wants."""
    if is_secret(value):
        return _ints(value["value"])
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def run_program(program: Callable[[], Any], config: dict[str, str] | None = None) -> Mocks:
    # An earlier test's asyncio.run() leaves this thread without a current loop, and the
    # Pulumi SDK schedules its mocked resources on the current one.
    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, project="stressbed", stack="test", preview=False)
    pulumi.runtime.set_all_config({f"stressbed:{k}": v for k, v in (config or {}).items()})
    # The mocks see a resource's inputs only: its options are read off the request.
    monitor = pulumi.runtime.mocks.MockMonitor
    register = monitor.RegisterResource

    def registering(self: Any, request: Any) -> Any:
        mocks.ignored[request.name] = list(request.ignoreChanges)
        return register(self, request)

    @pulumi.runtime.test  # type: ignore[misc]
    def go() -> Any:
        program()
        return pulumi.Output.from_input(None)

    monitor.RegisterResource = registering
    try:
        go()
    finally:
        monitor.RegisterResource = register
    return mocks


@pytest.fixture(scope="module")
def program() -> Mocks:
    """infra/__main__.py as `pulumi up` runs it, with 3 runners."""
    return run_program(
        lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"),
        {"runners": "3", "namespace": "load-test", "duration": "30s"},
    )


def manifests(mocks: Mocks) -> list[dict[str, Any]]:
    return [r.manifest for r in mocks.resources if r.type.startswith("kubernetes:")]


def kinds(mocks: Mocks) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in manifests(mocks):
        out.setdefault(m["kind"], []).append(m)
    return out


def pod_specs(mocks: Mocks) -> list[dict[str, Any]]:
    return [
        m["spec"]["template"]["spec"]
        for m in manifests(mocks)
        if m["kind"] in ("Deployment", "Job")
    ]


def test_the_program_creates_both_components_and_every_resource(program):
    types = [r.type for r in program.resources]
    assert types.count("stressbed:index:AgentStack") == 1
    assert types.count("stressbed:index:RunnerFleet") == 1
    found = kinds(program)
    for kind in (
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "ServiceAccount",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "Job",
    ):
        assert kind in found, kind
    assert {m["metadata"]["namespace"] for m in manifests(program) if m["kind"] != "Namespace"} == {
        "load-test"
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates_strictly(program, version):
    for manifest in manifests(program):
        kubernetes_validate.validate(manifest, version, strict=True)


def test_requests_never_exceed_limits(program):
    for pod in pod_specs(program):
        for container in pod["containers"]:
            requests = container["resources"]["requests"]
            limits = container["resources"]["limits"]
            assert parse_cpu(requests["cpu"], "cpu") <= parse_cpu(limits["cpu"], "cpu")
            assert parse_memory(requests["memory"], "m") <= parse_memory(limits["memory"], "m")


def test_the_agent_has_all_three_probes_on_its_port(program):
    (deployment,) = kinds(program)["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http", probe
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_every_pod_is_restricted(program):
    (namespace,) = kinds(program)["Namespace"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for pod in pod_specs(program):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}


def test_the_quota_covers_max_replicas_plus_the_fleet(program):
    (quota,) = kinds(program)["ResourceQuota"]
    hard = quota["spec"]["hard"]
    mi = 2**20
    # By hand, from the specs: 4 agents at most (250m/128Mi requested, 1/256Mi limit), 3
    # runners (500m/256Mi, 2/1Gi) and the coordinator (100m/64Mi, 500m/256Mi).
    assert int(hard["pods"]) >= 4 + 3 + 1
    assert parse_cpu(hard["requests.cpu"], "cpu") >= 4 * 250 + 3 * 500 + 100
    assert parse_memory(hard["requests.memory"], "m") >= (4 * 128 + 3 * 256 + 64) * mi
    assert parse_cpu(hard["limits.cpu"], "cpu") >= 4 * 1000 + 3 * 2000 + 500
    assert parse_memory(hard["limits.memory"], "m") >= (4 * 256 + 3 * 1024 + 256) * mi


def test_beside_an_hpa_the_deployment_starts_at_min_replicas_and_the_hpa_owns_it(program):
    (deployment,) = kinds(program)["Deployment"]
    (hpa,) = kinds(program)["HorizontalPodAutoscaler"]
    # Created with the HPA's minimum (Pulumi waits for that many ready pods), not 1 ...
    assert deployment["spec"]["replicas"] == hpa["spec"]["minReplicas"] == 2
    # ... and a later `up` leaves the count the HPA chose alone.
    names = {r.name: r for r in program.resources if r.type.startswith("kubernetes:")}
    (name,) = [n for n, r in names.items() if r.type == "kubernetes:apps/v1:Deployment"]
    assert program.ignored[name] == ["spec.replicas"]
    assert all(program.ignored[n] == [] for n in names if n != name)
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30


def test_the_agent_listens_on_the_pods_address_and_no_service_links_are_injected(program):
    (deployment,) = kinds(program)["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"] == ["--host", "0.0.0.0", "--port", "8080"]
    for spec in pod_specs(program):
        assert spec["enableServiceLinks"] is False


def test_without_an_hpa_the_deployment_sets_replicas():
    spec = replace(reference_agent(), autoscaler=None, replicas=3)
    assert deployment(spec, Cluster())["spec"]["replicas"] == 3


def test_with_an_hpa_the_deployment_starts_where_the_local_stack_does():
    # The spec's replicas within the HPA's bounds, as the local stack starts.
    hpa = reference_agent().autoscaler
    assert hpa is not None
    assert (hpa.min_replicas, hpa.max_replicas) == (2, 4)
    for replicas, first in ((1, 2), (3, 3), (9, 4)):
        spec = replace(reference_agent(), replicas=replicas)
        assert deployment(spec, Cluster())["spec"]["replicas"] == first


def test_data_in_the_agents_environment_is_the_pods_writable_tmp():
    target = replace(reference_agent().target, env=(("SINK", "{data}/sink.jsonl"),))
    spec = replace(reference_agent(), target=target)
    (container,) = deployment(spec, Cluster())["spec"]["template"]["spec"]["containers"]
    assert {"name": "SINK", "value": "/tmp/sink.jsonl"} in container["env"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_the_network_policy_admits_the_runners_to_the_agent_only(program):
    (deployment,) = kinds(program)["Deployment"]
    agent_labels = deployment["spec"]["template"]["metadata"]["labels"]
    jobs = {j["metadata"]["name"]: j for j in kinds(program)["Job"]}
    runner_labels = jobs["stressbed-runners"]["spec"]["template"]["metadata"]["labels"]
    policies = kinds(program)["NetworkPolicy"]
    agent_policy = next(
        p for p in policies if _matches(p["spec"]["podSelector"]["matchLabels"], agent_labels)
    )
    peers = [
        peer["podSelector"]["matchLabels"]
        for rule in agent_policy["spec"]["ingress"]
        for peer in rule["from"]
    ]
    assert any(_matches(peer, runner_labels) for peer in peers)
    assert agent_policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Nothing else: an unlabelled pod in the namespace is not admitted.
    assert not any(_matches(peer, {"app": "other"}) for peer in peers)
    # The runners' k6 API admits only the coordinator.
    coordinator_labels = jobs["stressbed-runners-coordinator"]["spec"]["template"]["metadata"][
        "labels"
    ]
    runner_policy = next(
        p for p in policies if _matches(p["spec"]["podSelector"]["matchLabels"], runner_labels)
    )
    (rule,) = runner_policy["spec"]["ingress"]
    assert [
        _matches(p["podSelector"]["matchLabels"], coordinator_labels) for p in rule["from"]
    ] == [True]
    assert rule["ports"] == [
        {"protocol": "TCP", "port": K6_API_PORT},
        {"protocol": "TCP", "port": CONTROL_PORT},
    ]


def test_the_runner_job_is_indexed_and_its_segments_form_one_sequence(program):
    job = next(j for j in kinds(program)["Job"] if j["metadata"]["name"] == "stressbed-runners")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["backoffLimit"] == 0
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[args.index("--count") + 1] == "3"
    assert args[args.index("--index") + 1] == "$(JOB_COMPLETION_INDEX)"
    assert args[args.index("--api-host") + 1] == "$(POD_IP)"
    # What completion index i then runs: the i-th third, of one shared sequence.
    assert [segment(i, 3) for i in range(3)] == ["0:1/3", "1/3:2/3", "2/3:1"]
    assert sequence(3) == "0,1/3,2/3,1"
    # The bundle reaches /bundle with its layout; the runners resolve by the headless Service.
    volume = next(v for v in pod["volumes"] if v["name"] == "bundle")
    paths = {item["path"] for item in volume["configMap"]["items"]}
    assert {"script.js", "config.json", "lib/stressbed/test.js"} <= paths
    assert pod["subdomain"] == "stressbed-runners"


def test_secrets_are_pulumi_secrets_not_manifest_text(program):
    held: dict[str, set[str]] = {}
    for resource in program.resources:
        if resource.type == "kubernetes:core/v1:Secret":
            # Marked secret: the engine encrypts it in the state and masks it in output.
            assert is_secret(resource.inputs["stringData"])
            values = resource.manifest["stringData"]
            held[resource.manifest["metadata"]["name"]] = set(values)
            for token in values.values():
                assert len(token) >= 24
                others = [r for r in program.resources if not r.type.endswith("/v1:Secret")]
                assert all(token not in repr(r.inputs) for r in others)
    # The agent's token for the agent; the fleet's Secret adds the runners' control token.
    assert held == {
        "agent-secrets": {"STRESSBED_AGENT_TOKEN"},
        "stressbed-runners-secrets": {"STRESSBED_AGENT_TOKEN", TOKEN_ENV},
    }


def test_the_control_token_reaches_runners_and_coordinator_from_the_secret_only(program):
    """Any pod can reach the runners' control port where the CNI ignores NetworkPolicy: the
    endpoint answers only the token, which comes from the fleet's Secret (never argv, never
    the bundle's ConfigMap), and the coordinator gets that key and no other secret."""
    jobs = {j["metadata"]["name"]: j for j in kinds(program)["Job"]}
    secret = next(
        m for m in kinds(program)["Secret"] if m["metadata"]["name"] == "stressbed-runners-secrets"
    )
    token = secret["stringData"][TOKEN_ENV]
    for name in ("stressbed-runners", "stressbed-runners-coordinator"):
        (container,) = jobs[name]["spec"]["template"]["spec"]["containers"]
        (entry,) = [e for e in container["env"] if e["name"] == TOKEN_ENV]
        assert entry == {
            "name": TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": "stressbed-runners-secrets", "key": TOKEN_ENV}},
        }
        assert token not in json.dumps(container)
    (coordinator,) = jobs["stressbed-runners-coordinator"]["spec"]["template"]["spec"]["containers"]
    from_secrets = [
        e["name"] for e in coordinator["env"] if "secretKeyRef" in e.get("valueFrom", {})
    ]
    assert from_secrets == [TOKEN_ENV]
    for config_map in kinds(program)["ConfigMap"]:
        assert token not in json.dumps(config_map)
    # The program's token is random and kept in the state, a secret.
    passwords = [r for r in program.resources if r.type.startswith("random:")]
    assert "control-token" in {r.name for r in passwords}


def test_with_a_registry_both_images_are_built_pushed_and_pulled_by_digest():
    mocks = run_program(
        lambda: runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"),
        {
            "registry": "registry.example:5000/team",
            "registryUsername": "ci",
            "registryPassword": "pw",
        },
    )
    images = {r.name: r.manifest for r in mocks.resources if r.type == "docker:index/image:Image"}
    assert set(images) == {"stressbed-agent", "stressbed-runner"}
    agent = images["stressbed-agent"]
    assert agent["imageName"] == "registry.example:5000/team/stressbed-agent:test"
    assert agent["build"]["dockerfile"] == str(ROOT / "agent" / "Dockerfile")
    assert agent["build"]["context"] == str(ROOT)
    assert agent["registry"]["server"] == "registry.example:5000"
    # The registry password travels as a secret.
    raw = next(r for r in mocks.resources if r.name == "stressbed-agent").inputs
    assert is_secret(raw["registry"])
    assert images["stressbed-runner"]["build"]["dockerfile"] == str(ROOT / "runner" / "Dockerfile")
    digest = "@sha256:" + "0" * 64
    (deployment,) = kinds(mocks)["Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example:5000/team/stressbed-agent:test" + digest
    )
    for job in kinds(mocks)["Job"]:
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == (
            "registry.example:5000/team/stressbed-runner:test" + digest
        )


def test_the_collect_command_names_the_scenario_the_program_ran():
    seen: dict[str, Any] = {}

    def program() -> None:
        seen.update(runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"))

    # A path relative to the checkout, as `pulumi config set stressbed:scenario` takes it.
    run_program(program, {"scenario": "tools/bench/scenario.py", "namespace": "n1"})
    scenario = ROOT / "tools" / "bench" / "scenario.py"
    assert seen["collect_command"] == (
        f"stressbed collect --namespace n1 --job stressbed-runners --scenario {scenario} "
        f"--profiles {ROOT / 'stressbed.yaml'}"
    )


@needs_k6  # the run it is compared with is planned, and plan() checks that k6 is there
def test_a_collected_runs_fingerprint_is_the_run_it_came_from(cluster_env):
    # infra/ with a duration and a profile; collected with the command it prints; the run it
    # came from as `stressbed run` plans it: one fingerprint, so they compare.
    seen: dict[str, Any] = {}

    def program() -> None:
        seen.update(runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__"))

    run_program(program, {"duration": "30s", "runners": "3", "profile": "local"})
    command = shlex.split(seen["collect_command"])
    assert command[:2] == ["stressbed", "collect"]
    args = build_parser().parse_args(command[1:])
    assert (args.duration, args.profile) == ("30s", "local")
    collected = run_fingerprint(
        collected_scenario(args.scenario, args.duration),
        3,  # its runner pods
        "kubernetes",
        declared_stack(args.scenario, args.profile, args.profiles),
    )
    run = build_parser().parse_args(
        [
            *("run", "--backend", "kubernetes", "--kubeconfig", str(cluster_env)),
            *("--scenario", args.scenario, "--duration", "30s", "--runners", "3"),
            *("--profile", "local", "--profiles", str(args.profiles)),
        ]
    )
    planned = plan(_run_options(run)).fingerprint
    assert differences(planned, collected) == []
    # Scaled: not the scenario's own length, which a collect without --duration recorded.
    assert collected_scenario(args.scenario, None).duration_ms() / 1000 != collected["duration_s"]


def test_the_coordinator_follows_every_runner_and_judges_the_abort_thresholds():
    aborting = error_rate("< 5%", abort_on_fail=True, delay="30s")
    slow = latency("p(95) < 800ms", request="report", abort_on_fail=True)
    fleet = ClusterFleet(
        runners=3,
        bundle={"script.js": "export default function () {}"},
        abort_thresholds=(aborting, slow),
    )
    cluster = Cluster(namespace="ns1")
    manifests = fleet_manifests(fleet, cluster, "http://agent.ns1.svc:8080")
    jobs = {m["metadata"]["name"]: m for m in manifests if m["kind"] == "Job"}
    (runner,) = jobs["stressbed-runners"]["spec"]["template"]["spec"]["containers"]
    assert runner["args"][runner["args"].index("--control-port") + 1] == str(CONTROL_PORT)
    assert {"name": "control", "containerPort": CONTROL_PORT, "protocol": "TCP"} in runner["ports"]
    (coordinator,) = jobs["stressbed-runners-coordinator"]["spec"]["template"]["spec"]["containers"]
    args = coordinator["args"]
    # Runner i's control endpoint: the name the headless Service gives pod i, on its port.
    assert args[args.index("--control-url") + 1] == (
        f"http://stressbed-runners-{{index}}.stressbed-runners.ns1.svc:{CONTROL_PORT}"
    )
    assert args[args.index("--runner-url") + 1] == (
        f"http://stressbed-runners-{{index}}.stressbed-runners.ns1.svc:{K6_API_PORT}"
    )
    shipped = json.loads(args[args.index("--abort-thresholds") + 1])
    assert [Threshold.from_dict(t) for t in shipped] == [aborting, slow]
    # It stops watching by itself before the Job's deadline would end it as Failed.
    assert int(args[args.index("--watch-timeout") + 1]) < fleet.deadline_s
    service = next(m for m in manifests if m["kind"] == "Service")
    assert {p["port"] for p in service["spec"]["ports"]} == {K6_API_PORT, CONTROL_PORT}
    for manifest in manifests:
        kubernetes_validate.validate(manifest, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("files", [1, 2])
def test_the_provider_takes_one_kubeconfig_by_path_and_a_list_through_its_own_merge(
    tmp_path, monkeypatch, files
):
    from stressbed.backends.kubernetes import ClusterAccess, KubernetesOptions  # noqa: PLC0415
    from stressbed.backends.kubernetes._stack import RunState  # noqa: PLC0415

    paths = [tmp_path / "a", tmp_path / "b"][:files]
    # This process's own KUBECONFIG must not become the provider's kubeconfig text.
    monkeypatch.setenv("KUBECONFIG", f"{paths[0]}:{tmp_path / 'b'}")
    state = RunState(
        spec=reference_agent(),
        cluster=Cluster(),
        access=ClusterAccess(paths[0], "kind-stressbed", tuple(paths[1:])),
        engine=None,  # type: ignore[arg-type]
        cluster_api=None,  # type: ignore[arg-type]
        options=KubernetesOptions(),
        secret_values={},
    )
    mocks = run_program(state.program)
    (provider,) = [r for r in mocks.resources if r.type == "pulumi:providers:kubernetes"]
    # "": unset for the provider, whose loader then merges the KUBECONFIG the engine sets.
    assert provider.inputs["kubeconfig"] == (str(paths[0]) if files == 1 else "")
    assert provider.inputs["context"] == "kind-stressbed"


def test_the_virtualenv_pulumi_up_makes_is_ignored_by_git():
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    venv = project["runtime"]["options"]["virtualenv"]  # relative to Pulumi.yaml: the root
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    found = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", f"{venv}/bin/python"],
        cwd=ROOT,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert found.returncode == 0, f"{venv}/ is not in .gitignore"


@pytest.mark.parametrize("version", VERSIONS)
def test_ephemeral_storage_is_the_container_s_and_caps_its_writable_volumes(version):
    spec = apply_stack(
        reference_agent(),
        {"requests": {"ephemeral-storage": "64Mi"}, "limits": {"ephemeral-storage": "256Mi"},
         "security": {"writable_paths": ["/var/lib/agent"]}},
    )  # fmt: skip
    manifest = deployment(spec, Cluster())
    kubernetes_validate.validate(manifest, version, strict=True)
    pod = manifest["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["requests"]["ephemeral-storage"] == "64Mi"
    assert container["resources"]["limits"]["ephemeral-storage"] == "256Mi"
    assert {v["name"]: v["emptyDir"] for v in pod["volumes"]} == {
        "tmp": {"sizeLimit": "256Mi"},
        "writable-0": {"sizeLimit": "256Mi"},
    }


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"io": {"write_bps": "1Mi"}}, "stack.io: got {'write_bps': 1048576}; expected no IO"),
        ({"pids": 100}, "stack.pids: got 100; expected no pids limit in a pod spec: the kubelet"),
        ({"nofile": 4096}, "stack.nofile: got 4096; expected no open-file limit in a pod spec"),
    ],
)
def test_what_no_pod_spec_holds_is_refused_saying_what_does(overrides, expected):
    spec = apply_stack(reference_agent(), overrides)
    with pytest.raises(ConfigError) as refused:
        check_stack(spec, None, (Resources(500, 256 * 2**20), Resources(2000, 2**30)))
    assert str(refused.value).startswith(expected)
