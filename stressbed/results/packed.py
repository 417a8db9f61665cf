"""A runner's windows in compact form: sketches as narrow integer arrays, compressed in chunks.

Written as JSON objects (one per second, every bucket a number in a list), a runner-hour of
1 s windows is about 8 MB, and read back it is a few hundred thousand Python objects: a fleet
of 64 such runners did not fit a CI job's memory. Version 2 of the runner document keeps the
windows' scalars (requests, failures, VUs, ...) as plain JSON columns, one number a second,
and their sketches packed: :data:`CHUNK_WINDOWS` consecutive windows at a time, column by
column, each column in the narrowest integer type that holds it, zlib-compressed and base64
in the document. The bucket keys are delta-coded along the whole chunk, so that a running sum
gives them back.

A population's seconds (encoding 2; 1 is read too) are an ``agents`` object beside them, only
when some window has agents: the seconds that do, their counts as columns, their tallies by
reason, and their four sketches packed the same way (each agent window's sketches numbered
by their place in its ``sketches`` list, 0 first).

Reading keeps the chunks packed. :class:`PackedWindows` is a read-only mapping that decodes a
window only when it is asked for; the merge (:mod:`stressbed.results.merge`) decodes one chunk
of each runner at a time, in time order, so its memory follows the window count, not runners
times windows.

A chunk, before zlib (little-endian)::

    b"SBW1"  n_windows:u32  n_sketches:u32  n_buckets:u32  7 type codes (b, h, i or q)
    per window:  sketches (how many; the first is the window's duration)     int[n_windows]
    per sketch:  name (0: duration; i: names[i - 1]), count, zeros, buckets   int[n_sketches] x4
                 (in an agents chunk: name i is the window's sketches[i])
                 sum, min, max                                                f64[n_sketches] x3
    per bucket:  key delta, count                                             int[n_buckets] x2

This module needs only the standard library to pack (the runner image has no numpy); the
decoding side is :mod:`stressbed.results.unpack`.
"""

from __future__ import annotations

import base64
import itertools
import struct
import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import DocumentError
from .agents import COUNTS, SKETCHES, TALLIES
from .aggregates import Window
from .sketch import Sketch

__all__ = [
    "CHUNK_WINDOWS",
    "ENCODING",
    "ENCODINGS",
    "HEADER",
    "INT_CODES",
    "MAGIC",
    "SCALARS",
    "check_packed",
    "pack_windows",
]

#: What the ``windows`` object of a runner document says it is (2: it may hold ``agents``).
ENCODING = "stressbed.packed-windows/2"
#: The encodings read back.
ENCODINGS = ("stressbed.packed-windows/1", ENCODING)
#: Windows a chunk holds, decoded together: 64 s of 1 s windows (a power of two, not a minute).
CHUNK_WINDOWS = 64
#: The windows' scalar fields, kept as plain JSON columns (one value per second).
SCALARS = ("requests", "failed", "iterations", "dropped", "acked", "vus", "vus_max")
#: The integer type codes of :mod:`array`, narrowest first, with their byte widths.
INT_CODES = {"b": 1, "h": 2, "i": 4, "q": 8}
#: magic, windows, sketches, buckets, then the type codes of the 7 integer columns.
HEADER = struct.Struct("<4sIII7s")
#: What a chunk starts with: its layout, version 1.
MAGIC = b"SBW1"
_LITTLE = sys.byteorder == "little"


