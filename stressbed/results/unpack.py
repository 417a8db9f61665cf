"""Reading packed windows back (:mod:`stressbed.results.packed`): lazily, a chunk at a time.

:class:`PackedWindows` is what a version-2 runner document's ``windows`` become when it is
read: a read-only mapping of unix second to :class:`~stressbed.results.aggregates.Window`
that holds the chunks still compressed and decodes one when a window in it is asked for
(keeping only the last one decoded). Its scalars (requests, failures, VUs, ...) are plain
columns, read without decoding anything; the merge takes its sketches as arrays
(:meth:`PackedWindows.named_sketches`, :meth:`PackedWindows.agent_sketches`), never as Python
objects per bucket.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import DocumentError
from .agents import COUNTS, SKETCHES, TALLIES, AgentWindow
from .aggregates import Window
from .packed import HEADER, INT_CODES, MAGIC, SCALARS, check_packed
from .sketch import Sketch

__all__ = ["Chunk", "PackedWindows", "SketchArrays", "decode_chunk"]

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

#: numpy's little-endian integer type of each array type code.
_DTYPES = {code: f"<i{width}" for code, width in INT_CODES.items()}


@dataclass(frozen=True)
class SketchArrays:
    """One sketch of a window as arrays: what the merge adds up."""

    count: int
    zeros: int
    total: float
    minimum: float
    maximum: float
    keys: Ints
    counts: Ints

    def sketch(self) -> Sketch:
        return Sketch(
            dict(zip(self.keys.tolist(), self.counts.tolist(), strict=True)),
            self.zeros,
            self.count,
            self.total,
            self.minimum,
            self.maximum,
        )


@dataclass(frozen=True)
class Chunk:
    """One decoded chunk: its sketches and buckets as arrays, with where each window's
    sketches and each sketch's buckets start."""

    name: Ints  # per sketch: 0 for the window's duration, else 1 + its index in names
    count: Ints
    zeros: Ints
    total: Floats
    low: Floats
    high: Floats
    keys: Ints  # per bucket, absolute
    counts: Ints
    first_sketch: Ints  # per window, and one past the end
    first_bucket: Ints  # per sketch, and one past the end

    def sketches(self, window: int) -> Iterator[tuple[int, SketchArrays]]:
        """The (name number, sketch) pairs of the chunk's ``window``-th window."""
        lo, hi = int(self.first_sketch[window]), int(self.first_sketch[window + 1])
        for j in range(lo, hi):
            a, b = int(self.first_bucket[j]), int(self.first_bucket[j + 1])
            yield (
                int(self.name[j]),
                SketchArrays(
                    int(self.count[j]),
                    int(self.zeros[j]),
                    float(self.total[j]),
                    float(self.low[j]),
                    float(self.high[j]),
                    self.keys[a:b],
                    self.counts[a:b],
                ),
            )


