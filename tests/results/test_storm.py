"""A population's reconnect storm after a fault, read from the merged seconds and the stack's
events: cut off, peak connect rate, refusals, time back to 99 % and to all, the stack."""

from __future__ import annotations

import pytest

from stressbed.results.agents import AgentWindow
from stressbed.results.aggregates import Window
from stressbed.results.population import levels
from stressbed.results.storm import storm, storms
from stressbed.results.table import storm_line

T0 = 1_800_000_000


def second(**counts: object) -> Window:
    agents = AgentWindow()
    for key, value in counts.items():
        setattr(agents, key, value)
    return Window(agents=agents)


def run(seconds: dict[int, Window]) -> dict[int, Window]:
    return {T0 + s: w for s, w in seconds.items()}


# 100 agents join at 0 and connect; a restart at 10.2 s cuts 100 off; the service refuses
# for two seconds, then they come back: 60 at 13, 39 at 14, the last one at 16; end at 20.
STORM = run(
    {
        0: second(joined=100, connect_attempts=100, connects=100),
        **{s: second() for s in range(1, 10)},
        10: second(disconnects={"closed": 100}),
        11: second(connect_attempts=50, connect_failures={"refused": 50}),
        12: second(connect_attempts=30, connect_failures={"handshake": 30}),
        13: second(connect_attempts=60, connects=60, reconnects=60),
        14: second(connect_attempts=39, connects=39, reconnects=39),
        15: second(),
        16: second(connect_attempts=1, connects=1, reconnects=1),
        **{s: second() for s in range(17, 20)},
        20: second(left=100, disconnects={"end": 100}),
    }
)
FAULT = {"name": "restart", "at": T0 + 10.2, "end": None}


def test_a_storm_says_who_was_cut_off_how_hard_they_came_back_and_when():
    events = [
        {"t": T0 + 10.3, "event": "terminating", "replica": "r0"},
        {"t": T0 + 11.5, "event": "restarted", "replica": "r0"},
        {"t": T0 + 12.0, "event": "unready", "replica": "r0"},
        {"t": T0 + 30.0, "event": "crashed", "replica": "r0"},  # after the storm: not its own
    ]
    found = storm(FAULT, STORM, levels(STORM), T0 + 21, events)
    assert found is not None
    assert found["connected_before"] == 100
    assert found["disconnected"] == 100
    assert found["disconnected_by_reason"] == {"closed": 100}
    assert found["lowest_connected"] == 0
    assert found["peak_connect_rate"] == 60
    assert found["peak_connect_rate_at_s"] == pytest.approx(3.8)  # the end of second 13
    assert found["connect_failures_by_reason"] == {"handshake": 30, "refused": 50}
    assert found["dipped"] is True
    assert found["time_to_99_connected_s"] == pytest.approx(4.8)  # 99 of 100 at second 14
    assert found["time_to_all_connected_s"] == pytest.approx(6.8)  # all at second 16
    assert found["stack"] == {
        "crashed": 0,
        "oom_killed": 0,
        "probe_failures": 1,
        "restarted": 1,
        "survived": True,
    }
    line = storm_line(found)
    assert "100 disconnected of 100" in line
    assert "peak 60 connects/s" in line
    assert "99% back after 5 s" in line


def test_agents_that_never_came_back_are_not_within_the_run():
    cut = run(
        {
            0: second(joined=10, connects=10),
            1: second(disconnects={"closed_1006": 10}),
            2: second(connect_failures={"refused": 10}, gave_up=10),
            3: second(),
        }
    )
    found = storm({"name": "kill", "at": T0 + 1.0}, cut, levels(cut), T0 + 4, [])
    assert found is not None
    assert found["time_to_99_connected_s"] is None
    assert found["time_to_all_connected_s"] is None
    assert "not within the run" in storm_line(found)


def test_a_fault_that_cut_nobody_off_needs_no_recovery():
    calm = run({s: second(joined=10, connects=10) if s == 0 else second() for s in range(8)})
    found = storm({"name": "latency", "at": T0 + 3.5}, calm, levels(calm), T0 + 8, [])
    assert found is not None
    assert found["dipped"] is False
    assert found["time_to_99_connected_s"] == 0.0
    assert found["disconnected"] == 0
    assert "never under 99% connected" in storm_line(found)


def test_churn_and_the_end_are_not_the_fault_s_doing():
    churned = run(
        {
            0: second(joined=10, connects=10),
            1: second(left=2, disconnects={"churn": 2}),
            2: second(left=8, disconnects={"end": 8}),
        }
    )
    found = storm({"name": "x", "at": T0 + 1.0}, churned, levels(churned), T0 + 3, [])
    assert found is not None
    assert found["disconnected"] == 0


def test_a_crash_or_an_oom_kill_in_the_storm_means_the_stack_did_not_survive():
    events = [{"t": T0 + 12.5, "event": "oom-killed", "replica": "r1"}]
    found = storm(FAULT, STORM, levels(STORM), T0 + 21, events)
    assert found is not None
    assert found["stack"]["survived"] is False
    assert "did not survive" in storm_line(found)


def test_each_fault_s_storm_ends_at_the_next_fault_and_none_before_any_agent():
    early = {"name": "early", "at": T0 + 0.0}
    both = storms([FAULT, early], STORM, [])
    assert both["early"] is None  # no agent was connected before it
    assert both["restart"] is not None
    assert storms([FAULT], {T0: Window()}, []) == {}  # no population at all
