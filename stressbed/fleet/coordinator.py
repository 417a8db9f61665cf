"""The fleet's coordinator in a cluster: one pod that starts the runners as one fleet and
watches them as one.

    python -m stressbed.coordinator --runners N --runner-url 'http://runners-{index}.runners:6565' \
        [--control-url 'http://runners-{index}.runners:6566' --abort-thresholds JSON]

It waits until every runner's k6 answers on its REST API, paused with every VU initialised
(a runner whose name does not resolve yet is simply not ready yet); runs setup() once, in
runner 0, and hands its data to every runner; then releases all of them at once (one
concurrent PATCH each, behind a barrier) and reports the start skew. With ``--control-url``
it then stays with the fleet: once a second it takes every runner's snapshot from its
control endpoint (:mod:`.control`, with the run's token from ``$STRESSBED_CONTROL_TOKEN``,
never an argument), merges them (:class:`~.live.LiveMerge`), prints the
fleet's progress, and judges the ``abort_on_fail`` thresholds on the merged data; one that
fails is printed and every runner is stopped (asked again each second until it has ended), as
the local fleet does. A runner that does not answer is polled on (``unreachable`` after 3 s,
``reachable`` when it answers again) and counts as ended (``gone``) when nothing listens where
it served (two connections refused in a row: its process has ended) or after 30 s out of
reach. It ends when every runner has, or at ``--watch-timeout`` seconds from its own start.

It speaks JSON lines on stdout (``ready``, ``setup``, ``started``, ``progress``, ``second``
(each second the whole fleet has closed, merged), ``aborted``, ``unreachable``,
``reachable``, ``gone``, ``finished``, or ``failed`` with the reason) and
exits 0 once the fleet is started (and, when watching, has ended), 3 when it could not be
started (a runner never got ready, setup failed).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..errors import ConfigError
from ..results.verdict import judge
from ..scenario.thresholds import Threshold
from . import _k6api as k6api
from . import control
from .live import LiveMerge, PrintedSeconds
from .release import ReleaseFailed, release_together, setup_once

__all__ = ["coordinate", "main", "watch"]

POLL_S = 0.5
WATCH_S = 1.0
#: A runner that has not answered for this long is said to be out of reach ...
UNREACHABLE_S = 3.0
#: ... and for this long, to have ended (its pod is gone): the fleet goes on without it.
GONE_AFTER_S = 30.0
#: Connections refused in a row (nothing listens where it served: its process ended).
REFUSED_ENDS = 2


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
            if k6api.awaiting_release(status):
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
    deadline: float,
    emit: Callable[[dict[str, object]], None],
    token: str,
) -> None:
    """Follow the released fleet until every runner has ended (or the monotonic ``deadline``):
    its merged progress once a second, and every runner stopped (asked again each second
    until it has ended) once an abort threshold fails. ``token``: the run's control token."""
    fleet = _Watched(controls, emit, token)
    aborted = False
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(16, len(controls))) as pool:
        while not fleet.all_ended():
            tick = time.monotonic()
            if tick > deadline:
                emit({"event": "watch-timeout", "seconds": round(tick - started, 1)})
                break
            elapsed = tick - started
            list(pool.map(fleet.take, fleet.running()))
            try:  # one bad tick is said, not fatal: the runners must still be followed
                emit({"event": "progress", **fleet.live.progress(elapsed, 0.0).to_dict()})
                breached = (
                    None if aborted else fleet.live.breached(abort_thresholds, judge, elapsed)
                )
            except Exception as exc:
                emit({"event": "watch-error", "reason": f"{type(exc).__name__}: {exc}"})
                breached = None
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
            if aborted:  # until each has ended: a stop that did not get through is sent again
                list(pool.map(fleet.stop, fleet.running()))
            time.sleep(max(0.0, WATCH_S - (time.monotonic() - tick)))
    with fleet.locked():
        fleet.live.seal_rest()  # every runner has ended: its last seconds, said
    emit({"event": "finished", "runners": len(fleet.ended)})


