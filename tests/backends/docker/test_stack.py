"""The Docker stack for real: the agent image's containers on the run's network, with a pod's
limits and security as the engine shows them (docker inspect), OOM kills read from the
container's state, liveness restarts, the HPA fed by the Engine's stats, and nothing left.

Traffic goes only to 127.0.0.1 (the stack's balancer) and to the run's own bridge network.
"""

from __future__ import annotations

import time
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import fault
from stressbed.backends.docker._container import NOFILE
from stressbed.backends.docker._engine import LABEL_RUN, Registry
from stressbed.backends.docker.stack import DockerStack, RunNetwork
from stressbed.backends.local import LocalOptions
from stressbed.errors import ProvisionError
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import Autoscaler, IoLimits, Probe, Resources, StackSpec, Target

from .conftest import labelled, wait_for

MI = 2**20
FAST = LocalOptions(
    hpa_sync_s=1.0,
    metrics_window_s=2.0,
    backoff_base_s=0.3,
    backoff_max_s=2.0,
    ready_timeout_s=60.0,
    teardown_grace_s=5.0,
    sample_s=0.5,
)


def agent_spec(**changes: Any) -> StackSpec:
    """The reference agent's stack with quick probes, a smaller footprint and no metrics."""
    spec = reference_agent()
    spec = replace(
        spec,
        replicas=2,
        limits=Resources(500, 128 * MI),
        requests=Resources(100, 64 * MI),
        startup_probe=Probe("http", "/healthz", period_s=0.5, failure_threshold=60),
        readiness_probe=Probe("http", "/readyz", period_s=0.5, failure_threshold=1),
        liveness_probe=Probe("http", "/healthz", period_s=1, timeout_s=2, failure_threshold=3),
        autoscaler=None,
        metrics=None,
        termination_grace_period_s=5,
    )
    return replace(spec, **changes).validate()


def make_stack(
    engine: Any, built: dict[str, str], spec: StackSpec, tmp_path: Path, image=None, **runtime
):
    """A Docker stack of ``spec`` (not provisioned); ``runtime``: the container runtime's
    options (``neighbour_image``, ``data_size``)."""
    registry = Registry(engine)
    network = RunNetwork(registry)
    chosen = image or built["agent"]
    return DockerStack(spec, tmp_path / "stack", registry, network, lambda: chosen, FAST, **runtime)


def inspect(engine: Any, run: str, replica: str | None = None) -> list[dict[str, Any]]:
    selector = [f"{LABEL_RUN}={run}", "stressbed.role=replica"]
    if replica:
        selector.append(f"stressbed.replica={replica}")
    found = engine.api.containers(filters={"label": selector})
    return [engine.api.inspect_container(c["Id"]) for c in found]


def test_replicas_run_with_the_pods_limits_and_security_and_nothing_is_left(
    engine, built, tmp_path, no_leftovers
):
    stack = make_stack(engine, built, agent_spec(), tmp_path)
    try:
        url = stack.provision()
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/readyz", timeout=10) as answer:
            assert answer.status == 200
        containers = inspect(engine, stack.registry.run)
        assert len(containers) == 2
        for info in containers:
            host = info["HostConfig"]
            assert host["Memory"] == 128 * MI
            assert host["MemorySwap"] == 128 * MI  # no swap beyond the limit
            assert host["NanoCpus"] == 500_000_000
            assert host["CpuShares"] == 102  # the request, as the kubelet sets cpu.shares
            assert host["MemoryReservation"] == 64 * MI
            assert host["PidsLimit"] == 512
            assert host["Ulimits"] == [{"Name": "nofile", "Soft": NOFILE, "Hard": NOFILE}]
            assert host["ReadonlyRootfs"] is True
            assert host["CapDrop"] == ["ALL"]
            assert "no-new-privileges" in host["SecurityOpt"]
            assert "/tmp" in host["Tmpfs"]
            assert info["Config"]["User"] == "10001:10001"
            assert info["Config"]["Image"] == built["agent"]
            # The agent listens on the container's own address, on the spec's port.
            assert "--host" in info["Args"]
            assert "0.0.0.0" in info["Args"]
        # Inside: not root, and the root filesystem refuses a write.
        one = containers[0]["Id"]
        made = engine.api.exec_create(
            one, ["sh", "-c", "id -u; touch /x 2>/dev/null || echo refused"]
        )
        said = engine.api.exec_start(made["Id"]).decode()
        assert said.split() == ["10001", "refused"] or said.strip().startswith("10001")
        assert "refused" in said
        report = stack.report()
        assert report["backend"] == "docker"
        assert report["enforcement"] == "docker"
        assert report["security"]["user"] == 10001
        assert report["labels"] == {"stressbed.run": stack.registry.run}
        assert report["replicas"]["nofile"] == NOFILE
        made = engine.api.exec_create(one, ["sh", "-c", "ulimit -n"])  # what the agent has
        assert engine.api.exec_start(made["Id"]).decode().strip() == str(NOFILE)
        # The usage series comes from the Engine's stats.
        assert wait_for(lambda: any(row["pods"] for row in stack.series), 30)
    finally:
        stack.teardown()
    assert labelled(engine, stack.registry.run) == []
    kinds = [e["event"] for e in stack.events]
    assert kinds[-1] == "stack-deleted"
    assert kinds.count("stopped") == 2  # each drained and stopped on SIGTERM, not killed


