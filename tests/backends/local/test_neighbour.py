"""The neighbour fault on the local backend: burners in a cgroup of their own beside the
replicas (never in theirs), killed and the cgroup removed at the fault's end; and a real run
with a neighbour judged by its isolation verdict.

The neighbour here burns one core, not both: the suite's other worker must keep passing
beside it (the suite passes beside one busy core)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from stressbed import fault
from stressbed.app.execute import execute
from stressbed.app.plan import RunOptions, plan
from stressbed.backends.local._neighbour import CgroupNeighbour
from stressbed.results.schemas import SUMMARY

from ...conftest import needs_k6
from .test_hogs import event, hogged, needs_cgroups, wait_for

SCENARIO = """
from stressbed import *
scenario = Scenario(
    "neighboured",
    description="a steady GET beside a noisy neighbour",
    workloads=[Workload("w", get("/healthz"), ConstantArrivalRate(rate=40, duration="24s",
        pre_allocated_vus=4, max_vus=20))],
    thresholds=[latency("p(95) < 5s")],
    faults=[fault.neighbour(cpu=1, at="12s", lasting="10s")],
)
stack = {"replicas": 1, "autoscaler": None, "quota": None,
         "limits": {"cpu": "500m"}, "requests": {"cpu": "250m"}}
"""


def _cgroup_lines(pid: int) -> set[str]:
    try:
        return set(Path(f"/proc/{pid}/cgroup").read_text().splitlines())
    except OSError:
        return set()


@needs_cgroups
def test_the_neighbour_runs_beside_the_replicas_never_in_them(tmp_path, control):
    stack = hogged(tmp_path, control, fault.neighbour(cpu=1, at="0s", lasting="30s"))
    try:
        applied = wait_for(lambda: event(stack, "fault-applied"), "the neighbour")
        assert applied["how"].startswith("a cgroup of its own beside the replicas: 1 burner(s)")
        assert applied["replicas"] == []
        (replica,) = stack.replicas
        (item,) = stack._faults._armed
        assert isinstance(item.neighbour, CgroupNeighbour)
        neighbour = item.neighbour.group
        assert neighbour is not None
        burners = neighbour.pids()
        assert burners
        theirs = set(replica.process.group.pids())
        assert not theirs & set(burners)  # not one burner in the replica's cgroup
        assert _cgroup_lines(burners[0]) != _cgroup_lines(replica.process.pid)
    finally:
        stack.teardown()
    assert event(stack, "fault-ended")["reason"] == "teardown"
    assert not any(Path(f"/proc/{pid}").exists() for pid in burners)
    assert not any(d.exists() for d in neighbour.dirs.values())  # the cgroup removed


@needs_k6
@needs_cgroups
def test_a_run_with_a_neighbour_gets_an_isolation_verdict(tmp_path):
    path = tmp_path / "neighboured.py"
    path.write_text(SCENARIO)
    report = execute(plan(RunOptions(scenario=str(path), results=tmp_path / "r")))
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    jsonschema.validate(summary, SUMMARY)  # a faulted run's summary is what its schema says
    (item,) = summary["resilience"]["faults"]
    assert item["applied"], item
    assert item["end"] - item["at"] > 5
    found = item["isolation"]
    assert found["verdict"] in ("held", "broken", "inconclusive"), found  # judged: data
    assert found["seconds"]["during"] >= 5
    p95 = next(m for m in found["metrics"] if m["metric"] == "http_req_duration p(95)")
    if found["verdict"] == "broken":  # what it says is what it measured
        assert any(m["verdict"] == "regressed" for m in found["metrics"])
        assert found["reason"].startswith("the neighbour reached the users")
    else:
        assert p95["verdict"] != "regressed"
    page = (tmp_path / "r" / report.run_id / "report.html").read_text()
    assert f"Isolation under {item['name']}" in page
