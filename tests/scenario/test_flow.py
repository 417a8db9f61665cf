"""What a flow says about one iteration before it runs: its requests and its think time."""

from __future__ import annotations

import math
import random

import pytest

from stressbed import get, group, journey, mix, think_constant, think_normal, think_uniform
from stressbed.scenario.flow import mean_requests, think_time_s


def test_a_journey_pauses_between_its_steps_and_a_mix_weighs_its_branches():
    a, b, c = get("/a"), get("/b"), get("/c")
    steps = journey(a, b, c, think=think_uniform("1s", "3s"))
    assert think_time_s(steps) == (4.0, 6.0)  # two pauses of 2 s on average, 3 s at most
    inline = group("g", a, think_constant("2.5s"), b)
    assert think_time_s(inline) == (2.5, 2.5)
    both = mix((steps, 1), (inline, 3))
    mean, most = think_time_s(both)
    assert mean == pytest.approx((4.0 + 3 * 2.5) / 4)
    assert most == 6.0  # its longest branch
    assert think_time_s(a) == (0.0, 0.0)
    assert mean_requests(steps) == 3


def test_a_normal_pause_s_mean_is_what_the_runtime_sleeps_on_average():
    # Drawn as runtime/generators.js draws it: up to 16 tries inside the bounds, else the
    # declared mean clamped to them.
    think = think_normal("1s", "1s", low="0.8s", high="5s")
    rng = random.Random(7)

    def draw() -> float:
        for _ in range(16):
            x = rng.gauss(1.0, 1.0)
            if 0.8 <= x <= 5.0:
                return x
        return min(5.0, max(0.8, 1.0))

    sampled = sum(draw() for _ in range(200_000)) / 200_000
    mean, most = think_time_s(think)
    assert most == 5.0
    assert mean == pytest.approx(sampled, abs=0.01)
    assert mean > 1.5  # the truncated normal's, not the 1 s declared
    assert not math.isclose(mean, 1.0)


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
def test_the_most_an_iteration_pauses_is_its_think_times_at_their_upper_bounds(flow, expected):
    """How long a VU may go without a request by design (no stall while it thinks)."""
    assert think_time_s(flow)[1] == expected
