"""Writes a scenario counts, so that the run can tell acknowledged writes that were lost.

    Writes(request="report", writer="agent_id", items="points",
           read_back="/v1/agents/{writer}/stored", token="STRESSBED_AGENT_TOKEN")

Each response of the request ``report`` that acknowledges it (a status it ``expect``\\s, 2xx
without) adds the number of ``items`` in its JSON body to a k6 counter tagged with the
``writer`` the body names. After the load, before teardown, stressbed asks the target what it
stored of each writer: ``GET read_back`` with ``{writer}`` filled in (percent-encoded) and, when
``token`` names an environment variable, ``Authorization: Bearer <its value>``. The target
answers ``{"stored": N}``, optionally with ``"by_second": {"<unix second>": n}`` (when it
accepted them), which places a loss in the fault window it happened in. Acknowledged but not
stored is a lost write (the ``lost_writes`` resilience threshold judges it).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..errors import ConfigError
from ._jsonpath import parse_json_path

__all__ = ["ACKED_METRIC", "WRITER_TAG", "Writes"]

#: The k6 counter the runtime adds acknowledged items to, tagged with WRITER_TAG.
ACKED_METRIC = "stressbed_acked_writes"
WRITER_TAG = "writer"
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")


@dataclass(frozen=True)
class Writes:
    """Which request writes, who wrote it and how much, and how to read it back."""

    request: str
    read_back: str
    writer: str = "agent_id"
    items: str | None = None  # None: one write per request
    token: str | None = None  # the environment variable holding the read-back's bearer token

    def __post_init__(self) -> None:
        if not isinstance(self.request, str) or not self.request:
            raise ConfigError("writes.request", self.request, "the name of a request")
        parse_json_path(self.writer, "writes.writer")
        if self.items is not None:
            parse_json_path(self.items, "writes.items")
        path = self.read_back
        if not isinstance(path, str) or not path.startswith("/") or "{writer}" not in path:
            raise ConfigError(
                "writes.read_back", path, "a path with {writer}, like '/v1/agents/{writer}/stored'"
            )
        if self.token is not None and not _ENV_NAME.fullmatch(str(self.token)):
            raise ConfigError(
                "writes.token", self.token, "the name of an environment variable (A-Z 0-9 _)"
            )

    def url(self, target: str, writer: str) -> str:
        """The read-back URL of one writer on ``target``."""
        encoded = urllib.parse.quote(writer, safe="")
        return target.rstrip("/") + self.read_back.replace("{writer}", encoded)

    def to_config(self) -> dict[str, object]:
        """What the k6 runtime reads (the read-back is stressbed's, not k6's)."""
        return {
            "request": self.request,
            "writer": list(parse_json_path(self.writer, "writes.writer")),
            "items": None if self.items is None else list(parse_json_path(self.items, "")),
            "metric": ACKED_METRIC,
            "tag": WRITER_TAG,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "request": self.request,
            "writer": self.writer,
            "items": self.items,
            "read_back": self.read_back,
            "token": self.token,  # a variable's name, never its value
        }
