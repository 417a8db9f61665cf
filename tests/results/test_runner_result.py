"""The runner-result document: k6 exit codes mapped to statuses, and a lossless round trip."""

from __future__ import annotations

import pytest

from stressbed.results.runner_result import RunnerResult, RunnerStatus, status_for

from ..conftest import counting_result


def test_status_follows_k6_exit_codes():
    assert status_for(0) is RunnerStatus.OK
    assert status_for(99) is RunnerStatus.OK  # thresholds are the fleet's to judge
    assert status_for(107) is RunnerStatus.SCRIPT_ERROR
    assert status_for(108) is RunnerStatus.ABORTED
    assert status_for(104) is RunnerStatus.CONFIG_ERROR
    assert status_for(-9) is RunnerStatus.KILLED
    assert status_for(103).failed


def test_results_round_trip_through_their_document(tmp_path):
    result = counting_result(1, 3, 1.0, 2.0)
    result.write(tmp_path / "r.json")
    again = RunnerResult.read(tmp_path / "r.json")
    assert again.to_dict() == result.to_dict()
    (tmp_path / "bad.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(ValueError, match=r"not a stressbed\.runner-result v1 document"):
        RunnerResult.read(tmp_path / "bad.json")
