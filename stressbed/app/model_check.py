"""``stressbed model --check``: the module replayed through a real nginx, its log modelled
again, and the two models' distances printed.

The replay is the same model written again for the check: played in ``--check-duration``
(the stages compressed, the shape kept) with every rate scaled so the peak is
``--check-peak`` requests/s (up or down: enough requests to measure shares on), run by
``stressbed run`` at :func:`~stressbed.app.replay.replay_target` (nginx writing its own
access log). Then, between what the input held (A) and
what the replay's log holds (B):

- **weights**: each endpoint's share of the requests, the largest difference in percentage
  points (an endpoint only one side has counts its whole share);
- **templates**: the endpoints only one side has;
- **the rate's shape**: per stage of A, B's requests per second over the stage's window
  (compressed, from B's first request) against the stage's mean planned rate, times the
  check's scale: the relative error;
- **parameters**: per query parameter and JSON body field both have, the total variation
  distance between their categories (0: the same shares, 1: disjoint) when A's values were
  copied, else the two-sample Kolmogorov-Smirnov distance between their numbers; fields
  whose values were never copied (a secret's shape or name) are compared by their lengths.

Exit 1 when a weight is off by more than ``--check-tolerance`` percentage points or a
template is missing from the replay; 0 otherwise.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProvisionError
from ..model.fits import ks_two_sample, total_variation
from ..model.flows import Population, plan_flows
from ..model.hits import Tally
from ..model.learn import FieldStats, Learned, learn
from ..model.rate import shape_of
from ..model.read import read_inputs
from ..model.write import Endpoint, endpoints_of, write_module
from ..scenario import catalog
from .replay import replay_target

__all__ = ["Distances", "check_model"]

#: How long past its planned length the replay's run may take before it is stopped.
RUN_MARGIN_S = 180.0
#: The longest replay a population makes the check take.
POPULATION_WINDOW_MAX_S = 600.0
#: A template is missed only when the replay should have held this many of its requests.
EXPECTED_AT_LEAST = 5


@dataclass
class Distances:
    """What ``--check`` measured (see the module's docstring)."""

    weights: dict[str, tuple[float, float]] = field(default_factory=dict)
    only_input: list[str] = field(default_factory=list)
    only_replay: list[str] = field(default_factory=list)
    #: Endpoints not replayed that the replay was too short to expect EXPECTED_AT_LEAST of.
    unlikely: list[str] = field(default_factory=list)
    #: The population's registration, left out of the weights (once per agent's life).
    registration: str | None = None
    #: Whether the model is a population (its rate is its agents': no stages compared).
    population: bool = False
    #: Per stage: planned and observed requests/s, the relative error, requests counted.
    stages: list[tuple[float, float, float | None, int]] = field(default_factory=list)
    fields: list[tuple[str, str, float]] = field(default_factory=list)
    replayed: int = 0

    @property
    def worst_weight_pp(self) -> float:
        return max((abs(a - b) * 100 for a, b in self.weights.values()), default=0.0)

    def noise_pp(self) -> float:
        """Three standard errors of the largest share at the replay's size, in points: a
        replay of n requests cannot tell shares closer than that."""
        if not self.replayed:
            return 100.0
        p = max((a for a, _ in self.weights.values()), default=0.5)
        return 300 * math.sqrt(p * (1 - p) / self.replayed)

    @property
    def worst_stage(self) -> float | None:
        errors = [e for _, _, e, _ in self.stages if e is not None]
        return max(errors, default=None)


def check_model(
    learned: Learned,
    name: str,
    tallies: list[Tally],
    *,
    duration_s: float,
    peak: float,
    keep: list[str],
) -> Distances:
    """Replay the model of ``learned`` and measure it (see the module's docstring)."""
    if learned.first is None or learned.last is None:
        raise ProvisionError("--check: nothing to replay (no request was read)")
    original = shape_of(learned.per_second, learned.first, learned.last)
    duration_s = max(duration_s, population_window(learned))
    compress = duration_s / original.span_s
    # The peak at --check-peak, up or down: as many requests as the cap allows, so the
    # shares are measured on enough of them.
    scale = peak / max(original.peak_rate, 1e-9)
    written = write_module(
        learned, name, tallies, compress=compress, scale=scale, join_at_once=True
    )
    with tempfile.TemporaryDirectory(prefix="stressbed-check-") as tmp:
        work = Path(tmp)
        module = work / f"{name}.py"
        module.write_text(written.text)
        # Its whole length, graceful stops included, as --duration: the run plays it as
        # written whatever a profile file in the working directory says.
        length_ms = catalog.load(str(module)).duration_ms()
        with replay_target(work / "nginx") as target:
            _run(module, target.url, work / "results", length_ms)
        with ExitStack() as stack:
            reading = read_inputs([target.log], "stressbed", stack)
            replay = learn(reading.hits, keep)
    flows = plan_flows(learned, endpoints_of(learned))
    return _distances(learned, replay, compress, scale, flows.population)


def population_window(learned: Learned) -> float:
    """How long a replay of a population must be to be steady: four of its longest
    intervals (its agents' activities keep their intervals when the stages are compressed),
    ten minutes at most; 0 without a population."""
    endpoints = endpoints_of(learned)
    flows = plan_flows(learned, endpoints)
    if flows.population is None:
        return 0.0
    longest = max(c.interval_s for c in flows.population.checkins)
    return min(POPULATION_WINDOW_MAX_S, 4 * longest)


def _run(module: Path, url: str, results: Path, length_ms: float) -> None:
    command = [
        *(sys.executable, "-m", "stressbed", "run", "--scenario", str(module)),
        *("--target-url", url, "--results", str(results)),
        *("--duration", f"{math.ceil(length_ms)}ms"),
    ]
    duration_s = length_ms / 1000
    env = {**os.environ, "K6_NO_USAGE_REPORT": "true"}
    try:
        done = subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=duration_s + RUN_MARGIN_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"--check: the replay did not end within {duration_s + RUN_MARGIN_S:.0f} s"
        ) from None
    # 1: thresholds failed (observed latency at a replay nginx is not production's): still
    # a replay. 2 and up: the run itself failed.
    if done.returncode not in (0, 1):
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProvisionError(f"--check: the replay's run failed ({done.returncode}): {last}")


