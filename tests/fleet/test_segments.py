"""Execution segments: runner i of N takes exactly its slice of the test."""

from __future__ import annotations

import pytest

from stressbed import ConfigError
from stressbed.fleet.segments import segment, sequence


def test_segments_cover_the_test_exactly_once():
    assert sequence(1) == "0,1"
    assert segment(0, 1) == "0:1"
    assert sequence(4) == "0,1/4,1/2,3/4,1"
    assert [segment(i, 3) for i in range(3)] == ["0:1/3", "1/3:2/3", "2/3:1"]
    with pytest.raises(ConfigError, match=r"an integer 1\.\.64"):
        sequence(0)
    with pytest.raises(ConfigError):
        segment(3, 3)