def pack_windows(windows: Mapping[int, Window]) -> dict[str, Any]:
    """The version-2 ``windows`` object of ``windows``: JSON-ready."""
    seconds = sorted(windows)
    names = sorted({name for window in windows.values() for name in window.names})
    index = {name: i + 1 for i, name in enumerate(names)}
    columns: dict[str, list[Any]] = {name: [] for name in SCALARS}
    statuses: dict[str, dict[str, int]] = {}
    checks: dict[str, dict[str, int]] = {}
    for second in seconds:
        window = windows[second]
        for name in SCALARS:
            columns[name].append(getattr(window, name))
        if window.statuses:
            statuses[str(second)] = dict(sorted(window.statuses.items()))
        if window.checks_failed:
            checks[str(second)] = dict(sorted(window.checks_failed.items()))
    sketches = [
        [(0, w.duration), *((index[n], s) for n, s in sorted(w.names.items()))]
        for w in (windows[s] for s in seconds)
    ]
    agents = _pack_agents(windows, seconds)
    return {
        "encoding": ENCODING,
        "chunk_windows": CHUNK_WINDOWS,
        "seconds": seconds,
        **columns,
        "statuses": statuses,
        "checks_failed": checks,
        "names": names,
        "chunks": _chunks(sketches),
        **({"agents": agents} if agents is not None else {}),
    }


def _pack_agents(windows: Mapping[int, Window], seconds: Sequence[int]) -> dict[str, Any] | None:
    """The ``agents`` object: the seconds with agents, their counts, tallies and sketches;
    None when no window has any (a run without a population)."""
    have = [s for s in seconds if windows[s].agents is not None]
    if not have:
        return None
    agents = [windows[s].agents for s in have]
    out: dict[str, Any] = {"seconds": have}
    for name in COUNTS:
        out[name] = [getattr(a, name) for a in agents]
    for name in TALLIES:
        out[name] = {
            str(s): dict(sorted(a.tally(name).items()))
            for s, a in zip(have, agents, strict=True)
            if a is not None and a.tally(name)
        }
    out["sketches"] = list(SKETCHES)
    out["chunks"] = _chunks(
        [[(i, s) for i, (_, s) in enumerate(a.sketches())] for a in agents if a is not None]
    )
    return out


def _chunks(sketches: Sequence[Sequence[tuple[int, Sketch]]]) -> list[str]:
    """Each window's numbered sketches, packed CHUNK_WINDOWS windows a chunk."""
    return [
        base64.b64encode(_pack_chunk(sketches[i : i + CHUNK_WINDOWS])).decode("ascii")
        for i in range(0, len(sketches), CHUNK_WINDOWS)
    ]


def _pack_chunk(windows: Sequence[Sequence[tuple[int, Sketch]]]) -> bytes:
    per_window: list[int] = []
    name: list[int] = []
    count: list[int] = []
    zeros: list[int] = []
    buckets: list[int] = []
    total = array("d")
    low = array("d")
    high = array("d")
    deltas: list[int] = []
    counts: list[int] = []
    last = 0  # keys are delta-coded along the whole chunk: one running sum decodes them
    for sketches in windows:
        per_window.append(len(sketches))
        for number, sketch in sketches:
            keys = sorted(sketch.buckets)
            name.append(number)
            count.append(sketch.count)
            zeros.append(sketch.zeros)
            buckets.append(len(keys))
            total.append(sketch.total)
            low.append(sketch.minimum)
            high.append(sketch.maximum)
            for key in keys:
                deltas.append(key - last)
                last = key
            counts.extend(sketch.buckets[k] for k in keys)
    ints = [per_window, name, count, zeros, buckets, deltas, counts]
    packed = [_narrow(values) for values in ints]
    floats = [total, low, high]
    if not _LITTLE:
        for column in floats:
            column.byteswap()
    head = HEADER.pack(
        MAGIC, len(windows), len(name), len(deltas), "".join(c for c, _ in packed).encode()
    )
    body = b"".join([head, *(data for _, data in packed), *(f.tobytes() for f in floats)])
    return zlib.compress(body, 6)


def _narrow(values: list[int]) -> tuple[str, bytes]:
    """``values`` in the narrowest signed integer array that holds them, little-endian."""
    low, high = (min(values), max(values)) if values else (0, 0)
    for code, width in INT_CODES.items():
        bound = 1 << (8 * width - 1)
        if -bound <= low and high < bound:
            column = array(code, values)
            if not _LITTLE:
                column.byteswap()
            return code, column.tobytes()
    raise DocumentError("window", high, "counts and keys that fit 64 bits")