def decode_chunk(text: object, windows: int, names: int, where: str) -> Chunk:
    """Chunk ``text`` (base64 of zlib) of ``windows`` windows whose sketches name at most
    ``names`` request names; DocumentError at ``where`` when it is not what it should be."""
    try:
        if not isinstance(text, str):
            raise TypeError
        raw = zlib.decompress(base64.b64decode(text, validate=True))
        magic, n, m, b, codes = HEADER.unpack_from(raw)
        code = codes.decode("ascii")
    except (TypeError, ValueError, binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise DocumentError(where, type(exc).__name__, "base64 of a zlib-packed chunk") from None
    if magic != MAGIC or n != windows or set(code) - set(INT_CODES):
        raise DocumentError(where, f"{magic!r}, {n} windows", f"a packed chunk of {windows}")
    sizes = (n, m, m, m, m, b, b)
    need = HEADER.size + sum(INT_CODES[c] * s for c, s in zip(code, sizes, strict=True)) + 24 * m
    if len(raw) != need:
        raise DocumentError(where, f"{len(raw)} bytes", f"{need} bytes (a chunk cut or padded)")
    offset = HEADER.size
    ints: list[Ints] = []
    for c, size in zip(code, sizes, strict=True):
        ints.append(np.frombuffer(raw, _DTYPES[c], size, offset).astype(np.int64))
        offset += INT_CODES[c] * size
    total, low, high = (np.frombuffer(raw, "<f8", m, offset + 8 * m * i) for i in range(3))
    per_window, name, count, zeros, buckets, deltas, counts = ints
    first_sketch = np.concatenate(([0], np.cumsum(per_window)))
    first_bucket = np.concatenate(([0], np.cumsum(buckets)))
    if (
        (per_window < 1).any()
        or first_sketch[-1] != m
        or first_bucket[-1] != b
        or (buckets < 0).any()
        or (name[first_sketch[:-1]] != 0).any()  # every window's first sketch is its duration
        or ((name < 0) | (name > names)).any()
        or (counts < 0).any()
    ):
        raise DocumentError(where, "inconsistent counts", "a packed chunk as stressbed wrote it")
    return Chunk(
        name, count, zeros, total, low, high, np.cumsum(deltas), counts, first_sketch, first_bucket
    )


class PackedWindows(Mapping[int, Window]):
    """A runner's windows, read lazily from a version-2 document's ``windows`` object."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        check_packed(data)
        # The document's own lists, not copies: they are kept to be written again as they came.
        self._seconds: list[int] = data["seconds"]
        self._columns: dict[str, list[Any]] = {name: data[name] for name in SCALARS}
        self._statuses: dict[str, dict[str, int]] = _tallies(data, "statuses")
        self._checks: dict[str, dict[str, int]] = _tallies(data, "checks_failed")
        self.names: list[str] = data["names"]
        self._chunks: list[str] = data["chunks"]
        self._size: int = data["chunk_windows"]
        self._decoded: tuple[int, Chunk] | None = None
        agents = data.get("agents")
        self._agents = _Agents(agents, self._size) if agents is not None else None
        self._document = dict(data)

    def document(self) -> dict[str, Any]:
        """The ``windows`` object these windows were read from (written again as it came)."""
        return self._document

    def __len__(self) -> int:
        return len(self._seconds)

    def __iter__(self) -> Iterator[int]:
        return iter(self._seconds)

    def __contains__(self, second: object) -> bool:
        return self._position(second) is not None

    def __getitem__(self, second: int) -> Window:
        i = self._position(second)
        if i is None:
            raise KeyError(second)
        return self.window(i)

    def window(self, i: int) -> Window:
        """The ``i``-th window, whole (its chunk decoded unless it was the last one)."""
        window = self.scalars(i)
        for name, arrays in self.named_sketches(i):
            if name is None:
                window.duration = arrays.sketch()
            else:
                window.names[name] = arrays.sketch()
        if window.agents is not None:
            for name, arrays in self.agent_sketches(i):
                setattr(window.agents, name, arrays.sketch())
        return window

    def _position(self, second: object) -> int | None:
        if not isinstance(second, int):
            return None
        i = bisect.bisect_left(self._seconds, second)
        return i if i < len(self._seconds) and self._seconds[i] == second else None

    def scalars(self, i: int) -> Window:
        """The ``i``-th window with its counts, VUs and tallies, and no sketches yet."""
        second = str(self._seconds[i])
        col = self._columns
        return Window(
            requests=col["requests"][i],
            failed=col["failed"][i],
            iterations=col["iterations"][i],
            vus=float(col["vus"][i]),
            vus_max=float(col["vus_max"][i]),
            statuses=dict(self._statuses.get(second, {})),
            checks_failed=dict(self._checks.get(second, {})),
            dropped=col["dropped"][i],
            acked=col["acked"][i],
            agents=self._agents.counts(self._seconds[i]) if self._agents is not None else None,
        )

    def column(self, name: str) -> list[Any]:
        """One scalar per second (``requests``, ``dropped``, ...), in the order of the seconds."""
        return self._columns[name]

    def named_sketches(self, i: int) -> Iterator[tuple[str | None, SketchArrays]]:
        """The ``i``-th window's sketches as (its request name, or None for the window's whole
        duration; arrays), its chunk decoded now unless it was the last one decoded."""
        number, within = divmod(i, self._size)
        if self._decoded is None or self._decoded[0] != number:
            windows = min(self._size, len(self._seconds) - number * self._size)
            chunk = decode_chunk(
                self._chunks[number], windows, len(self.names), f"result.windows.chunks[{number}]"
            )
            self._decoded = (number, chunk)
        for name, arrays in self._decoded[1].sketches(within):
            yield (self.names[name - 1] if name else None), arrays

    def agent_sketches(self, i: int) -> Iterator[tuple[str, SketchArrays]]:
        """The ``i``-th window's agent sketches as (their name, arrays); none when it has no
        agents."""
        if self._agents is not None:
            yield from self._agents.sketches(self._seconds[i])

    def release(self) -> None:
        """Forget the decoded chunks (the merge is done with this runner)."""
        self._decoded = None
        if self._agents is not None:
            self._agents.decoded = None


class _Agents:
    """The ``agents`` object of packed windows: a population's seconds, decoded a chunk at a
    time as the windows' own sketches are."""

    def __init__(self, data: Mapping[str, Any], size: int) -> None:
        self._seconds: list[int] = data["seconds"]
        self._columns: dict[str, list[int]] = {name: data[name] for name in COUNTS}
        self._tallies = {name: _tallies(data, name, "agents.") for name in TALLIES}
        self._chunks: list[str] = data["chunks"]
        self._size = size
        self.decoded: tuple[int, Chunk] | None = None

    def _position(self, second: int) -> int | None:
        i = bisect.bisect_left(self._seconds, second)
        return i if i < len(self._seconds) and self._seconds[i] == second else None

    def counts(self, second: int) -> AgentWindow | None:
        """The second's agent window with its counts and tallies, no sketches yet; None
        when it has no agents."""
        i = self._position(second)
        if i is None:
            return None
        out = AgentWindow()
        for name, column in self._columns.items():
            setattr(out, name, column[i])
        for name, tallies in self._tallies.items():
            setattr(out, name, dict(tallies.get(str(second), {})))
        return out

    def sketches(self, second: int) -> Iterator[tuple[str, SketchArrays]]:
        i = self._position(second)
        if i is None:
            return
        number, within = divmod(i, self._size)
        if self.decoded is None or self.decoded[0] != number:
            windows = min(self._size, len(self._seconds) - number * self._size)
            where = f"result.windows.agents.chunks[{number}]"
            chunk = decode_chunk(self._chunks[number], windows, len(SKETCHES) - 1, where)
            self.decoded = (number, chunk)
        names = list(SKETCHES)
        for name, arrays in self.decoded[1].sketches(within):
            yield names[name], arrays


def _tallies(data: Mapping[str, Any], name: str, under: str = "") -> dict[str, dict[str, int]]:
    tallies = data.get(name, {})
    for second, tally in tallies.items():
        if not isinstance(tally, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in tally.values()
        ):
            raise DocumentError(
                f"result.windows.{under}{name}.{second}", tally, "an object of counts"
            )
    return {str(k): {str(n): c for n, c in v.items()} for k, v in tallies.items()}
