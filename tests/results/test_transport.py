"""A result document carried in a pod's log: whole at megabytes, and a clear error when cut."""

from __future__ import annotations

import json
import random

import pytest

from stressbed.errors import DocumentError
from stressbed.results.aggregates import Window
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.transport import CHUNK_CHARS, read_document, result_lines


def big_result(windows: int) -> RunnerResult:
    rng = random.Random(windows)
    result = RunnerResult(0, 1, "0:1", RunnerStatus.OK, 0, 1.0, 2.0, windows={})
    for second in range(windows):
        window = Window(requests=second, failed=second % 7, iterations=second, vus=3.0)
        # Spread latencies: packed windows compress anything regular to almost nothing.
        window.duration.extend(rng.lognormvariate(3, 2) for _ in range(300))
        result.windows[1_700_000_000 + second] = window  # type: ignore[index]
    return result


def log_of(result: RunnerResult) -> str:
    progress = json.dumps({"event": "progress", "index": 0, "windows": {}}) + "\n"
    lines = "".join(json.dumps(line) + "\n" for line in result_lines(0, result.to_dict()))
    return progress * 50 + lines


def test_a_multi_megabyte_document_comes_back_whole_in_lines_a_log_keeps():
    result = big_result(6000)
    assert len(json.dumps(result.to_dict())) > 2_000_000
    text = log_of(result)
    assert max(len(line) for line in text.splitlines()) < 16 * 1024  # the runtime's split size
    assert len(text) < 10 * 2**20 / 4  # far from the kubelet's 10 MiB rotation
    again = RunnerResult.from_dict(read_document(text) or {})
    assert again.to_dict() == result.to_dict()


def test_a_log_cut_short_or_altered_says_so():
    text = log_of(big_result(2000))
    lines = text.splitlines(keepends=True)
    chunks = [i for i, line in enumerate(lines) if "result-chunk" in line]
    assert len(chunks) > 2
    cut = "".join(lines[: chunks[0]] + lines[chunks[1] :])  # the first chunk rotated away
    with pytest.raises(DocumentError, match=r"chunk 0 is missing: the pod's log was rotated"):
        read_document(cut)
    altered = text.replace('"data": "H', '"data": "X', 1)
    with pytest.raises(DocumentError, match="checksum mismatch"):
        read_document(altered)
    assert read_document('{"event": "ready"}\n') is None
    assert CHUNK_CHARS < 16 * 1024
