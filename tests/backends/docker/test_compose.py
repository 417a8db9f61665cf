"""``stressbed export compose`` for real: the file it writes started on this machine's engine.

Started with Debian's ``docker-compose`` (1.29, a real Compose implementation: ``.ci/run``
installs it; no ``docker compose`` plugin is packaged here), the reference agent's image built
from the checkout: two replicas answer on 127.0.0.1, become healthy through the file's
healthcheck, and carry the limits and security the file asks for, read back with ``docker
inspect``. An override file adds the suite's run label to the containers and the network, so
the leftover checks see them; ``docker-compose down`` removes everything, always, bounded.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from stressbed.app.settings import ENV
from stressbed.backends.docker import images
from stressbed.backends.docker._engine import LABEL_RUN
from stressbed.cli import main
from stressbed.errors import StressbedError

from .conftest import wait_for

MI = 2**20
COMPOSE_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def agent_image(engine: Any) -> str:
    """The agent's image built from the checkout (found by its hash; the runner's is not
    needed here)."""
    try:
        base = images.ensure_base(engine, None, print)
    except StressbedError as exc:
        pytest.skip(f"no base image and none can be made here: {exc}")
    return str(images.ensure_image(engine, "agent", base, images.find_checkout(), print))


def in_container(engine: Any, container: str, code: str) -> tuple[int, str]:
    """``python -c code`` in the container as its user: the exit code and the output."""
    made = engine.api.exec_create(container, ["python", "-c", code])
    output = engine.api.exec_start(made["Id"]).decode(errors="replace").strip()
    return int(engine.api.exec_inspect(made["Id"])["ExitCode"]), output


def held_as_exported(info: dict[str, Any], image: str) -> None:
    """A replica's container, as ``docker inspect`` shows it, holds what the file asks."""
    host = info["HostConfig"]
    assert host["Memory"] == 256 * MI
    assert host["MemorySwap"] == 256 * MI
    assert host["MemoryReservation"] == 128 * MI
    assert host["NanoCpus"] == 1_000_000_000
    assert host["CpuShares"] == 256
    assert host["PidsLimit"] == 512
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 20000, "Hard": 20000}]
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "rw,nosuid,nodev,size=64m"}
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["Init"] is True
    assert host["RestartPolicy"]["Name"] == "always"
    assert info["Config"]["User"] == "10001:10001"
    assert info["Config"]["Image"] == image
    (binding,) = host["PortBindings"]["8080/tcp"]
    assert binding["HostIp"] == "127.0.0.1"


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as taken:
                    taken.bind(("127.0.0.1", port))
        except OSError:
            continue
        return int(first)
    raise AssertionError("no free port range on 127.0.0.1")


def compose(tool: str, files: list[Path], project: str, *args: str) -> str:
    """Run ``docker-compose`` on the files, bounded; what failed, or "" when it did not."""
    env = {
        "PATH": os.environ["PATH"],
        "STRESSBED_AGENT_TOKEN": "export-test-token",
        **{k: os.environ[k] for k in ("DOCKER_HOST",) if k in os.environ},
    }
    command = [tool, "-p", project, *(f for path in files for f in ("-f", str(path))), *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=env,
        timeout=COMPOSE_TIMEOUT_S,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return "" if done.returncode == 0 else f"{' '.join(command)}: {done.stderr[-2000:]}"


def test_the_exported_file_runs_the_agent_with_its_limits(
    engine: Any,
    agent_image: str,
    no_leftovers: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("no docker-compose (Debian's docker-compose package; .ci/run installs it)")
    for name in (*ENV.values(), "STRESSBED_PROFILE", "STRESSBED_PROFILES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # The reference agent as shipped, with a variable naming {data}: the shared volume.
    (tmp_path / "stressbed.yaml").write_text(
        "version: 1\nprofiles:\n  data:\n    stack: {target: {env: {STORE: '{data}/points'}}}\n"
    )
    first = free_ports(2)
    exported = tmp_path / "docker-compose.yml"
    args = ["export", "compose", "--profile", "data", "--image", agent_image, "--port", str(first)]
    assert main([*args, "-o", str(exported)]) == 0
    run = f"export-{uuid.uuid4().hex[:8]}"
    labels = tmp_path / "labels.yml"
    labels.write_text(
        yaml.safe_dump(
            {
                "services": {"agent": {"labels": {LABEL_RUN: run}}},
                "networks": {"default": {"labels": {LABEL_RUN: run}}},
            }
        )
    )
    files, project = [exported, labels], f"sb{run.replace('-', '')}"
    try:
        assert compose(tool, files, project, "up", "-d", "--no-build") == ""
        found = engine.api.containers(filters={"label": f"{LABEL_RUN}={run}"})
        ids = [c["Id"] for c in found]
        assert len(ids) == 2
        for info in (engine.api.inspect_container(i) for i in ids):
            held_as_exported(info, agent_image)

        def healthy() -> bool:
            states = [engine.api.inspect_container(i)["State"] for i in ids]
            return all((s.get("Health") or {}).get("Status") == "healthy" for s in states)

        assert wait_for(healthy, timeout_s=90), "the healthcheck never passed"
        published = sorted(
            int(
                engine.api.inspect_container(i)["NetworkSettings"]["Ports"]["8080/tcp"][0][
                    "HostPort"
                ]
            )
            for i in ids
        )
        assert published == [first, first + 1]
        # {data}: one volume, written by one replica as its user and read by the other.
        writer, reader = ids
        write = "import os; open(os.environ['STORE'], 'w').write('shared')"
        read = "import os; print(open(os.environ['STORE']).read())"
        assert in_container(engine, writer, write) == (0, "")
        assert in_container(engine, reader, read) == (0, "shared")
        for port in published:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                assert answer.status == 200
    finally:  # what down leaves, no_leftovers sweeps (and fails the test for)
        down = compose(tool, files, project, "down", "-v", "--timeout", "5")
    assert down == ""
    assert engine.api.containers(all=True, filters={"label": f"{LABEL_RUN}={run}"}) == []
