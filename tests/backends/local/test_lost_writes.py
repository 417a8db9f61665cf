"""Acknowledged writes lost to a kill, counted for real: the reference agent with its file
sink, reports at a steady rate, both replicas SIGKILLed mid-run. Acknowledged once flushed,
nothing is lost; acknowledged once queued, what the killed replicas held is, and the count
matches an independent count of the sink file."""

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
    # Flushed every 2 s when acknowledged on queueing: a replica killed holds up to 2 s of
    # reports (both are killed, so a loss does not hang on one kill's timing).
    stack = file_sink_stack(STRESSBED_AGENT_ACK=ack, STRESSBED_AGENT_FLUSH_INTERVAL_S="2")
    report, summary, run = run_reports(tmp_path, 'fault.kill(replicas=2, at="3s")', stack)
    code = report.exit_code
    writes = summary["writes"]
    (kill,) = summary["resilience"]["faults"]
    assert kill["applied"]
    assert len(kill["replicas"]) == 2
    assert writes["problem"] is None
    assert writes["writers"] >= 10
    assert writes["acknowledged"] > 1500  # ~60 reports/s of ~10 points for 8 s
    # What the read-back found is what the sink file holds (the replicas' drains at teardown
    # add nothing: every survivor flushed before the read-back settled).
    assert writes["stored"] == sink_points(run)
    # Per writer, acknowledged beyond stored is lost, stored beyond acknowledged is not.
    surplus = writes["stored_unacknowledged"]
    assert writes["lost"] == writes["acknowledged"] - writes["stored"] + surplus
    assert kill["lost_writes"] == writes["lost"]
    if ack == "flushed":
        assert writes["lost"] == 0
        assert code == 0, summary["message"]
    else:
        assert writes["lost"] > 0
        assert code == 1
        assert "lost_writes == 0 (kill:" in summary["message"]
    assert "lost-writes-test-token" not in json.dumps(summary)
