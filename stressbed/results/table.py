"""The terminal view of a run: the final table and the stack's one-line story."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._numbers import show
from .compare import Comparison
from .summary import RunReport

__all__ = ["capacity_table", "population_lines", "stack_line", "table"]


def table(report: RunReport) -> str:
    """The final terminal table: thresholds, key metrics, runners, verdict."""
    lines = [f"scenario {report.scenario}  run {report.run_id}  {report.fleet.duration_s:.1f} s"]
    metrics = report.metrics()
    duration = metrics.get("http_req_duration", {})
    reqs = metrics.get("http_reqs", {})
    failed = metrics.get("http_req_failed", {})
    share = failed.get("rate")
    lines.append(
        f"  requests {reqs.get('count') or 0:,.0f} ({reqs.get('rate') or 0:,.1f}/s)   "
        + (f"failed {share * 100:.2f}%   " if share is not None else "failed n/a   ")
        + "   ".join(
            f"{k} {show(value)}ms"
            for k in ("p(50)", "p(95)", "p(99)")
            if (value := duration.get(k)) is not None
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
    lines.extend(population_lines(report.population()))
    lines.extend(resilience_lines(report.resilience))
    lines.extend(writes_lines(report.writes))
    if report.comparison is not None:
        lines.extend(comparison_lines(report.comparison))
    stack = stack_line(report)
    if stack:
        lines.append(stack)
    lines.append(f"verdict: {report.verdict.value.upper()}  {report.message}".rstrip())
    return "\n".join(lines)


def population_lines(found: Mapping[str, Any] | None) -> list[str]:
    """Two lines on a population: its agents connected, and what failed or came late."""
    if not found:
        return []
    counts, trends = found["counts"], found["trends"]
    share = found.get("connected_share")
    reasons = found.get("connect_failures_by_reason") or {}
    by_reason = ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items(), key=lambda x: -x[1]))
    return [
        f"  agents: peak {found['peak_connected']:,} connected "
        f"({found['peak_wanted']:,} wanted at most), "
        + (
            f"{share * 100:.2f}% of those wanted connected on the plateau"
            if share is not None
            else "connected share n/a (no plateau measured)"
        ),
        f"    connect failures {counts['connect_failures']:,}"
        + (f" ({by_reason})" if by_reason else "")
        + f", reconnects {counts['reconnects']:,}, gave up {counts['gave_up']:,}, "
        f"check-in lateness p99 {_ms(trends['checkin_lateness'])}, "
        f"reconnect p99 {_ms(trends['reconnect_time'])}",
    ]


def _ms(trend: Mapping[str, Any]) -> str:
    value = trend.get("p(99)")
    return f"{show(value)} ms" if isinstance(value, int | float) else "n/a"


def resilience_lines(found: Mapping[str, Any] | None) -> list[str]:
    """A line per fault: when, on what, detected and recovered after how long, errors."""
    if not found or not found.get("faults"):
        return []
    lines = ["  faults"]
    for fault in found["faults"]:
        label = fault.get("label") or fault.get("name")
        if not fault.get("applied"):
            lines.append(f"    {fault['name']}: {label}: not applied ({fault.get('reason')})")
            continue
        on = ", ".join(fault.get("replicas") or []) or "every replica"
        detect, recover = fault.get("time_to_detect_s"), fault.get("time_to_recover_s")
        errors = fault.get("errors_during_fault")
        lines.append(
            f"    {fault['name']}: {label} [{on}]: "
            + (f"detected after {detect:.1f} s" if detect is not None else "not detected")
            + (f", recovered after {recover:.1f} s" if recover is not None else "")
            + (", did not recover" if recover is None and fault.get("judged_s", 1) else "")
            + (", recovery not measured" if not fault.get("judged_s", 1) else "")
            + (f" ({stalled} s stalled)" if (stalled := fault.get("stalled_s")) else "")
            + (f", {errors * 100:.2f}% errors" if errors is not None else "")
            + (f", {lost:,} writes lost" if (lost := fault.get("lost_writes")) else "")
        )
        if (storm := fault.get("population")) is not None:
            lines.append("      agents: " + storm_line(storm))
    for verdict in found.get("verdicts") or []:
        mark = "ok  " if verdict["passed"] else "FAIL"
        seen = verdict.get("observed")
        shown = f"observed {show(seen)}" if seen is not None else verdict.get("note")
        shown = shown or "not measured"
        lines.append(f"    {mark} {verdict['threshold']} on {verdict['fault']}  {shown}")
    return lines


def storm_line(storm: Mapping[str, Any]) -> str:
    """A fault's reconnect storm on one line: cut off, came back how hard, and how fast."""

    def back(seconds: float | None) -> str:
        return f"{seconds:.0f} s" if seconds is not None else "not within the run"

    refused = storm["connect_failures_by_reason"]
    return (
        f"{storm['disconnected']:,} disconnected of {storm['connected_before']:,}, "
        f"peak {storm['peak_connect_rate']:,} connects/s, "
        + (
            "refused " + ", ".join(f"{n:,} {reason}" for reason, n in refused.items()) + ", "
            if refused
            else ""
        )
        + (
            f"99% back after {back(storm['time_to_99_connected_s'])}, "
            f"all after {back(storm['time_to_all_connected_s'])}"
            if storm["dipped"]
            else "never under 99% connected"
        )
        + ("" if storm["stack"]["survived"] else ", the stack did not survive it")
    )


def writes_lines(writes: Mapping[str, Any] | None) -> list[str]:
    """What the load saw acknowledged against what the target read back."""
    if not writes:
        return []
    if writes.get("problem"):
        return [f"  writes: {writes.get('acknowledged', 0):,} acknowledged; {writes['problem']}"]
    line = (
        f"  writes: {writes['acknowledged']:,} acknowledged by {writes['writers']:,} writers, "
        f"{writes['stored']:,} stored, {writes['lost']:,} lost"
    )
    if writes.get("stored_unacknowledged"):
        line += f" ({writes['stored_unacknowledged']:,} stored without an acknowledgement)"
    return [line]


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


