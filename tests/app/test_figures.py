"""The run's fault figures with its writes: a loss outside every fault's span still fails
``lost_writes``, judged on the whole run."""

from __future__ import annotations

from stressbed import ConstantArrivalRate, Scenario, Workload, Writes, fault, lost_writes, post
from stressbed.app.figures import WHOLE_RUN, fault_figures
from stressbed.app.readback import StoredWrites
from stressbed.results.aggregates import Window
from stressbed.results.merge import FleetResult


def test_a_loss_after_the_last_fault_fails_on_the_whole_run():
    scenario = Scenario(
        "w",
        description="w",
        workloads=[
            Workload(
                "w",
                post("/v1/report", name="report", json={"agent_id": "a", "points": [1]}),
                ConstantArrivalRate(rate=1, duration="1m", pre_allocated_vus=1),
            )
        ],
        faults=[fault.kill(at="5s")],
        resilience=[lost_writes("== 0")],
        writes=Writes(request="report", items="points", read_back="/v1/agents/{writer}/stored"),
    )
    windows = {s: Window(requests=1, acked=1) for s in range(100, 160)}
    fleet = FleetResult(windows=windows, writes={"a": 60})
    stored = {s: 1 for s in range(100, 158)}  # the last two seconds' writes never stored
    found = fault_figures(
        scenario,
        fleet,
        [{"event": "fault-applied", "fault": "kill", "t": 105.0, "replicas": ["agent-0"]}],
        StoredWrites(stored={"a": 58}, by_second=stored),
    )
    (kill,) = found["faults"]
    assert kill["lost_writes"] == 0  # nothing lost around the kill...
    by_fault = {v["fault"]: v for v in found["verdicts"]}
    assert by_fault["kill"]["passed"]
    assert by_fault[WHOLE_RUN] == {  # ...but two lost after it
        "threshold": "lost_writes == 0",
        "fault": WHOLE_RUN,
        "observed": 2,
        "passed": False,
    }
