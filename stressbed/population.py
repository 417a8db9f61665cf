"""The public namespace ``stressbed.population``: simulated agents, their channels, activities,
reconnect policies and churn (see docs/guides/populations.md). The definitions live in
:mod:`stressbed.scenario.population` and :mod:`stressbed.scenario.reconnect`.
"""

from __future__ import annotations

from .errors import ConfigError
from .scenario import reconnect
from .scenario.model import Workload
from .scenario.population import (
    Agent,
    Agents,
    Commands,
    KeepAlive,
    PerRequest,
    WebSocket,
    every,
    send,
)
from .scenario.reconnect import Churn

__all__ = [
    "Agent",
    "Agents",
    "Churn",
    "Commands",
    "KeepAlive",
    "PerRequest",
    "WebSocket",
    "every",
    "population",
    "reconnect",
    "send",
]


def population(
    name: str,
    agent: Agent,
    *,
    agents: int,
    lasting: str,
    join: str = "0s",
    per_vu: int = 1000,
    start_time: str = "0s",
) -> Workload:
    """A workload of ``agents`` simulated agents behaving as ``agent``: ``per_vu`` of them on
    each k6 VU, joining evenly over ``join``, then staying ``lasting``."""
    if not isinstance(agent, Agent):
        raise ConfigError(f"population {name!r}.agent", agent, "an Agent(...)")
    profile = Agents(agents, lasting=lasting, join=join, per_vu=per_vu)
    return Workload(name, agent, profile, start_time=start_time, graceful_stop="30s")
