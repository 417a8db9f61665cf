"""Capacity ramp: the ingest mix from 0 to 500 iterations/s over 5 minutes, then a 2-minute hold.

Finds where the service stops keeping up: the run aborts early once errors pass 5% for 30 s.
Needs STRESSBED_AGENT_TOKEN in the environment.
"""

from __future__ import annotations

from stressbed import RampingArrivalRate, Scenario, Workload, error_rate, latency

from . import agent_api as api
from .ingest_mix import INGEST

scenario = Scenario(
    "capacity_ramp",
    description="Capacity ramp: ingest mix 0 -> 500/s over 5m, hold 2m; aborts past 5% errors",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "ramp",
            INGEST,
            RampingArrivalRate(
                stages=[("5m", 500), ("2m", 500)], pre_allocated_vus=50, max_vus=500
            ),
            graceful_stop="10s",
        )
    ],
    thresholds=[
        error_rate("< 5%", abort_on_fail=True, delay="30s"),
        latency("p(95) < 500ms"),
    ],
)
