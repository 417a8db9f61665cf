"""The steady-state test: a flat window holds, a growing queue fails, noise alone never does."""

from __future__ import annotations

import random

from stressbed.results.trend import MIN_POINTS, slope


def test_a_flat_window_is_not_growing():
    found = slope([20.0] * 10)
    assert found is not None
    assert found.per_s == 0
    assert not found.growing(1.0)


def test_a_linearly_growing_queue_is_growing():
    # 5 ms more latency every second: the queue in front of the target builds up.
    found = slope([20.0 + 5 * i for i in range(10)])
    assert found is not None
    assert found.low > 0
    assert found.rise == 45.0
    assert found.growing(1.0)


def test_growth_hidden_in_noise_is_still_found():
    rng = random.Random(7)
    values = [20.0 + 4 * i + rng.gauss(0, 3) for i in range(12)]  # 20 -> 64 ms
    found = slope(values)
    assert found is not None
    assert found.growing(1.0)


def test_noise_alone_rarely_fails_a_window():
    # Autocorrelated noise (one slow second makes the next one slow, each second's mean moving
    # by about 10%) around a flat level, a thousand windows over: growth, which would fail a
    # healthy probe, is called in under 1% of them.
    rng = random.Random(11)
    called = 0
    for _ in range(1000):
        level, values = 0.0, []
        for _ in range(10):
            level = 0.6 * level + rng.gauss(0, 2)
            values.append(25.0 + level)
        found = slope(values)
        assert found is not None
        called += found.growing(1.0)
    assert called <= 10


def test_a_queue_growing_a_fifth_of_its_level_each_second_is_caught_through_noise():
    rng = random.Random(5)
    caught = 0
    for _ in range(200):
        found = slope([20.0 + 5 * i + rng.gauss(0, 2) for i in range(5)])
        assert found is not None
        caught += found.growing(1.0)
    assert caught >= 196


def test_a_rise_too_small_to_matter_is_not_growth():
    # Significant (no noise at all), but 1% of the level over the window: no queue to speak of.
    found = slope([100.0 + 0.1 * i for i in range(10)])
    assert found is not None
    assert found.low > 0
    assert not found.growing(1.0)


def test_too_few_points_fit_no_trend_and_gaps_are_skipped():
    assert slope([1.0] * (MIN_POINTS - 1)) is None
    assert slope([1.0, None, None, 2.0, 3.0]) is None
    found = slope([10.0, None, 30.0, 40.0, 50.0])
    assert found is not None
    assert found.per_s == 10.0
    assert found.points == 4
