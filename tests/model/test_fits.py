"""Fits: samples drawn from known distributions come back as the generators that drew them.

Every bound below is a sampling-error bound derived from the sample size, set at about five
standard errors (or a tail probability near one in a million), so a correct fit fails no run
in practice while a biased estimator or a wrong family cannot pass.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed import gen, literal
from stressbed.model.fits import (
    PREFER_SIMPLER,
    BoundedCounter,
    Categories,
    NumberFit,
    Reservoir,
    candidates,
    fit_categories,
    fit_numbers,
    ks_distance,
    ks_two_sample,
    total_variation,
)
from stressbed.scenario.values import as_value_node

N = 2000
#: Kolmogorov's tail: a sample of n from the distribution itself is farther than
#: KS_SCALE / sqrt(n) with probability about 2 exp(-2 * 2.7**2) < 1e-6; fitting the
#: parameters to the sample only brings the fit closer.
KS_SCALE = 2.7
#: The most a written parameter moves in rounding, as a share of its spread (3 digits).
ROUNDING = 0.01

fits_settings = settings(max_examples=30, deadline=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def by_family(fits: Sequence[NumberFit], family: str) -> NumberFit:
    return next(fit for fit in fits if fit.family == family)


def assert_writes_itself(fit: NumberFit) -> None:
    """The source text evaluates to the very generator the fit holds."""
    assert eval(fit.source(), {"gen": gen}) == fit.generator()


def ecdf(sample: Sequence[float]) -> Callable[[float], float]:
    ordered = sorted(sample)
    return lambda x: bisect_right(ordered, x) / len(ordered)


# -- families -----------------------------------------------------------------------------


@fits_settings
@given(
    seed=seeds,
    mean=st.floats(min_value=-1000, max_value=1000),
    sd=st.floats(min_value=1, max_value=200),
    integer=st.booleans(),
)
def test_normal_samples_fit_a_normal_with_their_parameters(seed, mean, sd, integer):
    rng = random.Random(seed)
    sample = [rng.gauss(mean, sd) for _ in range(N)]
    if integer:
        sample = [round(x) for x in sample]
    fit = fit_numbers(sample)
    assert fit is not None
    assert fit.family == "normal"
    assert fit.integer is integer
    assert fit.count == N
    assert fit.ks < KS_SCALE / math.sqrt(N)
    # Rounding to integers adds a uniform error of variance 1/12 to every draw.
    noise_sd = math.sqrt(sd**2 + (1 / 12 if integer else 0))
    assert abs(fit.params["mean"] - mean) < 5 * noise_sd / math.sqrt(N) + ROUNDING * sd
    # The sample sd's standard error is about noise_sd**2 / (sd * sqrt(2n)).
    sd_error = noise_sd**2 / sd / math.sqrt(2 * N)
    assert abs(fit.params["sd"] - sd) < 5 * sd_error + ROUNDING * sd
    if integer:
        assert (fit.minimum, fit.maximum) == (min(sample), max(sample))
    assert fit.minimum <= min(sample)
    assert fit.maximum >= max(sample)
    for candidate in candidates(sample):
        assert_writes_itself(candidate)


@fits_settings
@given(
    seed=seeds,
    log_median=st.floats(min_value=math.log(0.01), max_value=math.log(1e5)),
    sigma=st.floats(min_value=0.05, max_value=1.5),
)
def test_lognormal_samples_fit_a_lognormal_with_their_parameters(seed, log_median, sigma):
    rng = random.Random(seed)
    sample = [rng.lognormvariate(log_median, sigma) for _ in range(N)]
    check_lognormal(sample, log_median, sigma, integer=False)


@fits_settings
@given(
    seed=seeds,
    # Medians >= 200 with sigma <= 1: no draw of 2,000 rounds to 0 (a log-normal's support).
    log_median=st.floats(min_value=math.log(200), max_value=math.log(1e5)),
    sigma=st.floats(min_value=0.05, max_value=1.0),
)
def test_rounded_lognormal_samples_fit_an_integer_lognormal(seed, log_median, sigma):
    rng = random.Random(seed)
    sample = [round(rng.lognormvariate(log_median, sigma)) for _ in range(N)]
    check_lognormal(sample, log_median, sigma, integer=True)


def check_lognormal(sample: list[float], log_median: float, sigma: float, integer: bool) -> None:
    fits = candidates(sample)
    lognormal = by_family(fits, "lognormal")
    assert lognormal.integer is integer
    assert lognormal.ks < KS_SCALE / math.sqrt(N)
    # The logs are normal(log_median, sigma): their mean and sd have the normal's errors.
    assert abs(math.log(lognormal.params["median"]) - log_median) < (
        5 * sigma / math.sqrt(N) + ROUNDING * sigma
    )
    assert abs(lognormal.params["sigma"] - sigma) < 5 * sigma / math.sqrt(2 * N) + ROUNDING * sigma
    fit = fit_numbers(sample)
    assert fit is not None
    # A narrow log-normal is nearly normal: the simpler family may win, within the margin.
    assert fit.family in ("normal", "lognormal")
    assert fit.ks <= lognormal.ks + PREFER_SIMPLER
    if sigma >= 0.5:
        assert fit.family == "lognormal"
    for candidate in fits:
        assert_writes_itself(candidate)


@fits_settings
@given(
    seed=seeds,
    low=st.floats(min_value=-1e4, max_value=1e4),
    width=st.floats(min_value=1e-3, max_value=1e4),
)
def test_uniform_samples_fit_a_uniform_over_their_range(seed, low, width):
    rng = random.Random(seed)
    sample = [rng.uniform(low, low + width) for _ in range(N)]
    fit = fit_numbers(sample)
    assert fit is not None
    assert fit.family == "uniform"
    assert not fit.integer
    assert fit.ks < KS_SCALE / math.sqrt(N)
    # The sample's minimum lies above low by more than t * width with probability
    # (1 - t) ** n; t = 15 / n makes that e**-15. Rounding outward adds up to 1% of the width.
    slack = width * (15 / N + ROUNDING)
    assert low - slack <= fit.params["low"] <= min(sample)
    assert max(sample) <= fit.params["high"] <= low + width + slack
    assert_writes_itself(fit)


@fits_settings
@given(
    seed=seeds,
    low=st.integers(min_value=-1000, max_value=1000),
    width=st.integers(min_value=1, max_value=300),
)
def test_integer_uniform_samples_fit_uniform_int(seed, low, width):
    rng = random.Random(seed)
    sample = [rng.randint(low, low + width) for _ in range(N)]
    fit = fit_numbers(sample)
    assert fit is not None
    assert fit.family == "uniform"
    assert fit.integer
    # Compared with the rounded distribution, rounding costs nothing.
    assert fit.ks < KS_SCALE / math.sqrt(N)
    slack = 15 * (width + 1) / N  # as for floats: a value within it is missed w.p. e**-15
    assert low <= fit.params["low"] <= low + slack
    assert low + width - slack <= fit.params["high"] <= low + width
    assert fit.source() == f"gen.uniform_int({fit.params['low']}, {fit.params['high']})"
    assert_writes_itself(fit)


@settings(max_examples=50, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(10**9), max_value=10**9),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    n=st.integers(min_value=1, max_value=50),
)
def test_one_distinct_value_is_a_constant(value, n):
    fit = fit_numbers([value] * n)
    assert fit is not None
    assert fit.family == "constant"
    assert fit.ks == 0
    assert fit.count == n
    assert fit.integer is float(value).is_integer()
    assert candidates([value] * n) == (fit,)
    assert as_value_node(eval(fit.source()), "value") == fit.generator()


def test_rounding_to_integers_adds_no_spread_to_a_normal():
    n = 50_000
    rng = random.Random(11)
    fit = fit_numbers([round(rng.gauss(50, 1)) for _ in range(n)])
    assert fit is not None
    assert fit.family == "normal"
    # Rounded draws have variance 1 + 1/12 (an sd of 1.041); Sheppard's correction takes the
    # 1/12 away again. Five standard errors of the sd here are 0.017, its rounding 0.005.
    assert abs(fit.params["sd"] - 1) < 5 * (1 + 1 / 12) / math.sqrt(2 * n) + 0.005


def test_written_parameters_keep_three_digits_and_the_precision_of_their_spread():
    rng = random.Random(7)
    fit = fit_numbers([rng.gauss(10_003.7, 5.27) for _ in range(N)], integer=False)
    assert fit is not None
    assert fit.family == "normal"
    mean, sd = fit.params["mean"], fit.params["sd"]
    assert round(mean, 2) == mean  # hundredths: the third digit of the sd
    assert round(sd, 2) == sd
    assert abs(mean - 10_003.7) < 1
    assert fit.source() == f"gen.normal({mean!r}, {sd!r}, minimum={fit.minimum!r}, " + (
        f"maximum={fit.maximum!r})"
    )


def test_integral_values_are_integers_unless_told_otherwise():
    sample = [1.0, 2.0, 2.0, 3.0, 5.0]
    fit = fit_numbers(sample)
    assert fit is not None
    assert fit.integer
    assert (fit.minimum, fit.maximum) == (1, 5)
    continuous = fit_numbers(sample, integer=False)
    assert continuous is not None
    assert not continuous.integer
    rounded = fit_numbers([0.9, 2.2, 3.1], integer=True)
    assert rounded is not None
    assert rounded.integer
    assert (rounded.minimum, rounded.maximum) == (1, 3)


def test_empty_and_non_finite_samples():
    assert fit_numbers([]) is None
    assert candidates([]) == ()
    with pytest.raises(ValueError, match="finite"):
        fit_numbers([1.0, math.nan])


def test_non_positive_samples_have_no_lognormal_candidate():
    assert [fit.family for fit in candidates([0, 1, 2, 3])] == ["uniform", "normal"]
    assert [fit.family for fit in candidates([1, 2, 3])] == ["uniform", "normal", "lognormal"]


# -- distances ----------------------------------------------------------------------------


samples = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False) | st.integers(-5, 5),
    min_size=1,
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(sample=samples)
def test_a_sample_is_at_ks_distance_zero_from_itself(sample):
    assert ks_distance(sample, ecdf(sample)) == 0


def test_ks_distance_reads_the_jump_below_each_value():
    # The empirical CDF of 1..4 is 0 just below 1 while U(0, 4)'s is 0.25 there.
    assert ks_distance([1, 2, 3, 4], lambda x: min(1, max(0, x / 4))) == pytest.approx(0.25)
    assert ks_distance([0.5], lambda x: min(1, max(0, x))) == pytest.approx(0.5)
    # Compared with the rounded distribution, integers drawn alike are a perfect fit.
    assert by_family(candidates([1, 2, 3, 4]), "uniform").ks == pytest.approx(0)
    with pytest.raises(ValueError, match="at least one"):
        ks_distance([], ecdf([1]))


@settings(max_examples=50, deadline=None)
@given(a=samples, b=samples)
def test_two_sample_distance_is_symmetric_and_within_0_1(a, b):
    d = ks_two_sample(a, b)
    assert 0 <= d <= 1
    assert d == ks_two_sample(b, a)
    assert d == pytest.approx(ks_distance(a, ecdf(b)))
    assert ks_two_sample(a, a + a) == 0


def test_two_sample_distance_of_disjoint_samples_is_one():
    assert ks_two_sample([1, 2, 3], [4, 5]) == 1
    with pytest.raises(ValueError, match="each side"):
        ks_two_sample([1], [])


weights = st.dictionaries(
    st.sampled_from("abcdefgh"), st.integers(min_value=0, max_value=100), min_size=1
).filter(lambda d: sum(d.values()) > 0)


@settings(max_examples=50, deadline=None)
@given(a=weights, b=weights, scale=st.integers(min_value=1, max_value=7))
def test_total_variation_is_a_distance_within_0_1(a, b, scale):
    d = total_variation(a, b)
    assert 0 <= d <= 1
    assert d == pytest.approx(total_variation(b, a))
    assert total_variation(a, {k: v * scale for k, v in a.items()}) == pytest.approx(0)


def test_total_variation_of_disjoint_values_is_one():
    assert total_variation({"a": 3, "b": 1}, {"c": 2}) == 1
    assert total_variation({"a": 1, "b": 1}, {"a": 1}) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="positive sum"):
        total_variation({"a": 0}, {"a": 1})


# -- categories ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    counts=st.dictionaries(
        st.text(min_size=1, max_size=6) | st.integers(-3, 3),
        st.integers(min_value=0, max_value=10**6),
        max_size=30,
    ),
    top=st.integers(min_value=1, max_value=12),
    cover=st.floats(min_value=0.05, max_value=1.0),
    overflowed=st.integers(min_value=0, max_value=10**5),
)
def test_categories_keep_the_most_common_and_account_for_the_rest(counts, top, cover, overflowed):
    cats = fit_categories(counts, top=top, cover=cover, overflowed=overflowed)
    total = sum(counts.values()) + overflowed
    kept = [n for _, n in cats.top]
    assert cats.count == total
    assert cats.other >= 0
    assert sum(kept) + cats.other == total
    assert kept == sorted(kept, reverse=True)
    assert all(n > 0 for n in kept)
    assert len(kept) <= top
    assert cats.distinct == (None if overflowed else len([n for n in counts.values() if n]))
    # Minimal: without the last kept value the rest would not reach `cover` (or `top`).
    if kept:
        assert sum(kept) - kept[-1] < cover * total
    seen = sum(1 for n in counts.values() if n)
    assert len(kept) == top or sum(kept) >= cover * total or len(kept) == seen
    if not cats.top and not cats.other:
        return
    if any(value == "other" for value, _ in cats.top) and cats.other:
        with pytest.raises(ValueError, match="name the rest otherwise"):
            cats.weights()
        return
    written = cats.weights()
    assert all(isinstance(w, int) and w > 0 for w in written.values())
    shares = [n for _, n in cats.top] + ([cats.other] if cats.other else [])
    scale = sum(written.values())
    # Percents, per-mille, ... (largest remainder: each within 1 of its exact quota), or
    # the counts themselves.
    assert scale == total or (str(scale).strip("0") == "1" and scale >= 100)
    for w, n in zip(written.values(), shares, strict=True):
        assert abs(w - n * scale / total) < 1
    assert eval(cats.source(), {"gen": gen, "literal": literal}) == cats.generator()


def test_category_weights_are_percents_when_every_share_is_one_at_least():
    cats = fit_categories({"linux": 8012, "windows": 1490, "mac": 410, "bsd": 88}, cover=0.95)
    assert cats == Categories((("linux", 8012), ("windows", 1490)), 498, 4, 10_000)
    assert cats.source() == 'gen.choice({"linux": 80, "windows": 15, "other": 5})'
    rare = fit_categories({"a": 99_950, "b": 50}, cover=1.0)
    assert rare.weights() == {"a": 9995, "b": 5}
    assert fit_categories({"x": 3, "y": 1}).weights() == {"x": 3, "y": 1}
    assert fit_categories({"{{id}}": 2}).source() == 'gen.choice({literal("{{id}}"): 2})'


# -- bounded memory -----------------------------------------------------------------------


def test_reservoir_is_a_uniform_sample_of_the_stream():
    size, stream, bins = 2000, 100_000, 20
    reservoir = Reservoir(size, seed=1)
    for i in range(stream):
        reservoir.add(i)
    assert reservoir.count == stream
    assert len(reservoir.values) == size
    assert len(set(reservoir.values)) == size
    # Every position is kept with probability size / stream, so each twentieth of the stream
    # holds about 100 kept values. Chi-square with 19 degrees of freedom exceeds 50 with
    # probability 1.3e-4 (sampling without replacement makes it rarer still); keeping early
    # or late values preferentially gives thousands.
    per_bin = Counter(v * bins // stream for v in reservoir.values)
    expected = size / bins
    chi_square = sum((per_bin[b] - expected) ** 2 / expected for b in range(bins))
    assert chi_square < 50


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=1, max_value=50), n=st.integers(min_value=0, max_value=300))
def test_reservoir_keeps_at_most_size_values_seen(size, n):
    a, b = Reservoir(size, seed=3), Reservoir(size, seed=3)
    for i in range(n):
        a.add(i)
        b.add(i)
    assert len(a.values) == min(size, n)
    assert set(a.values) <= set(range(n))
    assert a.values == b.values  # seeded: the same stream keeps the same sample


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(st.integers(min_value=0, max_value=40), max_size=300),
    limit=st.integers(min_value=1, max_value=20),
)
def test_bounded_counter_never_holds_more_than_its_limit(keys, limit):
    counter = BoundedCounter(limit)
    for key in keys:
        counter.add(key)
    assert len(counter.counts) <= limit
    assert sum(counter.counts.values()) + counter.overflow == len(keys)
    first_seen = list(dict.fromkeys(keys))[:limit]
    assert list(counter.counts) == first_seen
    exact = Counter(keys)
    assert all(counter.counts[k] == exact[k] for k in first_seen)
