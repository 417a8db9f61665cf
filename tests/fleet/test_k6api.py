"""k6's status, read one way for each question asked of it: is every VU initialised (a runner's
own wait), and is it waiting for the fleet's release (the coordinator's)."""

from __future__ import annotations

import pytest

from stressbed.fleet import _k6api as k6api

INIT_DONE, STARTED, RUNNING = 3, 5, 7


@pytest.mark.parametrize(
    ("status", "initialised", "awaiting_release"),
    [
        ({"status": INIT_DONE, "paused": True}, False, False),  # VUs still being made
        ({"status": k6api.PAUSED_BEFORE_RUN, "paused": True}, True, True),
        ({"status": STARTED, "paused": False}, True, False),  # released already
        ({"status": k6api.PAUSED_BEFORE_RUN}, True, False),  # says nothing of a pause
        ({}, False, False),
    ],
)
def test_initialised_and_awaiting_release_are_two_questions(status, initialised, awaiting_release):
    assert k6api.initialised(status) is initialised
    assert k6api.awaiting_release(status) is awaiting_release
