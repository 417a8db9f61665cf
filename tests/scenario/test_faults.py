"""Faults as scenario data: built and checked like the rest of a scenario, scaled with its
timeline, listed by render, and refused before anything starts where they cannot be applied."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stressbed import (
    ConstantArrivalRate,
    Scenario,
    Workload,
    errors_during_fault,
    fault,
    get,
    lost_writes,
    recovery_time,
    time_to_detect,
)
from stressbed.app.cli import main
from stressbed.app.execute import execute
from stressbed.app.plan import Plan, RunOptions, plan
from stressbed.errors import ConfigError
from stressbed.results.table import table
from stressbed.scenario.faults import FAULT_KINDS
from stressbed.stack.agent import reference_agent
from stressbed.stack.spec import FaultHook
from stressbed.testing import FakeBackend


def scenario(faults=(), resilience=(), duration="2m") -> Scenario:
    return Scenario(
        "f",
        description="faults",
        workloads=[
            Workload(
                "w",
                get("/healthz"),
                ConstantArrivalRate(rate=10, duration=duration, pre_allocated_vus=2),
            )
        ],
        faults=faults,
        resilience=resilience,
    )


def test_each_fault_says_what_it_does_and_when():
    shown = [
        fault.kill(at="60s").label,
        fault.pause("30s", at="1m30s", replicas=2).label,
        fault.latency("200ms", jitter="50ms", at="10s", lasting="30s").label,
        fault.loss("5%", at="10s", lasting="20s").label,
        fault.reset_connections(at="20s").label,
        fault.cpu(share=0.8, at="10s", lasting="30s").label,
        fault.memory("200Mi", at="10s", lasting="30s").label,
        fault.dependency("sink", at="10s", lasting="30s").label,
        fault.restart(at="45s").label,
        fault.restart(at="45s", replicas=2, seed=4).label,
        fault.rolling_restart(at="1m").label,
        fault.rolling_restart(at="1m", max_unavailable=2).label,
    ]
    assert shown == [
        "kill on 1 replica at 1m",
        "pause on 2 replicas at 1m30s for 30s",
        "latency 200ms +-50ms at 10s for 30s",
        "loss 5% at 10s for 20s",
        "reset at 20s",
        "cpu 80% CPU on 1 replica at 10s for 30s",
        "memory 200Mi on 1 replica at 10s for 30s",
        "dependency sink at 10s for 30s",
        "restart at 45s",
        "restart on 2 replicas at 45s",
        "rolling_restart 1 at a time at 1m",
        "rolling_restart 2 at a time at 1m",
    ]


@pytest.mark.parametrize(
    ("build", "field", "says"),
    [
        (lambda: fault.kill(at="soon"), "faults.kill.at", "a duration"),
        (lambda: fault.kill(at="1s", replicas=0), "faults.kill.replicas", "1 or more"),
        (lambda: fault.pause(None, at="1s"), "faults.pause.lasting", "how long"),
        (lambda: fault.latency("10ms", jitter="20ms", at="1s", lasting="5s"),
         "faults.latency.jitter", "at most the delay"),
        (lambda: fault.loss("100%", at="1s", lasting="5s"), "faults.loss.share", "below 100%"),
        (lambda: fault.cpu(share=1.5, at="1s", lasting="5s"), "faults.cpu.share", "(0, 1]"),
        (lambda: fault.memory("10Ki", at="1s", lasting="5s"), "faults.memory.size", "1Mi"),
        (lambda: fault.dependency("The Sink", at="1s", lasting="5s"),
         "faults.dependency.name", "like 'sink'"),
        (lambda: fault.bandwidth("fast", at="1s", lasting="5s"),
         "faults.bandwidth.rate", "like '1mbit'"),
        (lambda: fault.bandwidth("1bit", at="1s", lasting="5s"),
         "faults.bandwidth.rate", "like '1mbit'"),
        (lambda: fault.bandwidth("4kbit", at="1s", lasting="5s"),
         "faults.bandwidth.rate", "at least 8kbit"),
        (lambda: fault.slow_close("2s", at="1s", lasting=None),
         "faults.slow_close.lasting", "how long"),
        (lambda: fault.restart(at="1s", replicas=0), "faults.restart.replicas", "1 or more"),
        (lambda: fault.restart(at="1s", replicas=1.5), "faults.restart.replicas", "whole number"),
        (lambda: fault.restart(at="1s", lasting="10s"),
         "faults.restart.lasting", "none: a restart happens at one instant"),
        (lambda: fault.restart(at="1s", seed=-1), "faults.restart.seed", "0 or more"),
        (lambda: fault.restart(at="later"), "faults.restart.at", "a duration"),
        (lambda: fault.rolling_restart(at="1s", max_unavailable=0),
         "faults.rolling_restart.max_unavailable", "1 or more"),
        (lambda: fault.rolling_restart(at="1s", max_unavailable="25%"),
         "faults.rolling_restart.max_unavailable", "a whole number"),
        (lambda: fault.rolling_restart(at="1s", max_unavailable=True),
         "faults.rolling_restart.max_unavailable", "a whole number"),
        (lambda: fault.rolling_restart(at="1s", lasting="30s"),
         "faults.rolling_restart.lasting", "lasts until every replica was restarted"),
        (lambda: fault.disk_fill(share=0, at="1s", lasting="5s"),
         "faults.disk_fill.share", "in (0, 1], or None: until it is full"),
        (lambda: fault.disk_fill(share=1.01, at="1s", lasting="5s"),
         "faults.disk_fill.share", "in (0, 1]"),
        (lambda: fault.disk_fill(share="95%", at="1s", lasting="5s"),
         "faults.disk_fill.share", "in (0, 1]"),
        (lambda: fault.disk_fill(share=True, at="1s", lasting="5s"),
         "faults.disk_fill.share", "in (0, 1]"),
        (lambda: fault.disk_fill(at="1s", lasting=None), "faults.disk_fill.lasting", "how long"),
        (lambda: fault.disk_fill(at="1s", lasting="5s", replicas=0),
         "faults.disk_fill.replicas", "1 or more"),
        (lambda: fault.disk_fill(at="now", lasting="5s"), "faults.disk_fill.at", "a duration"),
    ],
)  # fmt: skip
def test_a_bad_fault_is_one_line_naming_its_field(build, field, says):
    with pytest.raises(ConfigError) as caught:
        build()
    assert caught.value.field == field
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_disk_fill_fills_to_a_share_or_until_full():
    default = fault.disk_fill(at="10s", lasting="30s")
    full = fault.disk_fill(share=None, at="10s", lasting="30s")
    half = fault.disk_fill(share=0.5, at="10s", lasting="30s", replicas=2, seed=3)
    assert [f.param("fill") for f in (default, full, half)] == [0.95, 1.0, 0.5]
    assert [f.label for f in (default, full, half)] == [
        "disk_fill to 95% on 1 replica at 10s for 30s",
        "disk_fill until full on 1 replica at 10s for 30s",
        "disk_fill to 50% on 2 replicas at 10s for 30s",
    ]
    assert FAULT_KINDS["disk_fill"].lasts
    assert FAULT_KINDS["disk_fill"].needs_stack
    assert half.to_dict()["params"] == {"fill": 0.5}


def test_faults_are_named_and_must_happen_while_the_load_runs():
    made = scenario([fault.kill(at="10s"), fault.kill(at="20s"), fault.reset_connections(at="30s")])
    assert [f.name for f in made.faults] == ["kill", "kill-2", "reset"]
    with pytest.raises(ConfigError) as caught:
        scenario([fault.pause("30s", at="1m45s")])
    assert caught.value.field == "faults.pause"
    assert "within the load's 2m" in str(caught.value)


def test_duration_scales_the_faults_with_the_load():
    made = scenario([fault.pause("30s", at="1m")]).scaled_to(60_000)
    (paused,) = made.faults
    assert (paused.at_ms, paused.lasting_ms) == (30_000, 15_000)
    assert paused.name == "pause"


def test_restarts_are_instants_scaled_with_the_load_and_written_whole():
    made = scenario(
        [fault.restart(at="1m", replicas=2, seed=3), fault.rolling_restart(at="90s", seed=1)]
    ).scaled_to(60_000)
    restart, rolling = made.faults
    assert (restart.at_ms, restart.lasting_ms, restart.replicas) == (30_000, 0, 2)
    assert (rolling.at_ms, rolling.lasting_ms, rolling.replicas) == (45_000, 0, None)
    assert rolling.to_dict() == {
        "name": "rolling_restart",
        "kind": "rolling_restart",
        "at_s": 45.0,
        "lasting_s": 0.0,
        "replicas": None,
        "params": {"max_unavailable": 1},
        "seed": 1,
        "label": "rolling_restart 1 at a time at 45s",
    }
    assert restart.to_dict()["label"] == "restart on 2 replicas at 30s"
    for kind in ("restart", "rolling_restart"):
        assert (FAULT_KINDS[kind].lasts, FAULT_KINDS[kind].needs_stack) == (False, True)
        assert FAULT_KINDS[kind].summary


def test_resilience_thresholds_parse_their_units():
    assert recovery_time("< 30s").value == 30
    assert time_to_detect("<= 1500ms").value == 1.5
    assert lost_writes("== 0").value == 0
    assert errors_during_fault("< 5%").value == pytest.approx(0.05)
    assert recovery_time("< 30s").holds(12.0)
    assert not recovery_time("< 30s").holds(None)  # never recovered: not met
    with pytest.raises(ConfigError, match="a bound like '== 0'"):
        lost_writes("none")


def test_resilience_without_a_fault_to_judge_is_refused():
    with pytest.raises(ConfigError) as caught:
        scenario(resilience=[recovery_time("< 30s")])
    assert caught.value.field == "resilience"


def test_render_lists_the_faults(tmp_path, capsys):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        "faults=[fault.kill(at='20s'), fault.restart(at='30s'), "
        "fault.rolling_restart(at='40s', max_unavailable=2)])\n"
    )
    assert main(["render", "--scenario", str(path), "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "fault kill: kill on 1 replica at 20s (applied by stressbed run, not by k6)" in out
    assert "fault restart: restart at 30s (applied by stressbed run, not by k6)" in out
    assert "fault rolling_restart: rolling_restart 2 at a time at 40s (applied by" in out


def test_a_fault_the_backend_does_not_apply_is_exit_2_before_anything_starts(
    tmp_path: Path, capsys
):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        "faults=[fault.reset_connections(at='20s')])\n"
    )
    args = ["run", "--scenario", str(path), "--results", str(tmp_path / "r")]
    code = main([*args, "--backend", "kubernetes"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("stressbed: error: faults.reset: got 'reset at 20s")
    kinds = (
        "bandwidth, cpu, dependency, kill, latency, loss, memory, neighbour, pause, restart, "
        "rolling_restart, slow_disk"
    )
    assert f"a fault --backend kubernetes applies ({kinds})" in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("backend", "why"),
    [
        ("kubernetes", "not disk_fill: no Chaos Mesh object of stressbed's fills a pod's disk "
         "yet (--backend local fills a tmpfs of the stack's own)"),
    ],
)  # fmt: skip
def test_a_disk_fill_where_the_backend_would_fill_no_disk_of_its_own_is_refused_saying_why(
    tmp_path: Path, capsys, backend, why
):
    err = _refused(
        tmp_path, capsys, "fault.disk_fill(share=None, at='20s', lasting='10s')", backend
    )
    assert len(err) == 1
    assert err[0].startswith("stressbed: error: faults.disk_fill: got 'disk_fill until full")
    assert err[0].endswith(why)


@pytest.mark.parametrize(
    ("hook", "name", "expected"),
    [
        (None, "sink", "a dependency the stack's fault_hook injects (it has no fault_hook)"),
        (FaultHook(), "db", "a dependency the stack's fault_hook injects (sink)"),
    ],
)
def test_a_dependency_the_stack_cannot_fail_is_refused_before_anything_starts(
    tmp_path: Path, hook, name, expected
):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        f"faults=[fault.dependency({name!r}, at='20s', lasting='10s')])\n"
    )
    stack = replace(reference_agent(), fault_hook=hook)
    with pytest.raises(ConfigError) as caught:
        plan(RunOptions(scenario=str(path), results=tmp_path / "r", stack=stack))
    assert caught.value.field == "faults.dependency"
    assert caught.value.expected == expected


class FaultingBackend(FakeBackend):
    """A fake whose stack takes every kind of fault, and applies none."""

    name = "faulting"
    fault_kinds = frozenset(FAULT_KINDS)


def test_faults_a_backend_never_applied_are_said_so_and_fail_their_thresholds(tmp_path):
    scn = scenario([fault.kill(at="10s")], [recovery_time("< 30s")])
    backend = FaultingBackend()
    report = execute(
        Plan(
            scenario=scn,
            target_url=None,
            runners=1,
            results=tmp_path / "r",
            keep_raw=False,
            backend=backend,
            stack=reference_agent(),
        )
    )
    # The fleet's release started the faults' clock on the stack.
    ((faults, started_at),) = backend.stacks[0].scheduled
    assert [f.name for f in faults] == ["kill"]
    assert abs(started_at - time.time()) < 600  # the outcome's release, unix time
    (found,) = report.resilience["faults"]
    assert found["applied"] is False
    assert found["reason"] == "the load ended before it"
    assert report.exit_code == 1
    assert report.message.startswith("resilience failed: recovery_time < 30s (kill")
    assert "kill: kill on 1 replica at 10s: not applied" in table(report)
    junit = (tmp_path / "r" / report.run_id / "junit.xml").read_text()
    assert 'name="recovery_time &lt; 30s on kill"' in junit
    assert 'failures="1"' in junit


def test_a_fault_on_the_path_of_an_https_target_is_refused(tmp_path: Path, capsys):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        "faults=[fault.latency('100ms', at='20s', lasting='10s')])\n"
    )
    code = main(
        ["run", "--scenario", str(path), "--target-url", "https://127.0.0.1:9", "--results",
         str(tmp_path / "r")]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "faults.latency" in err
    assert "a plain-http --target-url (the balancer forwards bytes)" in err


@pytest.mark.parametrize(
    ("item", "name"),
    [
        ("fault.restart(at='20s')", "restart"),
        ("fault.rolling_restart(at='20s')", "rolling_restart"),
    ],
)
def test_a_restart_needs_a_stack_of_its_own(tmp_path: Path, capsys, item, name):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        f"ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], faults=[{item}])\n"
    )
    args = ["run", "--scenario", str(path), "--results", str(tmp_path / "r")]
    assert main([*args, "--target-url", "http://127.0.0.1:9"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"stressbed: error: faults.{name}: got ")
    assert "a provisioned stack: this fault acts on a replica, not on a URL" in line


def test_a_restart_of_more_replicas_than_the_stack_starts_with_is_refused(tmp_path: Path):
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        "faults=[fault.restart(at='20s', replicas=3)])\n"
    )
    with pytest.raises(ConfigError) as caught:
        plan(RunOptions(scenario=str(path), results=tmp_path / "r", stack=reference_agent()))
    assert caught.value.field == "faults.restart.replicas"
    assert caught.value.expected == "at most the 2 replica(s) the stack starts with"


def test_a_neighbour_s_cores_and_memory_are_checked():
    made = fault.neighbour(cpu=1.5, memory="256Mi", at="10s", lasting="20s")
    assert (made.param("cores"), made.param("memory")) == (1.5, 256 * 2**20)
    assert made.label == "neighbour 1.5 cores 256Mi at 10s for 20s"
    assert fault.neighbour(at="0s", lasting="1s").param("cores") is None  # every core
    with pytest.raises(ConfigError) as refused:
        fault.neighbour(cpu=0, at="0s", lasting="1s")
    assert str(refused.value).startswith("faults.neighbour.cpu: got 0; expected cores to burn")
    with pytest.raises(ConfigError) as refused:
        fault.neighbour(memory="1k", at="0s", lasting="1s")
    assert str(refused.value).startswith("faults.neighbour.memory: got '1k'; expected at least")


def test_a_neighbour_may_write_to_the_disk_too():
    made = fault.neighbour(cpu=1, io=True, at="10s", lasting="20s")
    assert made.param("io") is True
    assert made.label == "neighbour 1 cores writing to the disk at 10s for 20s"
    assert fault.neighbour(at="0s", lasting="1s").param("io") is None
    with pytest.raises(ConfigError) as refused:
        fault.neighbour(io="yes", at="0s", lasting="1s")
    assert refused.value.field == "faults.neighbour.io"


def test_an_io_hog_lasts_and_acts_on_chosen_replicas():
    made = fault.io(at="10s", lasting="30s", replicas=2, seed=4)
    assert made.label == "io on 2 replicas at 10s for 30s"
    assert (made.replicas, made.seed, made.lasting_ms) == (2, 4, 30_000)
    assert FAULT_KINDS["io"].lasts
    assert FAULT_KINDS["io"].needs_stack
    with pytest.raises(ConfigError) as refused:
        fault.io(at="10s", lasting=None)
    assert refused.value.field == "faults.io.lasting"


def test_a_slow_disk_is_a_rate_or_a_latency_per_operation():
    rate = fault.slow_disk("1MiB/s", at="10s", lasting="30s")
    delayed = fault.slow_disk(latency="50ms", at="10s", lasting="30s")
    assert (rate.param("bps"), rate.param("delay_ms")) == (2**20, None)
    assert (delayed.param("bps"), delayed.param("delay_ms")) == (None, 50)
    assert rate.label == "slow_disk 1MiB/s on 1 replica at 10s for 30s"
    assert delayed.label == "slow_disk 50ms per operation on 1 replica at 10s for 30s"
    for bad, field, says in [
        ({}, "faults.slow_disk.rate", "a rate like '1MiB/s', or a latency like '50ms'"),
        ({"rate": "fast"}, "faults.slow_disk.rate", "a rate like"),
        ({"rate": "2KB/s"}, "faults.slow_disk.rate", "at least 4KiB/s"),
        ({"latency": "soon"}, "faults.slow_disk.latency", ""),
    ]:
        with pytest.raises(ConfigError) as refused:
            fault.slow_disk(**bad, at="10s", lasting="30s")
        assert refused.value.field == field
        assert says in str(refused.value)


@pytest.mark.parametrize("backend", ["local", "docker"])
def test_a_slow_disk_with_only_a_latency_is_refused_where_the_throttle_holds_a_rate(
    tmp_path: Path, capsys, backend
):
    err = _refused(
        tmp_path, capsys, "fault.slow_disk(latency='50ms', at='20s', lasting='10s')", backend
    )
    assert err == [
        "stressbed: error: faults.slow_disk.latency: got 'slow_disk 50ms per operation on 1 "
        f"replica at 20s for 10s'; expected a rate with --backend {backend}, like "
        "fault.slow_disk('1MiB/s'): the blkio throttle holds a rate; a delay per operation is "
        "Chaos Mesh's IOChaos (--backend kubernetes)"
    ]


def _refused(tmp_path: Path, capsys: Any, fault_source: str, backend: str) -> list[str]:
    """``stressbed run`` of a scenario with one fault (its source) on ``backend``: exit 2,
    nothing started; what it said on stderr, a line each."""
    path = tmp_path / "f.py"
    path.write_text(
        "from stressbed import *\n"
        "scenario = Scenario('f', description='faults', workloads=[Workload('w', get('/'), "
        "ConstantArrivalRate(rate=5, duration='1m', pre_allocated_vus=2))], "
        f"faults=[{fault_source}])\n"
    )
    args = ["run", "--scenario", str(path), "--results", str(tmp_path / "r")]
    assert main([*args, "--backend", backend]) == 2
    assert not (tmp_path / "r").exists()
    return capsys.readouterr().err.strip().splitlines()
