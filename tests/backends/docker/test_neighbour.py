"""The neighbour fault on the Docker backend, on the real engine: a container of its own beside
the replica's (never in its cgroup) burning CPU, its IO writer's file beside the data folder,
removed at the fault's end and at teardown; one that cannot start is skipped with the engine's
reason and leaves nothing.

The neighbour burns one core, not every core: the suite's other worker must keep passing
beside it."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from stressbed import ConstantArrivalRate, Scenario, Workload, fault, get
from stressbed.backends.docker._engine import LABEL_RUN
from stressbed.backends.docker.backend import DockerBackend
from stressbed.backends.docker.stack import DockerStack

from .conftest import wait_for
from .test_stack import agent_spec, make_stack


def neighboured(engine: Any, built: dict[str, str], tmp_path: Path) -> DockerStack:
    """One replica of the agent, provisioned, whose neighbours run from the runner image."""
    stack = make_stack(
        engine, built, agent_spec(replicas=1), tmp_path, neighbour_image=lambda: built["runner"]
    )
    stack.provision()
    return stack


def start(stack: DockerStack, **params: Any) -> None:
    item = replace(fault.neighbour(cpu=1, at="0s", **params), name="nb")
    stack.schedule_faults([item], time.time())


def event(stack: DockerStack, kind: str) -> dict[str, Any] | None:
    return next((e for e in stack.events if e["event"] == kind), None)


def containers(engine: Any, run: str, role: str) -> list[dict[str, Any]]:
    found = engine.api.containers(all=True, filters={"label": [f"{LABEL_RUN}={run}", role]})
    return [engine.api.inspect_container(c["Id"]) for c in found]


def cgroups(pid: int) -> dict[str, str]:
    """A host process's cgroup in each hierarchy (its controllers: its path)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().split()
    return dict(line.split(":", 2)[1:] for line in lines)


def cpu_seconds(engine: Any, container: str) -> float:
    stats = engine.api.stats(container, stream=False)
    return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9


def test_the_docker_backend_applies_a_neighbour_and_a_disk_fill():
    assert {"neighbour", "disk_fill", "io", "slow_disk"} <= DockerBackend.fault_kinds
    assert not DockerBackend.fault_refusals


def test_a_neighbour_container_burns_cpu_beside_the_replica_never_in_its_cgroup(
    engine, built, tmp_path, no_leftovers
):
    stack = neighboured(engine, built, tmp_path)
    run = stack.registry.run
    try:
        start(stack, lasting="15s")
        applied = wait_for(lambda: event(stack, "fault-applied"), 60)
        assert applied, [e["event"] for e in stack.events]
        name = f"stressbed-{run}-neighbour-nb"
        assert applied["how"] == (
            f"a container of its own on the same engine ({name}): 1 burner(s) of 1 cores"
        )
        assert applied["replicas"] == []
        (info,) = containers(engine, run, "stressbed.role=neighbour")
        host = info["HostConfig"]
        assert info["Name"] == f"/{name}"
        assert info["Config"]["Image"] == built["runner"]
        assert info["Config"]["User"] == "10001:10001"
        assert info["Config"]["Labels"]["stressbed.fault"] == "nb"
        assert host["NetworkMode"] == "none"
        assert (host["NanoCpus"], host["CpuQuota"], host["Memory"]) == (0, 0, 0)  # unbounded
        assert host["CpuShares"] == 0  # the engine's default weight
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert "/tmp" in host["Tmpfs"]
        assert not host["Binds"]  # no IO writer: nothing of the host's
        # Its processes are in its own cgroups, none in the replica's.
        (replica,) = containers(engine, run, "stressbed.role=replica")
        # The replica's cgroups, those the engine made for it (named by its ID).
        theirs = {k: v for k, v in cgroups(replica["State"]["Pid"]).items() if replica["Id"] in v}
        assert theirs
        burning = wait_for(
            lambda: [
                int(p[1])
                for p in engine.api.top(info["Id"], ps_args="-eo comm,pid")["Processes"]
                if p[0].startswith("python")
            ],
            30,
        )
        assert burning
        for pid in burning:
            mine = cgroups(pid)
            for hierarchy, path in theirs.items():
                assert mine[hierarchy] != path
                assert not mine[hierarchy].startswith(path + "/")
                assert info["Id"] in mine[hierarchy]  # its own container's
        # It burns: its container's CPU time rises (a core's worth, give or take the machine).
        first = cpu_seconds(engine, info["Id"])
        assert wait_for(lambda: cpu_seconds(engine, info["Id"]) - first > 1.0, 30)
        ended = wait_for(lambda: event(stack, "fault-ended"), 60)
        assert ended, [e["event"] for e in stack.events]
        assert ended["reason"] == "its end"
        assert ended["how"] == "the neighbour stopped"
        assert containers(engine, run, "stressbed.role=neighbour") == []
        assert name not in stack.registry.containers
        assert len(containers(engine, run, "stressbed.role=replica")) == 1  # untouched
    finally:
        stack.teardown()