def capacity_table(document: Mapping[str, Any]) -> str:
    """A capacity search in the terminal: one row per probe, then the one-line answer."""
    unit = str(document.get("unit", "req/s"))
    lines = [
        f"capacity of {document.get('scenario')} ({document.get('workload')})  "
        f"run {document.get('run_id')}  {float(document.get('elapsed_s') or 0):.0f} s"
    ]
    header = (
        f"  {'#':>2} {'offered':>9} {'achieved':>9} {'err %':>6} {'p50':>8} {'p95':>8} "
        f"{'p99':>8} {'conc':>6} {'VUs':>5} {'drop':>5} {'repl':>4} {'cpu/repl':>9}  verdict"
    )
    probes = document.get("probes") or []
    if unit == "agents":
        lines += _agent_rows(probes)
        probes = []
    elif probes:
        lines.append(header)
    for probe in probes:
        pods = probe.get("pods") or {}
        cpus = [u.get("cpu_m") for u in pods.values() if u.get("cpu_m") is not None]
        cpu = f"{max(cpus):,.0f}m" if cpus else "-"
        error = probe.get("error_rate")
        lines.append(
            f"  {probe['index']:>2} {probe['rate']:>9,} {_n(probe.get('achieved_per_s'), 1):>9} "
            f"{_n(error * 100 if error is not None else None, 2):>6} "
            f"{_n(probe.get('p50_ms'), 1):>8} {_n(probe.get('p95_ms'), 1):>8} "
            f"{_n(probe.get('p99_ms'), 1):>8} {_n(probe.get('concurrency_littles_law'), 1):>6} "
            f"{_n(_vus_active(probe), 1):>5} {_n(probe.get('dropped'), 0):>5} "
            f"{_n(probe.get('replicas'), 0):>4} {cpu:>9}  {_verdict(probe)}"
        )
    found = document.get("scale_out")
    if found:
        for decision in found.get("decisions") or []:
            lines.append(
                f"  scaled {decision['from']} -> {decision['to']} at {decision['t_s']:+.1f} s"
            )
    knee = document.get("knee") or {}
    if not probes:  # (a population's probes: no knee is read)
        knee = {}
    if knee.get("range"):
        low, high = knee["range"]
        lines.append(f"  knee {low:,}-{high:,} {unit} ({knee['confidence']}): {knee['reason']}")
    elif knee.get("reason"):
        lines.append(f"  knee: none ({knee['reason']})")
    if document.get("disagreements"):
        shown = ", ".join(f"{r:,}" for r in document["disagreements"])
        lines.append(f"  trials disagreed at {shown} {unit}: the interval is widened")
    lines.append(str(document.get("answer", "")))
    if document.get("scale_out_answer"):
        lines.append(str(document["scale_out_answer"]))
    elif document.get("scale_out_skipped"):
        lines.append(f"no scale-out: {document['scale_out_skipped']}")
    if document.get("exit_code"):
        lines.append(f"exit {document['exit_code']}: {document.get('message', '')}")
    return "\n".join(lines)


def _agent_rows(probes: Sequence[Mapping[str, Any]]) -> list[str]:
    """A population's probes: agents offered, their connected share and peak, connect
    failures, those who gave up, check-in lateness and connect time (p99), the replicas and
    their busiest CPU and open files."""
    if not probes:
        return []
    lines = [
        f"  {'#':>2} {'agents':>8} {'conn %':>7} {'peak':>8} {'fails':>7} {'gave up':>7} "
        f"{'late p99':>8} {'conn p99':>8} {'repl':>4} {'cpu/repl':>9} {'files':>7}  verdict"
    ]
    for probe in probes:
        pods = (probe.get("pods") or {}).values()
        cpus = [u["cpu_m"] for u in pods if u.get("cpu_m") is not None]
        files = [u["open_files"] for u in pods if u.get("open_files") is not None]
        share = probe.get("connected_share")
        lines.append(
            f"  {probe['index']:>2} {probe['rate']:>8,} "
            f"{_n(share * 100 if share is not None else None, 1):>7} "
            f"{_n(probe.get('peak_connected'), 0):>8} {_n(probe.get('connect_failures'), 0):>7} "
            f"{_n(probe.get('gave_up'), 0):>7} {_n(probe.get('checkin_lateness_p99_ms'), 0):>8} "
            f"{_n(probe.get('connect_time_p99_ms'), 0):>8} {_n(probe.get('replicas'), 0):>4} "
            f"{(f'{max(cpus):,.0f}m' if cpus else '-'):>9} "
            f"{_n(max(files) if files else None, 0):>7}  {_verdict(probe)}"
        )
    return lines


def _n(value: Any, digits: int) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.{digits}f}"


def _vus_active(probe: Mapping[str, Any]) -> Any:
    """A probe's mean VUs busy: ``vus_active``, or ``in_flight`` in a capacity.json written
    before it was named for what it is (k6's vus gauge)."""
    return probe.get("vus_active", probe.get("in_flight"))


def _verdict(probe: Mapping[str, Any]) -> str:
    """A probe's status, its trial past the first, contamination, and why it did not hold."""
    why = f": {probe['reasons'][0]}" if probe.get("reasons") and probe["status"] != "held" else ""
    mark = " (contaminated)" if probe.get("contaminated") else ""
    trial = f" #{probe['trial']}" if probe.get("trial", 1) > 1 else ""
    return f"{probe['status']}{trial}{mark}{why}"
