"""``--target-url``: a service someone else runs, standing in for a provisioned stack.

With ``--target-metrics-url`` its own Prometheus metrics are scraped once a second while the
fleet runs (the series the stack spec selects), as a provisioned stack's replicas are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..results.target_metrics import Selector
from ..scenario.faults import Fault
from .scrape import Scraper

__all__ = ["ExistingService"]


class ExistingService:
    """A :class:`~stressbed.backends.base.Stack` with nothing to provision or remove."""

    def __init__(
        self, url: str, metrics_url: str | None = None, selectors: Sequence[Selector] = ()
    ) -> None:
        self.url = url
        self.metrics_url = metrics_url
        self._scraper = (
            Scraper(lambda: {"target": metrics_url}, selectors)
            if metrics_url and selectors
            else None
        )

    @property
    def events(self) -> list[dict[str, Any]]:
        return []  # someone else's service: nothing of ours happens to it

    def provision(self) -> str:
        if self._scraper is not None:
            self._scraper.start()
        return self.url

    def teardown(self) -> None:
        if self._scraper is not None:  # someone else's service: nothing else of ours to remove
            self._scraper.stop()

    def report(self) -> dict[str, Any]:
        found: dict[str, Any] = {"backend": "none", "url": self.url}
        if self._scraper is not None:
            found["target_metrics"] = self._scraper.report()
        return found

    def schedule_faults(self, faults: Sequence[Fault], started_at: float) -> None:
        """Nothing to apply them to: the plan refuses faults that need a stack."""

    def leftovers(self) -> str:
        return ""

    def failure(self) -> str | None:
        return None  # someone else's service: its failures show in the load's own numbers
