"""The JSON Schemas of the documents a run and a capacity search write (``summary.json``,
``capacity.json``): their top-level fields, each with its type and what it holds. They are
data, used twice: the tests validate real documents against them (a field written and not
here, or of another type, fails), and the documentation site renders them and publishes them
as files at each build (``reference/schemas.md``, ``schemas/*.schema.json``). The fields'
insides are described on the result files' page.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CAPACITY", "SCHEMAS", "SUMMARY", "markdown"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _field(kind: str | list[str], description: str, **more: Any) -> dict[str, Any]:
    return {"type": kind, "description": description, **more}


_OBJECT_OR_NULL = ["object", "null"]
_NUMBER_OR_NULL = ["number", "null"]
_STRING_OR_NULL = ["string", "null"]

SUMMARY: dict[str, Any] = {
    "$schema": _DRAFT,
    "title": "summary.json",
    "description": "What a run measured and concluded, written by every run that started.",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema_version",
        "run_id",
        "scenario",
        "verdict",
        "exit_code",
        "message",
        "settings",
        "metrics",
        "thresholds",
        "runners",
        "events",
        "timeseries",
    ],
    "properties": {
        "schema_version": _field("integer", "this document's version"),
        "run_id": _field("string", "the run's id, its directory's name"),
        "scenario": _field("string", "the scenario's name"),
        "verdict": _field("string", "the run's verdict", enum=["pass", "fail", "error"]),
        "exit_code": _field("integer", "the command's exit code"),
        "message": _field("string", "why, in one line"),
        "duration_s": _field(_NUMBER_OR_NULL, "the seconds of load"),
        "start_skew_ms": _field(_NUMBER_OR_NULL, "how far apart the runners started"),
        "settings": _field("object", "what the run was given, and where each came from"),
        "metrics": _field("object", "the fleet's merged metrics, by k6's names"),
        "names_folded": _field(
            "object", "the request names counted under (other) in per-second latency"
        ),
        "thresholds": _field("array", "each threshold, its observed value and outcome"),
        "runners": _field("array", "each runner: segment, status, exit code, requests"),
        "stack": _field(_OBJECT_OR_NULL, "the provisioned stack: limits, events, its series"),
        "findings": _field("array", "what the data points at, each with its evidence"),
        "resilience": _field(_OBJECT_OR_NULL, "each fault and the resilience thresholds"),
        "writes": _field(_OBJECT_OR_NULL, "writes acknowledged, stored and lost"),
        "population": _field("object", "a population's figures (only with one)"),
        "fingerprint": _field(_OBJECT_OR_NULL, "what the run ran, for comparisons"),
        "history": _field("object", "earlier runs of its series and the gate (when read)"),
        "comparison": _field(_OBJECT_OR_NULL, "against --baseline"),
        "events": _field("array", "what the stack and the fleet did, in time order"),
        "timeseries": _field("array", "per second: rates, error rate, percentiles, VUs"),
        "report_error": _field(_STRING_OR_NULL, "why report.html could not be drawn"),
        "live": _field("object", "what the remote write and the alerts did (when asked)"),
    },
}

CAPACITY: dict[str, Any] = {
    "$schema": _DRAFT,
    "title": "capacity.json",
    "description": "A capacity search's answer, its settings and every probe.",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "format",
        "schema_version",
        "run_id",
        "scenario",
        "exit_code",
        "message",
        "max_sustainable_rate",
        "limited_by",
        "ended_by",
        "probes",
        "settings",
    ],
    "properties": {
        "format": _field("string", "stressbed.capacity", const="stressbed.capacity"),
        "schema_version": _field("integer", "this document's version"),
        "run_id": _field("string", "the search's id, its directory's name"),
        "scenario": _field("string", "the scenario's name"),
        "workload": _field("string", "the workload searched along"),
        "converted_from": _field(_STRING_OR_NULL, "a closed-model executor made open"),
        "unit": _field("string", "req/s, iterations/s or agents"),
        "variable": _field("string", "rate, or agents along a population"),
        "requests_per_iteration": _field("number", "requests an iteration makes"),
        "exit_code": _field("integer", "the command's exit code"),
        "message": _field("string", "why it ended, in one line"),
        "answer": _field("string", "the answer, in one line"),
        "max_sustainable_rate": _field(
            ["integer", "null"], "the highest rate that held below every failure"
        ),
        "max_sustainable_agents": _field(
            ["integer", "null"], "along a population: the most agents that held"
        ),
        "population": _field("object", "along a population: the population searched"),
        "interval": _field(["array", "null"], "where the boundary lies"),
        "at_least": _field("boolean", "the answer is a lower bound"),
        "first_failing_rate": _field(["integer", "null"], "the lowest rate that failed"),
        "failure": _field(_OBJECT_OR_NULL, "what broke at the first failing rate"),
        "generator_limit": _field(_OBJECT_OR_NULL, "where the load generator was the limit"),
        "limited_by": _field(_STRING_OR_NULL, "target, generator or max_rate"),
        "ended_by": _field("string", "what ended the search"),
        "converged": _field("boolean", "the search converged"),
        "disagreements": _field("array", "rates whose trials disagreed"),
        "cause": _field(_OBJECT_OR_NULL, "what limits the stack, with its evidence"),
        "knee": _field(_OBJECT_OR_NULL, "where latency turns up against throughput"),
        "scale_out": _field(_OBJECT_OR_NULL, "with --scale-out-for: its timings"),
        "scale_out_answer": _field("string", "the scale-out's answer, in one line"),
        "scale_out_skipped": _field("string", "why the scale-out was not timed"),
        "per_replica": _field("object", "with --per-replica: the two searches compared"),
        "slos": _field("array", "the SLOs each probe was judged by"),
        "settings": _field("object", "the search's bounds, steps, budget and sources"),
        "elapsed_s": _field("number", "the search's seconds"),
        "stack": _field("object", "the stack's limits, most replicas, enforcement"),
        "probes": _field("array", "each probe: rate, trial, verdict and its figures"),
        "fingerprint": _field(_OBJECT_OR_NULL, "what each probe ran"),
        "teardown": _field("string", "what the teardown left, if anything"),
        "report_error": _field(_STRING_OR_NULL, "why report.html could not be drawn"),
    },
}

#: Each document's schema by its file name.
SCHEMAS = {"summary.json": SUMMARY, "capacity.json": CAPACITY}


def markdown() -> str:
    """The schemas as the documentation's ``reference/schemas.md``."""
    out = [
        "# Schemas",
        "",
        "The top-level fields of `summary.json` and `capacity.json`, rendered from their JSON",
        "Schemas at each build (`stressbed/results/schemas.py`); the tests validate real",
        "documents against them. The schemas themselves: "
        + ", ".join(f"[{n}](../schemas/{n.split('.')[0]}.schema.json)" for n in SCHEMAS)
        + ". What each field holds inside: [Result files](results.md).",
        "",
    ]
    for name, schema in SCHEMAS.items():
        required = set(schema["required"])
        out += [f"## {name}", "", schema["description"], "", "| field | type | |", "|---|---|---|"]
        for field, spec in schema["properties"].items():
            kind = spec["type"] if isinstance(spec["type"], str) else " or ".join(spec["type"])
            always = "always" if field in required else "when it applies"
            out.append(f"| `{field}` | {kind}, {always} | {spec['description']} |")
        out.append("")
    return "\n".join(out) + "\n"
