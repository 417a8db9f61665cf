"""The run's live endpoint: a small HTTP server on loopback (by default) that serves the
fleet's merged seconds while the run goes on.

``GET /metrics`` is :class:`~stressbed.results.live_series.LiveSeries` in Prometheus's text
format, for a Prometheus to scrape; ``GET /`` is the live page (:mod:`.live_page`), which asks
``GET /live.json`` each second, and ``GET /report.html`` is the run's report once written.
It serves from its own threads: a scrape never waits on the fleet, and the fleet never waits
on a scrape (the series' lock is held only to fold a second in or to read it).
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

from ..results.live_html import POLL_MS
from ..results.live_series import LiveSeries
from .live_page import LivePage

__all__ = ["CONTENT_TYPE", "LiveServer"]

#: Prometheus's text format, version 0.0.4: what every Prometheus 2.x and 3.x reads (the
#: series' names are plain ASCII, so nothing needs 1.0.0's escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: After the run: how long at most to wait for a last scrape, and from how long it is said.
LINGER_MAX_S = 60.0
LINGER_SAID_S = 3.0
SCRAPES_KEPT = 8
#: A page that asked within this many seconds is open: the end waits for its next ask.
PAGE_OPEN_S = 5.0


class LiveServer:
    """Serve ``series`` on ``host:port`` (0: any free port) until :meth:`close`."""

    def __init__(
        self,
        series: LiveSeries,
        host: str = "127.0.0.1",
        port: int = 0,
        page: LivePage | None = None,
    ) -> None:
        self.series = series
        self.page = page
        kind = type(
            "LiveHTTPServer",
            (ThreadingHTTPServer,),
            {"address_family": socket.AF_INET6 if ":" in host else socket.AF_INET},
        )
        #: When /metrics was served (monotonic), the last few: how often it is scraped.
        self.scrapes: list[float] = []
        #: When a live page last asked for its update (monotonic), the last few.
        self.polls: list[float] = []
        self._scraped = threading.Condition()
        self._httpd = kind((host, port), _handler(series, page, self._served))
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

    def _served(self, what: str) -> None:
        with self._scraped:
            kept = self.scrapes if what == "scrape" else self.polls
            kept[:] = [*kept[-(SCRAPES_KEPT - 1) :], time.monotonic()]
            self._scraped.notify_all()

    def linger(self, most_s: float = LINGER_MAX_S) -> bool:
        """Once the run has ended (its last seconds folded in, the page told), wait for one
        more scrape, so that whoever scrapes gets the final counts (at most twice the interval
        seen between scrapes and ``most_s``), and for one more ask of a live page open now,
        so that it shows the verdict (at most two of its intervals); at once if nobody has
        scraped and no page is open. Whether each one awaited came."""
        ended = time.monotonic()
        with self._scraped:
            waits: list[tuple[list[float], float]] = []
            if self.scrapes:
                gaps = [b - a for a, b in itertools.pairwise(self.scrapes)]
                interval = statistics.median(gaps) if gaps else LINGER_MAX_S / 2
                waits.append((self.scrapes, ended + min(most_s, 2 * interval + 1)))
            if self.polls and ended - self.polls[-1] < PAGE_OPEN_S:
                waits.append((self.polls, ended + min(most_s, 2 * POLL_MS / 1000 + 1)))
            if not waits:
                return False
            longest = max(deadline for _, deadline in waits) - ended
            if longest > LINGER_SAID_S:
                print(
                    f"stressbed: live: waiting up to {longest:.0f} s for a last scrape",
                    file=sys.stderr,
                )
            came = True
            for served, deadline in waits:
                while served[-1] < ended:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        came = False
                        break
                    self._scraped.wait(left)
            return came

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(
    series: LiveSeries, page: LivePage | None, served: Callable[[str], None]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(series.exposition(), CONTENT_TYPE)
                served("scrape")
            elif page is not None and path in ("/", "/index.html"):
                self._send(page.html(), "text/html; charset=utf-8")
            elif page is not None and path == "/live.json":
                self._send(page.update(), "application/json")
                served("poll")
            elif page is not None and path == "/favicon.ico":  # a browser asks: none
                self.send_response(204)
                self.end_headers()
            elif page is not None and path == "/report.html" and page.report() is not None:
                report = page.report()
                assert report is not None
                self._send(report.read_bytes(), "text/html; charset=utf-8")
            else:
                known = "/metrics" if page is None else "/, /live.json, /report.html, /metrics"
                self.send_error(404, f"the live server serves {known}")

        def _send(self, body: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return  # a scrape a second is not news

    return Handler
