"""Whole runs on the Docker backend: runner containers released together against the stack of
containers, results merged exactly, every artifact written, nothing labelled left: after a
pass, after Ctrl-C, and after ``kill -9`` of stressbed (swept by the next run, or by gc).
Bad input is one line and exit 2; a build that fails is exit 3."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.docker import images
from stressbed.backends.docker._container import NOFILE
from stressbed.backends.docker._engine import LABEL_OWNER, LABEL_RUN, sweep
from stressbed.backends.docker._engine import owner as me
from stressbed.backends.docker.backend import DockerBackend
from stressbed.errors import ProvisionError

from ...agent.helpers import AgentProcess
from ...conftest import needs_k6
from .conftest import labelled, wait_for

ROOT = Path(__file__).parents[3]


def summary_of(results: Path) -> dict[str, Any]:
    (run,) = [p for p in results.iterdir() if not p.is_symlink() and p.is_dir()]
    return json.loads((run / "summary.json").read_text())


@needs_k6
@pytest.mark.parametrize("runners_local", [False, True], ids=["runner-containers", "local"])
def test_a_run_passes_and_leaves_nothing(engine, built, tmp_path, no_leftovers, runners_local):
    options = RunOptions(
        scenario="ingest_mix",
        backend="docker",
        backend_options={"runners_local": runners_local},
        runners=2,
        duration="4s",
        # Relative, as `nox -s stress`'s results/ is: the engine's mounts need absolute paths.
        results=Path(os.path.relpath(tmp_path / "r")),
    )
    report = execute(plan(options))
    summary = summary_of(tmp_path / "r")
    assert report.exit_code == 0, summary.get("verdict")
    run_dir = tmp_path / "r" / report.run_id
    for artifact in ("summary.json", "junit.xml", "report.html", "events.jsonl"):
        assert (run_dir / artifact).is_file()
    assert summary["stack"]["backend"] == "docker"
    assert summary["stack"]["enforcement"] == "docker"
    assert summary["stack"]["security"]["capabilities"] == "all dropped"
    runners = summary["runners"]
    assert [r["status"] for r in runners] == ["ok", "ok"]
    # k6's open-file limit: the container's, or the hard limit a local runner raised it to.
    expected = NOFILE if not runners_local else resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert [r["nofile"] for r in runners] == [expected, expected]
    assert summary["stack"]["replicas"]["nofile"] == NOFILE
    # Merged exactly: the fleet's count is the sum of its runners'.
    total = summary["metrics"]["http_reqs"]["count"]
    assert total == sum(r["requests"] for r in runners) > 0
    assert summary["start_skew_ms"] is not None
    run = summary["stack"]["labels"]["stressbed.run"]
    assert labelled(engine, run) == []


@needs_k6
def test_runner_containers_load_a_target_url_on_loopback(engine, built, tmp_path, no_leftovers):
    # Nothing provisioned: the runners share the host's network to reach 127.0.0.1.
    agent = AgentProcess(env={"STRESSBED_AGENT_TOKEN": "tok-docker-target"})
    try:
        agent.wait_listening()
        os.environ["STRESSBED_AGENT_TOKEN"] = "tok-docker-target"
        options = RunOptions(
            scenario="ingest_mix",
            backend="docker",
            target_url=agent.url,
            runners=2,
            duration="4s",
            results=tmp_path / "r",
        )
        report = execute(plan(options))
    finally:
        os.environ.pop("STRESSBED_AGENT_TOKEN", None)
        agent.stop()
    summary = summary_of(tmp_path / "r")
    assert report.exit_code == 0, summary["message"]
    assert [r["status"] for r in summary["runners"]] == ["ok", "ok"]
    assert summary["metrics"]["http_reqs"]["count"] > 0


#: 600 agents of the reference agent, 150 a VU: register, a WebSocket, a heartbeat a second.
POPULATION = """
from stressbed import Scenario, extract, post
from stressbed.population import Agent, WebSocket, every, population, send

agent = Agent(
    register=post("/v1/register", name="register", json={"agent_id": "{{agent_id}}"},
                  extract={"session": extract.json("session")}),
    channel=WebSocket("/v1/channel",
                      hello={"type": "hello", "agent_id": "{{agent_id}}",
                             "session": "{{session}}"},
                      welcome={"type": "welcome"}),
    activities=[every("1s", send({"type": "heartbeat", "seq": "{{seq}}"}), jitter="10%")],
)
scenario = Scenario("docker_agents", description="agents in runner containers",
                    workloads=[population("fleet", agent, agents=600, join="3s",
                                          lasting="10s", per_vu=150)])
