"""Acknowledged writes that were lost: what the load saw acknowledged against what the target
read back, in total (exact, writer by writer) and per fault (by when the writes were accepted).

A write is lost when its writer's acknowledged count exceeds what the target stored. Stored
but never acknowledged (a request cut off after the target took it) is counted apart, as
``stored_unacknowledged``: it is a duplicate risk for a client that retries, not a loss.

Each lost write is placed by the second it was accepted in (the target's ``by_second``
against the load's acknowledged writes per second): in the fault active then, else in the
next fault to strike (a replica killed takes what it accepted before). The per-fault counts
are the per-second surpluses in each fault's span, scaled to add up to the exact total; a
loss after the last fault ended is ``lost_outside_faults``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["lost_writes"]


def lost_writes(
    acked: Mapping[str, int],
    stored: Mapping[str, int],
    faults: Sequence[Mapping[str, Any]],
    *,
    acked_by_second: Mapping[int, int] | None = None,
    stored_by_second: Mapping[int, int] | None = None,
) -> tuple[dict[str, Any], list[int | None]]:
    """The run's figures, and each fault's lost writes (``faults`` ordered by ``at``, each
    with ``at`` and ``end`` in unix seconds; None where the loss could not be placed)."""
    lost = sum(max(0, n - stored.get(w, 0)) for w, n in acked.items())
    surplus = sum(max(0, stored.get(w, 0) - n) for w, n in acked.items())
    figures: dict[str, Any] = {
        "writers": len(acked),
        "acknowledged": sum(acked.values()),
        "stored": sum(stored.get(w, 0) for w in acked),
        "lost": lost,
        "stored_unacknowledged": surplus,
    }
    spans = _spans(faults)
    if lost == 0 or not faults:
        figures["lost_outside_faults"] = lost
        return figures, [0] * len(faults)
    if acked_by_second is None or stored_by_second is None:
        figures["lost_outside_faults"] = None
        return figures, [lost] if len(faults) == 1 else [None] * len(faults)
    # Per second, what was acknowledged beyond what was stored; summed per span.
    seconds = set(acked_by_second) | set(stored_by_second)
    raw = [0.0] * (len(spans) + 1)  # the last: after every fault ended
    for second in seconds:
        excess = acked_by_second.get(second, 0) - stored_by_second.get(second, 0)
        raw[_span_of(second, spans)] += excess
    shares = _apportion([max(0.0, r) for r in raw], lost)
    figures["lost_outside_faults"] = shares[-1]
    return figures, list(shares[:-1])


def _spans(faults: Sequence[Mapping[str, Any]]) -> list[int]:
    """The last second each fault claims: its end (its instant, for one that does not last)."""
    return [int(max(float(f["at"]), float(f.get("end") or f["at"]))) for f in faults]


def _span_of(second: int, ends: Sequence[int]) -> int:
    for i, last in enumerate(ends):
        if second <= last:
            return i
    return len(ends)


def _apportion(weights: Sequence[float], total: int) -> list[int]:
    """``total`` split in proportion to ``weights`` (largest remainders); all to the last
    when every weight is zero (the per-second counts placed nothing)."""
    whole = sum(weights)
    if whole <= 0:
        return [0] * (len(weights) - 1) + [total]
    exact = [w * total / whole for w in weights]
    shares = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: exact[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return shares