class _Watched:
    """The runners as the coordinator follows them: their snapshots, merged; who answers."""

    def __init__(
        self, controls: Sequence[str], emit: Callable[[dict[str, object]], None], token: str
    ):
        self.urls = list(controls)
        self.token = token
        self._said = threading.Lock()

        def said(event: dict[str, object]) -> None:
            with self._said:  # the snapshots are taken on several threads: one line at a time
                emit(event)

        self.emit = said
        # Each second every runner has closed, said once (the command following the run
        # draws its live page and endpoint from them).
        self.live = LiveMerge(len(controls), PrintedSeconds(said))
        self.since = [0] * len(controls)
        self.failing_since: list[float | None] = [None] * len(controls)
        self.refused = [0] * len(controls)  # connections refused in a row
        self.unreachable: set[int] = set()
        self.ended: set[int] = set()
        self._lock = threading.Lock()

    def running(self) -> list[int]:
        return [i for i in range(len(self.urls)) if i not in self.ended]

    def locked(self) -> threading.Lock:
        return self._lock

    def all_ended(self) -> bool:
        return len(self.ended) == len(self.urls)

    def take(self, index: int) -> None:
        try:
            data = control.snapshot(self._resolved(index), self.since[index], self.token)
            with self._lock:
                self.live.feed(index, data)
            self.since[index] = int(data.get("latest", self.since[index]))
        except Exception as exc:  # a runner that does not answer this second; never fatal
            self._missed(index, exc)
            return
        self.failing_since[index] = None
        if index in self.unreachable:
            self.unreachable.discard(index)
            self.emit({"event": "reachable", "index": index})
        if not data.get("running", True):
            self._end(index)

    def stop(self, index: int) -> None:
        with contextlib.suppress(Exception):  # not answering: asked again next second
            control.stop(self._resolved(index), self.token)

    def _missed(self, index: int, exc: Exception) -> None:
        now = time.monotonic()
        since = self.failing_since[index]
        if since is None:
            self.failing_since[index] = since = now
            self.refused[index] = 0
        if _refused(exc):  # nothing listens where it served: its process has ended
            self.refused[index] += 1
            if self.refused[index] >= REFUSED_ENDS:
                self.emit({"event": "gone", "index": index, "reason": _reason(exc)})
                self._end(index)
                return
        if now - since >= UNREACHABLE_S and index not in self.unreachable:
            self.unreachable.add(index)
            self.emit({"event": "unreachable", "index": index, "reason": _reason(exc)})
        # Its k6 ended and its pod went (the name no longer resolves, nothing listens), or it
        # has been out of reach for long: the fleet goes on without it.
        if now - since >= GONE_AFTER_S:
            self.emit({"event": "gone", "index": index, "reason": _reason(exc)})
            self._end(index)

    def _end(self, index: int) -> None:
        self.ended.add(index)
        with self._lock:
            self.live.finish(index)

    def _resolved(self, index: int) -> str:
        """The runner's URL with its address instead of its name, looked up once: a pod keeps
        its IP for life, and a lookup per runner per second would load the cluster's DNS."""
        url = self.urls[index]
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        if not host or _is_address(host):
            return url
        try:
            address = socket.getaddrinfo(host, parts.port, type=socket.SOCK_STREAM)[0][4][0]
        except (OSError, IndexError):
            return url  # not resolvable yet: by name this time, looked up again next time
        shown = f"[{address}]" if ":" in str(address) else str(address)
        self.urls[index] = url = parts._replace(netloc=f"{shown}:{parts.port}").geturl()
        return url


def _refused(exc: BaseException) -> bool:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, ConnectionRefusedError)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


_PRINTED = threading.Lock()


def _emit(event: dict[str, object]) -> None:
    with _PRINTED:  # whole lines, whichever thread speaks
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
    parser.add_argument(
        "--watch-timeout",
        type=float,
        default=3600.0,
        help="seconds from the coordinator's start after which it stops watching",
    )
    args = parser.parse_args(argv)
    begun = time.monotonic()
    apis = _urls(parser, args.runners, args.runner_url, args.runner_urls, "--runner-urls")
    controls = _urls(parser, args.runners, args.control_url, args.control_urls, "--control-urls")
    try:
        thresholds = [Threshold.from_dict(t) for t in json.loads(args.abort_thresholds)]
    except (ValueError, TypeError, AttributeError, ConfigError) as exc:
        parser.error(f"--abort-thresholds: {exc}")
    token = os.environ.pop(control.TOKEN_ENV, "")
    if controls and not token:
        parser.error(f"--control-url: {control.TOKEN_ENV} is not set; expected the run's token")
    code = coordinate(apis, args.ready_timeout, args.setup_timeout, _emit)
    if code == 0 and controls:
        watch(controls, thresholds, begun + args.watch_timeout, _emit, token)
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