"""


@needs_k6
def test_a_population_runs_in_runner_containers_each_agent_connected_once(
    engine, built, tmp_path, no_leftovers
):
    # The same runner image and k6 as every backend's: 600 agents over two runner containers
    # against the stack's containers, each agent connected and registered once.
    path = tmp_path / "docker_agents.py"
    path.write_text(POPULATION)
    options = RunOptions(
        scenario=str(path),
        backend="docker",
        runners=2,
        results=Path(os.path.relpath(tmp_path / "r")),
    )
    report = execute(plan(options))
    summary = summary_of(tmp_path / "r")
    assert report.exit_code == 0, (summary["message"], summary["thresholds"])
    population = summary["population"]
    assert population["peak_connected"] == 600
    assert population["counts"]["connect_failures"] == 0
    # What the agent service counted itself, scraped from the replicas' containers.
    assert population["target"]["registrations"] == 600
    assert population["target"]["duplicate_registrations"] == 0
    # Each runner container holds its share with the container's open-file limit; it
    # reaches the stack over the run's network, not loopback: the system's source address.
    assert [r["nofile"] for r in summary["runners"]] == [NOFILE, NOFILE]
    assert [r["source_addresses"] for r in summary["runners"]] == [None, None]
    assert [r["segment"] for r in summary["runners"]] == ["0:1/2", "1/2:1"]


def _stressbed(*args: str, results: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "stressbed", *args, "--results", str(results)],
        cwd=ROOT,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _runner_containers(engine: Any, owner_pid: int) -> list[dict[str, Any]]:
    return [
        c
        for c in engine.api.containers(filters={"label": [LABEL_RUN, "stressbed.role=runner"]})
        if c["Labels"].get(LABEL_OWNER, "").split(":")[1:2] == [str(owner_pid)]
    ]


@needs_k6
def test_ctrl_c_tears_everything_down_and_writes_the_summary(engine, built, tmp_path, no_leftovers):
    proc = _stressbed("run", "--backend", "docker", "--duration", "60s", results=tmp_path / "r")
    try:
        assert wait_for(lambda: _runner_containers(engine, proc.pid), 120), "no load started"
        time.sleep(2)  # the load runs
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out.decode()[-2000:]
    assert "Traceback" not in out.decode()
    summary = summary_of(tmp_path / "r")
    assert (summary["verdict"], summary["exit_code"]) == ("error", 130)
    assert "interrupted" in summary["message"]
    assert labelled(engine, summary["stack"]["labels"]["stressbed.run"]) == []


@needs_k6
def test_what_a_killed_run_left_is_swept_by_the_next_run(engine, built, tmp_path, no_leftovers):
    proc = _stressbed(
        "run", "--backend", "docker", "--runners", "2", "--duration", "60s", results=tmp_path / "r"
    )
    try:
        # Both runners running: no create still in flight at the engine when the kill comes
        # (one the engine finished after the sweep would be left, by the test's timing alone).
        started = wait_for(lambda: len(_runner_containers(engine, proc.pid)) == 2, 120)
        assert started, "no load started"
    finally:
        proc.kill()  # kill -9: no teardown at all
        proc.communicate()
    owner = _runner_containers(engine, proc.pid)[0]["Labels"][LABEL_OWNER]
    left = [c for c in engine.api.containers(all=True, filters={"label": f"{LABEL_OWNER}={owner}"})]
    assert {c["Labels"]["stressbed.role"] for c in left} >= {"replica", "runner"}
    # The next run's preflight removes what a stressbed that no longer runs left.
    DockerBackend().preflight(None)
    assert engine.api.containers(all=True, filters={"label": f"{LABEL_OWNER}={owner}"}) == []
    assert engine.api.networks(filters={"label": f"{LABEL_OWNER}={owner}"}) == []


def test_gc_removes_what_dead_runs_left_and_only_that(engine, built, tmp_path, no_leftovers):
    def sleeper(owner: str) -> str:
        made = engine.api.create_container(
            built["base"],
            ["sleep", "60"],
            labels={LABEL_RUN: "gc-test", LABEL_OWNER: owner, "stressbed.role": "replica"},
            host_config=engine.api.create_host_config(network_mode="none"),
        )
        engine.api.start(made["Id"])
        return made["Id"]

    dead = sleeper(f"{socket.gethostname()}:999999999:1")  # no such process
    alive = sleeper(me())
    try:
        done = subprocess.run(
            [sys.executable, "-m", "stressbed", "gc"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "removed 1 object(s)" in done.stdout
        ids = {c["Id"] for c in engine.api.containers(all=True, filters={"label": LABEL_RUN})}
        assert dead not in ids
        assert alive in ids
    finally:
        sweep(engine, everything=True)


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stressbed", "run", "--backend", "docker", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "K6_NO_USAGE_REPORT": "true", **(env or {})},
    )


def test_no_engine_is_one_line_and_exit_2(tmp_path):
    done = _run("--results", str(tmp_path), env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "no socket at" in line
    assert "dockerd" in line
    assert not any(tmp_path.iterdir())  # nothing was started


def test_a_target_image_not_on_the_engine_is_exit_2(engine, tmp_path, no_leftovers):
    profile = tmp_path / "stressbed.yaml"
    profile.write_text(
        "version: 1\nprofiles:\n  x:\n    stack:\n      target:\n"
        "        image: stressbed-test-missing:never\n"
    )
    done = _run(
        "--scenario",
        "ingest_mix",
        "--profiles",
        str(profile),
        "--profile",
        "x",
        "--results",
        str(tmp_path / "r"),
    )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "stressbed-test-missing:never" in line
    assert "docker load" in line


@needs_k6
def test_a_port_that_is_taken_is_exit_2_and_leaves_nothing(engine, built, tmp_path, no_leftovers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("--port", str(port), "--duration", "5s", "--results", str(tmp_path / "r"))
    assert done.returncode == 2, done.stderr
    # Said in the verdict, and the run's summary written, as for the local backend.
    assert f"--port: got {port}; expected a free port on 127.0.0.1" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_build_that_fails_is_a_provision_error(engine, built, tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(
        ROOT / "agent", checkout / "agent", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "runner", checkout / "runner")
    dockerfile = checkout / "agent" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN exit 7\n")
    with pytest.raises(ProvisionError, match=r"building stressbed-agent:.* failed"):
        images.ensure_image(engine, "agent", built["base"], images.Checkout(checkout), print)


def test_a_second_build_of_the_same_inputs_builds_nothing(engine, built):
    said: list[str] = []
    tag = images.ensure_image(engine, "agent", built["base"], images.find_checkout(), said.append)
    assert tag == built["agent"]
    assert not any(line.startswith("building") for line in said)
