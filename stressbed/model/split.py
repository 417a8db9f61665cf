"""A plain log's byte ranges, each read as whole lines: a line belongs to the range it starts
in, so every line is read once whatever the split."""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from pathlib import Path

from .files import BUFFER

__all__ = ["Ranged", "ranges"]


def ranges(size: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` byte ranges covering ``size`` bytes, end to end."""
    step = max(1, size // parts)
    cuts = [min(size, i * step) for i in range(parts)] + [size]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


class Ranged:
    """The lines of ``path`` that start in ``[start, end)``, as :class:`~stressbed.model.
    files.Opened` gives a file's (``stream``, ``position()``)."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self.path = path
        self.start = start
        self.end = end
        self._read = 0
        self.stream = self._lines()

    def position(self) -> int:
        return self._read

    def _lines(self) -> Iterator[bytes]:
        with io.BufferedReader(io.FileIO(self.path, "rb"), BUFFER) as raw:
            at = self.start
            if at > 0:
                # The line that starts before the range is the previous range's: skip to the
                # first line that starts in it (a range starting right after a newline
                # starts with a line).
                raw.seek(at - 1)
                at += len(raw.readline()) - 1
            for line in raw:
                if at >= self.end:
                    return
                at += len(line)
                self._read = at - self.start
                yield line
