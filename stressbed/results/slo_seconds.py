"""Whether the SLOs held, second by second, and when they held again: the one judgement a
fault's recovery (:mod:`.resilience`) and a scale-out's (:mod:`.scaleout`) are read from.

Each second of the load is one of:

- ``held``: requests completed, and every SLO observable on the window it is judged on (the
  ROLLING_S seconds up to it, or the second alone) is within its bound;
- ``broken``: requests completed and an SLO is out of bounds;
- ``stalled``: load was running (active VUs, or iterations the executor dropped) and nothing
  completed, when completions were expected: iterations were dropped (every VU was stuck), or
  the completion rate before this quiet spell says at least STALL_EXPECTED requests should
  have completed in it, no quiet spell as long was seen in the LOOKBACK_S seconds before it
  and it outlasts the flow's own pauses (``pause_s``: VUs thinking in step go quiet as
  long), or nothing has completed for ROLLING_S seconds (and the pauses) since the load
  started;
- None, not measured: no load ran, nothing was recorded, or no SLO could be observed.

``broken`` and ``stalled`` are violations. A recovery is the first second from which the
SLOs hold RECOVERED_S judged seconds running, no violation between (a second not measured
neither counts nor breaks the run); 0 when no second was a violation and at least one was
judged; None when none was judged, or the SLOs never held that long again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from enum import StrEnum

from ..scenario.thresholds import Threshold
from .aggregates import Window
from .timeline import observe_window

__all__ = [
    "LOOKBACK_S",
    "RECOVERED_S",
    "ROLLING_S",
    "STALL_EXPECTED",
    "Second",
    "judge_seconds",
    "recovery",
    "stalled_seconds",
]

#: The SLOs must hold this many judged seconds running to count as recovered.
RECOVERED_S = 10
#: Seconds merged for the rolling p95 and error rate a fault's recovery is judged on; with
#: no completion for this long since the load started, the load is stalled.
ROLLING_S = 5
#: Completions a quiet spell must have missed (at the rate before it) to be a stall: the
#: chance of none in such a spell by chance alone is under 1% (e^-5).
STALL_EXPECTED = 5.0
#: Seconds before a quiet spell whose completion rate and quiet spells say what is normal.
LOOKBACK_S = 30


class Second(StrEnum):
    """One judged second (None, beside these: not measured)."""

    HELD = "held"
    BROKEN = "broken"
    STALLED = "stalled"

    @property
    def violated(self) -> bool:
        return self is not Second.HELD


def judge_seconds(
    windows: Mapping[int, Window],
    seconds: Sequence[int] | range,
    slos: Sequence[Threshold],
    *,
    since: int,
    rolling_s: int = ROLLING_S,
    pause_s: float = 0.0,
) -> list[Second | None]:
    """Each of ``seconds`` judged on the ``rolling_s`` seconds up to it merged, none from
    before ``since`` (a fault's injection, a step: what came before is not its doing);
    ``pause_s``: the longest an iteration pauses by design (its think times)."""
    stalls = stalled_seconds(windows, pause_s=pause_s)
    out: list[Second | None] = []
    for second in seconds:
        here = windows.get(second)
        if second in stalls:
            out.append(Second.STALLED)
        elif here is None or not here.requests:
            out.append(None)
        else:
            merged = Window()
            for s in range(max(since, second - rolling_s + 1), second + 1):
                if s in windows:
                    merged.merge(windows[s])
            out.append(_judge(merged, slos, rolling_s))
    return out


def _judge(window: Window, slos: Sequence[Threshold], seconds: int) -> Second | None:
    observed_any = False
    for threshold in slos:
        observed = observe_window(window, threshold, seconds)
        if observed is None:
            continue
        observed_any = True
        if not threshold.passes(observed):
            return Second.BROKEN
    return Second.HELD if observed_any else None


def recovery(judged: Sequence[Second | None]) -> int | None:
    """The index of the first second from which the SLOs held RECOVERED_S judged seconds
    running after the last violation before it; 0 when nothing was a violation and something
    was judged; None otherwise."""
    if not any(j is not None and j.violated for j in judged):
        return 0 if any(j is Second.HELD for j in judged) else None
    first = next(i for i, j in enumerate(judged) if j is not None and j.violated)
    run, begun = 0, first
    for i in range(first, len(judged)):
        j = judged[i]
        if j is None:
            continue  # not measured: neither a held second nor a broken run
        if j.violated:
            run = 0
            continue
        if run == 0:
            begun = i
        run += 1
        if run == RECOVERED_S:
            return begun
    return None


def stalled_seconds(windows: Mapping[int, Window], *, pause_s: float = 0.0) -> set[int]:
    """The seconds in which load ran and nothing completed when completions were expected
    (the module's ``stalled``), read in one pass over the run; a quiet spell no longer than
    ``pause_s`` (and the second it ends in) is VUs thinking, never a stall."""
    thinking = math.ceil(pause_s) + 1 if pause_s > 0 else 0
    if not windows:
        return set()
    first, last = min(windows), max(windows)
    quiet: dict[int, bool] = {}  # per second with load: nothing completed
    stalls: set[int] = set()
    gap = 0  # seconds since the last completion, while load runs
    rate = 0.0  # completions per loaded second before the current quiet spell
    longest = 0  # the longest quiet spell in the lookback before it
    loaded_since_start = 0  # seconds of load in this phase (reset by idle seconds)
    for second in range(first, last + 1):
        here = windows.get(second)
        if here is not None and here.requests:
            gap = 0
            quiet[second] = False
            loaded_since_start += 1
            continue
        if here is not None and here.vus <= 0 and not here.dropped:
            gap, loaded_since_start = 0, 0  # no load: nothing was expected
            continue
        # Load ran (or k6 recorded nothing this second: the clock runs on) and nothing completed.
        if gap == 0:
            rate, longest = _before(windows, quiet, second)
        gap += 1
        quiet[second] = True
        loaded_since_start += 1
        if here is None:
            continue  # not measured; the spell goes on
        if here.dropped:
            stalls.add(second)  # the executor found no free VU: every one was stuck
        elif gap <= thinking:
            continue
        elif rate > 0 and rate * gap >= STALL_EXPECTED and gap > longest:
            stalls.add(second)
        elif rate == 0 and gap >= ROLLING_S and gap == loaded_since_start:
            stalls.add(second)  # nothing at all since the load started
    return stalls


def _before(
    windows: Mapping[int, Window], quiet: Mapping[int, bool], second: int
) -> tuple[float, int]:
    """Completions per loaded second over the LOOKBACK_S seconds before ``second``, and the
    longest quiet spell among them."""
    done, loaded, longest, spell = 0, 0, 0, 0
    for s in range(second - LOOKBACK_S, second):
        if s not in quiet:
            spell = 0
            continue
        loaded += 1
        if quiet[s]:
            spell += 1
            longest = max(longest, spell)
        else:
            spell = 0
            done += windows[s].requests
    return (done / loaded if loaded else 0.0), longest
