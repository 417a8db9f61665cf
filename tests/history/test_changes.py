"""Change points over a run history: a step is found where it is, once, with its size and
direction; noise alone rarely shows one (at most FALSE_ALARM_RATE of series); unmeasured runs
keep their place; too little data, or none that varies, shows none."""

from __future__ import annotations

import itertools
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.history.changes import (
    FALSE_ALARM_RATE,
    MAX_PVALUE,
    MIN_MAGNITUDE,
    MIN_SEGMENT,
    ChangePoint,
    _best_split,
    _pair_prefix,
    change_points,
    t_pvalue,
)

#: A found change's relative size is within this many standard errors of the step made.
SIZE_ERRORS = 4
#: Seeded series per case of the step tests.
SEEDS = 200
#: Noise, as a share of the level.
NOISE = 0.03


def stepped(
    n: int, steps: dict[int, float], seed: tuple[int, ...], sd: float = NOISE
) -> list[float]:
    """``n`` runs at level 100, times (1 + s) from each index of ``steps`` on, with normal
    noise of ``sd`` of the level."""
    rng = np.random.default_rng(seed)
    level = np.full(n, 100.0)
    for at, share in steps.items():
        level[at:] *= 1 + share
    return list(level * (1 + sd * rng.standard_normal(n)))


def extra_share(found: list[list[ChangePoint]], steps: int) -> float:
    """The share of series with a change point besides the ``steps`` made."""
    return sum(len(points) > steps for points in found) / len(found)


# Student's t: two-sided p-values from printed tables (Student's t, critical values).
@pytest.mark.parametrize(
    ("t", "dof", "expected"),
    [
        (2.228, 10, 0.05),
        (3.169, 10, 0.01),
        (4.587, 10, 0.001),
        (12.706, 1, 0.05),
        (4.303, 2, 0.05),
        (2.042, 30, 0.05),
        (2.750, 30, 0.01),
        (1.984, 100, 0.05),
        (1.960, 1e7, 0.05),
        (2.576, 1e7, 0.01),
    ],
)
def test_the_t_distribution_gives_the_tables_p_values(t, dof, expected):
    assert t_pvalue(t, dof) == pytest.approx(expected, rel=2e-3)
    assert t_pvalue(-t, dof) == t_pvalue(t, dof)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 3.0, 30.0, 1000.0])
def test_the_t_distribution_matches_its_closed_forms_for_one_and_two_degrees(t):
    assert t_pvalue(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-9)
    assert t_pvalue(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)


def test_the_t_distribution_at_its_ends():
    assert t_pvalue(0.0, 5) == 1.0
    assert t_pvalue(math.inf, 5) == 0.0
    assert t_pvalue(40.0, 30) < 1e-25
    with pytest.raises(ValueError, match="degrees of freedom must be positive, not 0"):
        t_pvalue(1.0, 0)


def test_a_step_is_found_where_it_is_with_its_size_and_direction():
    # 30 runs, a 20 % step up or down at each of these places, 3 % noise; SEEDS of each.
    found = []
    for at in (3, 5, 10, 15, 20, 25, 27):
        for share in (0.2, -0.2):
            for seed in range(SEEDS):
                points = change_points(stepped(30, {at: share}, (at, share > 0, seed)))
                found.append(points)
                (step,) = [p for p in points if abs(p.index - at) <= 1]
                assert step.direction == ("up" if share > 0 else "down")
                # Placed right and alone, its segments are the step's (one run off, one holds a
                # run of the other level; with a point of noise beside it, it is cut short).
                if points == [step] and step.index == at:
                    error = NOISE / math.sqrt(at)
                    assert step.before == pytest.approx(100, rel=SIZE_ERRORS * error)
                    error = (1 + share) * NOISE * math.sqrt(1 / at + 1 / (30 - at))
                    assert step.relative == pytest.approx(share, abs=SIZE_ERRORS * error)
    # Besides the step, the noise either side of it seldom shows a change.
    assert extra_share(found, steps=1) <= 2 * FALSE_ALARM_RATE


@pytest.mark.parametrize(
    ("name", "noise"),
    [
        ("normal, 30 runs", lambda rng: 100 * (1 + 0.1 * rng.standard_normal((1000, 30)))),
        ("log-normal, 30 runs", lambda rng: 100 * np.exp(0.5 * rng.standard_normal((1000, 30)))),
        ("normal, 100 runs", lambda rng: 100 * (1 + 0.1 * rng.standard_normal((1000, 100)))),
    ],
)
def test_noise_alone_seldom_shows_a_change(name, noise):
    # No help from MIN_MAGNITUDE: at this much noise, chance shifts are large.
    series = noise(np.random.default_rng(28))
    alarms = sum(bool(change_points(list(row), min_magnitude=0.0)) for row in series)
    assert alarms / len(series) <= FALSE_ALARM_RATE, name


def test_two_steps_are_two_change_points():
    found = []
    for seed in range(SEEDS):
        points = change_points(stepped(40, {13: 0.2, 27: -0.25}, (2, seed)))
        found.append(points)
        (up,) = [p for p in points if abs(p.index - 13) <= 1]
        (down,) = [p for p in points if abs(p.index - 27) <= 1]
        assert (up.direction, down.direction) == ("up", "down")
        if len(points) == 2:
            assert up.after == pytest.approx(down.before)  # the segment between them
    assert extra_share(found, steps=2) <= 3 * FALSE_ALARM_RATE


def test_a_level_that_came_and_went_is_found():
    # Five runs 20 % up in forty: the whole rest of the series after it would dilute it.
    found = []
    for seed in range(SEEDS):
        points = change_points(stepped(40, {15: 0.2, 20: -1 / 6}, (3, seed)))
        found.append(points)
        assert [p.direction for p in points if p.index in (15, 20)] == ["up", "down"], seed
    assert extra_share(found, steps=2) <= 3 * FALSE_ALARM_RATE


