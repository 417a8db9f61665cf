"""The reconnect storm: 2,000 agents connected to the reference agent when every replica is
restarted at once; they reconnect with exponential backoff and full jitter.

    stressbed run --scenario reconnect_storm
    stressbed run --scenario reconnect_storm_unjittered     # the same storm without jitter

60 s (``--duration`` scales it): the agents join over 10 s, every replica is restarted at 30 s
(SIGTERM: the agent closes its channels with 1001 "going away", drains and is started again),
and the run reports the storm under the fault: how many agents were cut off, the peak connect
rate, what the stack refused while it came back, the time until 99 % and all were connected
again, and whether the stack survived. Without jitter every agent retries at the same
instants (1 s, 3 s, 7 s, ... after the drop) and comes back in one wave; with full jitter the
same agents spread over each window.
"""

from __future__ import annotations

from stressbed import Scenario, fault, threshold
from stressbed.population import population
from stressbed.thresholds import connected

from .agent_population import agent

__all__ = ["scenario", "stack", "storm"]


def storm(jitter: str, name: str) -> Scenario:
    """The storm scenario with the agents' backoff ``jitter``."""
    return Scenario(
        name,
        description=f"2,000 agents through a restart of every replica, backoff with {jitter} "
        "jitter",
        workloads=[
            population(
                "agents",
                agent(jitter, base="1s", cap="30s"),
                agents=2000,
                join="10s",
                lasting="50s",
                per_vu=250,
            )
        ],
        thresholds=[connected("> 80%"), threshold("agent_gave_up", "count < 1")],
        faults=[fault.restart(at="30s")],
    )


scenario = storm("full", "reconnect_storm")

#: The reference agent as agent_population runs it: a task pushed to every channel every 10 s.
stack = {"target": {"env": {"STRESSBED_AGENT_CHANNEL_TASK_INTERVAL_S": "10"}}}
