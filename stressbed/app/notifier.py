"""Alerts as they happen: ``--notify URL`` posts one JSON document per event, in order, in
Alertmanager's webhook shape (version 4), so that whatever takes Alertmanager's webhooks takes
stressbed's: a threshold failing fleet-wide (``StressbedThresholdFailed``, firing), the run
aborting (``StressbedRunAborted``, firing) and the run ending (``StressbedRunEnded``: resolved
with a pass, firing otherwise). Each document also carries ``stressbed``: the event, its
sequence number, the run's identity, and at the end the verdict and where the results are.

A threshold is watched on the seconds the whole fleet has merged (the live series, once a
second); one whose failure only the end shows (a check, a population's threshold, a failure
in the last seconds) is posted at the end, before the run's end. The run never waits on a
post: a thread of its own sends them in order, each tried three times (a 4xx other than 429
is not retried), and at the end it has :data:`FLUSH_S` to send what waits; what could not go
is said. Credentials come from the environment only (``STRESSBED_NOTIFY_BEARER_TOKEN``, or
``STRESSBED_NOTIFY_USERNAME`` and ``..._PASSWORD``, ``STRESSBED_NOTIFY_HEADERS``).
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from ..results.live_series import LiveSeries
from ..results.summary import RunReport
from ..scenario.thresholds import Threshold
from .remote_writer import receiver_url

__all__ = ["FLUSH_S", "Notifier"]

WATCH_EVERY_S = 1.0
POST_TIMEOUT_S = 5.0
TRIES = 3
#: At the end: how long what still waits may take to go.
FLUSH_S = 10.0
#: Alertmanager's "no end" (a firing alert).
NO_END = "0001-01-01T00:00:00Z"
#: Fleet events that mean the run stopped before its end.
ABORTS = ("aborted", "runner-failed", "stack-failed", "deadline", "interrupted")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Notifier:
    """Posts the run's alerts to ``url`` from :meth:`start` to :meth:`finish`."""

    def __init__(
        self, url: str, series: LiveSeries, headers: Mapping[str, str] | None = None
    ) -> None:
        receiver_url(url, "--notify", "a webhook receiver", "STRESSBED_NOTIFY")
        self.url = url
        self.series = series
        self.headers = {"Content-Type": "application/json", "User-Agent": "stressbed",
                        **(headers or {})}  # fmt: skip
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None
        self._seq = 0
        self._events = threading.RLock()  # the watch (its thread) and the end (the caller's)
        self._failing: set[str] = set()  # thresholds already posted as failing
        self._queue: collections.deque[bytes] = collections.deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._watching = True
        self._thread = threading.Thread(target=self._loop, name="stressbed-notify", daemon=True)

    def start(self) -> Notifier:
        self._thread.start()
        return self

    # -- the events ---------------------------------------------------------------------

    def _identity(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.series.identity.items()}

    def _document(
        self,
        event: str,
        alertname: str,
        *,
        firing: bool,
        labels: Mapping[str, str],
        summary: str,
        extra: Mapping[str, Any] | None = None,
    ) -> bytes:
        identity = self._identity()
        self._seq += 1
        now = _now()
        all_labels = {"alertname": alertname, **identity, **labels}
        fingerprint = hashlib.sha256(json.dumps(all_labels, sort_keys=True).encode()).hexdigest()
        status = "firing" if firing else "resolved"
        alert = {
            "status": status,
            "labels": all_labels,
            "annotations": {"summary": summary},
            "startsAt": now,
            "endsAt": NO_END if firing else now,
            "generatorURL": self.series.url or "",
            "fingerprint": fingerprint[:16],
        }
        document = {
            "version": "4",
            "groupKey": f"stressbed:{identity.get('run_id', '')}:{event}",
            "truncatedAlerts": 0,
            "status": status,
            "receiver": "stressbed",
            "groupLabels": {"alertname": alertname},
            "commonLabels": all_labels,
            "commonAnnotations": alert["annotations"],
            "externalURL": self.series.url or "",
            "alerts": [alert],
            "stressbed": {"event": event, "seq": self._seq, **identity, **(extra or {})},
        }
        return json.dumps(document).encode()

    def _threshold_failed(self, threshold: Threshold, observed: str, when: str) -> None:
        label = f"{threshold.key}: {threshold.expression}"
        if label in self._failing:
            return
        self._failing.add(label)
        body = self._document(
            "threshold-failed",
            "StressbedThresholdFailed",
            firing=True,
            labels={"threshold": label, "severity": "critical"},
            summary=f"threshold {label} fails fleet-wide {when}: observed {observed}",
            extra={"threshold": label, "observed": observed},
        )
        self._enqueue(body)

    def _watch(self) -> None:
        """A threshold that fails now on the merged seconds, posted once."""
        if self.series.sealed is None:
            return
        with self._events:
            for threshold, state, observed in self.series.states():
                if state == "fail" and observed is not None:
                    self._threshold_failed(threshold, f"{observed:g}", "while the run goes on")

    def finish(self, report: RunReport, results: str, flush_s: float = FLUSH_S) -> str:
        """The run has ended: the failures only its end showed, an abort, its end; then at
        most ``flush_s`` for what waits. One line saying what went."""
        with self._lock:
            self._watching = False
        with self._events:
            self._end(report, results)
        self.stop(flush_s)
        left = f", {self.failed:,} not delivered" if self.failed else ""
        error = f" (last error: {self.last_error})" if self.last_error else ""
        return f"{self.sent:,} sent{left}{error}"

    def _end(self, report: RunReport, results: str) -> None:
        self._watch()
        for result in report.thresholds:
            if result.outcome == "failed":
                value = result.observed
                observed = "no data" if math.isnan(value) else f"{value:g}"
                self._threshold_failed(result.threshold, observed, "over the whole run")
        stopped = [e for e in report.events if e.get("event") in ABORTS]
        if stopped:
            first = stopped[0]
            why = first.get("reason") or first.get("expression") or first.get("event")
            self._enqueue(
                self._document(
                    "aborted",
                    "StressbedRunAborted",
                    firing=True,
                    labels={"reason": str(first.get("event")), "severity": "critical"},
                    summary=f"the run stopped before its end: {why}",
                    extra={"reason": str(why)},
                )
            )
        verdict = report.verdict.value
        severity = "info" if verdict == "pass" else "critical"
        self._enqueue(
            self._document(
                "ended",
                "StressbedRunEnded",
                firing=verdict != "pass",
                labels={"verdict": verdict, "severity": severity},
                summary=f"{verdict}: {report.message}",
                extra={"verdict": verdict, "exit_code": report.exit_code, "results": results},
            )
        )

    def stop(self, flush_s: float = 0.0) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout=flush_s)
        with self._lock:
            self.failed += len(self._queue)
            self._queue.clear()
            self._stopping = True

    # -- the thread -----------------------------------------------------------------------

    def _enqueue(self, body: bytes) -> None:
        with self._lock:
            self._queue.append(body)
            self._lock.notify_all()

    def _loop(self) -> None:
        next_watch = time.monotonic()
        while True:
            with self._lock:
                if self._stopping and not self._queue:
                    return
                watching = self._watching and not self._stopping
            if watching and time.monotonic() >= next_watch:
                self._watch()
                next_watch = time.monotonic() + WATCH_EVERY_S
            with self._lock:
                body = self._queue[0] if self._queue else None
                if body is None:
                    if not self._stopping:
                        self._lock.wait(max(0.0, next_watch - time.monotonic()))
                    continue
            delivered = self._post(body)
            with self._lock:
                if self._queue and self._queue[0] is body:
                    self._queue.popleft()
            if delivered:
                self.sent += 1
            else:
                self.failed += 1

    def _post(self, body: bytes) -> bool:
        delay = 0.5
        for attempt in range(TRIES):
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers=self.headers
            )
            try:
                with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S):
                    return True
            except urllib.error.HTTPError as exc:
                self.last_error = f"HTTP {exc.code}"
                exc.close()
                if 400 <= exc.code < 500 and exc.code != 429:
                    return False
            except (OSError, ValueError) as exc:
                self.last_error = str(exc)[:200]
            if attempt + 1 < TRIES:
                time.sleep(delay)
                delay *= 2
        return False
