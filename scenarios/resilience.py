"""Resilience: the ingest mix at a steady rate while a replica is killed, another frozen, and
the path to the agent slowed; what users saw, how fast the stack noticed and recovered.

    stressbed run --scenario resilience

60 s of load (``--duration`` scales the faults with it): a replica killed at 5 s (its
restart policy brings it back), one frozen for 10 s at 15 s (its readiness probe takes it out
of the balancer; it resumes at the end), and 200 ms (+-20 ms) on the path to every replica for
10 s at 45 s. Each is observed until the next one starts and judged: back within the SLOs 30 s
after it at the latest, no more than 5% of the requests failed meanwhile, and not one
acknowledged report lost: the agent stores reports in a file its replicas share and answers
202 only once stored (``stack`` below); stressbed reads each agent id back after the load.
Needs STRESSBED_AGENT_TOKEN, as the ingest mix does.
"""

from __future__ import annotations

from stressbed import (
    Scenario,
    error_rate,
    errors_during_fault,
    fault,
    latency,
    lost_writes,
    recovery_time,
)

from . import agent_api as api
from .ingest_mix import REPORTS_STORED, steady_ingest

scenario = Scenario(
    "resilience",
    description="The ingest mix at 50 req/s through a kill, a pause and 200 ms on the path",
    variables=api.AGENT_VARIABLES,
    workloads=[steady_ingest(50)],
    thresholds=[latency("p(95) < 500ms"), error_rate("< 5%")],
    faults=[
        fault.kill(at="5s"),
        fault.pause("10s", at="15s", seed=1),
        fault.latency("200ms", jitter="20ms", at="45s", lasting="10s"),
    ],
    resilience=[recovery_time("< 30s"), errors_during_fault("< 5%"), lost_writes("== 0")],
    writes=REPORTS_STORED,
)

#: The stack this scenario is written for: the reference agent with a durable sink, shared by
#: its replicas, acknowledging a report once stored (the profile and the command line may
#: change it further; with ``STRESSBED_AGENT_ACK: queued`` the kill loses what was queued).
stack = {
    "target": {
        "env": {
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
            "STRESSBED_AGENT_ACK": "flushed",
        }
    }
}
