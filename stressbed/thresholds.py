"""The public namespace ``stressbed.thresholds``: the SLOs a run is judged by (see
docs/guides/scenarios.md), k6's and a population's. The definitions live in
:mod:`stressbed.scenario.thresholds`; the request-level ones are also at the top of
``stressbed``.
"""

from .scenario.thresholds import (
    check_rate,
    checkin_lateness,
    command_rtt,
    connect_time,
    connected,
    error_rate,
    latency,
    reconnect_time,
    request_rate,
    threshold,
)

__all__ = [
    "check_rate",
    "checkin_lateness",
    "command_rtt",
    "connect_time",
    "connected",
    "error_rate",
    "latency",
    "reconnect_time",
    "request_rate",
    "threshold",
]
