"""Slow disk: the ingest mix at a steady rate while the agent's disk is throttled to 64 KiB/s;
what a durable agent's users see, and whether it acknowledges anything it did not store.

    stressbed run --scenario slow_disk

60 s of load (``--duration`` scales the fault with it); from 22.5 s, for 22.5 s, the agent's
reads and writes on its data folder's disk are held to 64 KiB/s in its cgroup (the local and
Docker backends: the blkio throttle). The agent stores each report in a file, ``fdatasync``'ed
before it answers (``sink_sync: data``, ``ack: flushed``): every flush waits for the disk, so
reports wait too; the finding ``io-throttled`` says why. Not one acknowledged report may be
lost. With ``STRESSBED_AGENT_SINK_SYNC: none`` (the page cache) the throttle does not reach it
on cgroup v1. Needs STRESSBED_AGENT_TOKEN, as the ingest mix does.
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

scenario = Scenario(
    "slow_disk",
    description="The ingest mix at 40 req/s while the agent's disk is held to 64 KiB/s",
    variables=api.AGENT_VARIABLES,
    workloads=[steady_ingest(40)],
    thresholds=[latency("p(95) < 500ms"), error_rate("< 5%")],
    faults=[fault.slow_disk("64KiB/s", at="22500ms", lasting="22500ms")],
    resilience=[lost_writes("== 0")],
    writes=REPORTS_STORED,
)

#: One agent replica storing each report on the disk before it acknowledges it.
stack = {
    "replicas": 1,
    "autoscaler": None,
    "target": {
        "env": {
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": "{data}/sink.jsonl",
            "STRESSBED_AGENT_SINK_SYNC": "data",
            "STRESSBED_AGENT_ACK": "flushed",
        }
    },
}
