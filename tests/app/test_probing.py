"""A probe's VU pool (:func:`stressbed.app.probing.vu_pool`): Little's law on the flow's think
time and its requests' latency."""

from __future__ import annotations

from stressbed import latency
from stressbed.app.probing import MAX_VUS_PER_RUNNER, vu_pool

SLO = [latency("p(95) < 100ms")]


def test_the_think_time_is_in_the_pool_and_only_the_latency_gets_headroom():
    # 100/s of two requests 3 s apart: about 300 VUs busy at least. The pool covers the
    # 3 s pause, and the two requests at four times their guessed latency, twice over.
    pre, pool = vu_pool(100, 1, think_s=3.0, requests=2, slos=SLO, seen_s=None)
    assert pool == 100 * (3.0 + 4 * 0.2) * 2 + 1
    assert pre >= 100 * 3.2
    # Measured by a probe that held: 3.05 s an iteration, 50 ms of it the requests'.
    pre, pool = vu_pool(100, 1, think_s=3.0, requests=2, slos=SLO, seen_s=3.05)
    assert pool == round(100 * (3.0 + 0.2) * 2) + 1  # the SLO's bound, as the latency is lower
    assert pre >= 100 * 3.05


def test_a_flow_without_think_time_keeps_its_pool():
    # One request, no pause: the pool of a latency-bound flow is what it was before the think
    # time counted (Little's law at four times the latency, twice over).
    assert vu_pool(100, 1, think_s=0.0, requests=1, slos=SLO, seen_s=None) == (32, 81)
    assert vu_pool(100, 1, think_s=0.0, requests=1, slos=SLO, seen_s=0.5) == (151, 401)


def test_the_pool_is_capped_per_runner():
    _, pool = vu_pool(5000, 2, think_s=10.0, requests=1, slos=SLO, seen_s=None)
    assert pool == 2 * MAX_VUS_PER_RUNNER
