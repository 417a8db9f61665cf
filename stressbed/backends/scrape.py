"""Scraping the target's own Prometheus metrics once a second, on a thread of its own.

``endpoints()`` says, each time, which replicas to ask and where (name -> URL); each page is
parsed at once and only the selected samples are kept (:mod:`stressbed.results.target_metrics`),
so memory grows by a few numbers per replica per second. A replica that does not answer within
the timeout is simply not in that second's data. Bounded: every request has a timeout and
:meth:`Scraper.stop` joins the thread.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..results.target_metrics import MAX_SERIES, Scrape, Selector, increases, parse, series

__all__ = ["Scraper"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
MAX_PAGE = 4 * 2**20  # a metrics page larger than this is cut (and then does not parse)


def fetch(url: str, timeout: float) -> str:
    """One metrics page over plain HTTP (no proxy: the target is local or in-cluster)."""
    with _OPENER.open(url, timeout=timeout) as response:
        return bytes(response.read(MAX_PAGE)).decode("utf-8", errors="replace")


class Scraper:
    def __init__(
        self,
        endpoints: Callable[[], Mapping[str, str]],
        selectors: Sequence[Selector],
        *,
        interval_s: float = 1.0,
        get: Callable[[str, float], str] = fetch,
    ) -> None:
        self.endpoints = endpoints
        self.selectors = list(selectors)
        self.interval_s = interval_s
        self.get = get
        self.scrapes: list[Scrape] = []
        self.failures = 0  # pages that did not come (timeouts, refused: a replica restarting)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def series(self) -> dict[str, list[tuple[int, float]]]:
        with self._lock:
            taken = list(self.scrapes)
        return series(taken)

    def report(self) -> dict[str, Any]:
        """What summary.json's ``stack.target_metrics`` holds: each counter's increase over
        the run, the series (at most MAX_SERIES), the names of those dropped past it, the
        pages that did not come."""
        found = list(self.series().items())
        with self._lock:
            taken = list(self.scrapes)
        return {
            "increase": increases(taken),
            "series": {
                key: [[t, round(v, 6)] for t, v in points] for key, points in found[:MAX_SERIES]
            },
            "dropped": [key for key, _ in found[MAX_SERIES:]],
            "missed": self.failures,
        }

    def _run(self) -> None:
        timeout = max(0.1, self.interval_s * 0.8)
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="scrape") as pool:
            while True:  # one scrape at least, however soon it is stopped
                began = time.monotonic()
                targets = dict(self.endpoints())
                pages = pool.map(lambda item: self._one(item, timeout), targets.items())
                taken = [scrape for scrape in pages if scrape is not None]
                with self._lock:
                    self.scrapes.extend(taken)
                if self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - began))):
                    return

    def _one(self, item: tuple[str, str], timeout: float) -> Scrape | None:
        name, url = item
        at = time.time()
        try:
            text = self.get(url, timeout)
        except Exception:  # a replica that is restarting or busy: no sample this second
            with self._lock:
                self.failures += 1
            return None
        return parse(text, self.selectors, at, name)
