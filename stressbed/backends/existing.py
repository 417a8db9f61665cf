"""``--target-url``: a service someone else runs, standing in for a provisioned stack.

With ``--target-metrics-url`` its own Prometheus metrics are scraped once a second while the
fleet runs (the series the stack spec selects), as a provisioned stack's replicas are. With
faults on the path (``latency``, ``loss``, ``reset``), the fleet goes through the local
balancer in front of the target, where they are applied (:mod:`.local.path`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..results.redact import redact
from ..results.target_metrics import Selector
from ..scenario.faults import Fault
from .base import new_event
from .local.path import FaultyPath
from .scrape import Scraper

__all__ = ["ExistingService"]


class ExistingService:
    """A :class:`~stressbed.backends.base.Stack` with nothing to provision or remove."""

    def __init__(
        self,
        url: str,
        metrics_url: str | None = None,
        selectors: Sequence[Selector] = (),
        *,
        path_faults: bool = False,
    ) -> None:
        self.url = url
        self.target_url = url
        self.metrics_url = metrics_url
        self._events: list[dict[str, Any]] = []
        self._path = FaultyPath(url, self._event) if path_faults else None
        self._scraper = (
            Scraper(lambda: {"target": metrics_url}, selectors)
            if metrics_url and selectors
            else None
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self._events)  # only the path's faults: the service is someone else's

    def _event(self, kind: str, **fields: Any) -> None:
        self._events.append(new_event("stack", kind, **fields))

    def provision(self) -> str:
        if self._path is not None:
            self.url = self._path.start()
        if self._scraper is not None:
            self._scraper.start()
        return self.url

    def teardown(self) -> None:
        if self._path is not None:  # the faults undone, the balancer in front stopped
            self._path.close()
        if self._scraper is not None:  # someone else's service: nothing else of ours to remove
            self._scraper.stop()

    def report(self) -> dict[str, Any]:
        # What goes into summary.json: the URL the fleet loaded, its user:password left out.
        found: dict[str, Any] = {"backend": "none", "url": redact(self.target_url)}
        if self._path is not None:
            found["through"] = self.url  # the balancer the faults were applied in
        if self._scraper is not None:
            found["target_metrics"] = self._scraper.report()
        return found

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        """The path's faults, in the balancer in front (the plan refuses the others)."""
        if self._path is not None and faults:
            self._path.schedule(faults, started_at)

    def leftovers(self) -> str:
        return ""

    def failure(self) -> str | None:
        # Someone else's service: its failures show in the load's own numbers; the balancer
        # in front is ours.
        return self._path.failure() if self._path is not None else None
