"""The ingest path: validation of report batches, a bounded queue, and the sink flusher.

The queue is bounded in points, not batches: when a batch would not fit, the request gets 429
with Retry-After and nothing of it is queued. The flusher writes batches to the sink with
retries (exponential back-off with full jitter) behind a circuit breaker; while the breaker is
open the queue fills, readiness turns false at the high watermark, and clients are told to back
off - memory never grows past the bound.

When to acknowledge is ``ack``: "queued" answers 202 once the batch is in the queue (fast; a
replica killed before its next flush loses what it acknowledged), "flushed" once the sink has
stored it (a kill loses nothing acknowledged; every report waits up to a flush interval).

A full disk (the sink's ENOSPC or EDQUOT, :class:`~.sink.SinkFull`) is not retried and never
acknowledged as stored: with "flushed" the reports of the batches not stored are answered 503
with Retry-After (refused: the client sends them again), with "queued" those batches, already
acknowledged, are lost; both are counted in ``agent_points_dropped{reason="disk_full"}``. The
sink is written on a worker thread, so a slow disk never holds the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import time
from typing import Any

from . import metrics
from .breaker import CircuitBreaker, State
from .config import Config
from .sink import Batch, Sink, SinkFull

log = logging.getLogger("stressbed_agent.ingest")

MAX_NAME = 200
MAX_LABELS = 32


class BadRequest(Exception):
    """A client error: the message names the field and what is allowed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_report(body: Any, max_points: int) -> tuple[str, list[dict[str, Any]]]:
    """The agent id and validated points of a report body, or BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    agent = body.get("agent_id")
    if not isinstance(agent, str) or not 0 < len(agent) <= MAX_NAME:
        raise BadRequest(f"agent_id: expected a string of 1..{MAX_NAME} characters")
    points = body.get("points")
    if not isinstance(points, list) or not points:
        raise BadRequest("points: expected a non-empty list")
    if len(points) > max_points:
        raise BadRequest(f"points: {len(points)} in one batch; at most {max_points}", 413)
    for i, point in enumerate(points):
        _check_point(point, i)
    return agent, points


def _check_point(point: Any, i: int) -> None:
    if not isinstance(point, dict):
        raise BadRequest(f"points[{i}]: expected an object")
    name = point.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise BadRequest(f"points[{i}].name: expected a string of 1..{MAX_NAME} characters")
    for key in ("ts", "value"):
        value = point.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"points[{i}].{key}: expected a number")
        if not math.isfinite(value) or abs(value) > 1e300:
            raise BadRequest(f"points[{i}].{key}: expected a finite number")
    labels = point.get("labels", {})
    if not isinstance(labels, dict) or len(labels) > MAX_LABELS:
        raise BadRequest(f"points[{i}].labels: expected an object of at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(value, str) or len(key) > MAX_NAME or len(value) > MAX_NAME:
            raise BadRequest(f"points[{i}].labels.{key}: expected a string of at most {MAX_NAME}")


class Ingest:
    def __init__(self, config: Config, sink: Sink) -> None:
        self.config = config
        self.sink = sink
        self.batches: collections.deque[Batch] = collections.deque()
        #: Per queued batch (same order), what its report waits on when ack is "flushed":
        #: True once stored, False when the disk was full (refused, never stored).
        self.waiters: collections.deque[asyncio.Future[bool] | None] = collections.deque()
        self.points = 0
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        self.breaker.on_change = self._breaker_changed
        self.wakeup = asyncio.Event()
        metrics.breaker_state.set(0)

    @property
    def above_watermark(self) -> bool:
        return self.points > self.config.high_watermark * self.config.queue_max_points

    def offer(self, agent: str, points: list[dict[str, Any]]) -> asyncio.Future[bool] | bool:
        """Queue a batch whole, or refuse it whole (False) when it does not fit. With ack
        "flushed", a future that is True once the sink has stored the batch, False once a full
        disk refused it."""
        if self.points + len(points) > self.config.queue_max_points:
            metrics.dropped.labels("queue_full").inc(len(points))
            return False
        self.batches.append((agent, points, time.time()))
        waiter = None
        if self.config.ack == "flushed":
            waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.points += len(points)
        metrics.accepted.inc(len(points))
        metrics.queue_depth.set(self.points)
        # A report waiting to be stored is flushed at once (with whatever else is queued: a
        # group commit), not at the next interval.
        if waiter is not None or self.points >= self.config.flush_batch_points:
            self.wakeup.set()
        return True if waiter is None else waiter

    def retry_after_s(self) -> int:
        """A hint for 429s: longer while the sink's breaker is open."""
        if self.breaker.state is State.OPEN:
            return max(1, math.ceil(self.config.breaker_reset_s))
        return 1

    async def run(self, stopping: asyncio.Event) -> None:
        """Flush until ``stopping`` is set and the queue is empty."""
        while not (stopping.is_set() and not self.batches):
            if not self.batches:
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), self.config.flush_interval_s)
                continue
            if not self.breaker.allow():
                await asyncio.sleep(min(self.config.breaker_reset_s, 0.1))
                if stopping.is_set() and self.breaker.state is State.OPEN:
                    break  # draining into an open breaker would never end
                continue
            await self._flush_some()

    async def _flush_some(self) -> None:
        take: list[Batch] = []
        waiting: list[asyncio.Future[bool] | None] = []
        count = 0
        while self.batches and count < self.config.flush_batch_points:
            batch = self.batches.popleft()
            take.append(batch)
            waiting.append(self.waiters.popleft())
            count += len(batch[1])
        for attempt in range(self.config.sink_retries + 1):
            try:
                # Off the event loop: a slow disk holds this flusher only, never a request.
                await asyncio.to_thread(self.sink.write, take)
            except SinkFull as full:
                self._disk_full(take, waiting, full)
                return
            except OSError as exc:
                self.breaker.failure()
                if attempt == self.config.sink_retries or not self.breaker.allow():
                    # Put the batches back at the front: nothing accepted is lost silently.
                    self.batches.extendleft(reversed(take))
                    self.waiters.extendleft(reversed(waiting))
                    log.warning("sink write failed, %d points kept: %s", count, exc)
                    return
                cap = min(self.config.retry_max_s, self.config.retry_base_s * 2**attempt)
                await asyncio.sleep(random.uniform(0, cap))  # full jitter
                continue
            self.breaker.success()
            self._stored(take, waiting)
            return

    def _stored(self, take: list[Batch], waiting: list[asyncio.Future[bool] | None]) -> None:
        count = sum(len(points) for _, points, _ in take)
        self.points -= count
        metrics.flushed.inc(count)
        metrics.queue_depth.set(self.points)
        for waiter in waiting:
            if waiter is not None and not waiter.done():
                waiter.set_result(True)

    def _disk_full(
        self, take: list[Batch], waiting: list[asyncio.Future[bool] | None], full: SinkFull
    ) -> None:
        """The batches stored before the disk filled are done; the others never will be:
        refused (their reports answered 503) or, acknowledged already, lost."""
        self._stored(take[: full.stored], waiting[: full.stored])
        rest, refused = take[full.stored :], waiting[full.stored :]
        count = sum(len(points) for _, points, _ in rest)
        self.points -= count
        metrics.queue_depth.set(self.points)
        metrics.dropped.labels("disk_full").inc(count)
        for waiter in refused:
            if waiter is not None and not waiter.done():
                waiter.set_result(False)
        acknowledged = self.config.ack == "queued"
        log.warning(
            "sink disk full, %d points %s: %s",
            count,
            "lost (acknowledged when queued)" if acknowledged else "refused",
            full,
        )

    def _breaker_changed(self, state: State) -> None:
        metrics.breaker_state.set(state.value)
        log.warning("sink circuit breaker is now %s", state.name.lower())
