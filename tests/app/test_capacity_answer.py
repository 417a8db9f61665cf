"""The scale-out's one line says what the judgement found: a stall is seconds in violation,
and a step nothing could be judged after is not measured, never "the SLOs held throughout"."""

from __future__ import annotations

from types import SimpleNamespace

from stressbed import error_rate, latency
from stressbed.app.capacity_answer import scale_out_line
from stressbed.results.aggregates import Window
from stressbed.results.scaleout import scale_out

STEP = 1000.0
SLOS = [latency("p(95) < 100ms"), error_rate("< 1%")]
PLAN = SimpleNamespace(unit="req/s")


def answered(vus: float = 100) -> Window:
    window = Window(requests=100, iterations=100, vus=vus)
    window.duration.extend([20.0] * 100)
    return window


def line(windows: dict[int, Window]) -> str:
    found = scale_out(windows, STEP, STEP + 30, SLOS)
    return scale_out_line(PLAN, {**found, "from": 50, "to": 900})  # type: ignore[arg-type]


def test_a_stalled_scale_out_is_in_violation():
    windows = {int(STEP) + i: answered() for i in range(-5, 30)}
    windows.update({int(STEP) + i: Window(vus=300) for i in range(12)})  # nothing came back
    text = line(windows)
    assert "held throughout" not in text
    assert "SLOs held again after 12 s (12 s in violation, 12 s stalled)" in text


def test_a_scale_out_with_nothing_judged_after_the_step_is_not_measured():
    windows = {int(STEP) + i: answered() for i in range(-5, 0)}
    text = line(windows)
    assert "held throughout" not in text
    assert text.endswith("not measured: no second after the step could be judged against the SLOs")


def test_a_scale_out_that_never_broke_held_throughout():
    windows = {int(STEP) + i: answered() for i in range(-5, 30)}
    assert line(windows).endswith("; the SLOs held throughout")
