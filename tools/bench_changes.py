"""How well stressbed's change points fit, beside ruptures' (issue 28). Prints figures; asserts
nothing; not run in CI.

    python tools/bench_changes.py [--seeds 100] [--noise 1000] [--long 10]

One synthetic suite, the same for every method. Levels of 100 with noise as a share of the
level: single steps (30 runs, +-20 % in 3 % noise at runs 3, 5, 10, 15, 20, 25 and 27; +-10 %
in 5 % noise at runs 4, 15 and 26; +20 % in log-normal noise, sigma 0.1, at run 25), two steps
(40 runs, +20 % at 13, -25 % at 27), a bump (40 runs, 20 % up for runs 15-19), up then down (45
runs, 10 % up from 15 to 29, 4 % noise); ``--seeds`` series of each. For each kind: the share
of series where every step made is found within one run, in its direction (found), and the
share where, besides, nothing else is (exact). False alarms: the share of ``--noise`` series of
pure noise (30 runs normal 10 %, 30 runs log-normal sigma 0.5, 100 runs normal 10 %) with any
change point. Time: per series of 500 runs with ten steps (``--long`` of them).

The methods: ``stressbed.history.changes.change_points`` with its defaults, and, when ruptures
is importable (it is not a dependency of stressbed, and this script installs nothing):
Pelt and Binseg with an l2 cost, first with a BIC penalty (2 sigma² log n, sigma from the
median absolute first difference), then with it raised until false alarms at 30 runs are
about stressbed's, 1 % (5 sigma² log n); and Pelt with an rbf cost, penalty log n (of 1, 2,
3, 5 and 8 log n, the one that still finds steps: its costs are bounded). ruptures gets the
series stressbed analyses, logs where every value is positive; segments of 3 runs at least,
every run a candidate (``min_size=3, jump=1``).

    python3 -m venv /tmp/rupvenv && /tmp/rupvenv/bin/pip install ruptures numpy
    PYTHONPATH=. /tmp/rupvenv/bin/python tools/bench_changes.py
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stressbed.history.changes import MIN_SEGMENT, change_points

#: A method: a series -> the indices where a new level starts, each with its direction (+1, -1).
Method = Callable[[Sequence[float]], list[tuple[int, int]]]


def series(n: int, steps: dict[int, float], rng: np.random.Generator, noise: str) -> list[float]:
    """``n`` runs at 100, times (1 + share) from each step on, with ``noise``: "normal:0.03"
    (a share of the level) or "lognormal:0.1" (sigma)."""
    level = np.full(n, 100.0)
    for at, share in steps.items():
        level[at:] *= 1 + share
    kind, size = noise.split(":")
    if kind == "normal":
        return list(level * (1 + float(size) * rng.standard_normal(n)))
    return list(level * np.exp(float(size) * rng.standard_normal(n)))


#: name -> (runs, steps, noise) for each series of the suite.
KINDS: dict[str, list[tuple[int, dict[int, float], str]]] = {
    "steps 20 %/3 %": [
        (30, {at: share}, "normal:0.03")
        for at in (3, 5, 10, 15, 20, 25, 27)
        for share in (0.2, -0.2)
    ],
    "steps 10 %/5 %": [
        (30, {at: share}, "normal:0.05") for at in (4, 15, 26) for share in (0.1, -0.1)
    ],
    "step log-normal": [(30, {25: 0.2}, "lognormal:0.1")],
    "two steps": [(40, {13: 0.2, 27: -0.25}, "normal:0.03")],
    "bump": [(40, {15: 0.2, 20: -1 / 6}, "normal:0.04")],
    "up then down": [(45, {15: 0.1, 30: -0.1 / 1.1}, "normal:0.04")],
}
NOISE = {
    "normal 30": (30, "normal:0.1"),
    "log-normal 30": (30, "lognormal:0.5"),
    "normal 100": (100, "normal:0.1"),
}


def ours(values: Sequence[float]) -> list[tuple[int, int]]:
    return [(p.index, 1 if p.direction == "up" else -1) for p in change_points(values)]


def ruptures_methods() -> dict[str, Method] | None:
    """Pelt and Binseg (l2; BIC, raised) and Pelt (rbf, log n), or None without ruptures."""
    try:
        import ruptures  # noqa: PLC0415 (optional: only this script, only when present)
    except ImportError:
        return None

    def prepare(values: Sequence[float]) -> np.ndarray[Any, Any]:
        x = np.asarray(values, dtype=np.float64)
        return np.log(x) if x.min() > 0 else x

    def variance(x: np.ndarray[Any, Any]) -> float:
        diffs = np.diff(x)
        sigma = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
        return max(sigma, 1e-12) ** 2

    def bic(x: np.ndarray[Any, Any]) -> float:
        return 2 * variance(x) * math.log(len(x))

    def raised(x: np.ndarray[Any, Any]) -> float:
        return 5 * variance(x) * math.log(len(x))

    def directed(x: np.ndarray[Any, Any], ends: list[int]) -> list[tuple[int, int]]:
        bounds = [0, *ends]
        found = []
        for left, at, right in zip(bounds, bounds[1:], bounds[2:], strict=False):
            up = x[at:right].mean() > x[left:at].mean()
            found.append((at, 1 if up else -1))
        return found

    def fit(algorithm: Any, model: str, penalty: Callable[[Any], float]) -> Method:
        def method(values: Sequence[float]) -> list[tuple[int, int]]:
            x = prepare(values)
            estimator = algorithm(model=model, min_size=MIN_SEGMENT, jump=1).fit(x)
            return directed(x, list(estimator.predict(pen=penalty(x))))

        return method

    return {
        "ruptures Pelt l2 BIC": fit(ruptures.Pelt, "l2", bic),
        "ruptures Binseg l2 BIC": fit(ruptures.Binseg, "l2", bic),
        "ruptures Pelt l2 5 sigma² log n": fit(ruptures.Pelt, "l2", raised),
        "ruptures Binseg l2 5 sigma² log n": fit(ruptures.Binseg, "l2", raised),
        "ruptures Pelt rbf log n": fit(ruptures.Pelt, "rbf", lambda x: math.log(len(x))),
    }


def fit_figures(method: Method, seeds: int) -> dict[str, tuple[float, float]]:
    """Kind -> (share found, share exact)."""
    figures = {}
    for k, (kind, cases) in enumerate(KINDS.items()):
        found = exact = total = 0
        for number, (n, steps, noise) in enumerate(cases):
            rng = np.random.default_rng([28, k, number])
            for _ in range(seeds):
                points = method(series(n, steps, rng, noise))
                hits = [
                    any(abs(i - at) <= 1 and d == (1 if share > 0 else -1) for i, d in points)
                    for at, share in steps.items()
                ]
                found += all(hits)
                exact += all(hits) and len(points) == len(steps)
                total += 1
        figures[kind] = (found / total, exact / total)
    return figures


def false_alarms(method: Method, count: int) -> dict[str, float]:
    figures = {}
    for k, (name, (n, noise)) in enumerate(NOISE.items()):
        rng = np.random.default_rng([4, k])
        figures[name] = sum(bool(method(series(n, {}, rng, noise))) for _ in range(count)) / count
    return figures


def long_time(method: Method, count: int) -> float:
    """Seconds per series of 500 runs with ten steps of +-20 %, log-normal noise 0.05."""
    rng = np.random.default_rng(500)
    made = []
    for _ in range(count):
        ats = sorted(int(a) for a in rng.choice(np.arange(10, 490), size=10, replace=False))
        made.append(
            series(500, {a: float(rng.choice([0.25, -0.2])) for a in ats}, rng, "lognormal:0.05")
        )
    began = time.perf_counter()
    for values in made:
        method(values)
    return (time.perf_counter() - began) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="series of each step case")
    parser.add_argument("--noise", type=int, default=1000, help="noise series of each kind")
    parser.add_argument("--long", type=int, default=10, help="500-run series timed")
    args = parser.parse_args()
    methods: dict[str, Method] = {"stressbed E-Divisive": ours}
    others = ruptures_methods()
    if others is None:
        print("ruptures not installed: stressbed's figures only")
    else:
        methods.update(others)
    for name, method in methods.items():
        began = time.perf_counter()
        print(f"{name}:")
        for kind, (found, exact) in fit_figures(method, args.seeds).items():
            print(f"  {kind:16} found {found:6.1%}  exact {exact:6.1%}")
        for kind, share in false_alarms(method, args.noise).items():
            print(f"  false alarms, {kind:14} {share:6.1%}")
        print(f"  per 500-run series: {long_time(method, args.long) * 1000:.1f} ms")
        print(f"  ({time.perf_counter() - began:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
