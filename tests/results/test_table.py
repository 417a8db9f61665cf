"""The terminal's fault lines say a stall and a recovery nothing could judge as such."""

from __future__ import annotations

from stressbed.results.table import resilience_lines

KILL = {"name": "kill", "label": "kill on 1 replica at 5s", "applied": True, "replicas": ["a"]}


def test_a_fault_line_says_stalled_seconds_and_an_unmeasured_recovery():
    stalled = {**KILL, "time_to_recover_s": 20.0, "judged_s": 40, "stalled_s": 20}
    never = {**KILL, "time_to_recover_s": None, "judged_s": 40}
    unjudged = {**KILL, "time_to_recover_s": None, "judged_s": 0}
    lines = resilience_lines({"faults": [stalled, never, unjudged]})
    assert lines[1].endswith("not detected, recovered after 20.0 s (20 s stalled)")
    assert lines[2].endswith("not detected, did not recover")
    assert lines[3].endswith("not detected, recovery not measured")


def test_a_verdict_without_an_observation_says_why():
    verdicts = [
        {"threshold": "recovery_time < 30s", "fault": "kill", "observed": None, "passed": False}
    ]
    never = {**verdicts[0], "note": "did not recover"}
    assert resilience_lines({"faults": [KILL], "verdicts": verdicts})[-1].endswith("not measured")
    assert resilience_lines({"faults": [KILL], "verdicts": [never]})[-1].endswith(
        "FAIL recovery_time < 30s on kill  did not recover"
    )
