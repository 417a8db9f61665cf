"""The search's plan and what its probes add up to, driven by a synthetic probe function."""

from __future__ import annotations

from stressbed.results.probe import Probe, ProbeSetup
from stressbed.results.search import Search, conclude, knee


def probe(index: int, rate: int, status: str, p95: float | None = None, trial: int = 1) -> Probe:
    found = Probe(ProbeSetup(index, rate, trial, 10.0, 3.0, 100), status)
    found.figures = {"p95_ms": p95}
    return found


def drive(search: Search, verdict, limit: int = 50) -> list[Probe]:
    """Run the search against ``verdict(rate, trial) -> status``; every probe it made."""
    probes: list[Probe] = []
    while (chosen := search.next()) is not None and len(probes) < limit:
        rate, trial = chosen
        status = verdict(rate, trial)
        probes.append(probe(len(probes) + 1, rate, status, trial=trial))
        search.record(rate, status)
    assert search.done, "the search must end by itself"
    return probes


def test_brackets_by_doubling_then_bisects_to_the_resolution_and_confirms_both_sides():
    capacity = 730
    search = Search(50, 10_000, resolution=0.05)
    probes = drive(search, lambda rate, _: "held" if rate <= capacity else "failed")
    rates = [p.rate for p in probes]
    assert rates[:6] == [50, 100, 200, 400, 800, 600]  # doubling until 800 fails, then halves
    answer = conclude(probes, search)
    low, high = answer["interval"]
    assert low <= capacity < high
    assert (high - low) / low <= 0.05
    assert answer["max_sustainable_rate"] == low
    assert answer["first_failing_rate"] == high
    assert answer["limited_by"] == "target"
    assert answer["ended_by"] == "converged"
    # The two rates either side of the boundary were probed twice, and agreed.
    assert [(p.rate, p.setup.trial) for p in probes[-2:]] == [(low, 2), (high, 2)]
    assert answer["disagreements"] == []


def test_without_confirmation_it_ends_when_the_bracket_closes():
    search = Search(10, 1000, resolution=0.1, confirm=False)
    probes = drive(search, lambda rate, _: "held" if rate < 100 else "failed")
    assert all(p.setup.trial == 1 for p in probes)
    assert conclude(probes, search)["ended_by"] == "converged"


def test_trials_that_disagree_widen_the_interval_instead_of_picking_one():
    # The highest rate that held holds once and fails once: the interval goes down to the
    # highest rate that held every time.
    def verdict(rate: int, trial: int) -> str:
        if rate == 387:
            return "held" if trial == 1 else "failed"
        return "held" if rate < 387 else "failed"

    search = Search(50, 1000, resolution=0.05)
    probes = drive(search, verdict)
    answer = conclude(probes, search)
    assert 387 in answer["disagreements"]
    low, high = answer["interval"]
    assert low < 387 < high
    assert answer["max_sustainable_rate"] == low


def test_the_generator_s_limit_ends_the_search_at_least_what_held():
    search = Search(100, 10_000)
    probes = drive(search, lambda rate, _: "held" if rate < 400 else "invalid")
    answer = conclude(probes, search)
    assert [p.rate for p in probes] == [100, 200, 400]
    assert answer["limited_by"] == "generator"
    assert answer["at_least"] is True
    assert answer["max_sustainable_rate"] == 200
    assert answer["first_failing_rate"] is None


def test_everything_holding_up_to_the_highest_rate_is_at_least_that():
    search = Search(100, 700)
    probes = drive(search, lambda *_: "held")
    answer = conclude(probes, search)
    assert [p.rate for p in probes] == [100, 200, 400, 700]
    assert answer["limited_by"] == "max_rate"
    assert answer["max_sustainable_rate"] == 700
    assert answer["at_least"] is True


def test_the_lowest_rate_failing_is_confirmed_and_means_no_capacity_in_range():
    search = Search(100, 700)
    probes = drive(search, lambda *_: "failed")
    answer = conclude(probes, search)
    assert [(p.rate, p.setup.trial) for p in probes] == [(100, 1), (100, 2)]
    assert answer["ended_by"] == "min_rate"
    assert answer["max_sustainable_rate"] is None
    assert answer["first_failing_rate"] == 100


def test_a_stopped_search_reports_what_it_has():
    search = Search(100, 10_000)
    probes = []
    for status in ("held", "held", "failed"):
        rate, _ = search.next()
        probes.append(probe(len(probes) + 1, rate, status))
        search.record(rate, status)
    search.stop("budget")
    answer = conclude(probes, search)
    assert search.next() is None
    assert answer["ended_by"] == "budget"
    assert answer["interval"] == [200, 400]
    assert answer["converged"] is False


def test_the_knee_is_a_range_where_p95_first_rises_faster_than_the_rate():
    probes = [
        probe(1, 100, "held", 20.0),
        probe(2, 200, "held", 21.0),
        probe(3, 400, "held", 24.0),
        probe(4, 600, "held", 60.0),
        probe(5, 800, "failed", 400.0),
    ]
    found = knee(probes)
    assert found["range"] == [400, 600]
    assert found["confidence"] == "high"


def test_one_noisy_probe_makes_no_knee_and_flat_latency_has_none():
    noisy = [
        probe(1, 100, "held", 20.0),
        probe(2, 200, "held", 35.0),  # a hiccup: the next ones are back down
        probe(3, 400, "held", 21.0),
        probe(4, 800, "held", 22.0),
    ]
    found = knee(noisy)
    assert found["range"] is None
    assert "no faster than the rate" in found["reason"]
    assert knee(noisy[:2])["range"] is None  # too few rates to say


def test_invalid_probes_are_not_drawn_into_the_knee_or_the_answer():
    probes = [
        probe(1, 100, "held", 20.0),
        probe(2, 200, "held", 21.0),
        probe(3, 400, "invalid", 500.0),
    ]
    assert knee(probes)["range"] is None
    search = Search(100, 1000)
    for p in probes:
        search.record(p.rate, p.status)
    assert conclude(probes, search)["max_sustainable_rate"] == 200


def test_a_generator_limit_inside_a_bracket_leaves_the_target_s_failure_as_the_limit():
    # 400 failed (the target), then the bisection's 300 was more than the generator could
    # offer: the capacity is still bracketed by the target's failure, and the generator's
    # limit is said beside it, not instead of it.
    search = Search(100, 10_000)
    probes = drive(
        search, lambda rate, _: "held" if rate <= 200 else "invalid" if rate < 400 else "failed"
    )
    assert [p.rate for p in probes] == [100, 200, 400, 300]
    answer = conclude(probes, search)
    assert answer["ended_by"] == "generator"
    assert answer["limited_by"] == "target"
    assert answer["at_least"] is False
    assert answer["interval"] == [200, 400]
    assert answer["first_failing_rate"] == 400
    assert answer["generator_limit"]["rate"] == 300
    assert answer["generator_limit"]["probe"] == 4


def test_no_generator_limit_when_the_generator_kept_up():
    search = Search(100, 700)
    assert conclude(drive(search, lambda *_: "held"), search)["generator_limit"] is None
