"""A dependency fault for real: the reference agent's sink fails on every replica through its
fault hook (the run's own admin token) while reports keep coming. A small queue sheds with
429 once full; a large one buffers and stores everything once the sink is back; either way no
acknowledged report is lost, and the hook's fault is ended at the fault's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ...conftest import needs_k6
from .agent_runs import file_sink_stack, run_reports


@needs_k6
@pytest.mark.parametrize(("queue", "sheds"), [(300, True), (100_000, False)])
def test_a_failing_sink_sheds_or_buffers_as_configured_and_loses_nothing(
    tmp_path: Path, monkeypatch, queue, sheds
):
    monkeypatch.setenv("STRESSBED_AGENT_TOKEN", "dependency-test-token")
    stack = file_sink_stack(
        STRESSBED_AGENT_QUEUE_MAX_POINTS=str(queue), STRESSBED_AGENT_BREAKER_RESET_S="1"
    )
    faults = 'fault.dependency("sink", at="2s", lasting="3s")'
    report, summary, run = run_reports(tmp_path, faults, stack, rate=40)
    (dependency,) = summary["resilience"]["faults"]
    assert dependency["applied"], dependency
    assert dependency["how"] == "the target's fault hook (sink_failure)"
    assert len(dependency["replicas"]) == 2
    (ended,) = [e for e in summary["events"] if e["event"] == "fault-ended"]
    assert ended["reason"] == "its end"
    assert sorted(ended["ended"]) == sorted(dependency["replicas"])

    during = range(int(dependency["at"]), int(dependency["end"]) + 1)
    shed = sum(
        report.fleet.windows[s].statuses.get("429", 0) for s in during if s in report.fleet.windows
    )
    everywhere = sum(w.statuses.get("429", 0) for w in report.fleet.windows.values())
    if sheds:
        assert shed > 0  # the queue filled while nothing drained it
    else:
        assert everywhere == 0  # buffered: every report accepted
        assert dependency["errors_during_fault"] == 0
    writes = summary["writes"]
    assert writes["problem"] is None
    assert writes["lost"] == 0  # refused ones were never acknowledged; queued ones got stored
    assert writes["acknowledged"] > 500
    assert report.exit_code == 0 or report.message.startswith("thresholds failed"), report.message
    text = json.dumps(summary) + (run / "junit.xml").read_text()
    assert "dependency-test-token" not in text
