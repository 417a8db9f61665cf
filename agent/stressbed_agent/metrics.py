"""Prometheus metrics of the agent, in a registry of its own."""

from __future__ import annotations

import resource

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

registry = CollectorRegistry()
# process_resident_memory_bytes, process_cpu_seconds_total, open fds, ...
ProcessCollector(registry=registry)

requests = Counter(
    "agent_requests", "HTTP requests by route and status", ["route", "status"], registry=registry
)
latency = Histogram(
    "agent_request_duration_seconds",
    "HTTP request latency by route",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=registry,
)
in_flight = Gauge("agent_in_flight_requests", "requests being handled", registry=registry)
queue_depth = Gauge("agent_queue_points", "metric points waiting for the sink", registry=registry)
accepted = Counter("agent_points_accepted", "points accepted into the queue", registry=registry)
dropped = Counter(
    "agent_points_dropped", "points refused or lost, by reason", ["reason"], registry=registry
)
flushed = Counter("agent_points_flushed", "points written to the sink", registry=registry)
breaker_state = Gauge(
    "agent_circuit_breaker_state",
    "sink circuit breaker: 0 closed, 1 open, 2 half-open",
    registry=registry,
)
ready = Gauge("agent_ready", "1 when /readyz answers 200", registry=registry)
memory = Gauge(
    "agent_process_max_rss_bytes", "peak resident memory of the process", registry=registry
)
memory.set_function(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}


def observe(route: str, status: int, seconds: float) -> None:
    """Count a request and its latency; label children are looked up once per route/status."""
    child = _children.get((route, status))
    if child is None:
        child = _children[(route, status)] = (
            requests.labels(route, str(status)),
            latency.labels(route),
        )
    child[0].inc()
    child[1].observe(seconds)


# -- WebSocket channels and registrations (channel.py, registry.py) ---------------------

channel_connected = Gauge(
    "agent_channel_connected", "WebSocket channels open (handshaking ones too)", registry=registry
)
channel_messages = Counter(
    "agent_channel_messages",
    "channel messages by direction (in, out) and type (unknown types counted as other)",
    ["direction", "type"],
    registry=registry,
)
channel_refused = Counter(
    "agent_channel_refused",
    "channels refused: upgrades (limit, draining) and channels closed 1008 (session, protocol)",
    ["reason"],
    registry=registry,
)
registrations = Counter(
    "agent_registrations",
    "registrations (POST /v1/register or a hello without session)",
    registry=registry,
)
duplicate_registrations = Counter(
    "agent_duplicate_registrations",
    "registrations of an agent id this replica had already seen registered",
    registry=registry,
)
channel_task_rtt = Histogram(
    "agent_channel_task_rtt_seconds",
    "from a task pushed down a channel to its task_result",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=registry,
)
nofile_limit = Gauge(
    "agent_nofile_limit",
    "the process's soft limit of open files (RLIMIT_NOFILE)",
    registry=registry,
)
