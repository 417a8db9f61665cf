"""A run's verdict as documents: :class:`RunReport`, written as summary.json (for machines),
junit.xml (one test case per threshold, for CI), events.jsonl and report.html (for people,
:mod:`stressbed.results.html`). The terminal view of the same report is
:mod:`stressbed.results.table`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._numbers import finite, show
from .compare import Comparison
from .findings import Finding, findings
from .merge import FleetResult, merge, metric_values
from .population import Plateau, population
from .runner_result import RunnerResult
from .timeline import Timeline, timeline
from .verdict import ThresholdResult, Verdict

__all__ = ["SCHEMA_VERSION", "RunReport", "junit_xml"]

SCHEMA_VERSION = 1


#: What a population's summary reads of the target's own counters, by its name there.
TARGET_COUNTS = {
    "registrations": "agent_registrations",
    "duplicate_registrations": "agent_duplicate_registrations",
    "channels_refused": "agent_channel_refused",
}


@dataclass
class RunReport:
    run_id: str
    scenario: str
    verdict: Verdict
    exit_code: int
    message: str
    fleet: FleetResult
    thresholds: list[ThresholdResult]
    runners: list[RunnerResult]
    start_skew_ms: float | None
    events: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    #: What the backend says about the stack: enforcement, replica counts, usage series.
    stack: dict[str, Any] = field(default_factory=dict)
    #: Why report.html could not be drawn (the other documents are written regardless).
    report_error: str | None = None
    #: What the run ran (like for like with a baseline).
    fingerprint: dict[str, Any] = field(default_factory=dict)
    #: Against ``--baseline``: the comparison, the baseline's windows and where it is.
    comparison: Comparison | None = None
    baseline_runners: list[RunnerResult] = field(default_factory=list)
    baseline: str | None = None
    strict: bool = False
    #: With faults: each fault's instants and figures, and the resilience verdicts.
    resilience: dict[str, Any] | None = None
    #: With the scenario's Writes: acknowledged, stored and lost over the run.
    writes: dict[str, Any] | None = None
    #: A population's steady part (seconds since the start: after its join ramp until it
    #: ends), over which its connected share is read; None: no share.
    plateau: Plateau | None = None
    #: Where this run sits among the earlier runs of its series in the history store, and
    #: the history gate's answer (stressbed.app.recording); None: no history read.
    history: dict[str, Any] | None = None

    def timeline(self) -> Timeline:
        """Every series of the run on one time axis (what report.html draws)."""
        return timeline(self.fleet.windows, self.runners, self.stack, self.events)

    def findings(self, line: Timeline | None = None) -> list[Finding]:
        replicas = self.stack.get("replicas") or {}
        return findings(
            line or self.timeline(),
            [(r.threshold, r.ok) for r in self.thresholds],
            self.events,
            max_replicas=replicas.get("max") if isinstance(replicas, dict) else None,
            runner_capacity=[r.cpu_capacity or None for r in self.runners],
        )

    def metrics(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for key, agg in sorted(self.fleet.aggregates.items()):
            values = {k: finite(v) for k, v in metric_values(agg, self.fleet.duration_s).items()}
            if agg.kind == "rate" and not agg.count:
                values["rate"] = None  # a share of nothing: not measured, not 0%
            out[key] = values
        return out

    def timeseries(self) -> list[dict[str, float | None]]:
        """Per second: counts (0 when nothing happened) and statistics of what completed
        (null when nothing did: not measured, never the best second of the run)."""
        rows = []
        for second in sorted(self.fleet.windows):
            window = self.fleet.windows[second]
            sketch = window.duration
            quantiles = sketch.quantiles((0.5, 0.95, 0.99)) if sketch.count else [None] * 3
            rows.append(
                {
                    "t": second,
                    "requests_per_s": float(window.requests),
                    "error_rate": window.failed / window.requests if window.requests else None,
                    **dict(
                        zip(
                            ("p50_ms", "p95_ms", "p99_ms"),
                            (None if q is None else finite(q) for q in quantiles),
                            strict=True,
                        )
                    ),
                    "vus": window.vus,
                    "vus_max": window.vus_max,
                }
            )
        return rows

    def population(self) -> dict[str, Any] | None:
        """summary.json's ``population``: None when no agent metric was met. What the
        target itself counted of registrations comes from its metrics, where it exports
        ``agent_registrations`` and ``agent_duplicate_registrations`` counters (the reference
        agent does); null where it does not."""
        found = population(self.fleet, self.plateau)
        if found is not None:
            scraped = (self.stack or {}).get("target_metrics") or {}
            grown = scraped.get("increase") or {}
            found["target"] = {
                name: round(grown[metric]) if metric in grown else None
                for name, metric in TARGET_COUNTS.items()
            }
        return found

    def to_dict(
        self, line: Timeline | None = None, *, with_findings: bool = True
    ) -> dict[str, Any]:
        found = self.population()
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "scenario": self.scenario,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "message": self.message,
            "duration_s": self.fleet.duration_s,
            "start_skew_ms": self.start_skew_ms,
            "settings": self.settings,
            "metrics": self.metrics(),
            "names_folded": self.fleet.folded(),
            "thresholds": [t.to_dict() for t in self.thresholds],
            "runners": [
                {
                    "index": r.index,
                    "segment": r.segment,
                    "status": r.status.value,
                    "exit_code": r.exit_code,
                    "reason": r.reason,
                    "requests": r.requests,
                    "dropped_lines": r.dropped_lines,
                    "nofile": r.nofile,
                    "source_addresses": r.source_addresses,
                }
                for r in self.runners
            ],
            "stack": self.stack,
            "findings": [f.to_dict() for f in self.findings(line)] if with_findings else [],
            "resilience": self.resilience,
            "writes": self.writes,
            # Only for a run with a population: nothing is added to a run without one.
            **({"population": found} if found is not None else {}),
            "fingerprint": self.fingerprint,
            # Only when the history store was read: nothing is added to a run without one.
            **({"history": self.history} if self.history is not None else {}),
            "comparison": (
                {"baseline": self.baseline, "strict": self.strict, **self.comparison.to_dict()}
                if self.comparison is not None
                else None
            ),
            "events": self.events,
            "timeseries": self.timeseries(),
        }

    def write(self, directory: Path, *, html: bool = True) -> None:
        """events.jsonl, junit.xml, summary.json and then report.html (unless ``html`` is
        False), each written whole or not at all (a temporary file renamed over the old one):
        a kill while the report is drawn never costs the verdict. A report that cannot be
        drawn is said in ``report_error`` (summary.json written again to say it)."""
        directory.mkdir(parents=True, exist_ok=True)
        events = "".join(json.dumps(event) + "\n" for event in self.events)
        _write_whole(directory / "events.jsonl", events)
        _write_whole(directory / "junit.xml", junit_xml(self))
        try:
            line: Timeline | None = self.timeline()
            document = self.to_dict(line)
        except Exception as exc:  # a bug in the timeline or a finding: the verdict still lands
            line = None
            self.report_error = f"{type(exc).__name__}: {exc}"
            document = self.to_dict(Timeline(start=0, step=1), with_findings=False)
        document["report_error"] = self.report_error
        _write_whole(directory / "summary.json", json.dumps(document, indent=2) + "\n")
        if line is None or not html:
            return
        try:
            from .html import write_html  # noqa: PLC0415 - Bokeh, only to draw a report

            baseline = None
            if self.baseline_runners:
                windows = merge(self.baseline_runners).windows
                baseline = timeline(windows, self.baseline_runners, step=line.step)
            write_html(directory / "report.html", document, line, baseline)
        except Exception as exc:  # a bug in drawing must not cost the run its verdict
            self.report_error = f"{type(exc).__name__}: {exc}"
            document["report_error"] = self.report_error
            _write_whole(directory / "summary.json", json.dumps(document, indent=2) + "\n")


def _gate_case(suite: ET.Element, report: RunReport) -> int:
    """--gate-history's case (one, failed with each metric that regressed); the failures it
    adds."""
    gate = (report.history or {}).get("gate")
    if gate is None:
        return 0
    case = ET.SubElement(
        suite,
        "testcase",
        classname=f"stressbed.{report.scenario}.history",
        name=f"history gate against the last {gate['window']} runs",
    )
    suite.set("tests", str(int(suite.get("tests", "0")) + 1))
    said = "; ".join(f["message"] for f in gate["failures"])
    if not said:
        ET.SubElement(case, "system-out").text = "judged: " + ", ".join(gate["judged"])
        return 0
    ET.SubElement(case, "failure", message=said).text = said
    suite.set("failures", str(int(suite.get("failures", "0")) + 1))
    return 1


def junit_xml(report: RunReport) -> str:
    """One test case per threshold; a failed threshold is a failure with its observed value."""
    failures = sum(not t.ok for t in report.thresholds)
    suite = ET.Element(
        "testsuite",
        name=f"stressbed.{report.scenario}",
        tests=str(len(report.thresholds)),
        failures=str(failures),
        errors="1" if report.verdict is Verdict.ERROR else "0",
        time=f"{report.fleet.duration_s:.3f}",
    )
    for result in report.thresholds:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"stressbed.{report.scenario}.thresholds",
            name=f"{result.threshold.key}: {result.threshold.expression}",
        )
        observed = f"observed {result.threshold.aggregation} = {show(result.observed)}"
        if result.no_data:
            observed = f"no data: nothing of {result.threshold.key} was measured" + (
                " (optional: passes)" if result.ok else ""
            )
        if not result.ok:
            failure = ET.SubElement(case, "failure", message=observed)
            failure.text = f"{result.threshold.key} {result.threshold.expression}: {observed}"
        else:
            ET.SubElement(case, "system-out").text = observed
    if report.comparison is not None:
        for change in report.comparison.metrics:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"stressbed.{report.scenario}.baseline",
                name=f"{change.metric} against the baseline",
            )
            text = f"{change.verdict}: {change.shown()} (tolerance {change.tolerance:g}"
            text += " relative)" if change.unit == "relative" else " pp)"
            failing = change.verdict == "regressed" or (
                change.verdict == "inconclusive" and report.strict
            )
            if failing:
                failures += 1
                ET.SubElement(case, "failure", message=text).text = text
            else:
                ET.SubElement(case, "system-out").text = text
        suite.set("tests", str(len(report.thresholds) + len(report.comparison.metrics)))
        suite.set("failures", str(failures))
    verdicts = (report.resilience or {}).get("verdicts") or []
    for verdict in verdicts:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"stressbed.{report.scenario}.resilience",
            name=f"{verdict['threshold']} on {verdict['fault']}",
        )
        seen = verdict.get("observed")
        text = (verdict.get("note") or "not measured") if seen is None else f"observed {show(seen)}"
        if verdict["passed"]:
            ET.SubElement(case, "system-out").text = text
        else:
            failures += 1
            ET.SubElement(
                case, "failure", message=text
            ).text = f"{verdict['threshold']} on {verdict['fault']}: {text}"
    if verdicts:
        tests = len(report.thresholds) + len(verdicts)
        tests += len(report.comparison.metrics) if report.comparison is not None else 0
        suite.set("tests", str(tests))
        suite.set("failures", str(failures))
    failures += _gate_case(suite, report)
    if report.verdict is Verdict.ERROR:
        case = ET.SubElement(
            suite, "testcase", classname=f"stressbed.{report.scenario}", name="run"
        )
        ET.SubElement(case, "error", message=report.message).text = report.message
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def _write_whole(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
