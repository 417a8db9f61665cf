"""One probe of a capacity search along a population, judged: held, failed, or invalid.

The probe ran ``count`` agents: they joined over a short ramp (``join_s``), then stayed for
the step. :func:`judge_population` reads the merged per-second windows and decides:

- **invalid** when the load generator was the limit: a runner's k6 above 90% of the CPU it
  may use for half the steady window (as a rate probe's), or k6 out of open files (its log
  said "too many open files": each agent holds a WebSocket, a file of the runner's);
- **held** when, on the steady window (from the end of the join and the warm-up to the end
  of the step), the connected share meets its SLO, no agent gave up during the probe, and
  every other SLO holds: check-in lateness and command round trips on the steady window,
  connect and reconnect times on the whole probe (connections are made during the join),
  requests' latency and error rate (an agent's own requests) on the steady window;
- **failed** otherwise, with the reasons.

An SLO of a trend or of requests with no sample in its window is not judged there (``no
data``, recorded as such): an agent that never connected or checked in is already counted
by the connected share. A steady window without a wanted agent is an error (nothing ran).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..scenario.capacity import slo_label
from ..scenario.thresholds import CONNECTED_METRIC, Threshold
from .agents import SKETCHES, AgentWindow
from .aggregates import Window
from .population import levels
from .probe import RUNNER_CPU_SHARE, Probe, ProbeSetup, runner_cpu, stack_figures
from .runner_result import RunnerResult
from .timeline import observe_window

__all__ = ["OPEN_FILES_ERROR", "judge_population", "open_files_errors"]

#: What k6 (Go) logs when a runner has no file left for a connection (EMFILE).
OPEN_FILES_ERROR = "too many open files"
#: The trends judged over the whole probe (made while the agents join), not the steady window.
WHOLE_PROBE = frozenset({"agent_connect_time", "agent_reconnect_time"})
_SKETCH_OF = {metric: name for name, metric in SKETCHES.items()}


def open_files_errors(runners: Sequence[RunnerResult], logs: Sequence[str] = ()) -> int:
    """How many lines said k6 ran out of open files: in each runner's log (``logs``: the text
    read of every runner's k6.log, where the run directory has them) or, without a log, in
    its stderr's last lines."""
    in_logs = sum(text.count(OPEN_FILES_ERROR) for text in logs)
    in_tails = sum(
        sum(OPEN_FILES_ERROR in line for line in runner.stderr_tail) for runner in runners
    )
    return max(in_logs, in_tails)


def judge_population(
    setup: ProbeSetup,
    windows: Mapping[int, Window],
    started_at: float | None,
    *,
    join_s: float,
    slos: Sequence[Threshold],
    runners: Sequence[RunnerResult] = (),
    stack_rows: Sequence[Mapping[str, Any]] = (),
    open_files: int = 0,
) -> Probe:
    """The verdict on a population probe of ``setup.rate`` agents from its merged windows
    (``started_at``: when the fleet was released; ``open_files``: k6's "too many open files"
    lines)."""
    if started_at is None:
        return Probe(setup, "error", ["the fleet never started"])
    begin = math.floor(started_at)
    first = math.ceil(started_at + join_s + setup.warmup_s)
    last = math.floor(started_at + join_s + setup.step_s) - 1
    probe = Probe(setup, "failed", started_at=started_at, steady=(first, last))
    found = levels(windows)
    inside = [found[t] for t in range(first, last + 1) if t in found]
    wanted = sum(w for w, _ in inside)
    if len(inside) < 2 or not wanted:
        probe.status = "error"
        probe.reasons.append("nothing was measured in the steady window (no agent wanted)")
        return probe
    # The whole probe: from its release to its last window (its agents' goodbyes included).
    steady, whole = _merged(windows, first, last), _merged(windows, begin, max(windows))
    share = sum(c for _, c in inside) / wanted
    probe.figures = {
        "agents": setup.rate,
        "join_s": join_s,
        **_figures(
            steady, whole, inside=inside, found=found, share=share, seconds=last - first + 1
        ),
    }
    probe.figures.update(stack_figures(stack_rows, first, last + 1))
    cpu_share = runner_cpu(runners, first, last)
    probe.figures["runner_cpu_share"] = cpu_share
    probe.figures["runner_open_files_errors"] = open_files
    cpu_bound = cpu_share is not None and cpu_share >= RUNNER_CPU_SHARE
    probe.conditions["runner_cpu"] = not cpu_bound
    probe.conditions["runner_open_files"] = not open_files
    n = last - first + 1
    for threshold in slos:
        if threshold.metric == CONNECTED_METRIC:
            observed: float | None = share
        elif threshold.metric in _SKETCH_OF:
            within = whole if threshold.metric in WHOLE_PROBE else steady
            observed = _trend(within.agents, threshold)
        else:
            observed = observe_window(steady, threshold, n)
        label = slo_label(threshold)
        # A trend or request with no sample in its window is not judged there.
        ok = threshold.passes(observed) if observed is not None else True
        probe.slos.append(
            {
                "slo": label,
                "metric": threshold.key,
                "observed": observed,
                "ok": ok,
                "no_data": observed is None,
            }
        )
        probe.conditions[f"slo:{label}"] = ok
        if not ok:
            probe.reasons.append(f"{label}: {_show(threshold, observed)}")
    gave_up = int(probe.figures["gave_up"])
    probe.conditions["gave_up"] = not gave_up
    if gave_up:
        probe.reasons.append(f"{gave_up:,} agent(s) gave up reconnecting")
    _decide(probe, cpu_share, open_files)
    return probe


