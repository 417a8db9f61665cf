"""What a flow says about its own timing: how long an iteration pauses by design."""

from __future__ import annotations

import pytest

from stressbed import get, group, journey, mix, think_constant, think_uniform
from stressbed.scenario.flow import pause_s


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        (get("/"), 0.0),
        (journey(get("/a"), get("/b"), get("/c"), think=think_constant("2s")), 4.0),
        (journey(get("/a"), think_uniform("1s", "3s"), get("/b")), 3.0),
        (group("g", get("/a"), get("/b"), think=think_constant("500ms")), 0.5),
        (mix((get("/"), 9), (journey(get("/a"), think_constant("10s")), 1)), 10.0),
    ],
)
def test_pause_is_the_iterations_think_times_at_their_upper_bounds(flow, expected):
    assert pause_s(flow) == expected
