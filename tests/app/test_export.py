"""``stressbed export compose`` and ``export kubernetes``: the stack ``stressbed run`` would
provision (the reference agent < the scenario module's stack < the profile's), as a Compose
file and as the agent's manifests; no secret's value written; what each refuses.

The Compose file is checked by Debian's ``docker-compose`` (1.29, ``.ci/run`` installs it):
``docker-compose -f FILE config -q`` validates a file against the Compose Specification's
JSON schema it ships (``compose/config/compose_spec.json``: unknown keys, wrong types) without
asking the engine anything; a file broken on purpose is seen to fail it. The manifests
validate strictly with kubernetes-validate for every Kubernetes version the components' tests
cover. The exported file started on the engine, its limits read back, is
``tests/backends/docker/test_compose.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from stressbed.app.settings import ENV
from stressbed.backends.kubernetes.manifests import Cluster, agent_manifests
from stressbed.cli import main
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import Probe, StackSpec, Target

MI = 2**20
VERSIONS = ["1.31", "1.32", "1.33", "1.34", "1.35"]
SECRET = "s3cr3t-never-written"
PROFILES = """\
version: 1
default_profile: plain
profiles:
  plain: {}
  isolated:
    agent_image: registry.example/agent:7
    stack:
      replicas: 3
      autoscaler: null
      pids: 256
      nofile: 8192
      io: {weight: 200, write_bps: 20Mi, read_iops: 500}
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 500m, memory: 192Mi, ephemeral-storage: 32Mi}
      readiness_probe: {kind: tcp, period_s: 3}
      liveness_probe: null
      startup_probe: null
      security: {writable_paths: [/var/cache/agent]}
      target:
        env: {GREETING: "costs $5", STORE: "{data}/points"}
"""


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with the test's profile file and none of the shell's STRESSBED_* settings;
    the agent's token set in the environment (never to be written)."""
    for name in (*ENV.values(), "STRESSBED_PROFILE", "STRESSBED_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", SECRET)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "stressbed.yaml").write_text(PROFILES)
    return tmp_path


def export(*args: str) -> str:
    """What ``stressbed export ARGS -o FILE`` wrote."""
    out = Path("exported.yml")
    assert main(["export", *args, "-o", str(out)]) == 0
    return out.read_text()


