"""The shared teardown: steps in order, each bounded, failures collected, the last one always."""

from __future__ import annotations

import time

import pytest

from stressbed.backends._teardown import Step, run_steps
from stressbed.errors import ProvisionError
from stressbed.fleet.process import TeardownAbandoned


def test_a_step_that_raises_or_hangs_does_not_stop_the_later_ones():
    done: list[str] = []
    said: list[tuple[str, dict]] = []

    def boom() -> None:
        raise OSError("device busy")

    def refused() -> None:
        raise ProvisionError("pulumi destroy failed: quota; finish with `x`")

    steps = [
        Step("undo the faults", boom),
        Step("stop the scraper", lambda: time.sleep(30), timeout_s=0.2),
        Step("destroy", refused),
        Step("remove", lambda: done.append("remove")),
    ]
    started = time.monotonic()
    failures = run_steps(steps, lambda kind, **fields: said.append((kind, fields)))
    assert time.monotonic() - started < 5
    assert done == ["remove"]
    assert failures == [
        "undo the faults: OSError: device busy",
        "stop the scraper: did not finish within 0.2 s",
        "pulumi destroy failed: quota; finish with `x`",  # a user's message stays as it is
    ]
    failed = zip(steps[:3], failures, strict=True)
    assert said == [("teardown-step-failed", {"step": s.name, "reason": f}) for s, f in failed]


def test_an_abandoned_teardown_stops_the_step_it_waited_for_and_goes_no_further():
    done: list[str] = []

    def abandoned() -> None:
        raise TeardownAbandoned  # the user gave the teardown up while this step ran

    steps = [
        Step("destroy", abandoned, on_abandon=lambda: done.append("stopped")),
        Step("remove", lambda: done.append("remove")),
    ]
    with pytest.raises(TeardownAbandoned):
        run_steps(steps)
    assert done == []  # nothing after it runs
