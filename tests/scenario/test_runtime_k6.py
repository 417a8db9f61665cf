"""The k6 runtime, run in real k6 against a recording server on loopback."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

from stressbed import (
    ConstantVUs,
    Scenario,
    SharedIterations,
    Workload,
    check,
    extract,
    gen,
    get,
    group,
    journey,
    mix,
    post,
    think_constant,
)

from ..conftest import K6, Received, RecordingServer, needs_k6, run_k6

pytestmark = [needs_k6, pytest.mark.k6]


def one(flow, profile=None, **kwargs) -> Scenario:
    profile = profile or SharedIterations(vus=1, iterations=1)
    return Scenario("t", description="test", workloads=[Workload("w", flow, profile)], **kwargs)


def proportions(server: RecordingServer) -> dict[str, float]:
    counts = Counter(r.path for r in server.received)
    total = sum(counts.values())
    return {path: n / total for path, n in counts.items()}


@pytest.mark.parametrize("sampling", ["balanced", "random"])
def test_mix_proportions_hold_over_many_iterations(server, k6_bundle, sampling):
    flow = mix(
        (post("/report"), 65), (post("/heartbeat"), 25), (post("/task"), 10), sampling=sampling
    )
    n = 6000
    script = k6_bundle(one(flow, SharedIterations(vus=8, iterations=n)))
    result = run_k6(script, {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    assert len(server.received) == n
    shares = proportions(server)
    for path, weight in (("/report", 0.65), ("/heartbeat", 0.25), ("/task", 0.10)):
        # Balanced sampling is exact to within a few picks per VU. Random picks are binomial:
        # 5 standard deviations (3.1 pp for the 65% entry) fail a correct sampler about once in
        # a million runs; a tighter cap of 2 pp (3.2 sd) failed CI on an honest 4 sd draw.
        tolerance = 0.005 if sampling == "balanced" else 5 * math.sqrt(weight * (1 - weight) / n)
        assert abs(shares[path] - weight) < tolerance, (path, shares)


def test_journey_extracts_values_that_later_steps_use(server, k6_bundle):
    issued: dict[str, str] = {}

    def login(req: Received):
        token = f"sess-{len(issued)}"
        issued[token] = ""
        return 200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()

    def create(req: Received):
        task = f"t{len(server.received)}"
        issued[req.headers["Authorization"].removeprefix("Bearer ")] = task
        body = json.dumps({"task": {"id": task}}).encode()
        return 201, {"Content-Type": "application/json", "Location": f"/tasks/{task}"}, body

    server.routes["/login"] = login
    server.routes["/tasks"] = create
    server.route("/tasks/", body={"state": "done"})
    flow = group(
        "lifecycle",
        post("/login", json={"user": "u"}, extract={"session": extract.json("token")}),
        post(
            "/tasks",
            name="create",
            headers={"Authorization": "Bearer {{session}}"},
            extract={
                "task_id": extract.json("task.id"),
                "where": extract.header("location"),
                "num": extract.regex(r'"id": "t(\d+)"'),
            },
        ),
        get(
            "/tasks/{{task_id}}",
            name="read",
            query={"from": "{{where}}", "n": "{{num}}"},
            headers={"Authorization": "Bearer {{session}}"},
            checks=[check.json_equals("state", "done")],
        ),
    )
    script = k6_bundle(one(flow, SharedIterations(vus=2, iterations=20)))
    result = run_k6(script, {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    reads = [r for r in server.received if r.method == "GET"]
    assert len(reads) == 20
    for req in reads:
        path, _, query = req.path.partition("?")
        token = req.headers["Authorization"].removeprefix("Bearer ")
        task = issued[token]
        assert path == f"/tasks/{task}"
        params = urllib.parse.parse_qs(query)
        assert params == {"from": [f"/tasks/{task}"], "n": [task[1:]]}
    checks = result.checks()
    assert checks["extract session"] == {"passes": 20, "fails": 0}
    assert checks['state == "done"'] == {"passes": 20, "fails": 0}


def test_failed_extraction_ends_the_journey(server, k6_bundle):
    server.route("/login", body={"nothing": "here"})
    flow = journey(
        post("/login", extract={"session": extract.json("token")}),
        get("/private", headers={"Authorization": "Bearer {{session}}"}),
    )
    script = k6_bundle(one(flow, SharedIterations(vus=1, iterations=5)))
    result = run_k6(script, {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    assert [r.path for r in server.received] == ["/login"] * 5
    assert result.checks()["extract session"] == {"passes": 0, "fails": 5}


def test_generators_have_the_declared_distributions(server, k6_bundle):
    body = {
        "int": gen.uniform_int(1, 6),
        "float": gen.uniform_float(10.0, 20.0),
        "normal": gen.normal(100, 15, minimum=70, maximum=130),
        "normal_int": gen.normal(5, 2, minimum=0, maximum=10, integer=True),
        "choice": gen.choice({"ok": 3, "degraded": 1}),
        "text": gen.random_string(12, "xyz"),
        "uuid": gen.uuid4(),
        "ms": gen.timestamp(),
        "iso": gen.timestamp("iso"),
        "batch": gen.repeat(gen.uniform_int(1, 3), {"v": gen.uniform_int(0, 9)}),
        "same": "{{shared}}-{{shared}}",
    }
    started = time.time() * 1000
    n = 3000
    scenario = one(
        post("/g", json=body),
        SharedIterations(vus=4, iterations=n),
        variables={"shared": gen.uuid4()},
    )
    result = run_k6(k6_bundle(scenario), {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    rows = server.bodies("/g")
    assert len(rows) == n
    ints = [r["int"] for r in rows]
    assert set(ints) == {1, 2, 3, 4, 5, 6}
    # Means are checked to 5 standard errors: tight enough to catch a wrong range or a
    # biased draw, loose enough that a correct generator fails about once in a million runs.
    assert abs(statistics.mean(ints) - 3.5) < 5 * math.sqrt(35 / 12 / n)
    floats = [r["float"] for r in rows]
    assert all(10.0 <= f < 20.0 for f in floats)
    assert abs(statistics.mean(floats) - 15.0) < 5 * (10 / math.sqrt(12)) / math.sqrt(n)
    normals = [r["normal"] for r in rows]
    assert all(70 <= x <= 130 for x in normals)
    # A normal truncated at +-2 sd keeps sd * sqrt(1 - 2a*phi(a)/(2*Phi(a)-1)), a = 2.
    a = 2.0
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    kept = math.erf(a / math.sqrt(2))
    expected_sd = 15 * math.sqrt(1 - 2 * a * phi / kept)
    assert abs(statistics.mean(normals) - 100) < 5 * expected_sd / math.sqrt(n)
    assert abs(statistics.stdev(normals) - expected_sd) / expected_sd < 0.06
    assert all(isinstance(r["normal_int"], int) and 0 <= r["normal_int"] <= 10 for r in rows)
    ok_share = sum(r["choice"] == "ok" for r in rows) / n
    assert abs(ok_share - 0.75) < 0.04
    assert all(re.fullmatch(r"[xyz]{12}", r["text"]) for r in rows)
    uuid4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
    assert all(uuid4.fullmatch(r["uuid"]) for r in rows)
    assert len({r["uuid"] for r in rows}) == n
    finished = time.time() * 1000
    assert all(started - 1000 <= r["ms"] <= finished + 1000 for r in rows)
    assert all(r["iso"].endswith("Z") and "T" in r["iso"] for r in rows)
    assert {len(r["batch"]) for r in rows} == {1, 2, 3}
    # A variable is evaluated once per iteration, so both references agree...
    assert all(r["same"][:36] == r["same"][37:] for r in rows)
    # ...and differs between iterations.
    assert len({r["same"] for r in rows}) == n


def test_lognormal_draws_have_the_declared_quantiles(server, k6_bundle):
    """Whatever the distribution, the number of draws at or below its true q-quantile is
    Binomial(n, q); so each share is checked against the exact quantile to 5 standard errors
    (a correct generator fails a few runs in a million; a sigma 10% off moves the 84th
    percentile's share by 2.3 pp, nearly twice the 1.3 pp tolerance at this n)."""
    per_request, requests = 500, 40
    body = {
        "free": gen.repeat(per_request, gen.lognormal(120, 0.45)),
        "bounded": gen.repeat(
            per_request, gen.lognormal(120, 0.45, minimum=60, maximum=400, integer=True)
        ),
    }
    scenario = one(post("/l", json=body), SharedIterations(vus=2, iterations=requests))
    result = run_k6(k6_bundle(scenario), {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    rows = server.bodies("/l")
    assert len(rows) == requests
    n = per_request * requests

    def within_sampling_error(draws: list[float], x: float, q: float) -> None:
        share = sum(d <= x for d in draws) / len(draws)
        assert abs(share - q) < 5 * math.sqrt(q * (1 - q) / len(draws)), (x, share, q)

    free = [x for r in rows for x in r["free"]]
    assert len(free) == n
    assert all(x > 0 for x in free)
    log_normal = statistics.NormalDist(math.log(120), 0.45)
    for q in (0.05, 0.5, 0.8413, 0.99):
        within_sampling_error(free, math.exp(log_normal.inv_cdf(q)), q)

    bounded = [x for r in rows for x in r["bounded"]]
    assert len(bounded) == n
    assert all(isinstance(x, int) and 60 <= x <= 400 for x in bounded)

    # Resampling keeps the shape inside the bounds: P(X <= x | 60 <= X <= 400), where a
    # rounded draw is <= k when the draw was < k + 0.5. (All 16 draws miss the bounds with
    # probability 0.066 ** 16: never.)
    def truncated(x: float) -> float:
        low, high = log_normal.cdf(math.log(60)), log_normal.cdf(math.log(400))
        return (log_normal.cdf(math.log(x)) - low) / (high - low)

    for k in (70, 120, 250):
        within_sampling_error(bounded, k, truncated(k + 0.5))


def test_per_vu_variables_stay_fixed_for_each_vu(server, k6_bundle):
    scenario = one(
        post("/p", json={"agent": "{{agent}}", "it": "{{it}}"}),
        SharedIterations(vus=3, iterations=60),
        variables={"agent": gen.per_vu(gen.uuid4()), "it": gen.uuid4()},
    )
    result = run_k6(k6_bundle(scenario), {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    rows = server.bodies("/p")
    assert len({r["agent"] for r in rows}) == 3
    assert len({r["it"] for r in rows}) == 60


def _run_fleet(script: Path, url: str, runners: int) -> list[tuple[int, str]]:
    """Run ``runners`` k6 processes at once, each on its execution segment."""
    assert K6 is not None
    cuts = ["0", *(f"{i}/{runners}" for i in range(1, runners)), "1"]
    sequence = ",".join(cuts)
    procs = [
        subprocess.Popen(
            [
                K6,
                "run",
                "--quiet",
                "--no-usage-report",
                "--execution-segment",
                f"{cuts[i]}:{cuts[i + 1]}",
                "--execution-segment-sequence",
                sequence,
                str(script),
            ],
            env={**os.environ, "TARGET_URL": url, "K6_NO_USAGE_REPORT": "true"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(runners)
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    return [(p.returncode, err) for p, (_, err) in zip(procs, outcomes, strict=True)]


def test_counters_and_sequential_rows_are_unique_across_runners(server, k6_bundle, tmp_path):
    data = tmp_path / "ids.json"
    data.write_text(json.dumps([{"row": i} for i in range(500)]))
    scenario = one(
        post("/c", json={"a": gen.counter(), "b": gen.counter(1000), "row": "{{r.row}}"}),
        SharedIterations(vus=6, iterations=400),
        variables={"r": gen.rows(data, mode="sequential")},
    )
    outcomes = _run_fleet(k6_bundle(scenario), server.url, 2)
    assert [code for code, _ in outcomes] == [0, 0], outcomes
    rows = server.bodies("/c")
    assert len(rows) == 400
    assert len({r["a"] for r in rows}) == 400
    assert len({r["b"] for r in rows}) == 400
    assert min(r["b"] for r in rows) >= 1000
    assert len({r["row"] for r in rows}) == 400


def test_unique_rows_give_each_vu_its_own_row(server, k6_bundle, tmp_path):
    data = tmp_path / "hosts.csv"
    data.write_text("host,zone\n" + "".join(f"h{i},z{i % 3}\n" for i in range(10)))
    scenario = one(
        post("/u", json={"host": "{{row.host}}", "zone": "{{row.zone}}"}),
        SharedIterations(vus=5, iterations=50),
        variables={"row": gen.rows(data, mode="unique")},
    )
    result = run_k6(k6_bundle(scenario), {"TARGET_URL": server.url})
    assert result.exit_code == 0, result.stderr
    rows = server.bodies("/u")
    assert len({r["host"] for r in rows}) == 5
    assert all(r["zone"] == f"z{int(r['host'][1:]) % 3}" for r in rows)


def test_think_time_paces_the_journey(server, k6_bundle):
    flow = journey(get("/a"), get("/b"), think=think_constant("300ms"))
    result = run_k6(
        k6_bundle(one(flow, SharedIterations(vus=1, iterations=3))), {"TARGET_URL": server.url}
    )
    assert result.exit_code == 0, result.stderr
    assert result.metric("iteration_duration")["min"] >= 300


def test_missing_target_url_stops_before_any_request(server, k6_bundle):
    result = run_k6(k6_bundle(one(get("/x"))), {"TARGET_URL": ""})
    assert result.exit_code == 107
    assert "TARGET_URL is not set" in result.stderr
    assert server.received == []


def test_constant_vus_profile_runs_for_its_duration(server, k6_bundle):
    started = time.monotonic()
    result = run_k6(
        k6_bundle(one(get("/x"), ConstantVUs(vus=2, duration="2s"))), {"TARGET_URL": server.url}
    )
    assert result.exit_code == 0, result.stderr
    assert 2.0 <= time.monotonic() - started < 15
    assert result.metric("vus_max")["max"] == 2
