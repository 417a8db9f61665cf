"""Several inputs as one stream of records in time order, each input read as what it is.

An input's kind is told from its first bytes (after gzip): a JSON object with ``log`` is a
HAR file, one with ``resourceSpans`` OTLP JSON; anything else is an access log whose format
is sniffed from its first lines (or given with ``--format``). The streams are merged by time
(each file is in time order, as logs and exports are), so rotated logs given in any order
come out as one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .access_log import read_access_log, sniff
from .files import Opened, open_input
from .har import read_har
from .hits import Hit, Tally
from .otlp import read_otlp

__all__ = ["INPUT_FORMATS", "Reading", "kind_of", "read_inputs"]

#: What ``--format`` takes besides an nginx log_format string.
INPUT_FORMATS = ("combined", "common", "stressbed", "har", "otlp")
#: Records between two progress reports.
PROGRESS_EVERY = 65_536


@dataclass
class Reading:
    """The merged records (``hits``) and, once they are read, each input's tally."""

    hits: Iterator[Hit]
    tallies: list[Tally] = field(default_factory=list)
    size: int = 0


def kind_of(opened: Opened) -> str:
    """``har``, ``otlp`` or ``log``, from the input's first bytes."""
    head = opened.head(4096).lstrip()
    if head.startswith(b"{"):
        text = head[:4096]
        if b'"resourceSpans"' in text:
            return "otlp"
        if b'"log"' in text:
            return "har"
    return "log"


def read_inputs(
    paths: list[Path],
    fmt: str | None,
    stack: ExitStack,
    progress: Callable[[int, int], None] | None = None,
) -> Reading:
    """Open every input (closed with ``stack``) and merge their records by time; ``progress``
    is told the bytes read of all the inputs' bytes now and then."""
    if not paths:
        raise ConfigError("INPUT", [], "at least one access log, HAR or OTLP JSON file")
    opened = [stack.enter_context(open_input(path)) for path in paths]
    total = sum(o.size for o in opened)
    reading = Reading(iter(()), size=total)
    streams = []
    for item in opened:
        # A format named for one kind is every input's; a log's format says they are logs.
        kind = fmt if fmt in ("har", "otlp") else "log" if fmt is not None else kind_of(item)
        if kind == "har":
            tally = Tally(str(item.path), "har", unit="entry")
            streams.append(read_har(item.path, tally))
        elif kind == "otlp":
            tally = Tally(str(item.path), "otlp", unit="span")
            streams.append(read_otlp(item.path, tally))
        else:
            log_format = sniff(item.head().splitlines()[:200], fmt, str(item.path))
            tally = Tally(str(item.path), log_format.name, unit="line")
            streams.append(read_access_log(item, log_format, tally))
        reading.tallies.append(tally)
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=_time)
    reading.hits = _reported(merged, opened, total, progress)
    return reading


def _time(hit: Hit) -> float:
    return hit.time


def _reported(
    hits: Iterator[Hit],
    opened: list[Opened],
    total: int,
    progress: Callable[[int, int], None] | None,
) -> Iterator[Hit]:
    if progress is None:
        yield from hits
        return
    for n, hit in enumerate(hits, 1):
        if n % PROGRESS_EVERY == 0:
            progress(sum(o.position() for o in opened), total)
        yield hit
    progress(total, total)
