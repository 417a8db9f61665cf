"""modelled_fleet: modelled by `stressbed model` from production traffic.

- fleet_access.log.gz (stressbed): 1,393 lines read
- 1,393 requests from 2026-12-07 15:49:42 to 2026-12-07 15:50:42 UTC (1m)
- 5 endpoints written

Weights are the requests each endpoint had; each endpoint's statuses are the baseline
to compare a run's with; thresholds are the latency and errors observed, a start.
Values of a secret's shape or name (tokens, emails, addresses, ids) were never copied:
generators of their shape stand in.

    stressbed model scenarios/data/fleet_access.log.gz -o scenarios/modelled_fleet.py
"""

from __future__ import annotations

from stressbed import (
    RampingArrivalRate,
    Scenario,
    Workload,
    error_rate,
    gen,
    get,
    latency,
    mix,
    post,
)
from stressbed.population import Agent, KeepAlive, every, population

#: Path parameters, drawn once per iteration (wrap one in gen.per_vu() to pin it).
VARIABLES: dict[str, object] = {
    # {task_id}: 59 numbers
    "task_id": gen.uniform_int(67, 4939),
}

# GET /v1/agents/{agent_id}/checkin: 918 requests (65.90%); statuses: 200 100.0%
# latency p95 1 ms, p99 1 ms over 918 timed
GET_AGENTS_CHECKIN = get(
    "/v1/agents/{{agent_id}}/checkin",
    name="GET /v1/agents/<agent_id>/checkin",
    query={
        # v: 918 values; always this value
        "v": "2.3.1",
    },
)

# GET /v1/agents: 182 requests (13.07%); statuses: 200 100.0%
# latency p95 1 ms, p99 1 ms over 182 timed
GET_AGENTS = get(
    "/v1/agents",
    name="GET /v1/agents",
    query={
        # page: 182 values; 3 of 3 distinct values
        "page": gen.choice({"1": 60, "2": 33, "3": 7}),
        # limit: 182 values; always this value
        "limit": "50",
    },
)

# POST /v1/agents/{agent_id}/report: 154 requests (11.06%); statuses: 200 100.0%
# latency p95 1 ms, p99 1 ms over 154 timed
POST_AGENTS_REPORT = post(
    "/v1/agents/{{agent_id}}/report",
    name="POST /v1/agents/<agent_id>/report",
    json={
        # cpu: 154 values; normal fit, KS distance 0.040, over 154 sampled
        "cpu": gen.normal(32.9, 11.6, minimum=4.4, maximum=67.8),
        # procs: 154 values; uniform fit, KS distance 0.069, over 154 sampled
        "procs": gen.uniform_int(80, 397),
    },
)

# POST /v1/register: 80 requests (5.74%); statuses: 200 100.0%
# latency p95 1 ms, p99 1 ms over 80 timed
POST_REGISTER = post(
    "/v1/register",
    name="POST /v1/register",
    json={
        # agent_id: the client's id
        "agent_id": "{{agent_id}}",
        # os: 80 values; 2 of 2 distinct values
        "os": gen.choice({"linux": 57, "windows": 23}),
    },
)

# GET /v1/tasks/{task_id}: 59 requests (4.24%); statuses: 200 100.0%
# latency p95 1 ms, p99 1 ms over 59 timed
GET_TASKS = get("/v1/tasks/{{task_id}}", name="GET /v1/tasks/<task_id>")

#: The clients as agents: 84 seen, 78 at once on average (at most 84); their check-ins carry
#: 65.9% of the requests. Each keeps its identity (its path parameters) for its life; they join
#: over one interval, so their check-ins are spread as a fleet's are.
AGENT = Agent(
    channel=KeepAlive(),
    identity={
        # {agent_id}: 918 values; UUIDs (values not copied)
        "agent_id": gen.uuid4(),
    },
    register=POST_REGISTER,
    activities=[
        # GET /v1/agents/{agent_id}/checkin: every 5s (median of 838 intervals; p10 4s, p90 6s)
        every("5s", GET_AGENTS_CHECKIN, jitter="20%"),
        # POST /v1/agents/{agent_id}/report: 154 requests, one per agent every 31s on average
        # (jitter 90%: spread, not periodic)
        every("31s", POST_AGENTS_REPORT, jitter="90%"),
    ],
)

AGENTS = population("agents", AGENT, agents=78, join="5s", lasting="1m1s")

#: The requests in their production proportions (weights: the requests counted).
TRAFFIC = mix(
    # 13.07% of all requests
    (GET_AGENTS, 182),
    # 4.24% of all requests
    (GET_TASKS, 59),
)

#: The rate: 1m1s of stages read in 1s buckets; peak 6.23 iterations/s at 15:49:46 UTC.
#: In iterations: the mix's 17.3% of the requests, 1 requests an iteration.
PROFILE = RampingArrivalRate(
    stages=[
        # 15:49:42-15:49:46 UTC: 118 requests
        ("4s500ms", 264),
        # 15:49:46-15:50:43 UTC: 1,275 requests
        ("56s500ms", 215),
    ],
    start_rate=132,
    time_unit="1m",
    pre_allocated_vus=10,
    max_vus=50,
)

scenario = Scenario(
    "modelled_fleet",
    description="Modelled from 1,393 production requests",
    variables=VARIABLES,
    workloads=[AGENTS, Workload("traffic", TRAFFIC, PROFILE)],
    thresholds=[
        latency("p(95) < 1ms", request="GET /v1/agents/<agent_id>/checkin"),
        latency("p(99) < 1ms", request="GET /v1/agents/<agent_id>/checkin"),
        latency("p(95) < 1ms", request="GET /v1/agents"),
        latency("p(99) < 1ms", request="GET /v1/agents"),
        latency("p(95) < 1ms", request="POST /v1/agents/<agent_id>/report"),
        latency("p(99) < 1ms", request="POST /v1/agents/<agent_id>/report"),
        # observed: 0.00% of responses 5xx
        error_rate("< 1%"),
    ],
)
