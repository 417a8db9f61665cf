"""The runner-result document: k6 exit codes mapped to statuses, and a lossless round trip."""

from __future__ import annotations

import pytest

from stressbed.errors import DocumentError
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
    result.nofile = 20_000
    result.write(tmp_path / "r.json")
    again = RunnerResult.read(tmp_path / "r.json")
    assert again.to_dict() == result.to_dict()
    assert again.nofile == 20_000
    # A document of a runner that did not say it (an older one): not read, not 0.
    older = {k: v for k, v in result.to_dict().items() if k != "nofile"}
    assert RunnerResult.from_dict(older).nofile is None
    (tmp_path / "bad.json").write_text('{"format": "other", "version": 1}')
    with pytest.raises(DocumentError) as error:
        RunnerResult.read(tmp_path / "bad.json")
    assert str(error.value) == (
        "result.format: got 'other v1'; expected stressbed.runner-result v1 to v3 (a runner of a "
        "compatible stressbed version)"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"index": None}, "result.index: got None; expected a value of type int"),
        ({"status": "fine"}, "result.status: got 'fine'; expected one of ok, aborted,"),
        ({"windows": {"soon": {}}, "version": 1}, "result.windows: got ['soon']; expected whole"),
        ({"windows": {"soon": {}}}, "result.windows.encoding: got None; expected stressbed.pac"),
        ({"version": 4}, "result.format: got 'stressbed.runner-result v4'; expected"),
    ],
)
def test_a_document_that_is_not_what_it_claims_names_the_field(change, message):
    document = {**counting_result(0, 1, 1.0, 2.0).to_dict(), **change}
    with pytest.raises(DocumentError) as error:
        RunnerResult.from_dict(document)
    assert str(error.value).startswith(message)
    assert error.value.exit_code == 3
