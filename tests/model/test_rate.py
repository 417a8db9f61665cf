"""The rate's shape as stages: a flat rate is one stage, a day keeps its peak and its
requests, compressing and scaling keep the shape, and the options' spellings."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.errors import ConfigError
from stressbed.model.rate import MIN_STAGE_S, Shape, parse_compress, parse_scale, shape_of

DAY = 86_400


def poisson(rate: float, seconds: int, seed: int) -> Counter[int]:
    """Requests per second of a steady Poisson stream (real traffic at a flat rate)."""
    rng = random.Random(seed)
    counts: Counter[int] = Counter()
    t = rng.expovariate(rate)
    while t < seconds:
        counts[int(t)] += 1
        t += rng.expovariate(rate)
    return counts


def day_with_a_spike() -> Counter[int]:
    """A day's sine (50 +- 40 requests/s, its trough at 06:00) and a 10-minute spike of +300/s
    at 11:06."""
    per_second: Counter[int] = Counter()
    for t in range(DAY):
        rate = 50 + 40 * math.sin(2 * math.pi * (t - 6 * 3600 - DAY / 4) / DAY)
        if 40_000 <= t < 40_600:
            rate += 300
        per_second[t] = round(rate)
    return per_second


def played(shape: Shape) -> float:
    """The requests the stages make: each ramps linearly from the rate before it."""
    total, before = 0.0, shape.start_rate
    for stage in shape.stages:
        total += (before + stage.rate) / 2 * stage.seconds
        before = stage.rate
    return total


def peak_bucket(per_second: Counter[int], bucket: float) -> float:
    """The highest mean rate of the span's buckets of ``bucket`` seconds."""
    sums: Counter[int] = Counter()
    for second, n in per_second.items():
        sums[int(second // bucket)] += n
    return max(sums.values()) / bucket


@pytest.mark.parametrize(("rate", "seconds"), [(10, 600), (1, 90), (250, 3600), (3, DAY)])
def test_a_flat_rate_is_one_stage_at_its_rate(rate, seconds):
    per_second = Counter(dict.fromkeys(range(1000, 1000 + seconds), rate))
    shape = shape_of(per_second, 1000.0, 1000 + seconds - 0.5)
    assert len(shape.stages) == 1
    (stage,) = shape.stages
    assert stage.rate == pytest.approx(rate)
    assert shape.start_rate == pytest.approx(rate)
    assert stage.seconds == seconds
    assert stage.observed == rate * seconds


@pytest.mark.parametrize(("seconds", "seed"), [(600, 1), (600, 2), (3600, 3), (DAY, 4)])
def test_a_steady_poisson_rate_is_one_stage_at_its_mean(seconds, seed):
    per_second = poisson(20, seconds, seed)
    shape = shape_of(per_second, min(per_second), max(per_second) + 0.9)
    mean = sum(per_second.values()) / shape.span_s
    assert len(shape.stages) == 1, shape.stages  # noise is not a stage
    assert shape.stages[0].rate == pytest.approx(mean, rel=0.05)
    assert shape.start_rate == pytest.approx(mean, rel=0.05)


def test_a_day_keeps_its_peak_and_its_requests():
    per_second = day_with_a_spike()
    shape = shape_of(per_second, 0.0, DAY - 0.5)
    total = sum(per_second.values())
    peak = peak_bucket(per_second, shape.bucket_s)
    rates = [shape.start_rate, *(s.rate for s in shape.stages)]
    assert max(rates) == pytest.approx(peak, rel=0.10)  # the spike is a stage
    assert shape.peak_rate == pytest.approx(peak)
    assert sum(s.observed for s in shape.stages) == total
    assert played(shape) == pytest.approx(total, rel=0.02)
    assert sum(s.seconds for s in shape.stages) == shape.span_s == DAY
    assert 3 <= len(shape.stages) <= 30  # a shape, not every bucket
    # Where the day is low the stages are low: the trough is kept.
    assert min(rates) < 20


def test_stages_cover_the_span_in_order_and_count_every_request():
    per_second = day_with_a_spike()
    shape = shape_of(per_second, 0.0, DAY - 0.5)
    ends = [0.0, *(s.end for s in shape.stages)]
    assert [s.start for s in shape.stages] == ends[:-1]
    assert all(s.end - s.start == pytest.approx(s.seconds) for s in shape.stages)


def test_requests_logged_before_the_first_record_s_time_are_counted():
    # A log is written as requests end: a slow one that began first is logged later.
    per_second = Counter({99: 5, 100: 5, 101: 5, 102: 5})
    shape = shape_of(per_second, 100.2, 102.7)
    assert sum(s.observed for s in shape.stages) == 20
    assert shape.span_s == 4


@settings(max_examples=80, deadline=None)
@given(
    counts=st.dictionaries(st.integers(0, 20_000), st.integers(1, 500), min_size=1, max_size=300),
    origin=st.integers(0, 2_000_000_000),
)
def test_any_rate_s_stages_cover_the_span_and_its_requests(counts, origin):
    per_second = Counter({origin + s: n for s, n in counts.items()})
    shape = shape_of(per_second, min(per_second) + 0.3, max(per_second) + 0.6)
    assert sum(s.observed for s in shape.stages) == sum(counts.values())
    assert sum(s.seconds for s in shape.stages) == pytest.approx(shape.span_s)
    assert shape.span_s == max(counts) - min(counts) + 1
    assert all(s.seconds > 0 and s.rate >= 0 for s in shape.stages)
    assert shape.start_rate >= 0
    assert max(s.rate for s in shape.stages) <= shape.peak_rate  # no stage above the peak


@pytest.mark.parametrize(("compress", "scale"), [(1.0, 1.0), (0.5, 2.0), (1 / 6, 0.5), (2.0, 3.0)])
def test_scaled_keeps_the_shape(compress, scale):
    shape = shape_of(day_with_a_spike(), 0.0, DAY - 0.5)
    scaled = shape.scaled(compress, scale)
    assert len(scaled.stages) == len(shape.stages)  # no stage came out shorter than 1 s
    for before, after in zip(shape.stages, scaled.stages, strict=True):
        assert after.seconds == pytest.approx(before.seconds * compress)
        assert after.rate == pytest.approx(before.rate * scale)
        assert (after.start, after.end, after.observed) == (
            before.start,
            before.end,
            before.observed,
        )
    assert scaled.start_rate == pytest.approx(shape.start_rate * scale)
    assert scaled.peak_rate == pytest.approx(shape.peak_rate * scale)
    assert scaled.seconds() == pytest.approx(DAY * compress)
    assert played(scaled) == pytest.approx(played(shape) * compress * scale)


@pytest.mark.parametrize("to_s", [600, 60, 20])
def test_compressed_hard_no_stage_is_shorter_than_a_second_and_the_peak_stays(to_s):
    per_second = day_with_a_spike()
    shape = shape_of(per_second, 0.0, DAY - 0.5)
    scaled = shape.scaled(to_s / DAY, 2.0)
    assert all(s.seconds >= MIN_STAGE_S for s in scaled.stages)
    assert scaled.seconds() == pytest.approx(to_s)
    assert sum(s.observed for s in scaled.stages) == sum(per_second.values())
    rates = [scaled.start_rate, *(s.rate for s in scaled.stages)]
    assert max(rates) == pytest.approx(2 * peak_bucket(per_second, shape.bucket_s), rel=0.10)


@pytest.mark.parametrize(
    ("text", "factor"), [("3x", 3.0), ("0.5x", 0.5), ("300%", 3.0), (" 1x ", 1.0), ("12.5%", 0.125)]
)
def test_parse_scale(text, factor):
    assert parse_scale(text) == factor


@pytest.mark.parametrize("text", ["3", "x", "-1x", "0x", "0%", "abc", "", "3 times", "1e3x"])
def test_parse_scale_rejects_junk_naming_the_option(text):
    with pytest.raises(ConfigError) as raised:
        parse_scale(text)
    assert raised.value.field == "--scale"
    assert raised.value.value == text


@pytest.mark.parametrize(
    ("text", "span_s", "factor"),
    [("24h:10m", 1.0, 600 / DAY), ("10m", 3600.0, 1 / 6), ("1h:2h", 5.0, 2.0), ("90s", 45.0, 2.0)],
)
def test_parse_compress(text, span_s, factor):
    assert parse_compress(text, span_s) == pytest.approx(factor)


@pytest.mark.parametrize(
    "text", ["24h:", ":10m", "abc", "1h:2h:3h", "0s", "10m:0s", "", "10", "-5m"]
)
def test_parse_compress_rejects_junk_naming_the_option(text):
    with pytest.raises(ConfigError) as raised:
        parse_compress(text, 3600.0)
    assert raised.value.field == "--compress"
    assert raised.value.value == text
