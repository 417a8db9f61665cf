"""The live series pushed to a Prometheus remote-write receiver, for CI jobs nobody can scrape.

Once a second a thread of its own takes the series as they stand (the same series as the
``/metrics`` endpoint), timestamps them, and posts them (:mod:`stressbed.results.remote_write`)
to the receiver. The run never waits on it: bodies wait in a bounded queue, the oldest dropped
when it is full (each body holds cumulative counters, so a dropped one costs resolution, not
totals), a failed post is retried with backoff, and what was pushed, retried and dropped is
said at the end. The last push, after the run's last second is folded in, carries its final
counts. Credentials come from the environment only (``STRESSBED_REMOTE_WRITE_BEARER_TOKEN``,
or ``STRESSBED_REMOTE_WRITE_USERNAME`` and ``..._PASSWORD``; ``STRESSBED_REMOTE_WRITE_HEADERS``
for others, ``Name: value`` a line), never the command line.
"""

from __future__ import annotations

import base64
import collections
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..results.live_series import LiveSeries
from ..results.remote_write import Series, write_request

__all__ = ["PushStats", "RemoteWriter", "receiver_url", "remote_write_headers"]

#: Bodies waiting at most (a minute of pushes); past it the oldest is dropped.
QUEUE_MAX = 60
PUSH_EVERY_S = 1.0
POST_TIMEOUT_S = 5.0
#: A failed post is tried again after 0.5 s, 1 s, 2 s ... at most this long apart.
BACKOFF_MAX_S = 8.0
#: At the end: how long the last push (and what still waits) may take.
FLUSH_S = 10.0
PROTOCOL = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "stressbed",
}


@dataclass
class PushStats:
    pushed: int = 0
    retried: int = 0
    dropped: int = 0
    last_error: str | None = None

    def line(self) -> str:
        said = f"{self.pushed:,} pushed, {self.retried:,} retried, {self.dropped:,} dropped"
        return said + (f" (last error: {self.last_error})" if self.last_error else "")


def receiver_url(url: str, option: str, what: str, prefix: str) -> None:
    """A receiver's URL as ``option`` gives it, checked: http(s) with a host (ConfigError
    otherwise), and no credentials in it (they come from ``PREFIX_*`` variables only: a
    URL's would be in argv, which every process on the machine can read)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(option, url, f"an http(s) URL of {what}")
    if parts.username or parts.password:
        raise ConfigError(
            option,
            "(a URL with credentials)",
            f"a URL without them: credentials come from {prefix}_* variables",
        )


def remote_write_headers(
    environ: Mapping[str, str], prefix: str = "STRESSBED_REMOTE_WRITE"
) -> dict[str, str]:
    """The receiver's credentials and headers, from the environment only: ``PREFIX_HEADERS``
    (``Name: value`` lines), ``PREFIX_BEARER_TOKEN``, or ``PREFIX_USERNAME`` and
    ``PREFIX_PASSWORD``."""
    headers: dict[str, str] = {}
    for line in environ.get(f"{prefix}_HEADERS", "").splitlines():
        name, sep, value = line.partition(":")
        if not line.strip():
            continue
        if not sep or not name.strip():
            raise ConfigError(f"{prefix}_HEADERS", "(a line)", "'Name: value' lines")
        headers[name.strip()] = value.strip()
    token = environ.get(f"{prefix}_BEARER_TOKEN")
    user = environ.get(f"{prefix}_USERNAME")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif user:
        secret = environ.get(f"{prefix}_PASSWORD", "")
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode(
            "ascii"
        )
    return headers


class RemoteWriter:
    """Push ``series`` to ``url`` every :data:`PUSH_EVERY_S` from :meth:`start` to
    :meth:`stop`."""

    def __init__(
        self, url: str, series: LiveSeries, headers: Mapping[str, str] | None = None
    ) -> None:
        receiver_url(url, "--remote-write", "a remote-write receiver", "STRESSBED_REMOTE_WRITE")
        self.url = url
        self.series = series
        self.headers = {**PROTOCOL, **(headers or {})}
        self.stats = PushStats()
        self._queue: collections.deque[bytes] = collections.deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="stressbed-rw", daemon=True)

    def start(self) -> RemoteWriter:
        self._thread.start()
        return self

    def stop(self, flush_s: float = FLUSH_S) -> PushStats:
        """Push the series as they stand now (the run's final counts), then what still
        waits, for at most ``flush_s``; what could not go counts as dropped."""
        self._enqueue(self._body())
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self._thread.join(timeout=flush_s)
        with self._lock:
            self.stats.dropped += len(self._queue)
            self._queue.clear()
        return self.stats

    # -- the thread -------------------------------------------------------------------

    def _loop(self) -> None:
        next_at = time.monotonic()
        delay = 0.0
        while True:
            with self._lock:
                if self._stopping and not self._queue:
                    return
            now = time.monotonic()
            if not self._stopping and now >= next_at:
                self._enqueue(self._body())
                next_at = now + PUSH_EVERY_S
            with self._lock:
                body = self._queue[0] if self._queue else None
            if body is None:
                self._wait(next_at - time.monotonic())
                continue
            outcome = self._post(body)
            if outcome != "retry":  # sent, or refused for good: either way it is done
                with self._lock:
                    if self._queue and self._queue[0] is body:
                        self._queue.popleft()
                if outcome == "sent":
                    self.stats.pushed += 1
                else:
                    self.stats.dropped += 1
                delay = 0.0
            else:
                self.stats.retried += 1
                delay = min(BACKOFF_MAX_S, max(0.5, delay * 2))
                if self._stopping:
                    return  # no backoff at the end: what waits is counted dropped
                self._wait(delay)

    def _wait(self, seconds: float) -> None:
        with self._lock:
            if not self._stopping and seconds > 0:
                self._lock.wait(seconds)

    def _enqueue(self, body: bytes | None) -> None:
        if body is None:
            return
        with self._lock:
            if len(self._queue) >= QUEUE_MAX:
                self._queue.popleft()
                self.stats.dropped += 1
            self._queue.append(body)
            self._lock.notify_all()

    def _body(self) -> bytes | None:
        """The series as they stand, timestamped now; None before the run's first second is
        sealed (nothing measured, and the run's identity not yet on the series)."""
        if self.series.sealed is None:
            return None
        now_ms = int(time.time() * 1000)
        series = [
            Series({"__name__": name, **labels}, [(value, now_ms)])
            for name, labels, value in self.series.samples()
        ]
        return write_request(series)

    def _post(self, body: bytes) -> str:
        """``sent``; ``retry`` (no answer, a 5xx or a 429); ``refused`` (another 4xx: the
        receiver will not take this body, sending it again will not help)."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=POST_TIMEOUT_S):
                return "sent"
        except urllib.error.HTTPError as exc:
            self.stats.last_error = f"HTTP {exc.code}"
            return "refused" if 400 <= exc.code < 500 and exc.code != 429 else "retry"
        except (OSError, ValueError) as exc:
            self.stats.last_error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            return "retry"
