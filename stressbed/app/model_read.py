"""Reading the inputs of ``stressbed model``: in this process, or a big plain log on every core.

One uncompressed access log of :data:`PARALLEL_FROM` bytes or more is cut into as many byte
ranges as there are cores (two at most: :data:`MAX_WORKERS`); each is read and learned in a
process of its own (``spawn``: nothing of this process is inherited; a pipe each for what it
learned, a shared counter of the bytes it read), and what they learned is combined
(:mod:`stressbed.model.combine`: what a split costs is said there). The progress bar counts
the bytes every process has read. Anything else (several inputs, gzip, HAR, OTLP, a small
log) is read here, in time order.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StressbedError
from ..model.access_log import LogFormat, read_access_log, sniff
from ..model.combine import combine
from ..model.files import open_input
from ..model.hits import Tally
from ..model.learn import Learned, learn
from ..model.read import kind_of, read_inputs
from ..model.split import Ranged, ranges

__all__ = ["MAX_WORKERS", "PARALLEL_FROM", "Learning", "read_and_learn"]

#: The size from which one plain log is read on several cores.
PARALLEL_FROM = 64 * 1024 * 1024
MAX_WORKERS = 2
#: Lines a worker reads between two updates of its progress counter.
REPORT_EVERY = 65_536
#: How often the bar is redrawn while the workers read.
POLL_S = 0.5
#: How long a reader process is given to end once its work is sent.
STOP_S = 10.0


@dataclass
class Learning:
    learned: Learned
    tallies: list[Tally]
    workers: int


def read_and_learn(
    paths: list[Path],
    fmt: str | None,
    keep: list[str],
    progress: Callable[[int, int], None] | None = None,
    *,
    parallel_from: int | None = PARALLEL_FROM,
    workers: int | None = None,
) -> Learning:
    """What the inputs hold (see the module's docstring); ``parallel_from``: the size from
    which one plain log is read on several cores (None: never); ``workers``: how many
    processes (default: the cores, MAX_WORKERS at most)."""
    if workers is None:
        workers = min(MAX_WORKERS, os.cpu_count() or 1)
    if len(paths) == 1 and workers > 1 and parallel_from is not None:
        with open_input(paths[0]) as opened:
            big = not opened.compressed and opened.size >= parallel_from
            if big and fmt not in ("har", "otlp") and (fmt or kind_of(opened) == "log"):
                log_format = sniff(opened.head().splitlines()[:200], fmt)
                return _in_parallel(
                    paths[0], opened.size, log_format, keep, workers=workers, progress=progress
                )
    with ExitStack() as stack:
        reading = read_inputs(paths, fmt, stack, progress)
        learned = learn(reading.hits, keep)
    return Learning(learned, reading.tallies, 1)


@dataclass(frozen=True)
class _Job:
    path: Path
    start: int
    end: int
    format_name: str
    format_text: str
    keep: list[str]


def _in_parallel(
    path: Path,
    size: int,
    log_format: LogFormat,
    keep: list[str],
    *,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> Learning:
    context = multiprocessing.get_context("spawn")
    started = []
    try:
        for start, end in ranges(size, workers):
            job = _Job(path, start, end, log_format.name, log_format.text, keep)
            counter = context.Value("q", 0)
            mine, theirs = context.Pipe(duplex=False)
            process = context.Process(target=_learn_range, args=(job, counter, theirs))
            process.start()
            theirs.close()
            started.append((process, counter, mine))
        parts = []
        for process, _, pipe in started:
            while not pipe.poll(POLL_S):
                if progress is not None:
                    progress(sum(c.value for _, c, _ in started), size)
                if not process.is_alive() and not pipe.poll(0):
                    raise StressbedError(f"{path}: a reader process died ({process.exitcode})")
            outcome, payload = pipe.recv()
            if outcome != "ok":
                raise StressbedError(f"{path}: {payload}")
            parts.append(payload)
    finally:
        for process, _, pipe in started:
            pipe.close()
            process.join(STOP_S)
            if process.is_alive():
                process.kill()
                process.join(STOP_S)
    if progress is not None:
        progress(size, size)
    learned = combine([learned for learned, _ in parts])
    return Learning(learned, [_tally(path, log_format, [t for _, t in parts])], len(parts))


def _learn_range(job: _Job, counter: Any, pipe: Any) -> None:
    """A reader process: the lines starting in the job's range, learned, sent back."""
    try:
        ranged = Ranged(job.path, job.start, job.end)
        log_format = LogFormat(job.format_name, job.format_text)
        tally = Tally(str(job.path), log_format.name, unit="line")
        hits = read_access_log(ranged, log_format, tally)  # type: ignore[arg-type]
        learned = learn(_counted(hits, ranged, counter), job.keep)
        learned.templates.forget_caches()
        pipe.send(("ok", (learned, tally)))
    except Exception as exc:
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def _counted(hits: Any, ranged: Ranged, counter: Any) -> Any:
    for n, hit in enumerate(hits, 1):
        if n % REPORT_EVERY == 0:
            counter.value = ranged.position()
        yield hit
    counter.value = ranged.position()


def _tally(path: Path, log_format: LogFormat, parts: list[Tally]) -> Tally:
    out = Tally(str(path), log_format.name, unit="line")
    for part in parts:
        out.read += part.read
        out.bad += part.bad
        out.skipped += part.skipped
        for reason, n in part.skipped_by.items():
            out.skipped_by[reason] = out.skipped_by.get(reason, 0) + n
        out.examples += part.examples[: max(0, 3 - len(out.examples))]
    return out
