"""The terminal view of a run: the final table and the stack's one-line story."""

from __future__ import annotations

from ._numbers import show
from .compare import Comparison
from .summary import RunReport

__all__ = ["stack_line", "table"]


def table(report: RunReport) -> str:
    """The final terminal table: thresholds, key metrics, runners, verdict."""
    lines = [f"scenario {report.scenario}  run {report.run_id}  {report.fleet.duration_s:.1f} s"]
    metrics = report.metrics()
    duration = metrics.get("http_req_duration", {})
    reqs = metrics.get("http_reqs", {})
    failed = metrics.get("http_req_failed", {})
    lines.append(
        f"  requests {reqs.get('count', 0):,.0f} ({reqs.get('rate', 0):,.1f}/s)   "
        f"failed {failed.get('rate', 0) * 100:.2f}%   "
        + "   ".join(
            f"{k} {show(duration[k])}ms" for k in ("p(50)", "p(95)", "p(99)") if k in duration
        )
    )
    if report.thresholds:
        lines.append("  thresholds")
        width = max(len(f"{t.threshold.key} {t.threshold.expression}") for t in report.thresholds)
        for t in report.thresholds:
            mark = "ok  " if t.ok else "FAIL"
            label = f"{t.threshold.key} {t.threshold.expression}"
            seen = "no data" if t.no_data else f"observed {show(t.observed)}"
            lines.append(f"    {mark} {label:<{width}}  {seen}")
    lines.append("  runners")
    for r in report.runners:
        extra = f"  {r.reason}" if r.reason else ""
        if r.dropped_lines:
            extra += f"  ({r.dropped_lines:,} k6 sample lines unreadable, not counted)"
        lines.append(
            f"    {r.index} [{r.segment}] {r.status.value} (k6 exit {r.exit_code}) "
            f"{r.requests:,} requests{extra}"
        )
    if report.start_skew_ms is not None:
        lines.append(f"  start skew {report.start_skew_ms:.1f} ms")
    if report.comparison is not None:
        lines.extend(comparison_lines(report.comparison))
    stack = stack_line(report)
    if stack:
        lines.append(stack)
    lines.append(f"verdict: {report.verdict.value.upper()}  {report.message}".rstrip())
    return "\n".join(lines)


def stack_line(report: RunReport) -> str:
    """One line on what the provisioned stack did; empty for an existing service."""
    if report.stack.get("backend") in (None, "none"):
        return ""
    series = report.stack.get("timeseries") or []
    counts = [row["replicas"] for row in series] or [
        report.stack.get("replicas", {}).get("desired", 0)
    ]
    kinds = [e.get("event") for e in report.events if e.get("source") == "stack"]
    restarts = sum(report.stack.get("replicas", {}).get("restarts", {}).values())
    notable = {
        k: kinds.count(k)
        for k in ("scaled", "quota-denied", "unready", "liveness-failed", "oom-killed", "crashed")
        if k in kinds
    }
    extra = "".join(f", {n} {k}" for k, n in notable.items())
    enforcement = report.stack.get("enforcement") or "n/a"
    return (
        f"  stack {report.stack['backend']}: replicas {counts[0]} -> {counts[-1]} "
        f"(max {max(counts)}), {restarts} restarts{extra}; limits by {enforcement}"
    )


def comparison_lines(comparison: Comparison) -> list[str]:
    """The comparison, one metric a line: change, 95% interval, verdict."""
    if not comparison.metrics:
        return ["  against the baseline: too little data to compare"]
    lines = [f"  against the baseline: {comparison.verdict}"]
    width = max(len(m.metric) for m in comparison.metrics)
    for m in comparison.metrics:
        mark = {"regressed": "WORSE", "improved": "better", "inconclusive": "?"}.get(m.verdict, "")
        lines.append(
            f"    {m.metric:<{width}}  {show(m.base):>10} -> {show(m.candidate):<10} "
            f"{m.shown():<26} {m.verdict} {mark}".rstrip()
        )
    return lines


def comparison_table(comparison: Comparison, base: str, candidate: str) -> str:
    """``stressbed compare``'s output."""
    head = [
        f"base {base}",
        f"candidate {candidate}  ({comparison.seconds[1]} s vs {comparison.seconds[0]} s of load)",
    ]
    return "\n".join([*head, *comparison_lines(comparison), f"verdict: {comparison.verdict}"])
