"""The agent's container image: builds offline from the checkout, runs read-only as non-root,
becomes healthy, and stops gracefully. Needs a Docker engine (``.ci/run`` starts one); the
image is built as the Docker backend builds it, on a base made from Debian packages
(``stressbed images base``) or on ``STRESSBED_AGENT_BASE_IMAGE`` where that is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time

import pytest

from stressbed.errors import StressbedError

from .helpers import call, free_port


def docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def image():
    if shutil.which("docker") is None:
        pytest.skip("no docker command on this machine")
    try:
        from stressbed.backends.docker import (  # noqa: PLC0415 - the extra may be missing
            _engine,
            images,
        )
    except ImportError as exc:
        pytest.skip(f"the docker extra is not installed ({exc.name})")
    try:
        client = _engine.connect()
        base = images.ensure_base(client, os.environ.get("STRESSBED_AGENT_BASE_IMAGE"), print)
        tag = images.ensure_image(client, "agent", base, images.find_checkout(), print)
    except StressbedError as exc:
        pytest.skip(f"no engine or no base image here: {exc}")
    return tag  # kept: images are a cache, found again by their inputs' hash


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