def test_a_replica_that_allocates_past_its_limit_is_reported_oom_killed(
    engine, built, tmp_path, no_leftovers
):
    # The base image's Python, allocating 256 MiB under a 64 MiB limit: the kernel kills it,
    # and the container's state says OOMKilled.
    hog = "b = bytearray(256 * 2**20); import time; time.sleep(60)"
    spec = StackSpec(
        target=Target("hog", 8080, image=built["base"], image_args=("python3", "-c", hog)),
        replicas=1,
        limits=Resources(500, 64 * MI),
        requests=Resources(100, 32 * MI),
        readiness_probe=Probe("tcp", period_s=0.5),
        termination_grace_period_s=2,
    ).validate()
    stack = make_stack(engine, built, spec, tmp_path, image=built["base"])
    try:
        with pytest.raises(ProvisionError, match="OOMKilled"):
            stack.provision()
    finally:
        stack.teardown()
    killed = [e for e in stack.events if e["event"] == "oom-killed"]
    assert len(killed) >= 3  # each start: killed, back-off, again (CrashLoopBackOff)
    assert {e["reason"] for e in killed} == {"OOMKilled"}
    assert {e.get("exit_code") for e in killed} == {None}  # killed by a signal (137)


def test_a_failing_liveness_probe_restarts_the_container(engine, built, tmp_path, no_leftovers):
    spec = agent_spec(
        replicas=1,
        # /nope answers 404: the liveness probe fails from the start, once ready.
        liveness_probe=Probe("http", "/nope", period_s=0.5, timeout_s=2, failure_threshold=2),
    )
    stack = make_stack(engine, built, spec, tmp_path)
    try:
        stack.provision()
        first = inspect(engine, stack.registry.run)[0]["Id"]
        assert wait_for(lambda: any(e["event"] == "restarted" for e in stack.events), 60), [
            e["event"] for e in stack.events
        ]
        assert wait_for(lambda: inspect(engine, stack.registry.run), 30)
        now = inspect(engine, stack.registry.run)[0]["Id"]
    finally:
        stack.teardown()
    kinds = [e["event"] for e in stack.events]
    assert "liveness-failed" in kinds
    assert "terminating" in kinds
    assert now != first  # a new container: the old one was stopped and removed
    assert stack.report()["replicas"]["restarts"]["agent-0"] >= 1


