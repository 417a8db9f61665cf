"""Starting a fleet through k6's REST API: setup() once, then every runner released at once.

Used by the local fleet (runners on this machine) and by the coordinator in a cluster
(runners in pods), so both start the same way.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Sequence

from . import _k6api as k6api

__all__ = ["ReleaseFailed", "k6_error", "release_together", "setup_once"]


class ReleaseFailed(Exception):
    """A runner's k6 could not be resumed: the run cannot start as one fleet."""


def setup_once(apis: Sequence[str], timeout_s: float) -> str | None:
    """Run setup() in the first runner and hand its data to all; a failure message or None."""
    try:
        data = k6api.run_setup(apis[0], timeout_s)
        if data is not None:
            for api in apis:
                k6api.set_setup_data(api, data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"runner 0: setup() failed: {k6_error(exc)}"
    return None


def release_together(apis: Sequence[str]) -> tuple[float, float]:
    """Resume every k6 at once (one thread each, behind a barrier); returns when the first
    acknowledged (unix time) and the spread of the acknowledgements in milliseconds."""
    barrier = threading.Barrier(len(apis))
    acked: list[float] = [0.0] * len(apis)
    errors: dict[int, str] = {}

    def go(index: int) -> None:
        barrier.wait()
        try:
            k6api.resume(apis[index])
        except Exception as exc:  # reported as this runner's failure below
            errors[index] = k6_error(exc)
        acked[index] = time.time()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(apis))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        index = min(errors)
        raise ReleaseFailed(f"runner {index}: k6 did not resume: {errors[index]}")
    return min(acked), (max(acked) - min(acked)) * 1000.0


def k6_error(exc: BaseException) -> str:
    """k6's own words for a failed API call, where it gave any."""
    body = getattr(exc, "read", None)
    if callable(body):
        with contextlib.suppress(Exception):
            data = json.loads(body())
            return str(data["errors"][0].get("detail") or data["errors"][0].get("title"))
    return str(exc)