def service(text: str) -> dict[str, Any]:
    (only,) = yaml.safe_load(text)["services"].values()
    return dict(only)


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f PATH config -q``: the file against the Compose schema it ships."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("no docker-compose (Debian's docker-compose package; .ci/run installs it)")
    env = {"PATH": os.environ["PATH"], "STRESSBED_AGENT_TOKEN": "t"}
    return subprocess.run(
        [tool, "-f", str(path), "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- compose ---------------------------------------------------------------------------------


def test_the_reference_agent_as_a_compose_service_with_the_docker_backends_limits(here):
    text = export("compose", "--scenario", "ingest_mix")
    found = service(text)
    assert found["image"] == "stressbed-agent:latest"
    assert found["command"] == ["--host", "0.0.0.0", "--port", "8080"]
    assert found["deploy"] == {
        "replicas": 2,
        "resources": {
            "limits": {"cpus": "1", "memory": "256m"},
            "reservations": {"memory": "128m"},
        },
    }
    assert found["memswap_limit"] == "256m"
    assert found["cpu_shares"] == 256
    assert found["pids_limit"] == 512
    assert found["ulimits"] == {"nofile": {"soft": 20000, "hard": 20000}}
    assert found["tmpfs"] == ["/tmp:rw,nosuid,nodev,size=64m"]
    assert found["read_only"] is True
    assert found["user"] == "10001:10001"
    assert found["cap_drop"] == ["ALL"]
    assert found["security_opt"] == ["no-new-privileges:true"]
    assert found["init"] is True
    assert found["restart"] == "always"
    assert found["stop_grace_period"] == "25s"
    assert found["ports"] == ["127.0.0.1:8080-8081:8080"]
    assert found["healthcheck"] == {
        "test": [
            "CMD",
            "python",
            "-c",
            "import urllib.request; "
            "urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=1)",
        ],
        "interval": "2s",
        "timeout": "1s",
        "retries": 2,
        "start_period": "30s",
    }
    assert "blkio_config" not in found
    assert "volumes" not in found


def test_secrets_are_passed_through_from_the_environment_never_written(here):
    text = export("compose")
    assert SECRET not in text
    environment = service(text)["environment"]
    assert environment["STRESSBED_AGENT_TOKEN"] == (
        "${STRESSBED_AGENT_TOKEN:?set STRESSBED_AGENT_TOKEN}"
    )
    # The fault hook's token is optional: the agent's hooks stay off without it.
    assert environment["STRESSBED_AGENT_ADMIN_TOKEN"] == "${STRESSBED_AGENT_ADMIN_TOKEN:-}"


def test_the_header_says_what_generated_it_and_what_compose_cannot_hold(here):
    text = export("compose", "--scenario", "ingest_mix")
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "`stressbed export compose`" in header
    assert "scenario ingest_mix, profile plain of stressbed.yaml" in header
    assert "deploy.resources, which `docker compose up` honours without swarm" in header
    for left_out in (
        "the autoscaler (2..4 replicas): 2 fixed replicas",
        "the startup probe's gate",
        "the ResourceQuota",
        "the LimitRange",
    ):
        assert left_out in header


def test_a_profiles_isolation_limits_and_image_reach_the_file(here):
    found = service(text := export("compose", "--profile", "isolated", "--port", "18080"))
    assert found["image"] == "registry.example/agent:7"  # the profile's agent_image
    assert found["deploy"]["replicas"] == 3
    assert found["deploy"]["resources"]["limits"] == {"cpus": "0.5", "memory": "192m"}
    assert found["cpu_shares"] == 102
    assert found["pids_limit"] == 256
    assert found["ulimits"] == {"nofile": {"soft": 8192, "hard": 8192}}
    assert found["tmpfs"] == [
        "/tmp:rw,nosuid,nodev,size=32m",
        "/var/cache/agent:rw,nosuid,nodev,size=32m",
    ]
    assert found["ports"] == ["127.0.0.1:18080-18082:8080"]
    # {data}: a named volume the replicas share; a literal $ escaped from interpolation.
    assert found["volumes"] == [{"type": "volume", "source": "data", "target": "/data"}]
    assert yaml.safe_load(text)["volumes"] == {
        "data": {"driver_opts": {"type": "tmpfs", "device": "tmpfs", "o": "uid=10001,gid=10001"}}
    }
    assert "{data} is /data: a named volume on tmpfs the replicas share" in text
    assert found["environment"]["STORE"] == "/data/points"
    assert found["environment"]["GREETING"] == "costs $$5"
    assert found["healthcheck"]["test"][-1] == (
        "import socket; socket.create_connection(('127.0.0.1', 8080), timeout=1)"
    )
    assert found["healthcheck"]["interval"] == "3s"
    # No device named: the weight only, and the throttles said left out.
    assert found["blkio_config"] == {"weight": 200}
    assert "stack.io's write_bps, read_iops: a throttle needs a device's path" in text
    with_device = service(export("compose", "--profile", "isolated", "--io-device", "/dev/vdb"))
    assert with_device["blkio_config"] == {
        "weight": 200,
        "device_write_bps": [{"path": "/dev/vdb", "rate": 20 * MI}],
        "device_read_iops": [{"path": "/dev/vdb", "rate": 500}],
    }


@pytest.mark.parametrize(
    "args",
    [
        ("--scenario", "ingest_mix"),
        ("--profile", "isolated"),
        ("--profile", "isolated", "--io-device", "/dev/sda"),
    ],
)
def test_the_compose_file_validates_against_the_compose_schema(here, args):
    export("compose", *args)
    done = compose_config(Path("exported.yml"))
    assert done.returncode == 0, done.stderr


def test_the_schema_check_fails_a_file_that_breaks_it(here):
    text = export("compose")
    broken = here / "broken.yml"
    broken.write_text(text.replace("pids_limit:", "pid_limit:"))
    done = compose_config(broken)
    assert done.returncode != 0
    assert "Unsupported config option for services.agent: 'pid_limit'" in done.stderr
    broken.write_text(text.replace("retries: 2", "retries: twice"))
    assert compose_config(broken).returncode != 0


# -- kubernetes ------------------------------------------------------------------------------


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_the_manifests_are_the_components_own_with_an_empty_secret(here):
    text = export("kubernetes", "--namespace", "load-test", "--image", "mine/agent:1")
    found = documents(text)
    expected = agent_manifests(reference_agent(), Cluster(namespace="load-test"))
    (secret,) = [m for m in found if m["kind"] == "Secret"]
    assert secret["stringData"] == {"STRESSBED_AGENT_TOKEN": "", "STRESSBED_AGENT_ADMIN_TOKEN": ""}
    assert "stressbed.dev/fill" in secret["metadata"].pop("annotations")
    (deployment,) = [m for m in found if m["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "mine/agent:1"
    container["image"] = "stressbed-agent:latest"
    assert found == expected
    assert SECRET not in text
    assert "kubectl -n load-test create secret generic agent-secrets" in text


@pytest.mark.parametrize("version", VERSIONS)
def test_every_exported_manifest_validates_strictly(here, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for profile in ("plain", "isolated"):
        for manifest in documents(export("kubernetes", "--profile", profile)):
            kubernetes_validate.validate(manifest, version, strict=True)


def test_what_a_pod_has_no_field_for_is_said_left_out(here):
    text = export("kubernetes", "--profile", "isolated")
    for name in ("io", "pids", "nofile"):
        assert f"# - stack.{name}: " in text
    assert "# - stack." not in export("kubernetes", "--profile", "plain")


# -- what it refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["compose", "--scenario", "nope"], "--scenario: got 'nope'"),
        (["kubernetes", "--profile", "nope"], "--profile: got 'nope'"),
        (["compose", "-o", "missing/folder/c.yml"], "--output: got 'missing/folder/c.yml'"),
        (["compose", "--io-device", "sda"], "--io-device: got 'sda'"),
        (["compose", "--port", "65535"], "--port: got 65535"),
        (["kubernetes", "--namespace", "Not_A_Label"], "--namespace: got 'Not_A_Label'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(here, capsys, args, said):
    assert main(["export", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"stressbed: error: {said}")


def test_a_bare_stack_leaves_nothing_out_and_an_exec_probe_runs_as_written(here):
    from stressbed.backends.docker.compose import compose_file  # noqa: PLC0415 - the extra

    spec = StackSpec(
        target=Target(name="echo", port=9000, image="echo:1", image_args=("--port={port}",)),
        replicas=1,
        liveness_probe=Probe("exec", command=("sh", "-c", "test -n $HOME"), period_s=0.5),
    )
    found = compose_file(spec)
    (echo,) = found.document["services"].values()
    assert echo["command"] == ["--port=9000"]
    assert echo["ports"] == ["127.0.0.1:9000:9000"]
    assert echo["deploy"] == {"replicas": 1}
    assert "cpu_shares" not in echo
    assert "memswap_limit" not in echo
    assert echo["healthcheck"] == {
        "test": ["CMD", "sh", "-c", "test -n $$HOME"],
        "interval": "500ms",
        "timeout": "1s",
        "retries": 3,
    }
    assert found.header[-1] == (
        "- the liveness probe's restarts: an unhealthy container is only marked"
    )
    assert compose_file(replace(spec, liveness_probe=None)).header[-1] == "- nothing"
    Path("bare.yml").write_text(found.text())
    done = compose_config(Path("bare.yml"))
    assert done.returncode == 0, done.stderr
