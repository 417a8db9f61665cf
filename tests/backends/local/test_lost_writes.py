"""Acknowledged writes lost to a kill, counted for real: the reference agent with its file
sink, reports at a steady rate, its sink failing from 1 s (what it accepts stays queued) and
both replicas SIGKILLed at 3 s. Acknowledged once flushed, nothing is lost (what waited for the
sink was never acknowledged); acknowledged once queued, what the killed replicas held is,
and the count matches an independent count of the sink file."""

from __future__ import annotations

import json

import pytest

from ...conftest import needs_k6
from .agent_runs import file_sink_stack, run_reports, sink_points


@needs_k6
@pytest.mark.parametrize("ack", ["flushed", "queued"])
def test_a_kill_loses_acknowledged_writes_only_when_acknowledged_before_flushing(
    tmp_path, monkeypatch, ack
):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "lost-writes-test-token")
    # The sink fails from 1 s to 5 s (on the restarted replicas too): what the replicas
    # accept meanwhile stays in their queues, so the kill at 3 s takes a known span of
    # reports with it, whatever the flusher's timing.
    stack = file_sink_stack(STRESSBED_AGENT_ACK=ack, STRESSBED_AGENT_BREAKER_RESET_S="1")
    faults = 'fault.dependency("sink", at="1s", lasting="4s"), fault.kill(replicas=2, at="3s")'
    report, summary, run = run_reports(tmp_path, faults, stack)
    code = report.exit_code
    writes = summary["writes"]
    sink, kill = summary["resilience"]["faults"]
    assert sink["applied"]
    assert kill["applied"]
    assert len(kill["replicas"]) == 2
    assert writes["problem"] is None
    assert writes["writers"] >= 10
    assert writes["acknowledged"] > 500
    # What the read-back found is what the sink file holds (the replicas' drains at teardown
    # add nothing: every survivor flushed before the read-back settled).
    assert writes["stored"] == sink_points(run)
    # Per writer, acknowledged beyond stored is lost, stored beyond acknowledged is not.
    surplus = writes["stored_unacknowledged"]
    assert writes["lost"] == writes["acknowledged"] - writes["stored"] + surplus
    # Placed by when they were accepted: while the sink was failing.
    assert sink["lost_writes"] + kill["lost_writes"] == writes["lost"]
    if ack == "flushed":
        assert writes["lost"] == 0
        assert code == 0, summary["message"]
    else:
        assert writes["lost"] > 300  # about 2 s of ~60 reports/s of ~10 points, at least
        assert sink["lost_writes"] == writes["lost"]
        assert code == 1
        assert "lost_writes == 0 (dependency:" in summary["message"]
        whole = summary["resilience"]["verdicts"][-1]
        assert (whole["fault"], whole["observed"], whole["passed"]) == (
            "the whole run",
            writes["lost"],
            False,
        )
    assert "lost-writes-test-token" not in json.dumps(summary)
