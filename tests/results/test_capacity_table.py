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
            "in_flight": 30.0,
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
