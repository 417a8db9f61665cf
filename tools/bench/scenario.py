"""Benchmark scenario: three weighted endpoints with generated payloads (see bench_runtime.py).

The hand-written baseline.js beside this file sends the same requests with the same options.
"""

from __future__ import annotations

import os

from stressbed import ConstantVUs, Scenario, Workload, check, gen, mix, post

VUS = int(os.environ.get("BENCH_VUS", "20"))
DURATION = os.environ.get("BENCH_DURATION", "10s")

report = post(
    "/v1/report",
    name="report",
    json={
        "agent_id": "{{agent}}",
        "points": gen.repeat(
            5,
            {
                "ts": gen.timestamp(),
                "name": gen.choice(["cpu", "mem", "disk", "net"]),
                "value": gen.uniform_float(0, 100),
            },
        ),
    },
    checks=[check.status(200)],
)
heartbeat = post(
    "/v1/heartbeat",
    name="heartbeat",
    json={"agent_id": "{{agent}}", "status": gen.choice(["ok", "degraded"])},
    checks=[check.status(200)],
)
task = post(
    "/v1/tasks",
    name="task",
    json={"type": "checksum", "args": {"data": gen.random_string(32)}},
    checks=[check.status(200)],
)

scenario = Scenario(
    "bench_mix",
    description="benchmark: 65/25/10 weighted mix with generated payloads",
    variables={"agent": gen.per_vu(gen.uuid4())},
    workloads=[
        Workload(
            "bench",
            mix((report, 65), (heartbeat, 25), (task, 10)),
            ConstantVUs(vus=VUS, duration=DURATION),
            graceful_stop="2s",
        )
    ],
)
