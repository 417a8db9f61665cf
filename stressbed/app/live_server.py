"""The run's live endpoint: a small HTTP server on loopback (by default) that serves the
fleet's merged seconds while the run goes on.

``GET /metrics`` is :class:`~stressbed.results.live_series.LiveSeries` in Prometheus's text
format, for a Prometheus to scrape. It serves from its own threads: a scrape never waits on
the fleet, and the fleet never waits on a scrape (the series' lock is held only to fold a
second in or to write the text).
"""

from __future__ import annotations

import itertools
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..results.live_series import LiveSeries

__all__ = ["CONTENT_TYPE", "LiveServer"]

#: Prometheus's text format, version 0.0.4: what every Prometheus 2.x and 3.x reads (the
#: series' names are plain ASCII, so nothing needs 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: After the run: how long at most to wait for a last scrape, and from how long it is said.
LINGER_MAX_S = 60.0
LINGER_SAID_S = 3.0
SCRAPES_KEPT = 8


class LiveServer:
    """Serve ``series`` on ``host:port`` (0: any free port) until :meth:`close`."""

    def __init__(self, series: LiveSeries, host: str = "127.0.0.1", port: int = 0) -> None:
        self.series = series
        kind = type(
            "LiveHTTPServer",
            (ThreadingHTTPServer,),
            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET},
        )
        #: When /metrics was served (monotonic), the last few: how often it is scraped.
        self.scrapes: list[float] = []
        self._scraped = threading.Condition()
        self._httpd = kind((host, port), _handler(series, self._served))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="stressbed-live", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}"

    def _served(self) -> None:
        with self._scraped:
            self.scrapes = [*self.scrapes[-(SCRAPES_KEPT - 1) :], time.monotonic()]
            self._scraped.notify_all()

    def linger(self, most_s: float = LINGER_MAX_S) -> bool:
        """Once the run has ended (its last seconds folded in), wait for one more scrape, so
        that whoever scrapes gets the final counts: at most twice the interval seen between
        scrapes and ``most_s``; at once if nobody has scraped. Whether one came."""
        ended = time.monotonic()
        with self._scraped:
            if not self.scrapes:
                return False
            gaps = [b - a for a, b in itertools.pairwise(self.scrapes)]
            interval = statistics.median(gaps) if gaps else LINGER_MAX_S / 2
            deadline = ended + min(most_s, 2 * interval + 1)
            if deadline - ended > LINGER_SAID_S:
                print(
                    f"stressbed: live: waiting up to {deadline - ended:.0f} s for a last scrape",
                    file=sys.stderr,
                )
            while self.scrapes[-1] < ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._scraped.wait(left)
            return True

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(series: LiveSeries, served: Callable[[], None]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "the live endpoint serves /metrics")
                return
            body = series.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            served()

        def log_message(self, *args: object) -> None:
            return  # a scrape a second is not news

    return Handler
