"""One second of a population's agents: what its k6 runtime's ``agent_*`` metrics counted.

A window (:class:`~stressbed.results.aggregates.Window`) carries an :class:`AgentWindow` only
once an agent metric fell in that second, so a run without a population keeps none. Its counts
and tallies by reason add across runners and its sketches merge bucket by bucket, exactly as
the request windows do; the fleet's levels (agents wanted and connected at the end of each
second) are read from the merged counts (:mod:`stressbed.results.population`), never summed
from runners' levels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ..errors import DocumentError
from .sketch import Sketch

__all__ = ["COUNTS", "FIELDS", "SKETCHES", "TALLIES", "AgentWindow"]

#: Each count of a second and the counter metric it sums (the events in that second).
COUNTS: Mapping[str, str] = {
    "joined": "agents_joined",
    "left": "agents_left",
    "connect_attempts": "agent_connect_attempts",
    "connects": "agent_connects",
    "reconnects": "agent_reconnects",
    "gave_up": "agent_gave_up",
    "checkins_missed": "agent_checkins_missed",
}
#: Each count by ``reason`` tag of a second, and its counter metric.
TALLIES: Mapping[str, str] = {
    "connect_failures": "agent_connect_failures",
    "disconnects": "agent_disconnects",
}
#: Each sketch of a second (milliseconds), and its trend metric.
SKETCHES: Mapping[str, str] = {
    "connect_time": "agent_connect_time",
    "checkin_lateness": "agent_checkin_lateness",
    "reconnect_time": "agent_reconnect_time",
    "command_rtt": "agent_command_rtt",
}
#: The window field each metric feeds, and how: ``count``, ``tally`` or ``sketch``.
FIELDS: Mapping[str, tuple[str, str]] = {
    **{metric: ("count", name) for name, metric in COUNTS.items()},
    **{metric: ("tally", name) for name, metric in TALLIES.items()},
    **{metric: ("sketch", name) for name, metric in SKETCHES.items()},
}


@dataclass
class AgentWindow:
    """A second of the population, over every agent of the runners merged into it."""

    joined: int = 0
    left: int = 0
    connect_attempts: int = 0
    connects: int = 0
    reconnects: int = 0
    gave_up: int = 0
    checkins_missed: int = 0
    #: Failed connection attempts by reason (refused, timeout, reset, status_503, ...).
    connect_failures: dict[str, int] = field(default_factory=dict)
    #: Established channels lost by reason (closed_1006, reset, churn, end, ...).
    disconnects: dict[str, int] = field(default_factory=dict)
    connect_time: Sketch = field(default_factory=Sketch)
    checkin_lateness: Sketch = field(default_factory=Sketch)
    reconnect_time: Sketch = field(default_factory=Sketch)
    command_rtt: Sketch = field(default_factory=Sketch)

    @property
    def connected_change(self) -> int:
        """How the connected level moved in this second: connects less disconnects."""
        return self.connects - sum(self.disconnects.values())

    def sketches(self) -> Iterator[tuple[str, Sketch]]:
        """(name, sketch) of each of its trends, in SKETCHES' order."""
        for name in SKETCHES:
            yield name, getattr(self, name)

    def copy(self) -> AgentWindow:
        out = AgentWindow()
        out.merge_counts(self)
        for name, sketch in self.sketches():
            setattr(out, name, sketch.copy())
        return out

    def merge(self, other: AgentWindow) -> None:
        self.merge_counts(other)
        for name, sketch in other.sketches():
            getattr(self, name).merge(sketch)

    def merge_counts(self, other: AgentWindow) -> None:
        """Add ``other``'s counts and tallies (everything but its sketches)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in TALLIES:
            mine: dict[str, int] = getattr(self, name)
            for reason, count in getattr(other, name).items():
                mine[reason] = mine.get(reason, 0) + count

    def tally(self, name: str) -> dict[str, int]:
        """The counts by reason ``name`` (``connect_failures`` or ``disconnects``) holds."""
        found: dict[str, int] = getattr(self, name)
        return found

    def to_dict(self) -> dict[str, object]:
        return {
            **{name: getattr(self, name) for name in COUNTS},
            **{name: dict(sorted(self.tally(name).items())) for name in TALLIES},
            **{name: sketch.to_dict() for name, sketch in self.sketches()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AgentWindow:
        """An agent window from its document; DocumentError naming the field that is wrong."""
        out = cls()
        for name in COUNTS:
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DocumentError(f"window.agents.{name}", value, "an integer")
            setattr(out, name, value)
        for name in TALLIES:
            tally = data.get(name, {})
            if not isinstance(tally, dict) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in tally.values()
            ):
                raise DocumentError(f"window.agents.{name}", tally, "an object of integer counts")
            setattr(out, name, {str(k): v for k, v in tally.items()})
        for name in SKETCHES:
            sketch = data.get(name)
            if not isinstance(sketch, dict):
                raise DocumentError(f"window.agents.{name}", sketch, "a sketch document")
            setattr(out, name, Sketch.from_dict(sketch))
        return out