def _decide(probe: Probe, cpu_share: float | None, open_files: int) -> None:
    """The generator's limits first, then every hold condition."""
    if open_files:
        probe.status = "invalid"
        probe.reasons.insert(
            0,
            f"k6 ran out of open files ({open_files:,} '{OPEN_FILES_ERROR}' in its log: each "
            "agent holds a WebSocket, a file of its runner's): the load generator is the limit",
        )
    elif cpu_share is not None and cpu_share >= RUNNER_CPU_SHARE:
        probe.status = "invalid"
        probe.reasons.insert(
            0,
            f"a runner used {cpu_share:.0%} of the CPU it may use: the load generator is the limit",
        )
    else:
        generator = ("runner_cpu", "runner_open_files")
        held = all(ok for key, ok in probe.conditions.items() if key not in generator)
        probe.status = "held" if held else "failed"


def _merged(windows: Mapping[int, Window], first: int, last: int) -> Window:
    out = Window()
    for second in range(first, last + 1):
        window = windows.get(second)
        if window is not None:
            out.merge(window)
    return out


def _trend(agents: AgentWindow | None, threshold: Threshold) -> float | None:
    if agents is None:
        return None
    sketch = getattr(agents, _SKETCH_OF[threshold.metric])
    if not sketch.count:
        return None
    aggregation = threshold.aggregation
    if aggregation.startswith("p("):
        return float(sketch.quantile(float(aggregation[2:-1]) / 100))
    value = {"avg": sketch.mean, "max": sketch.maximum, "med": sketch.quantile(0.5)}.get(
        aggregation
    )
    return float(value) if value is not None else None


def _figures(
    steady: Window,
    whole: Window,
    *,
    inside: Sequence[tuple[int, int]],
    found: Mapping[int, tuple[int, int]],
    share: float,
    seconds: int,
) -> dict[str, Any]:
    agents = whole.agents or AgentWindow()
    calm = steady.agents or AgentWindow()
    sketch = steady.duration
    p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99)) if sketch.count else (None,) * 3

    def p99_of(window: AgentWindow, name: str) -> float | None:
        trend = getattr(window, name)
        return float(trend.quantile(0.99)) if trend.count else None

    lost = {k: v for k, v in sorted(agents.disconnects.items()) if k not in ("end", "churn")}
    return {
        "connected_share": share,
        "connected_mean": sum(c for _, c in inside) / len(inside),
        "connected_min": min(c for _, c in inside),
        "wanted_mean": sum(w for w, _ in inside) / len(inside),
        "peak_connected": max((c for _, c in found.values()), default=0),
        "joined": agents.joined,
        "connect_attempts": agents.connect_attempts,
        "connects": agents.connects,
        "connect_failures": sum(agents.connect_failures.values()),
        "connect_failures_by_reason": dict(sorted(agents.connect_failures.items())),
        "disconnects_by_reason": lost,
        "gave_up": agents.gave_up,
        "checkins_missed": calm.checkins_missed,
        "checkin_lateness_p99_ms": p99_of(calm, "checkin_lateness"),
        "command_rtt_p99_ms": p99_of(calm, "command_rtt"),
        "connect_time_p99_ms": p99_of(agents, "connect_time"),
        "requests_per_s": steady.requests / seconds,
        "error_rate": steady.failed / steady.requests if steady.requests else None,
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "statuses": dict(sorted(steady.statuses.items())),
        "seconds": seconds,
    }


def _show(threshold: Threshold, observed: float | None) -> str:
    if observed is None:
        return "no data"
    if threshold.metric in (CONNECTED_METRIC, "http_req_failed"):
        return f"{observed:.2%}"
    return f"{observed:,.1f} ms"