def check_packed(data: Mapping[str, Any]) -> None:
    """DocumentError naming the field of a packed ``windows`` object that is wrong. The
    chunks themselves are checked when they are decoded."""
    if data.get("encoding") not in ENCODINGS:
        raise DocumentError("result.windows.encoding", data.get("encoding"), " or ".join(ENCODINGS))
    seconds = data.get("seconds")
    if type(seconds) is not list or not set(map(type, seconds)) <= {int}:
        raise DocumentError("result.windows.seconds", str(seconds)[:40], "a list of unix seconds")
    if any(b <= a for a, b in itertools.pairwise(seconds)):
        raise DocumentError("result.windows.seconds", seconds[:3], "seconds in increasing order")
    for name in SCALARS:
        column = data.get(name)
        kinds = {float, int} if name.startswith("vus") else {int}
        if type(column) is not list or len(column) != len(seconds):
            raise DocumentError(
                f"result.windows.{name}", str(column)[:40], f"{len(seconds)} values"
            )
        if not set(map(type, column)) <= kinds:
            raise DocumentError(f"result.windows.{name}", column[:3], "numbers")
    for name in ("statuses", "checks_failed"):
        if not isinstance(data.get(name, {}), dict):
            raise DocumentError(f"result.windows.{name}", data.get(name), "second -> counts")
    names, chunks = data.get("names"), data.get("chunks")
    if type(names) is not list or not all(isinstance(n, str) for n in names):
        raise DocumentError("result.windows.names", names, "a list of request names")
    size = data.get("chunk_windows")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise DocumentError("result.windows.chunk_windows", size, "a whole number >= 1")
    expected = -(-len(seconds) // size)
    if type(chunks) is not list or len(chunks) != expected:
        found = len(chunks) if isinstance(chunks, list) else chunks
        raise DocumentError("result.windows.chunks", found, f"{expected} chunks")
    agents = data.get("agents")
    if agents is not None:
        if not isinstance(agents, dict):
            raise DocumentError("result.windows.agents", agents, "a packed agents object")
        _check_agents(agents, seconds, size)


def _check_agents(data: Mapping[str, Any], seconds: Sequence[int], size: int) -> None:
    """DocumentError naming the field of a packed ``agents`` object that is wrong (its chunks
    are checked when decoded); ``seconds``: the windows' seconds, which its own are among."""
    have = data.get("seconds")
    where = "result.windows.agents"
    if type(have) is not list or not set(map(type, have)) <= {int}:
        raise DocumentError(f"{where}.seconds", str(have)[:40], "a list of unix seconds")
    if any(b <= a for a, b in itertools.pairwise(have)) or not set(have) <= set(seconds):
        raise DocumentError(f"{where}.seconds", have[:3], "seconds of the windows, in order")
    for name in COUNTS:
        column = data.get(name)
        if type(column) is not list or len(column) != len(have):
            raise DocumentError(f"{where}.{name}", str(column)[:40], f"{len(have)} values")
        if not set(map(type, column)) <= {int}:
            raise DocumentError(f"{where}.{name}", column[:3], "integers")
    for name in TALLIES:
        if not isinstance(data.get(name, {}), dict):
            raise DocumentError(f"{where}.{name}", data.get(name), "second -> counts by reason")
    if data.get("sketches") != list(SKETCHES):
        raise DocumentError(f"{where}.sketches", data.get("sketches"), ", ".join(SKETCHES))
    chunks, expected = data.get("chunks"), -(-len(have) // size)
    if type(chunks) is not list or len(chunks) != expected:
        found = len(chunks) if isinstance(chunks, list) else chunks
        raise DocumentError(f"{where}.chunks", found, f"{expected} chunks")
