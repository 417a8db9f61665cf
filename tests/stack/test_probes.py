"""Probe semantics, table-driven: probe results over time in, state changes out."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stressbed.stack.probes import NO_STARTUP_PROBE_S, ReplicaProbes, ready_within_s
from stressbed.stack.spec import Probe, StackSpec, Target

TARGET = Target("agent", 8080, command=("agent",))
STARTUP = Probe("http", "/healthz", period_s=1, failure_threshold=3)
READY = Probe("http", "/readyz", period_s=2, success_threshold=2, failure_threshold=2)
LIVE = Probe("http", "/healthz", period_s=5, failure_threshold=3, initial_delay_s=10)
SPEC = StackSpec(TARGET, startup_probe=STARTUP, readiness_probe=READY, liveness_probe=LIVE)


def play(spec: StackSpec, steps: list[tuple[float, str, bool]]) -> list[tuple[float, str]]:
    probes = ReplicaProbes(spec, started_at=0.0)
    events = [(0.0, e) for e in probes.initial_events()]
    for at, kind, ok in steps:
        assert kind in probes.due(at), (at, kind, probes.due(at))
        events += [(at, e) for e in probes.record(kind, ok, at)]
    return events


@pytest.mark.parametrize(
    ("spec", "steps", "expected"),
    [
        # Startup gates the rest; readiness needs two successes in a row.
        (
            SPEC,
            [
                (0, "startup", False),
                (1, "startup", True),
                (1, "readiness", True),
                (3, "readiness", True),
            ],
            [(1, "started"), (3, "ready")],
        ),
        # Three startup failures in a row: killed and restarted.
        (
            SPEC,
            [(0, "startup", False), (1, "startup", False), (2, "startup", False)],
            [(2, "startup-failed")],
        ),
        # Readiness toggles without restarting; a success resets the failure count.
        (
            SPEC,
            [
                (0, "startup", True),
                (0, "readiness", True),
                (2, "readiness", True),
                (4, "readiness", False),
                (6, "readiness", True),
                (8, "readiness", False),
                (10, "readiness", False),
                (12, "readiness", True),
                (14, "readiness", True),
            ],
            [(0, "started"), (2, "ready"), (10, "unready"), (14, "ready")],
        ),
        # Liveness waits for its initial delay from the container start; 3 failures restart.
        (
            SPEC,
            [
                (0, "startup", True),
                (10, "liveness", False),
                (15, "liveness", False),
                (20, "liveness", False),
            ],
            [(0, "started"), (20, "liveness-failed")],
        ),
        # No startup probe: started at once; no readiness probe: ready at once.
        (StackSpec(TARGET, liveness_probe=LIVE), [], [(0, "started"), (0, "ready")]),
        (
            replace(SPEC, readiness_probe=None),
            [(0, "startup", True)],
            [(0, "started"), (0, "ready")],
        ),
    ],
)
def test_probe_semantics(spec, steps, expected):
    assert play(spec, steps) == expected


def test_nothing_but_startup_runs_before_it_succeeds():
    probes = ReplicaProbes(SPEC, started_at=0.0)
    assert probes.due(100) == ["startup"]
    probes.record("startup", True, 100)
    assert probes.due(100) == ["readiness", "liveness"]
    assert probes.due(100.5) == ["readiness", "liveness"]  # not run yet: still due
    probes.record("readiness", True, 100.5)
    assert probes.due(101) == ["liveness"]


def test_a_replacement_is_given_the_grace_its_startup_budget_and_a_readiness_pass():
    # Grace 25 s; startup 1 s x 3; readiness 2 s x 2 successes, and one 1 s timeout.
    spec = replace(SPEC, termination_grace_period_s=25)
    assert ready_within_s(spec) == 25 + 3 + 4 + 1
    delayed = replace(spec, readiness_probe=replace(READY, initial_delay_s=5))
    assert ready_within_s(delayed) == 25 + 3 + 5 + 4 + 1
    bare = replace(spec, startup_probe=None, readiness_probe=None)
    assert ready_within_s(bare) == 25 + NO_STARTUP_PROBE_S
