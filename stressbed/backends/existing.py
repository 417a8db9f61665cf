"""``--target-url``: a service someone else runs, standing in for a provisioned stack."""

from __future__ import annotations

from typing import Any

__all__ = ["ExistingService"]


class ExistingService:
    """A :class:`~stressbed.backends.base.Stack` with nothing to provision or remove."""

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def events(self) -> list[dict[str, Any]]:
        return []  # someone else's service: nothing of ours happens to it

    def provision(self) -> str:
        return self.url

    def teardown(self) -> None:
        return  # someone else's service: nothing of ours to remove

    def report(self) -> dict[str, Any]:
        return {"backend": "none", "url": self.url}

    def leftovers(self) -> str:
        return ""

    def failure(self) -> str | None:
        return None  # someone else's service: its failures show in the load's own numbers
