"""The fleet's windows, merged second by second from every runner's: the merge's hot path.

The sources are walked side by side in time order (``heapq.merge``), so packed sources
(:class:`~stressbed.results.unpack.PackedWindows`) each have one chunk decoded at a time and
memory follows the merged windows, not the number of runners times their windows. The
sketches of one second are added as arrays, in one ``bincount`` over their keys, never bucket
by bucket in Python; a population's sketches (a window's agents) likewise. In-memory windows
(a run's own, version-1 documents) take the same path.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .aggregates import Window
from .sketch import Sketch
from .unpack import PackedWindows, SketchArrays

__all__ = ["merge_windows"]


def merge_windows(sources: Sequence[Mapping[int, Window]]) -> dict[int, Window]:
    """Every source's window of each second added up (exactly: counts add, extremes take
    the extreme)."""
    streams = [_stream(i, source) for i, source in enumerate(sources)]
    merged: dict[int, Window] = {}
    for second, group in itertools.groupby(heapq.merge(*streams), key=operator.itemgetter(0)):
        merged[second] = _combine([part for _, _, part in group])
    for source in sources:
        if isinstance(source, PackedWindows):
            source.release()
    return merged


_Part = Window | tuple[PackedWindows, int]


def _stream(index: int, source: Mapping[int, Window]) -> Iterator[tuple[int, int, _Part]]:
    # (second, source index, part): the index settles ties, parts are never compared.
    if isinstance(source, PackedWindows):
        for position, second in enumerate(source):
            yield second, index, (source, position)
    else:
        for second in sorted(source):
            yield second, index, source[second]


def _combine(parts: Sequence[_Part]) -> Window:
    if len(parts) == 1:
        part = parts[0]
        if isinstance(part, Window):
            return part.copy()
        packed, position = part
        return packed.window(position)
    window = Window()
    sketches: dict[str | None, list[SketchArrays]] = {}
    agents: dict[str, list[SketchArrays]] = {}
    for part in parts:
        counts, named, agent_named = _pieces(part)
        window.merge_counts(counts)
        for name, one in named:
            sketches.setdefault(name, []).append(one)
        for name, one in agent_named:
            agents.setdefault(name, []).append(one)
    for key, group in sketches.items():
        sketch = _add(group)
        if key is None:
            window.duration = sketch
        else:
            window.names[key] = sketch
    if window.agents is not None:  # some part had agents: merge_counts made them
        for name, group in agents.items():
            setattr(window.agents, name, _add(group))
    return window


_Named = Iterable[tuple[str | None, SketchArrays]]


def _pieces(part: _Part) -> tuple[Window, _Named, Iterable[tuple[str, SketchArrays]]]:
    """A part's counts (a window whose sketches are not read), its sketches as arrays by
    request name (None: the window's whole duration) and its agents' sketches by name."""
    if isinstance(part, Window):
        named = [(name, _arrays(sketch)) for name, sketch in part.names.items()]
        agents = part.agents.sketches() if part.agents is not None else ()
        return (
            part,
            [(None, _arrays(part.duration)), *named],
            [(name, _arrays(sketch)) for name, sketch in agents],
        )
    packed, position = part
    return (
        packed.scalars(position),
        packed.named_sketches(position),
        packed.agent_sketches(position),
    )


def _arrays(sketch: Sketch) -> SketchArrays:
    size = len(sketch.buckets)
    return SketchArrays(
        sketch.count,
        sketch.zeros,
        sketch.total,
        sketch.minimum,
        sketch.maximum,
        np.fromiter(sketch.buckets.keys(), np.int64, size),
        np.fromiter(sketch.buckets.values(), np.int64, size),
    )


def _add(parts: Sequence[SketchArrays]) -> Sketch:
    """The sum of several sketches: their buckets added in one bincount over the key range."""
    if len(parts) == 1:
        return parts[0].sketch()
    keys = np.concatenate([p.keys for p in parts])
    buckets: dict[int, int] = {}
    if keys.size:
        low = int(keys.min())
        # Float weights add integers exactly up to 2**53: far past any count of one second.
        dense = np.bincount(keys - low, weights=np.concatenate([p.counts for p in parts]))
        present = np.flatnonzero(dense)
        buckets = dict(
            zip((present + low).tolist(), dense[present].astype(np.int64).tolist(), strict=True)
        )
    total = 0.0
    for p in parts:
        total += p.total
    return Sketch(
        buckets,
        sum(p.zeros for p in parts),
        sum(p.count for p in parts),
        total,
        min(p.minimum for p in parts),
        max(p.maximum for p in parts),
    )