def test_the_autoscaler_scales_out_under_cpu_load(engine, built, tmp_path, no_leftovers):
    spec = agent_spec(
        replicas=1,
        autoscaler=Autoscaler(min_replicas=1, max_replicas=3, cpu_utilization=50),
    )
    stack = make_stack(engine, built, spec, tmp_path)
    try:
        stack.provision()
        # A CPU hog in the container's cgroup: half a core against a 100m request.
        hog = replace(fault.cpu(share=0.5, at="0s", lasting="60s"), name="hog")
        stack.schedule_faults([hog], time.time())
        assert wait_for(lambda: any(e["event"] == "scaled" for e in stack.events), 60), [
            e["event"] for e in stack.events
        ]
        assert wait_for(lambda: len(inspect(engine, stack.registry.run)) >= 2, 60)
    finally:
        stack.teardown()
    scaled = next(e for e in stack.events if e["event"] == "scaled")
    assert scaled["from"] == 1
    assert scaled["to"] > 1
    applied = next(e for e in stack.events if e["event"] == "fault-applied")
    assert applied["how"] == "a CPU hog in the replica's cgroup"
    peak = max(p["cpu_m"] for row in stack.series for p in row["pods"].values())
    assert peak > 200  # the Engine's stats saw the hog's CPU


def test_a_container_that_cannot_start_is_a_quick_clear_failure(
    engine, built, tmp_path, no_leftovers
):
    # The program is not in the image: the container ends at once, or the engine will not
    # start it (the engine's version decides which).
    spec = StackSpec(
        target=Target("nostart", 8080, image=built["base"], image_args=("/no/such/program",)),
        replicas=1,
        limits=Resources(500, 64 * MI),
        readiness_probe=Probe("tcp", period_s=0.5),
        termination_grace_period_s=2,
    ).validate()
    stack = make_stack(engine, built, spec, tmp_path, image=built["base"])
    try:
        with pytest.raises(ProvisionError, match="ended 3 times before it was ever ready") as got:
            stack.provision()
    finally:
        stack.teardown()
    assert "/no/such/program" in str(got.value)  # the container's own last word
    kinds = [e["event"] for e in stack.events]
    assert kinds.count("crashed") + kinds.count("start-failed") >= 3
    assert "teardown-forced" not in kinds  # nothing was left waiting for a container's end
    assert labelled(engine, stack.registry.run) == []


def test_the_spec_s_pids_open_files_storage_and_io_limits_are_the_engine_s(
    engine, built, tmp_path, no_leftovers
):
    spec = agent_spec(
        replicas=1,
        pids=100,
        nofile=4096,
        io=IoLimits(weight=300, write_bps=2 * MI, read_iops=500),
        limits=Resources(500, 128 * MI, 32 * MI),
    )
    stack = make_stack(engine, built, spec, tmp_path)
    try:
        stack.provision()
        (info,) = inspect(engine, stack.registry.run)
        host = info["HostConfig"]
        assert host["PidsLimit"] == 100
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}]
        assert "size=33554432" in host["Tmpfs"]["/tmp"]
        isolation = stack.report()["isolation"]
        assert isolation["pids"] == "docker pids_limit 100"
        assert isolation["nofile"] == "docker ulimit nofile 4096"
        assert isolation["ephemeral-storage"] == "docker tmpfs /tmp size=33554432"
        held = isolation["io.write_bps"]
        if held.startswith("not enforced"):  # the data folder is on no block device here
            assert host["BlkioDeviceWriteBps"] in (None, [])
        else:
            (limit,) = host["BlkioDeviceWriteBps"]
            assert limit["Rate"] == 2 * MI
            assert held == f"docker device_write_bps {limit['Path']} {2 * MI}"
            assert host["BlkioDeviceReadIOps"][0]["Rate"] == 500
        # The weight: the engine's, or said discarded where the kernel has none (no BFQ).
        assert isolation["io.weight"] == "docker blkio_weight 300" or isolation[
            "io.weight"
        ].startswith("not enforced: the engine discarded it")
        made = engine.api.exec_create(info["Id"], ["sh", "-c", "ulimit -n"])
        assert engine.api.exec_start(made["Id"]).decode().strip() == "4096"

        # The container's processes and their limit, read from its pids cgroup each second.
        def pids_seen() -> list[dict[str, Any]]:
            return [p for row in stack.series for p in row["pods"].values() if "pids" in p]

        assert wait_for(pids_seen, 30)
        assert pids_seen()[-1]["pids_limit"] == 100
        assert pids_seen()[-1]["pids_refused"] == 0
    finally:
        stack.teardown()