def test_unmeasured_runs_are_left_out_and_indices_stay_the_inputs():
    values: list[float | None] = list(stepped(30, {20: 0.2}, seed=(1,)))
    plain = change_points(values)
    values[5] = values[25] = None
    values[12] = math.nan
    values[20] = None  # the first run of the new level: the next measured one is
    (found,) = change_points([None, None, *values])
    assert found.index == 2 + 21
    assert found.after == pytest.approx(
        np.mean([v for v in values[21:] if v is not None]), rel=1e-12
    )
    assert plain[0].index == 20


def test_too_few_measured_runs_show_no_change():
    short = [100.0] * MIN_SEGMENT + [200.0] * (MIN_SEGMENT - 1)
    assert change_points(short) == []
    assert change_points([None] * 20 + short) == []
    assert change_points([]) == []
    assert len(change_points([*short, 200.0])) == 1


def test_a_constant_series_shows_no_change_and_divides_by_nothing():
    with np.errstate(all="raise"):
        assert change_points([5.0] * 30) == []
        assert change_points([0.0] * 30) == []
        assert change_points([0.1 + 0.2] * 15 + [0.3] * 15) == []  # equal but for rounding


def test_a_step_without_noise_is_certain():
    (found,) = change_points([5.0] * 10 + [7.0] * 10)
    assert (found.index, found.before, found.after, found.pvalue) == (10, 5.0, 7.0, 0.0)
    assert found.relative == pytest.approx(0.4)


def test_a_change_from_zero_has_a_direction_but_no_relative_size():
    (found,) = change_points([0.0] * 10 + [0.05, 0.04, 0.06] * 4)
    assert (found.index, found.direction, found.relative) == (10, "up", None)
    assert found.to_dict() == {
        "index": 10,
        "before": 0.0,
        "after": pytest.approx(0.05),
        "relative": None,
        "direction": "up",
        "pvalue": found.pvalue,
    }


def test_a_small_shift_of_a_quiet_series_is_real_but_not_reported():
    quiet = stepped(30, {15: 0.03}, seed=(3,), sd=0.005)
    (found,) = change_points(quiet, min_magnitude=0.0)
    assert found.index == 15
    assert abs(found.relative or 0) < MIN_MAGNITUDE
    assert change_points(quiet) == []


def test_min_segment_below_two_is_refused():
    with pytest.raises(ValueError, match="min_segment must be at least 2, not 1"):
        change_points([1.0, 2.0], min_segment=1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.floats(-1e6, 1e6), st.sampled_from([0.0, 1.0, 100.0, math.nan])),
        max_size=60,
    ),
    st.integers(2, 6),
)
def test_every_change_point_stands_on_its_segments(values, min_segment):
    found = change_points(values, min_segment=min_segment)
    measured = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    bounds = [0, *(measured.index(c.index) for c in found), len(measured)]
    assert not found or all(b - a >= min_segment for a, b in itertools.pairwise(bounds))
    for point, left, at, right in zip(found, bounds, bounds[1:], bounds[2:], strict=False):
        before = [values[i] for i in measured[left:at]]
        after = [values[i] for i in measured[at:right]]
        assert point.before == pytest.approx(np.mean(before), rel=1e-9, abs=1e-9)
        assert point.after == pytest.approx(np.mean(after), rel=1e-9, abs=1e-9)
        assert 0 <= point.pvalue <= MAX_PVALUE
        assert point.relative is None or abs(point.relative) >= MIN_MAGNITUDE


def q_hat(x: list[float], y: list[float]) -> float:
    """Matteson and James's divergence (alpha = 1) of two samples, from its definition."""
    n, m = len(x), len(y)
    cross = sum(abs(a - b) for a in x for b in y)
    within_x = sum(abs(a - b) for i, a in enumerate(x) for b in x[i + 1 :])
    within_y = sum(abs(a - b) for i, a in enumerate(y) for b in y[i + 1 :])
    energy = 2 * cross / (n * m) - within_x / (n * (n - 1) / 2) - within_y / (m * (m - 1) / 2)
    return n * m / (n + m) * energy


def test_the_split_maximises_q_hat_as_defined():
    rng = np.random.default_rng(5)
    for _ in range(40):
        x = rng.standard_normal(int(rng.integers(8, 24)))
        x[int(rng.integers(0, len(x))) :] += rng.uniform(-3, 3)
        start, end, segment = int(rng.integers(0, 2)), len(x) - int(rng.integers(0, 2)), 3
        best = max(
            (q_hat(list(x[start:t]), list(x[t:k])), t, k)
            for t in range(start + segment, end - segment + 1)
            for k in range(t + segment, end + 1)
        )
        assert _best_split(_pair_prefix(x), start, end, segment) == best[1:]


def test_twenty_metrics_of_five_hundred_runs_take_well_under_three_seconds():
    rng = np.random.default_rng(9)
    series = []
    for _ in range(20):
        level = np.full(500, 100.0)
        for at in rng.choice(np.arange(10, 490), size=10, replace=False):
            level[at:] *= rng.choice([0.8, 1.25])
        series.append(list(level * np.exp(0.05 * rng.standard_normal(500))))
    began = time.perf_counter()
    found = [change_points(values) for values in series]
    assert time.perf_counter() - began < 3.0
    assert all(len(points) >= 5 for points in found)


def test_a_change_point_reads_as_it_was_made():
    point = ChangePoint(index=4, before=80.0, after=100.0, pvalue=1e-4)
    assert (point.relative, point.direction) == (0.25, "up")
    assert ChangePoint(index=4, before=100.0, after=80.0, pvalue=1e-4).direction == "down"
