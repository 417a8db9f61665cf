"""Reading runner pods: which pod states fail a run, and which do not."""

from __future__ import annotations

import time

from stressbed.backends.kubernetes import PodState, runner_failure


def test_runner_failure_is_quiet_while_pods_are_fine():
    now = time.time()
    for phase in ("Pending", "Running", "Succeeded"):
        assert runner_failure(PodState("p", 0, phase, now), now, 60) is None
