"""The mergeable sketch: percentiles within its accuracy after any merge."""

from __future__ import annotations

import math
import random

from stressbed.results.sketch import Sketch

from ..conftest import exact_percentile


def test_merged_sketches_give_percentiles_within_one_percent():
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
        assert abs(merged.quantile(q) - exact) / exact < 0.01, q


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
