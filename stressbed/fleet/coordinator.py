"""The fleet's coordinator in a cluster: one pod that starts the runners as one fleet and
watches them as one.

    python -m stressbed.coordinator --runners N --runner-url 'http://runners-{index}.runners:6565' \
        [--control-url 'http://runners-{index}.runners:6566' --abort-thresholds JSON]

It waits until every runner's k6 answers on its REST API, paused with every VU initialised
(a runner whose name does not resolve yet is simply not ready yet); runs setup() once, in
runner 0, and hands its data to every runner; then releases all of them at once (one
concurrent PATCH each, behind a barrier) and reports the start skew. With ``--control-url``
it then stays with the fleet: once a second it takes every runner's snapshot from its
control endpoint (:mod:`.control`), merges them (:class:`~.live.LiveMerge`), prints the
fleet's progress, and judges the ``abort_on_fail`` thresholds on the merged data; one that
fails is printed and every runner is stopped, as the local fleet does. It ends when every
runner has.

It speaks JSON lines on stdout (``ready``, ``setup``, ``started``, ``progress``, ``aborted``,
``finished``, or ``failed`` with the reason) and exits 0 once the fleet is started (and, when
watching, has ended), 3 when it could not be started (a runner never got ready, setup failed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import ConfigError, DocumentError
from ..results.verdict import judge
from ..scenario.thresholds import Threshold
from . import _k6api as k6api
from . import control
from .live import LiveMerge
from .release import ReleaseFailed, release_together, setup_once

__all__ = ["coordinate", "main", "watch"]

READY_STATUS = 4  # k6's ExecutionStatus "paused before run": every VU initialised
POLL_S = 0.5
WATCH_S = 1.0
#: Snapshots a runner may fail to give in a row before it counts as ended (its pod is gone).
GONE_AFTER = 3


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


def watch(
    controls: Sequence[str],
    abort_thresholds: Sequence[Threshold],
    timeout_s: float,
    emit: Callable[[dict[str, object]], None],
) -> None:
    """Follow the released fleet until every runner has ended (or ``timeout_s``): its merged
    progress once a second, and every runner stopped once an abort threshold fails."""
    live = LiveMerge(len(controls))
    since = [0] * len(controls)
    misses = [0] * len(controls)
    ended: set[int] = set()
    aborted = False
    started = time.monotonic()

    def take(index: int) -> None:
        try:
            data = control.snapshot(controls[index], since[index])
            live.feed(index, data)
            since[index] = int(data.get("latest", since[index]))
            misses[index] = 0
            if not data.get("running", True):
                ended.add(index)
        except (OSError, ValueError, TypeError, DocumentError):
            misses[index] += 1  # a runner whose k6 ended stops answering, then its pod goes
            if misses[index] >= GONE_AFTER:
                ended.add(index)
        if index in ended:
            live.finish(index)

    with ThreadPoolExecutor(max_workers=min(16, len(controls))) as pool:
        while len(ended) < len(controls):
            tick = time.monotonic()
            elapsed = tick - started
            if elapsed > timeout_s:
                emit({"event": "watch-timeout", "seconds": round(timeout_s, 1)})
                break
            list(pool.map(take, [i for i in range(len(controls)) if i not in ended]))
            emit({"event": "progress", **live.progress(elapsed, 0.0).to_dict()})
            breached = None if aborted else live.breached(abort_thresholds, judge, elapsed)
            if breached is not None:
                aborted = True
                emit(
                    {
                        "event": "aborted",
                        "threshold": breached.key,
                        "expression": breached.expression,
                        "elapsed_s": round(elapsed, 3),
                    }
                )
                list(pool.map(_stop, [controls[i] for i in range(len(controls)) if i not in ended]))
            time.sleep(max(0.0, WATCH_S - (time.monotonic() - tick)))
    emit({"event": "finished", "runners": len(ended)})


def _stop(url: str) -> None:
    with contextlib.suppress(OSError):  # it has ended already, or will at the Job's deadline
        control.stop(url)


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
    watching = parser.add_mutually_exclusive_group()
    watching.add_argument("--control-url", help="runner i's control endpoint, with {index}")
    watching.add_argument("--control-urls", help="every runner's control endpoint, comma-separated")
    parser.add_argument(
        "--abort-thresholds",
        default="[]",
        help="the abort_on_fail thresholds to judge live, as a JSON list of Threshold.to_dict()",
    )
    parser.add_argument("--watch-timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    apis = _urls(parser, args.runners, args.runner_url, args.runner_urls, "--runner-urls")
    controls = _urls(parser, args.runners, args.control_url, args.control_urls, "--control-urls")
    try:
        thresholds = [Threshold.from_dict(t) for t in json.loads(args.abort_thresholds)]
    except (ValueError, TypeError, AttributeError, ConfigError) as exc:
        parser.error(f"--abort-thresholds: {exc}")
    code = coordinate(apis, args.ready_timeout, args.setup_timeout, _emit)
    if code == 0 and controls:
        watch(controls, thresholds, args.watch_timeout, _emit)
    return code


def _urls(
    parser: argparse.ArgumentParser,
    count: int,
    template: str | None,
    listed: str | None,
    option: str,
) -> list[str]:
    if template:
        return [template.format(index=i) for i in range(count)]
    if not listed:
        return []
    urls = listed.split(",")
    if len(urls) != count:
        parser.error(f"{option} names {len(urls)} runners, --runners says {count}")
    return urls


if __name__ == "__main__":
    sys.exit(main())
