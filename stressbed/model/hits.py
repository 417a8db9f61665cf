"""The one record every reader yields, and the tally of what a reader could not read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXAMPLES", "NEVER_READ", "Hit", "Tally"]

#: Request headers no reader ever reads: credentials (a header of these is dropped whole).
NEVER_READ = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
#: The bad lines kept as examples per input (each cut to EXAMPLE_CHARS).
EXAMPLES = 3
EXAMPLE_CHARS = 160


@dataclass(slots=True)
class Hit:
    """One request as the input saw it.

    ``time``: unix seconds (when the request arrived where the input says so, else when it
    was logged); ``path``: the raw path without its query; ``query``: the raw query string
    ('' for none); ``client``: who sent it, for grouping only (an address, a client id), never
    written out; ``route``: a route template the input carries (a trace's ``http.route``);
    ``body``: the request's JSON body, parsed, when the input has it; ``headers``: the request
    headers a reader kept (lower-case names), never ``Authorization``, ``Cookie`` or
    ``Set-Cookie``. Figures the input does not carry are None, never 0.
    """

    time: float
    method: str
    path: str
    query: str = ""
    status: int | None = None
    duration_s: float | None = None
    request_bytes: int | None = None
    #: The whole request's bytes (its line, headers and body: nginx's ``$request_length``),
    #: where only that is known; ``request_bytes`` is the body's.
    request_length: int | None = None
    response_bytes: int | None = None
    client: str | None = None
    route: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Tally:
    """What one input held: records read, records that could not be, and a few of the latter.

    ``unit``: what a record is ("line", "entry", "span"); ``format``: the format the input was
    read as (what a user passes to read it otherwise)."""

    source: str
    format: str
    unit: str = "line"
    read: int = 0
    bad: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    #: Why records were skipped (not bad: a client span, another origin), by reason.
    skipped_by: dict[str, int] = field(default_factory=dict)

    def failed(self, record: str) -> None:
        """Count a record that could not be read, keeping the first few as examples."""
        self.bad += 1
        if len(self.examples) < EXAMPLES:
            text = record.rstrip("\r\n")
            cut = text[:EXAMPLE_CHARS] + ("..." if len(text) > EXAMPLE_CHARS else "")
            self.examples.append(cut)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skipped_by[reason] = self.skipped_by.get(reason, 0) + 1

    @property
    def bad_share(self) -> float | None:
        """Bad records over all records seen; None when the input held none."""
        seen = self.read + self.bad
        return self.bad / seen if seen else None
