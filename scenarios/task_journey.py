"""Task journey: login, submit a task, read its result, with think time between steps.

The session token from login authenticates the later steps; the task id from the submission
builds the result URL. Needs STRESSBED_AGENT_TOKEN in the environment.
"""

from __future__ import annotations

from stressbed import RampingVUs, Scenario, Workload, check_rate, group, latency, think_uniform

from . import agent_api as api

TASK_LIFECYCLE = group(
    "task lifecycle",
    api.login(),
    api.submit_task(token="session"),
    api.task_status(token="session"),
    think=think_uniform("200ms", "1s"),
)

scenario = Scenario(
    "task_journey",
    description="Task journey: login -> submit task -> read result, 0 -> 10 VUs then hold",
    variables=api.AGENT_VARIABLES,
    workloads=[
        Workload(
            "journey",
            TASK_LIFECYCLE,
            RampingVUs(stages=[("20s", 10), ("1m", 10), ("10s", 0)], start_vus=0),
        )
    ],
    thresholds=[
        latency("p(95) < 300ms", request="submit_task"),
        latency("p(95) < 300ms", request="task_status"),
        check_rate("> 99%"),
    ],
)
