"""The history gate's rule on synthetic series: noise alone rarely fails it (at most its
stated rate), a 20 % step fails it from the first slow run, naming the build it began with,
an improvement never does, and a fixed build passes at once."""

from __future__ import annotations

from dataclasses import replace

from stressbed.history.trend import GATE_FALSE_ALARM_RATE, gate, trend, worse_direction

from ..app.test_trend_cli import P95, runs

SERIES = 500


def test_noise_alone_fails_the_gate_at_most_at_its_stated_rate():
    failed = sum(not gate(runs(21, step_at=99, seed=seed), 20).passed for seed in range(SERIES))
    assert failed / SERIES <= GATE_FALSE_ALARM_RATE


def test_a_step_fails_the_gate_from_its_first_run_naming_its_build():
    for upto in (20, 21, 25):
        named = []
        for seed in range(100):
            answer = gate(runs(upto, seed=seed), 20)
            (failure,) = [f for f in answer.failures if f.metric == P95]
            named.append(failure.build)
            assert failure.after > failure.before
        assert sum(b == "b20" for b in named) >= 90  # the build the step began with
        # Else one just before it (noise that looked slow) or one of the slow ones.
        assert set(named) <= {f"b{i}" for i in range(18, upto + 1)}


def test_an_improvement_passes_and_so_does_a_fixed_build():
    faster = runs(25, step=-0.2)
    assert gate(faster, 20).passed
    (change,) = next(m for m in trend(faster) if m.metric == P95).changes
    assert change.kind == "improvement"
    fixed = [*runs(24), replace(runs(25, step_at=99)[24], run_id="fixed", build="fix")]
    assert gate(fixed, 20).passed


def test_an_error_rate_step_is_judged_in_points_not_as_a_share_of_nothing():
    series = runs(21, step_at=99)
    errors = [
        replace(e, figures={**e.figures, "http_req_failed rate": 0.02 if i == 20 else 0.0})
        for i, e in enumerate(series)
    ]
    (failure,) = gate(errors, 20, ["http_req_failed rate"]).failures
    assert (failure.before, failure.after, failure.relative) == (0.0, 0.02, None)
    tiny = [replace(e, figures={**e.figures, "http_req_failed rate": 0.001}) for e in errors[-1:]]
    assert gate([*errors[:-1], *tiny], 20, ["http_req_failed rate"]).passed  # 0.1 pp: noise


def test_which_way_is_worse():
    assert worse_direction("http_req_duration p(95)") == 1
    assert worse_direction("http_req_duration{name:report} p(99)") == 1
    assert worse_direction("http_req_failed rate") == 1
    assert worse_direction("http_reqs rate") == -1
    assert worse_direction("capacity max_sustainable_rate") == -1
    assert worse_direction("fault kill time_to_recover_s") == 1
    assert worse_direction("population connected_share") == -1
    assert worse_direction("something else") == 0


def test_a_metric_not_measured_in_the_newest_run_is_said_not_judged():
    series = runs(21)
    newest = replace(series[-1], figures={**series[-1].figures, P95: None})
    answer = gate([*series[:-1], newest], 20)
    assert P95 in answer.not_judged
    assert P95 not in answer.judged
