"""The fleet's coordinator in a cluster: one pod that starts the runners as one fleet.

    python -m stressbed.coordinator --runners N --runner-url 'http://runners-{index}.runners:6565'

It waits until every runner's k6 answers on its REST API, paused with every VU initialised
(a runner whose name does not resolve yet is simply not ready yet); runs setup() once, in
runner 0, and hands its data to every runner; then releases all of them at once (one
concurrent PATCH each, behind a barrier) and reports the start skew. It speaks JSON lines on
stdout (``ready``, ``setup``, ``started``, or ``failed`` with the reason) and exits 0 once the
fleet is started, 3 when it could not be (a runner never got ready, setup failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence

from . import _k6api as k6api
from .release import ReleaseFailed, release_together, setup_once

__all__ = ["coordinate", "main"]

READY_STATUS = 4  # k6's ExecutionStatus "paused before run": every VU initialised
POLL_S = 0.5


def coordinate(
    apis: Sequence[str],
    ready_timeout_s: float,
    setup_timeout_s: float,
    emit: Callable[[dict[str, object]], None],
) -> int:
    deadline = time.monotonic() + ready_timeout_s
    waiting = set(range(len(apis)))
    while waiting:
        for index in sorted(waiting):
            try:
                status = k6api.status(apis[index], timeout=2.0)
            except (OSError, ValueError, KeyError):
                continue  # not up yet (or its name not in DNS yet)
            if status.get("status", 0) >= READY_STATUS and status.get("paused", False):
                waiting.discard(index)
                emit({"event": "ready", "index": index})
        if not waiting:
            break
        if time.monotonic() > deadline:
            emit(
                {
                    "event": "failed",
                    "reason": f"runner {min(waiting)} was not ready within {ready_timeout_s:g} s",
                }
            )
            return 3
        time.sleep(POLL_S)
    failure = setup_once(apis, setup_timeout_s)
    if failure is not None:
        emit({"event": "failed", "reason": failure})
        return 3
    emit({"event": "setup", "runner": 0})
    try:
        started_at, skew_ms = release_together(apis)
    except ReleaseFailed as exc:
        emit({"event": "failed", "reason": str(exc)})
        return 3
    emit({"event": "started", "t": started_at, "skew_ms": round(skew_ms, 3)})
    return 0


def _emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stressbed.coordinator", description=__doc__)
    parser.add_argument("--runners", type=int, required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--runner-url", help="runner i's k6 REST API, with {index} in it")
    where.add_argument("--runner-urls", help="every runner's k6 REST API, comma-separated")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    if args.runner_url:
        apis = [args.runner_url.format(index=i) for i in range(args.runners)]
    else:
        apis = args.runner_urls.split(",")
        if len(apis) != args.runners:
            parser.error(f"--runner-urls names {len(apis)} runners, --runners says {args.runners}")
    return coordinate(apis, args.ready_timeout, args.setup_timeout, _emit)


if __name__ == "__main__":
    sys.exit(main())
