"""Noisy neighbour: the ingest mix at a steady rate while a neighbour burns every core of the
machine beside the agent; did the agent's limits and request keep it off the users?

    stressbed run --scenario noisy_neighbour

60 s of load (``--duration`` scales the fault with it); from 25 s, for 25 s, a neighbour burns
every core, outside the agent's cgroup (the local backend: a sibling cgroup; Docker: a
container on the same engine). The run's isolation verdict compares the seconds under it with
as many just before it (p95, p99, the error rate: ``held``, ``broken`` with the change, or
``inconclusive``); the findings say why latency rose when they can (``cpu-contended``: the
agent's threads waited for a CPU the neighbour held; ``cpu-throttled``: its own quota).
Not one acknowledged report may be lost. Needs STRESSBED_AGENT_TOKEN, as the ingest mix does.
"""

from __future__ import annotations

from stressbed import (
    Scenario,
    error_rate,
    fault,
    latency,
    lost_writes,
)

from . import agent_api as api
from .ingest_mix import REPORTS_STORED, steady_ingest


def noisy_neighbour(*, io: bool = False) -> Scenario:
    """The scenario; ``io=True``: the neighbour writes to the agent's disk too."""
    return Scenario(
        "noisy_neighbour",
        description="The ingest mix at 40 req/s while a neighbour burns every core beside it",
        variables=api.AGENT_VARIABLES,
        workloads=[steady_ingest(40)],
        thresholds=[latency("p(95) < 500ms"), error_rate("< 5%")],
        faults=[fault.neighbour(io=io, at="25s", lasting="25s")],
        resilience=[lost_writes("== 0")],
        writes=REPORTS_STORED,
    )


scenario = noisy_neighbour()

#: One agent replica with a CPU limit and a request, storing what it acknowledges in a file
#: (a durable sink): what the neighbour competes with.
stack = {
    "replicas": 1,
    "autoscaler": None,
    "limits": {"cpu": "500m", "memory": "256Mi"},
    "requests": {"cpu": "250m", "memory": "128Mi"},
    "target": {
        "env": {
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
            "STRESSBED_AGENT_ACK": "flushed",
        }
    },
}
