"""Distributions fitted to observed traffic, written as the generators that reproduce them.

Numbers (a body's field, a page size, a payload's length) are fitted by :func:`fit_numbers`
to one of four families and written as a :mod:`stressbed.gen` call; values of a field that
names things (an OS, a region) are summarised by :func:`fit_categories` and written as a
``gen.choice``. :class:`Reservoir` and :class:`BoundedCounter` keep what the fits read
bounded in memory, however long the input; :func:`ks_distance`, :func:`ks_two_sample` and
:func:`total_variation` say how far a fit, or a replay, is from what was observed.

Pure Python (``math``, ``statistics``, ``random``): the base install has no numpy.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from bisect import bisect_right
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Literal

from ..scenario import gen
from ..scenario.templates import Literal as LiteralText
from ..scenario.values import Const

__all__ = [
    "PREFER_SIMPLER",
    "BoundedCounter",
    "Categories",
    "NumberFit",
    "Reservoir",
    "candidates",
    "fit_categories",
    "fit_numbers",
    "ks_distance",
    "ks_two_sample",
    "total_variation",
]

#: The families, simplest first (the order :func:`fit_numbers` prefers them in).
Family = Literal["constant", "uniform", "normal", "lognormal"]
#: A simpler family is chosen over the best-fitting one when its KS distance is at most this
#: much larger: 0.02 is about the KS distance sampling noise alone gives 2,000 observations, so
#: a closer fit by a more complex family would be fitting the noise.
PREFER_SIMPLER = 0.02
#: Significant digits a written parameter keeps: rounding moves it by at most 0.5% of itself.
DIGITS = 3


# -- numbers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberFit:
    """A family fitted to a sample, with its parameters as the written generator holds them.

    ``params``: constant ``value``; uniform ``low``, ``high``; normal ``mean``, ``sd``;
    lognormal ``median``, ``sigma`` (the standard deviation of the logarithm). They are rounded
    to :data:`DIGITS` significant digits (a location to the precision of its spread, so a mean
    of 10,003.7 with an sd of 5.27 keeps its decimal), so what the module says is what runs.
    ``minimum``, ``maximum``: the observed range, written as the truncation bounds: exact for
    integers, else rounded outward so every observed value stays inside. ``count``: how many
    observations the fit rests on. ``ks``: the Kolmogorov-Smirnov distance between the sample
    and the written generator's distribution (truncated, and rounded when ``integer``).
    """

    family: Family
    params: dict[str, float]
    integer: bool
    minimum: float
    maximum: float
    count: int
    ks: float

    def generator(self) -> gen.Generator | Const:
        """The generator expressing the fit; for a constant, the value itself (a ``Const``
        value node: it stands wherever a generator may, and a module writes it as a literal)."""
        p = self.params
        if self.family == "constant":
            return Const.of(p["value"])
        if self.family == "uniform":
            if self.integer:
                return gen.uniform_int(int(p["low"]), int(p["high"]))
            return gen.uniform_float(p["low"], p["high"])
        low, high, integer = self.minimum, self.maximum, self.integer
        if self.family == "normal":
            return gen.normal(p["mean"], p["sd"], minimum=low, maximum=high, integer=integer)
        return gen.lognormal(p["median"], p["sigma"], minimum=low, maximum=high, integer=integer)

    def source(self) -> str:
        """The Python text of :meth:`generator` (``gen`` in scope), e.g.
        ``gen.lognormal(120.0, 0.45, minimum=3, maximum=9000, integer=True)``; a constant is
        its literal (``512``)."""
        p = {name: _number_text(value) for name, value in self.params.items()}
        if self.family == "constant":
            return p["value"]
        if self.family == "uniform":
            name = "uniform_int" if self.integer else "uniform_float"
            return f"gen.{name}({p['low']}, {p['high']})"
        names = ("mean", "sd") if self.family == "normal" else ("median", "sigma")
        first, second = (p[name] for name in names)
        integer = ", integer=True" if self.integer else ""
        low, high = _number_text(self.minimum), _number_text(self.maximum)
        return f"gen.{self.family}({first}, {second}, minimum={low}, maximum={high}{integer})"


def fit_numbers(sample: Sequence[float], *, integer: bool | None = None) -> NumberFit | None:
    """The family that best describes ``sample``; None when it is empty.

    Each family that applies (:func:`candidates`) is judged by the KS distance between the
    sample and its written generator; the smallest wins, except that a simpler family within
    :data:`PREFER_SIMPLER` of the best is preferred (constant < uniform < normal < lognormal).
    A fit sorts the sample and reads each family's CDF twice per distinct value: fit a
    :class:`Reservoir`'s values, not a whole stream.
    """
    fits = candidates(sample, integer=integer)
    if not fits:
        return None
    best = min(fit.ks for fit in fits)
    return next(fit for fit in fits if fit.ks <= best + PREFER_SIMPLER)


def candidates(sample: Sequence[float], *, integer: bool | None = None) -> tuple[NumberFit, ...]:
    """Every family that applies to ``sample``, fitted, simplest first; () when it is empty.

    A constant when the sample holds one distinct value (and nothing else then). Otherwise a
    uniform over the observed range, a normal by the sample's mean and standard deviation,
    and, when every value is > 0, a log-normal by the mean and standard deviation of the logs.
    ``integer`` (default: every value is integral) fits the rounded draws an integer generator
    makes: the values are rounded, KS compares with P(X < x + 0.5), and the normal's variance
    loses the 1/12 that rounding adds (Sheppard's correction) when it is more than twice that.
    """
    values = [float(x) for x in sample]
    if any(not math.isfinite(x) for x in values):
        raise ValueError("a sample to fit holds finite numbers only")
    if not values:
        return ()
    if integer is None:
        integer = all(x.is_integer() for x in values)
    if integer:
        values = [float(round(x)) for x in values]
    values.sort()
    low, high = values[0], values[-1]
    if low == high:
        value: float = int(low) if integer else low
        return (NumberFit("constant", {"value": value}, integer, value, value, len(values), 0.0),)
    fits = [_uniform(values, integer), _normal(values, integer)]
    if low > 0:
        fits.append(_lognormal(values, integer))
    return tuple(fits)


def _uniform(values: list[float], integer: bool) -> NumberFit:
    low: float
    high: float
    if integer:
        # uniform_int draws each of low..high alike: a continuous uniform on
        # [low - 0.5, high + 0.5], rounded.
        low, high = int(values[0]), int(values[-1])
        cdf = _discretised(_uniform_cdf(low - 0.5, high + 0.5))
    else:
        low, high = _outward(values[0], values[-1], values[-1] - values[0])
        cdf = _uniform_cdf(low, high)
    params: dict[str, float] = {"low": low, "high": high}
    return NumberFit("uniform", params, integer, low, high, len(values), ks_distance(values, cdf))


def _normal(values: list[float], integer: bool) -> NumberFit:
    mean = statistics.fmean(values)
    variance = statistics.variance(values, mean)
    if integer and variance > 2 / 12:
        variance -= 1 / 12
    sd = _significant(math.sqrt(variance))
    mean = _rounded(mean, _place_for(mean, sd))
    low, high = _bounds(values, integer, sd)
    cdf = _truncated(statistics.NormalDist(mean, sd).cdf, low, high, integer)
    params = {"mean": mean, "sd": sd}
    return NumberFit("normal", params, integer, low, high, len(values), ks_distance(values, cdf))


def _lognormal(values: list[float], integer: bool) -> NumberFit:
    logs = [math.log(x) for x in values]
    mu = statistics.fmean(logs)
    sigma = _significant(statistics.stdev(logs, mu))
    # A median off by a factor (1 + e) shifts every log by e: keep e well under sigma.
    median = _rounded(math.exp(mu), _place_for(math.exp(mu), math.exp(mu) * sigma))
    low, high = _bounds(values, integer, median * sigma)
    logs_dist = statistics.NormalDist(math.log(median), sigma)

    def lognormal_cdf(x: float) -> float:
        return logs_dist.cdf(math.log(x)) if x > 0 else 0.0

    cdf = _truncated(lognormal_cdf, low, high, integer)
    params = {"median": median, "sigma": sigma}
    ks = ks_distance(values, cdf)
    return NumberFit("lognormal", params, integer, low, high, len(values), ks)


def _bounds(values: list[float], integer: bool, spread: float) -> tuple[float, float]:
    if integer:
        return int(values[0]), int(values[-1])
    return _outward(values[0], values[-1], spread)


def _outward(low: float, high: float, spread: float) -> tuple[float, float]:
    """[low, high] rounded outward to the precision ``spread`` calls for."""
    return (
        _rounded(low, _place_for(low, spread), ROUND_FLOOR),
        _rounded(high, _place_for(high, spread), ROUND_CEILING),
    )


def _uniform_cdf(low: float, high: float) -> Callable[[float], float]:
    def cdf(x: float) -> float:
        return min(1.0, max(0.0, (x - low) / (high - low)))

    return cdf


def _truncated(
    cdf: Callable[[float], float], low: float, high: float, integer: bool
) -> Callable[[float], float]:
    """``cdf`` conditioned on [low, high], as the generators resample into their bounds
    (their last resort, clamping after 16 misses, is left out: with bounds at the sample's
    extremes it has a probability far below anything a sample could show); rounded when
    ``integer``."""
    below, inside = cdf(low), cdf(high) - cdf(low)

    def truncated(x: float) -> float:
        if inside <= 0:  # nothing inside: the generator would clamp every draw
            return 0.0 if x < low else 1.0
        return min(1.0, max(0.0, (cdf(x) - below) / inside))

    return _discretised(truncated) if integer else truncated


def _discretised(cdf: Callable[[float], float]) -> Callable[[float], float]:
    """The distribution of a draw rounded to an integer: P(round(X) <= x) = P(X < k + 0.5),
    k = floor(x). A step function; :func:`ks_distance` reads its left limits."""
    return lambda x: cdf(math.floor(x) + 0.5)


# -- rounding parameters as a module writes them -------------------------------------------


def _place(x: float, digits: int = DIGITS) -> int:
    """The decimal exponent of the last of ``digits`` significant digits: 123.4 -> 0."""
    return math.floor(math.log10(abs(x))) - (digits - 1)


def _place_for(value: float, spread: float) -> int:
    """Where to round a location or a bound: at its own third significant digit, or finer
    when its spread is narrow (a rounding then moves it by at most 0.5% of the spread)."""
    places = [_place(x) for x in (value, spread) if x != 0]
    return min(places) if places else 0


def _significant(x: float) -> float:
    return _rounded(x, _place(x)) if x != 0 else 0.0


def _rounded(x: float, place: int, rounding: str = ROUND_HALF_EVEN) -> float:
    """``x`` rounded to a multiple of 10**place, in decimal (so 0.1 stays 0.1, and floor and
    ceiling never cross ``x``)."""
    if x == 0:
        return 0.0
    place = max(place, _place(x, 17))  # a double holds 17 digits: finer is already exact
    return float(Decimal(repr(x)).quantize(Decimal(1).scaleb(place), rounding=rounding))


def _number_text(x: float) -> str:
    return str(x) if isinstance(x, int) else repr(float(x))


# -- distances ----------------------------------------------------------------------------


def ks_distance(sample: Sequence[float], cdf: Callable[[float], float]) -> float:
    """The Kolmogorov-Smirnov distance sup |F_n(x) - F(x)| between the sample's empirical
    CDF F_n and ``cdf``.

    ``cdf`` is any non-decreasing right-continuous function into [0, 1]: continuous, or a step
    function (a discretised CDF, another sample's empirical CDF). Between two distinct sample
    values F_n is flat, so the supremum is reached at a sample value v, either at v or just
    below it: max(F_n(v) - F(v), F(v-) - F_n(v-)), with F(v-) read one float below v.
    """
    values = sorted(sample)
    n = len(values)
    if n == 0:
        raise ValueError("a KS distance needs at least one observation")
    worst = 0.0
    i = 0
    while i < n:
        v = values[i]
        j = bisect_right(values, v, i)
        left = cdf(math.nextafter(v, -math.inf))
        worst = max(worst, j / n - cdf(v), left - i / n)
        i = j
    return min(1.0, worst)


def ks_two_sample(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov distance sup |F_a(x) - F_b(x)| of the two empirical
    CDFs, in [0, 1]: 0 for samples of the same values in the same proportions, 1 for samples
    that do not overlap. Read at every value either holds (both CDFs are flat between)."""
    xs, ys = sorted(a), sorted(b)
    if not xs or not ys:
        raise ValueError("a KS distance needs at least one observation on each side")
    worst = 0.0
    for v in set(xs) | set(ys):
        worst = max(worst, abs(bisect_right(xs, v) / len(xs) - bisect_right(ys, v) / len(ys)))
    return worst


def total_variation(a: Mapping[object, float], b: Mapping[object, float]) -> float:
    """Half the L1 distance between ``a`` and ``b`` each normalised to sum to 1: the largest
    difference in probability the two give any set of values. 0 for the same proportions, 1
    for no value in common. Weights are counts or shares (>= 0, some > 0)."""
    for side in (a, b):
        if any(w < 0 for w in side.values()) or sum(side.values()) <= 0:
            raise ValueError("total variation needs weights >= 0 with a positive sum")
    total_a, total_b = sum(a.values()), sum(b.values())
    keys = set(a) | set(b)
    distance = sum(abs(a.get(k, 0) / total_a - b.get(k, 0) / total_b) for k in keys) / 2
    return min(1.0, distance)


# -- categories ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Categories:
    """The most common values of a field and how often each was seen.

    ``top``: (value, count) pairs, most common first (ties in the order first counted);
    ``other``: observations of every other value, those the counter had no room for included;
    ``distinct``: how many values were seen (None when the counter overflowed: unknown);
    ``count``: every observation, ``sum(top counts) + other``.
    """

    top: tuple[tuple[object, int], ...]
    other: int
    distinct: int | None
    count: int

    def weights(self, other_value: object = "other") -> dict[object, int]:
        """The choice's weights: ``top`` and, when any, ``other`` under ``other_value``.

        Integer shares of 100 (percents) when every value holds at least 1%; otherwise of
        1,000, 10,000, ... the first total that gives every value at least 1 (so no weight is
        ever 0); the counts themselves when there are no more observations than that total.
        Rounded by largest remainder, so the weights sum to that total exactly.
        """
        entries = list(self.top)
        if self.other:
            if any(value == other_value for value, _ in entries):
                raise ValueError(f"{other_value!r} is a value seen: name the rest otherwise")
            entries.append((other_value, self.other))
        if not entries:
            raise ValueError("no observations: nothing to choose from")
        counts = [n for _, n in entries]
        total = sum(counts)
        scale = 100
        while scale < total and scale * min(counts) < total:
            scale *= 10
        if scale >= total:
            return dict(entries)
        shares = _largest_remainder(counts, scale)
        return {value: share for (value, _), share in zip(entries, shares, strict=True)}

    def generator(self, other_value: object = "other") -> gen.Choice:
        """The ``gen.choice`` over :meth:`weights`."""
        options = {_as_literal(v): w for v, w in self.weights(other_value).items()}
        return gen.choice(options)

    def source(self, other_value: object = "other") -> str:
        """The Python text of :meth:`generator`: ``gen.choice({"linux": 80, "other": 5})``.
        A text holding ``{{`` or ``}}`` is written ``literal("...")`` (a module imports
        ``literal`` from stressbed) so that it is never read as a template."""
        items = ", ".join(f"{_value_text(v)}: {w}" for v, w in self.weights(other_value).items())
        return f"gen.choice({{{items}}})"


def fit_categories(
    counts: Mapping[object, int], *, top: int = 10, cover: float = 0.95, overflowed: int = 0
) -> Categories:
    """The most common values of ``counts``, kept one by one until they hold ``cover`` of all
    observations or number ``top``; the rest is ``other``. ``overflowed``: observations a
    :class:`BoundedCounter` could not place (its ``overflow``), counted in ``other``."""
    if top < 1 or not 0 < cover <= 1 or overflowed < 0:
        raise ValueError("fit_categories needs top >= 1, 0 < cover <= 1 and overflowed >= 0")
    if any(n < 0 for n in counts.values()):
        raise ValueError("category counts are >= 0")
    seen = sorted(((v, n) for v, n in counts.items() if n > 0), key=lambda item: -item[1])
    total = sum(n for _, n in seen) + overflowed
    kept: list[tuple[object, int]] = []
    held = 0
    for value, n in seen:
        if len(kept) == top or held >= cover * total:
            break
        kept.append((value, n))
        held += n
    distinct = None if overflowed else len(seen)
    return Categories(tuple(kept), total - held, distinct, total)


def _largest_remainder(counts: list[int], scale: int) -> list[int]:
    """``counts`` as integer shares of ``scale``: each its quota rounded down, the units left
    over given to the largest remainders (earlier entries first among equals)."""
    total = sum(counts)
    shares = [n * scale // total for n in counts]
    remainders = [n * scale % total for n in counts]  # in integers: exact
    order = sorted(range(len(counts)), key=lambda i: -remainders[i])
    for i in order[: scale - sum(shares)]:
        shares[i] += 1
    return shares


def _as_literal(value: object) -> object:
    if isinstance(value, str) and ("{{" in value or "}}" in value):
        return LiteralText(value)
    return value


def _value_text(value: object) -> str:
    if isinstance(value, str):
        # Readable as written, unless it holds what UTF-8 source cannot (a lone surrogate).
        readable = value.encode("utf-8", "surrogatepass") == value.encode("utf-8", "replace")
        text = json.dumps(value, ensure_ascii=not readable)
        return f"literal({text})" if "{{" in value or "}}" in value else text
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    raise TypeError(f"a category value is a string, number, boolean or None, not {value!r}")


# -- bounded memory -----------------------------------------------------------------------


class Reservoir:
    """A uniform sample of at most ``size`` values from a stream of any length.

    Vitter's algorithm R's sample, drawn by Li's algorithm L: the first ``size`` values are
    kept; then the count of values to pass over before the next one replaces a random kept
    one is drawn from the distribution R's coin flips would give (geometric, with a success
    probability that shrinks as the stream grows), so a value passed over costs a count and a
    comparison, not a random draw. Every value seen is kept with the same probability.
    Seeded: the same stream gives the same sample.
    """

    def __init__(self, size: int = 2048, seed: int = 0) -> None:
        if size < 1:
            raise ValueError("a reservoir holds at least one value")
        self.size = size
        self.count = 0  # values seen
        self.values: list[float] = []  # the sample, in no useful order
        self._random = random.Random(seed)
        self._w = 1.0
        self._next = size  # the count at which the next value is taken

    def add(self, value: float) -> None:
        self.count += 1
        if self.count <= self.size:
            self.values.append(value)
            if self.count == self.size:
                self._skip()
            return
        if self.count == self._next:
            self.values[self._random.randrange(self.size)] = value
            self._skip()

    def merge(self, other: Reservoir) -> None:
        """Fold in ``other``, a sample of another stretch of the stream: the sample of both is
        drawn from each in proportion to the values it stands for (so every value of either
        stretch is kept with about the same probability). Adding after a merge goes on as if
        the merged stream had been read by this reservoir."""
        total = self.count + other.count
        if total <= self.size or len(self.values) + len(other.values) <= self.size:
            self.values = self.values + other.values
        else:
            mine = min(len(self.values), round(self.size * self.count / total))
            theirs = min(len(other.values), self.size - mine)
            mine = min(len(self.values), self.size - theirs)
            rng = self._random
            self.values = rng.sample(self.values, mine) + rng.sample(other.values, theirs)
        self.count = total
        if self.count >= self.size:
            # Algorithm L's W after n values is about size / n (the chance a value is kept).
            self._w = self.size / self.count
            self._skip()

    def _skip(self) -> None:
        rng = self._random
        self._w *= math.exp(math.log(1.0 - rng.random()) / self.size)
        gap = math.floor(math.log(1.0 - rng.random()) / math.log(1.0 - self._w))
        self._next = self.count + gap + 1


class BoundedCounter:
    """Counts of at most ``limit`` distinct keys.

    The first ``limit`` keys seen keep a count; observations of any other key only add to
    ``overflow``. Memory stays bounded on any input; on skewed traffic the common keys are
    usually among the first seen (a key first seen late is counted in ``overflow`` only).
    """

    def __init__(self, limit: int = 1000) -> None:
        if limit < 1:
            raise ValueError("a counter keeps at least one key")
        self.limit = limit
        self.counts: dict[Hashable, int] = {}
        self.overflow = 0  # observations of keys beyond the limit

    def merge(self, other: BoundedCounter) -> None:
        """Fold in ``other``'s counts (its keys beyond the limit go to ``overflow``)."""
        for key, n in other.counts.items():
            self.add(key, n)
        self.overflow += other.overflow

    def add(self, key: Hashable, n: int = 1) -> None:
        if key in self.counts:
            self.counts[key] += n
        elif len(self.counts) < self.limit:
            self.counts[key] = n
        else:
            self.overflow += n
