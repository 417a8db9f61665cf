"""The agent's container image: builds from a local base, runs read-only as non-root, becomes
healthy, and stops gracefully. Needs a Docker engine and a Python 3.11+ base image already on
it (no registry is reachable here): set STRESSBED_AGENT_BASE_IMAGE, default python:3.11-slim.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from .helpers import call, free_port

ROOT = Path(__file__).parents[2]
BASE = os.environ.get("STRESSBED_AGENT_BASE_IMAGE", "python:3.11-slim")


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image():
    if shutil.which("docker") is None or docker("info").returncode != 0:
        pytest.skip("no Docker engine answers on this machine")
    if docker("image", "inspect", BASE).returncode != 0:
        pytest.skip(f"base image {BASE} is not present (set STRESSBED_AGENT_BASE_IMAGE)")
    tag = f"stressbed-agent-test:{uuid.uuid4().hex[:8]}"
    built = docker(
        "build",
        "-q",
        "-f",
        "agent/Dockerfile",
        "--build-arg",
        f"BASE={BASE}",
        "-t",
        tag,
        str(ROOT),
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    yield tag
    docker("image", "rm", "-f", tag)


def test_the_image_runs_read_only_as_non_root_and_stops_gracefully(image):
    port = free_port()
    started = docker("run", "-d", "--read-only", "-p", f"127.0.0.1:{port}:8080", image)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        assert docker("exec", container, "id", "-u").stdout.strip() == "10001"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if call(url + "/readyz", timeout=1).status == 200:
                    break
            time.sleep(0.2)
        reply = call(
            url + "/v1/report",
            "POST",
            {"agent_id": "a", "points": [{"ts": 1, "name": "x", "value": 1}]},
        )
        assert reply.status == 202
        deadline = time.monotonic() + 30
        health = ""
        while time.monotonic() < deadline and health != "healthy":
            health = docker(
                "inspect", "--format", "{{.State.Health.Status}}", container
            ).stdout.strip()
            time.sleep(0.5)
        assert health == "healthy"
        assert docker("stop", "-t", "30", container, timeout=60).returncode == 0
        code = docker("inspect", "--format", "{{.State.ExitCode}}", container).stdout.strip()
        assert code == "0"
    finally:
        docker("rm", "-f", container)