def _distances(
    learned: Learned,
    replay: Learned,
    compress: float,
    scale: float,
    population: Population | None,
) -> Distances:
    found = Distances(replayed=replay.count)
    a = {e.key: e for e in endpoints_of(learned)}
    b = {e.key: e for e in endpoints_of(replay)}
    # A registration is once in an agent's life: a replay shorter than the lives seen holds
    # more of them. The shares of the other requests are compared.
    once = population.register.key if population and population.register else None
    found.registration = once
    total_a = learned.count - (a[once].stats.count if once in a else 0)
    total_b = replay.count - (b[once].stats.count if once in b else 0)
    for key in sorted(set(a) | set(b), key=lambda k: -(a[k].stats.count if k in a else 0)):
        if key == once:
            continue
        share_a = a[key].stats.count / total_a if key in a and total_a else 0.0
        share_b = b[key].stats.count / total_b if key in b and total_b else 0.0
        found.weights[key] = (share_a, share_b)
    found.only_input = [
        k
        for k in a
        if k not in b and a[k].stats.count / learned.count * replay.count >= EXPECTED_AT_LEAST
    ]
    found.unlikely = [k for k in a if k not in b and k not in found.only_input]
    found.only_replay = [k for k in b if k not in a]
    if population is not None:
        # Agents keep their intervals when the stages are compressed: their rate is the
        # agents', not the stages'; there is no compressed shape to compare.
        found.population = True
        return _fields(found, a, b)
    shape = shape_of(learned.per_second, learned.first or 0, learned.last or 0)
    origin = int(replay.first) if replay.first is not None else 0
    previous = shape.start_rate
    for stage in shape.stages:
        planned = (previous + stage.rate) / 2 * scale
        previous = stage.rate
        start, end = stage.start * compress, stage.end * compress
        width = max(1.0, end - start)
        counted = sum(
            n for second, n in replay.per_second.items() if start <= second - origin < end
        )
        observed = counted / width
        error = abs(observed - planned) / planned if planned > 0 else None
        found.stages.append((planned, observed, error, counted))
    return _fields(found, a, b)


def _fields(found: Distances, a: dict[str, Endpoint], b: dict[str, Endpoint]) -> Distances:
    for key in a.keys() & b.keys():
        for kind, mine, theirs in (
            ("query", a[key].stats.query, b[key].stats.query),
            ("body", a[key].stats.body, b[key].stats.body),
        ):
            for name in mine.keys() & theirs.keys():
                distance = _field_distance(mine[name], theirs[name])
                if distance is not None:
                    found.fields.append((key, f"{kind} {name}", distance))
    return found


def _field_distance(a: FieldStats, b: FieldStats) -> float | None:
    if a.values.counts and b.values.counts:
        return total_variation(dict(a.values.counts), dict(b.values.counts))
    if a.numbers.values and b.numbers.values:
        return ks_two_sample(a.numbers.values, b.numbers.values)
    if a.lengths.values and b.lengths.values:
        return ks_two_sample(a.lengths.values, b.lengths.values)
    return None


def print_distances(found: Distances, tolerance_pp: float) -> int:
    """The distances on stdout; the exit code (see the module's docstring)."""
    print(f"check: replayed {found.replayed:,} requests through nginx and modelled them again")
    noise = found.noise_pp()
    print(
        f"  weights: largest difference {found.worst_weight_pp:.2f} pp "
        f"(sampling error of {found.replayed:,} requests: +-{noise:.2f} pp, three standard "
        "errors)"
    )
    for key, (a, b) in list(found.weights.items())[:15]:
        print(f"    {a:7.2%} -> {b:7.2%}  ({(b - a) * 100:+.2f} pp)  {key}")
    for key in found.only_input:
        print(f"  template not replayed: {key}")
    for key in found.unlikely:
        print(f"  template not replayed, too rare for a replay this short: {key}")
    for key in found.only_replay:
        print(f"  template only in the replay: {key}")
    if found.registration is not None:
        print(f"  (the registration {found.registration} left out: once per agent's life)")
    worst = found.worst_stage
    if found.population:
        print("  rate: a population's (its agents keep their intervals): stages not compared")
    else:
        print(
            "  rate: relative error per stage "
            + ", ".join("n/a" if e is None else f"{e:.1%} (n={n:,})" for _, _, e, n in found.stages)
            + (f" (largest {worst:.1%})" if worst is not None else " (no stage with a rate)")
        )
    if found.fields:
        worst_field = max(found.fields, key=lambda f: f[2])
        print(
            f"  parameters: {len(found.fields)} compared (total variation for categories, "
            f"two-sample KS otherwise); largest {worst_field[2]:.3f}: "
            f"{worst_field[1]} of {worst_field[0]}"
        )
    else:
        print("  parameters: none in both to compare")
    allowed = max(tolerance_pp, noise)
    failed = found.worst_weight_pp > allowed or bool(found.only_input)
    print(
        f"check: {'FAILED' if failed else 'ok'}: weights "
        f"{'not ' if found.worst_weight_pp > allowed else ''}within {allowed:.2f} pp"
        f" (--check-tolerance {tolerance_pp:g}, or the sampling error when larger)"
        + ("; a template not replayed" if found.only_input else "; every template replayed")
    )
    return 1 if failed else 0
