"""The mergeable sketch: percentiles within its accuracy after any merge."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stressbed.errors import DocumentError
from stressbed.results.sketch import ACCURACY, Sketch

from ..conftest import exact_percentile


def test_merged_sketches_give_percentiles_within_the_documented_accuracy():
    rng = random.Random(7)
    parts = [[rng.lognormvariate(1, 1.5) for _ in range(20_000)] for _ in range(4)]
    parts[2] += [0.0] * 50  # k6 reports zeros (reused connections)
    merged = Sketch()
    for part in reversed(parts):
        sketch = Sketch()
        sketch.extend(part)
        merged.merge(Sketch.from_dict(sketch.to_dict()))
    everything = [v for part in parts for v in part]
    assert merged.count == len(everything)
    assert merged.minimum == min(everything)
    assert merged.maximum == max(everything)
    assert math.isclose(merged.mean, sum(everything) / len(everything), rel_tol=1e-9)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = exact_percentile(everything, q)
        assert abs(merged.quantile(q) - exact) / exact <= ACCURACY * (1 + 1e-9), q


def test_merge_order_does_not_matter():
    rng = random.Random(3)
    a, b = Sketch(), Sketch()
    a.extend(rng.random() * 100 for _ in range(1000))
    b.extend(rng.random() * 5 for _ in range(1000))
    ab, ba = Sketch(), Sketch()
    ab.merge(a)
    ab.merge(b)
    ba.merge(b)
    ba.merge(a)
    assert ab.to_dict() == ba.to_dict()


values = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=3.6e9, allow_nan=False)),
    min_size=1,
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(values=values, cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_merging_any_partition_gives_the_sketch_of_the_union(values, cuts):
    whole = Sketch()
    whole.extend(values)
    merged = Sketch()
    bounds = sorted({0, len(values), *(c % (len(values) + 1) for c in cuts)})
    for start, end in itertools.pairwise(bounds):
        part = Sketch()
        part.extend(values[start:end])
        merged.merge(Sketch.from_dict(part.to_dict()))
    assert (merged.buckets, merged.zeros, merged.count) == (whole.buckets, whole.zeros, whole.count)
    assert (merged.minimum, merged.maximum) == (whole.minimum, whole.maximum)
    assert math.isclose(merged.total, whole.total, rel_tol=1e-9, abs_tol=1e-9)
    qs = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
    assert merged.quantiles(qs) == whole.quantiles(qs)
    for q, read in zip(qs, whole.quantiles(qs), strict=True):
        exact = exact_percentile(values, q)
        assert abs(read - exact) <= ACCURACY * exact * (1 + 1e-9), q


def test_a_bad_sketch_document_names_its_field():
    document = Sketch().to_dict()
    with pytest.raises(DocumentError, match=r"^sketch\.counts: got \[1\]; expected 0 integers"):
        Sketch.from_dict({**document, "counts": [1]})
    with pytest.raises(DocumentError, match=r"^sketch\.accuracy: got 0\.01"):
        Sketch.from_dict({**document, "accuracy": 0.01})
