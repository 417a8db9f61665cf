"""The capacity table in the terminal: a row per probe, the knee, the answer last."""

from __future__ import annotations

from stressbed.results.table import capacity_table

DOCUMENT = {
    "scenario": "ingest_mix",
    "workload": "ingest",
    "run_id": "r1",
    "elapsed_s": 95.0,
    "unit": "req/s",
    "answer": "capacity: 1,800 req/s (1,800-1,900) within p(95)<300ms",
    "exit_code": 0,
    "knee": {"range": [1600, 1800], "confidence": "medium", "reason": "p95 rose"},
    "disagreements": [1900],
    "probes": [
        {
            "index": 1,
            "rate": 1800,
            "trial": 1,
            "status": "held",
            "reasons": [],
            "achieved_per_s": 1799.5,
            "error_rate": 0.0,
            "p50_ms": 12.0,
            "p95_ms": 40.0,
            "p99_ms": 80.0,
            "vus_active": 30.5,
            "concurrency_littles_law": 72.25,
            "vus_peak": 44,
            "dropped": 0,
            "replicas": 2,
            "pods": {"agent-0": {"cpu_m": 640.0}, "agent-1": {"cpu_m": 980.0}},
        },
        {
            "index": 2,
            "rate": 1900,
            "trial": 2,
            "status": "failed",
            "reasons": ["p(95)<300ms: 412.0 ms"],
            "contaminated": True,
            "pods": {},
        },
    ],
}


def test_each_probe_is_a_row_with_its_verdict_and_the_answer_comes_last():
    lines = capacity_table(DOCUMENT).splitlines()
    assert lines[0].startswith("capacity of ingest_mix (ingest)  run r1")
    held = next(x for x in lines if x.strip().startswith("1 "))
    for shown in ("1,800", "1,799.5", "980m"):
        assert shown in held
    assert held.endswith("held")
    failed = next(x for x in lines if x.strip().startswith("2 "))
    assert "failed #2 (contaminated): p(95)<300ms: 412.0 ms" in failed
    assert "knee 1,600-1,800 req/s (medium)" in capacity_table(DOCUMENT)
    assert "trials disagreed at 1,900 req/s" in capacity_table(DOCUMENT)
    assert lines[-1] == DOCUMENT["answer"]


def test_a_search_that_did_not_answer_says_its_exit_code():
    text = capacity_table({**DOCUMENT, "exit_code": 3, "message": "provisioning failed: x"})
    assert text.splitlines()[-1] == "exit 3: provisioning failed: x"


def test_the_vus_busy_and_the_concurrency_by_little_s_law_are_columns_of_their_own():
    lines = capacity_table(DOCUMENT).splitlines()
    header = next(x for x in lines if x.strip().startswith("#"))
    assert header.split()[8:10] == ["conc", "VUs"]  # "err %" is two words
    held = next(x for x in lines if x.strip().startswith("1 ")).split()
    assert held[7:9] == ["72.2", "30.5"]


def test_a_capacity_json_written_before_vus_active_still_shows_its_vus():
    # Older documents called k6's vus gauge in_flight, and had no concurrency.
    (probe, *rest) = DOCUMENT["probes"]
    old = {k: v for k, v in probe.items() if k not in ("vus_active", "concurrency_littles_law")}
    lines = capacity_table({**DOCUMENT, "probes": [{**old, "in_flight": 30.0}, *rest]})
    held = next(x for x in lines.splitlines() if x.strip().startswith("1 ")).split()
    assert held[7:9] == ["-", "30.0"]
