"""Agent ingest: 65% metric reports, 25% heartbeats, 10% task submissions at a steady rate.

Each VU is one agent (a stable id and host). Reports carry 1..20 generated metric points.
Needs STRESSBED_AGENT_TOKEN in the environment (task submissions are authenticated).
``stressbed capacity --scenario ingest_mix`` searches with the SLOs declared below.
"""

from __future__ import annotations

from stressbed import (
    Capacity,
    ConstantArrivalRate,
    Scenario,
    Workload,
    Writes,
    check_rate,
    error_rate,
    latency,
    mix,
)

from . import agent_api as api

#: The weighted ingest traffic of one agent, reused by other scenarios.
INGEST = mix((api.report(), 65), (api.heartbeat(), 25), (api.submit_task(), 10))
#: Each acknowledged report counted per agent and read back from the agent after the load:
#: what a ``lost_writes`` threshold judges (the fault scenarios).
REPORTS_STORED = Writes(
    request="report",
    writer="agent_id",
    items="points",
    read_back="/v1/agents/{writer}/stored",
    token="STRESSBED_AGENT_TOKEN",
)


def steady_ingest(rate: int, duration: str = "60s") -> Workload:
    """The ingest mix at ``rate`` a second for ``duration`` (the fault scenarios' load)."""
    return Workload(
        "ingest",
        INGEST,
        ConstantArrivalRate(rate=rate, duration=duration, pre_allocated_vus=20, max_vus=200),
        graceful_stop="10s",
    )


scenario = Scenario(
    "ingest_mix",
    description="Agent ingest: 65% reports, 25% heartbeats, 10% tasks at a constant 50 req/s",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ingest",
            INGEST,
            ConstantArrivalRate(rate=50, duration="1m", pre_allocated_vus=10, max_vus=50),
            graceful_stop="10s",
        )
    ],
    thresholds=[
        latency("p(95) < 250ms"),
        latency("p(99) < 500ms", request="report"),
        error_rate("< 1%"),
        check_rate("> 99%"),
    ],
)

#: What ``stressbed capacity --scenario ingest_mix`` searches with (its options override it).
capacity = Capacity(
    slos=[latency("p(95) < 250ms"), error_rate("< 1%")],
    min_rate=50,
    max_rate=5000,
    step_duration="15s",
    budget="6m",
)