def test_an_io_neighbour_writes_beside_the_data_folder_and_teardown_removes_it(
    engine, built, tmp_path, no_leftovers
):
    stack = neighboured(engine, built, tmp_path)
    run = stack.registry.run
    scratch = tmp_path / "stack" / ".stressbed-nb"
    try:
        start(stack, io=True, lasting="120s")
        applied = wait_for(lambda: event(stack, "fault-applied"), 60)
        assert applied, [e["event"] for e in stack.events]
        assert applied["how"].endswith("1 burner(s) of 1 cores, an IO writer on the replicas' disk")
        (info,) = containers(engine, run, "stressbed.role=neighbour")
        assert info["HostConfig"]["Binds"] == [f"{scratch.resolve()}:/scratch:rw"]
        # Its file is on the data folder's disk, and it grows.
        assert scratch.stat().st_dev == (tmp_path / "stack" / "data").stat().st_dev
        written = scratch / "io"
        assert wait_for(lambda: written.exists() and written.stat().st_size > 0, 30)
    finally:
        stack.teardown()
    ended = event(stack, "fault-ended")
    assert ended is not None
    assert ended["reason"] == "teardown"
    assert containers(engine, run, "stressbed.role=neighbour") == []
    assert not scratch.exists()


def test_a_neighbour_that_cannot_start_is_skipped_with_the_engine_s_reason(
    engine, built, tmp_path, monkeypatch, no_leftovers
):
    stack = neighboured(engine, built, tmp_path)
    run = stack.registry.run
    monkeypatch.setattr(stack.containers, "neighbour_image", lambda: "stressbed-no-such:image")
    try:
        start(stack, io=True, lasting="30s")
        skipped = wait_for(lambda: event(stack, "fault-skipped"), 60)
        assert skipped, [e["event"] for e in stack.events]
        assert skipped["reason"] == (
            f"the neighbour did not start: the engine did not start stressbed-{run}-neighbour-nb: "
            "No such image: stressbed-no-such:image"
        )
        assert event(stack, "fault-applied") is None
        assert containers(engine, run, "stressbed.role=neighbour") == []
        assert f"stressbed-{run}-neighbour-nb" not in stack.registry.containers
        assert not (tmp_path / "stack" / ".stressbed-nb").exists()
    finally:
        stack.teardown()


def test_a_stack_whose_scenario_has_a_neighbour_readies_the_runner_image_when_prepared(
    engine, built, tmp_path, no_leftovers
):
    scenario = Scenario(
        "neighboured",
        description="a neighbour beside the stack",
        workloads=[
            Workload(
                "w",
                get("/healthz"),
                ConstantArrivalRate(rate=1, duration="20s", pre_allocated_vus=1, max_vus=1),
            )
        ],
        faults=[fault.neighbour(cpu=1, at="5s", lasting="5s")],
    )
    backend = DockerBackend(runners_local=True)  # a run that would not need the runner image
    spec = agent_spec(replicas=1)
    backend.preflight(spec, scenario)
    stack = backend.stack(spec, tmp_path / "stack")
    assert isinstance(stack, DockerStack)
    runtime = stack.containers
    assert runtime.neighbour_image is not None
    assert runtime.neighbour_image() == built["runner"]
    # Made (or found) when the stack is prepared, not at the fault's instant.
    asked: list[str] = []
    ensure = runtime.neighbour_image
    runtime.neighbour_image = lambda: asked.append("runner") or ensure()
    try:
        runtime.prepare(spec, tmp_path / "stack", lambda *args, **fields: None)
    finally:
        runtime.release()
    assert asked == ["runner"]
