"""A population's figures: its agents wanted and connected second by second, the plateau's
connected share, summary.json's ``population`` section and the report's series.

The levels are read from the merged counts, never from each runner's levels: at the end of
second t, ``wanted`` is every agent that joined minus every agent that left, and ``connected``
every connect minus every disconnect, over all seconds up to t and all runners. Counts add
exactly, so the levels are exact fleet-wide. ``connected_share`` is the sum over the plateau's
seconds (after the join ramp until the population ends, in seconds since the run's start) of
connected agents over the sum of wanted ones: a second in which the fleet wanted 1,000 agents
and had 990 counts as 990 of 1,000.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..scenario.thresholds import AGENT_METRICS
from ._numbers import finite
from .agents import SKETCHES, TALLIES
from .aggregates import Aggregate, Window
from .merge import FleetResult
from .sketch import Sketch

__all__ = [
    "Plateau",
    "agent_series",
    "connected_share",
    "levels",
    "plateau_seconds",
    "population",
    "seen",
    "start_second",
]

#: The population's steady part, in seconds since the run's start: (start_s, end_s).
Plateau = tuple[float, float]

#: The whole-run counts summary.json shows, and the counter each one reads.
TOTALS = {
    "joined": "agents_joined",
    "left": "agents_left",
    "connect_attempts": "agent_connect_attempts",
    "connects": "agent_connects",
    "connect_failures": "agent_connect_failures",
    "disconnects": "agent_disconnects",
    "reconnects": "agent_reconnects",
    "gave_up": "agent_gave_up",
    "registrations": "agent_registrations",
    "commands": "agent_commands",
    "checkins_missed": "agent_checkins_missed",
}
#: The statistics of each trend (milliseconds), under k6's names, and their quantiles.
TREND_STATS = {"p(50)": 0.5, "p(90)": 0.9, "p(95)": 0.95, "p(99)": 0.99, "p(99.9)": 0.999}


def seen(fleet: FleetResult) -> bool:
    """Whether any agent metric was met: a run without a population has no section."""
    return any(metric in fleet.aggregates for metric in AGENT_METRICS)


def start_second(windows: Mapping[int, Window], started_at: float | None) -> int:
    """The run's second 0: when its earliest runner started, or its first window if earlier
    (what the report's time axis starts at too)."""
    first = min(windows, default=None)
    if started_at is None:
        return first if first is not None else 0
    start = int(started_at)
    return start if first is None else min(start, first)


def levels(windows: Mapping[int, Window]) -> dict[int, tuple[int, int]]:
    """(wanted, connected) at the end of every second from the first window to the last,
    over the whole fleet (a second without a window keeps the level before it)."""
    if not windows:
        return {}
    out: dict[int, tuple[int, int]] = {}
    wanted = connected = 0
    for second in range(min(windows), max(windows) + 1):
        window = windows.get(second)
        agents = window.agents if window is not None else None
        if agents is not None:
            wanted += agents.joined - agents.left
            connected += agents.connected_change
        out[second] = (wanted, connected)
    return out


def connected_share(
    windows: Mapping[int, Window],
    start: int,
    plateau: Plateau | None,
    found: Mapping[int, tuple[int, int]] | None = None,
) -> float | None:
    """Connected agents over wanted ones, summed over the plateau's whole seconds that the run
    measured (``start``: the unix second at 0); None without a plateau, or when it holds no
    measured second or no wanted agent."""
    if plateau is None:
        return None
    found = levels(windows) if found is None else found
    inside = [found[t] for t in plateau_seconds(start, plateau) if t in found]
    wanted = sum(w for w, _ in inside)
    if not wanted:
        return None
    return sum(c for _, c in inside) / wanted


def plateau_seconds(start: int, plateau: Plateau) -> range:
    """The unix seconds (the timeseries' ``t``) wholly inside the plateau, ``start`` being the
    run's second 0: the seconds the connected share is summed over."""
    return range(start + math.ceil(plateau[0]), start + math.floor(plateau[1]))


def population(fleet: FleetResult, plateau: Plateau | None = None) -> dict[str, Any] | None:
    """summary.json's ``population`` section; None when no agent metric was met."""
    if not seen(fleet):
        return None
    aggregates = fleet.aggregates
    found = levels(fleet.windows)
    start = start_second(fleet.windows, fleet.started_at)
    share = connected_share(fleet.windows, start, plateau, found)
    return {
        "counts": {name: _total(aggregates.get(metric)) for name, metric in TOTALS.items()},
        **{f"{name}_by_reason": _by_reason(aggregates, metric) for name, metric in TALLIES.items()},
        "trends": {name: _trend(aggregates.get(metric)) for name, metric in SKETCHES.items()},
        "peak_connected": max((c for _, c in found.values()), default=0),
        "peak_wanted": max((w for w, _ in found.values()), default=0),
        "connected_share": share,
        "plateau": _plateau(start, plateau),
        "timeseries": _rows(fleet.windows, found),
    }


def _plateau(start: int, plateau: Plateau | None) -> dict[str, float | None] | None:
    if plateau is None:
        return None
    seconds = plateau_seconds(start, plateau)
    return {
        "start_s": plateau[0],
        "end_s": plateau[1],
        # The timeseries rows it covers, by their t (null when it holds no whole second).
        "first_t": seconds[0] if seconds else None,
        "last_t": seconds[-1] if seconds else None,
    }


def _total(agg: Aggregate | None) -> int:
    # A counter never counted in a run with a population: a true 0.
    return int(agg.total) if agg is not None else 0


def _by_reason(aggregates: Mapping[str, Aggregate], metric: str) -> dict[str, int]:
    prefix = metric + "{reason:"
    return {
        key[len(prefix) : -1]: int(agg.total)
        for key, agg in sorted(aggregates.items())
        if key.startswith(prefix)
    }


def _trend(agg: Aggregate | None) -> dict[str, float | None]:
    sketch = agg.sketch if agg is not None else Sketch()
    if not sketch.count:
        return {"count": 0, **dict.fromkeys(TREND_STATS), "max": None}
    values = sketch.quantiles(list(TREND_STATS.values()))
    return {
        "count": sketch.count,
        **{name: finite(v) for name, v in zip(TREND_STATS, values, strict=True)},
        "max": finite(sketch.maximum),
    }


def _p99(sketch: Sketch) -> float | None:
    # A second without a sample of the trend is not measured: null, never 0.
    return finite(sketch.quantile(0.99)) if sketch.count else None


def _rows(
    windows: Mapping[int, Window], found: Mapping[int, tuple[int, int]]
) -> list[dict[str, float | None]]:
    """One row per second of the run's windows (the seconds of the top-level timeseries)."""
    rows = []
    for second in sorted(windows):
        agents = windows[second].agents
        wanted, connected = found[second]
        row: dict[str, float | None] = {"t": second, "connected": connected, "wanted": wanted}
        if agents is None:
            row |= dict.fromkeys(_ROW_COUNTS, 0)
            row |= {"checkin_lateness_p99_ms": None, "connect_time_p99_ms": None}
        else:
            row |= {
                "connects": agents.connects,
                "connect_attempts": agents.connect_attempts,
                "connect_failures": sum(agents.connect_failures.values()),
                "disconnects": sum(agents.disconnects.values()),
                "reconnects": agents.reconnects,
                "gave_up": agents.gave_up,
                "checkins_missed": agents.checkins_missed,
                "checkin_lateness_p99_ms": _p99(agents.checkin_lateness),
                "connect_time_p99_ms": _p99(agents.connect_time),
            }
        rows.append(row)
    return rows


_ROW_COUNTS = (
    *("connects", "connect_attempts", "connect_failures", "disconnects", "reconnects"),
    *("gave_up", "checkins_missed"),
)

Series = list[float | None]


def agent_series(
    windows: Mapping[int, Window], start: int, step: int, covers: Sequence[int]
) -> tuple[dict[str, Series], dict[str, Series]]:
    """What the report draws of a population on its grid (point i: the ``covers[i]`` seconds
    from ``start + i * step``): agents connected and wanted (each the mean of its seconds'
    levels), connect attempts, connects, failures and disconnects per second; and failures
    per second by reason. Empty without a population."""
    if not any(w.agents is not None for w in windows.values()):
        return {}, {}
    points = len(covers)
    counted = [0] * points
    sums = {name: [0.0] * points for name in ("connected", "wanted")}
    for second, (wanted, connected) in levels(windows).items():
        i = (second - start) // step
        if 0 <= i < points:
            counted[i] += 1
            sums["wanted"][i] += wanted
            sums["connected"][i] += connected
    rates = {name: [0.0] * points for name in _RATES}
    reasons: dict[str, list[float]] = {}
    for second, window in windows.items():
        i = (second - start) // step
        agents = window.agents
        if agents is None or not 0 <= i < points:
            continue
        rates["connect_attempts"][i] += agents.connect_attempts
        rates["connects"][i] += agents.connects
        rates["connect_failures"][i] += sum(agents.connect_failures.values())
        rates["disconnects"][i] += sum(agents.disconnects.values())
        for reason, count in agents.connect_failures.items():
            reasons.setdefault(reason, [0.0] * points)[i] += count
    out: dict[str, Series] = {
        name: [s / n if n else None for s, n in zip(values, counted, strict=True)]
        for name, values in sums.items()
    }
    for name, values in rates.items():
        out[f"{name}_per_s"] = [v / n for v, n in zip(values, covers, strict=True)]
    by_reason: dict[str, Series] = {
        reason: [v / n for v, n in zip(values, covers, strict=True)]
        for reason, values in sorted(reasons.items())
    }
    return out, by_reason


_RATES = ("connect_attempts", "connects", "connect_failures", "disconnects")
