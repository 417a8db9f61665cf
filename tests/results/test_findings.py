"""Each finding, from a fleet and a stack built to show it, and silence where there is none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stressbed import error_rate, latency
from stressbed.results.aggregates import Window
from stressbed.results.charts import chart_data
from stressbed.results.findings import findings
from stressbed.results.runner_result import RunnerResult, RunnerStatus
from stressbed.results.timeline import Timeline, timeline

START = 1000


def window(requests: int, ms: float, failed: int = 0, dropped: int = 0) -> Window:
    w = Window(requests=requests, failed=failed, iterations=requests, dropped=dropped)
    w.duration.extend([ms] * requests)
    return w


def stack(cpu: list[float], desired: list[int] | None = None, limit: float = 500.0):
    desired = desired or [1] * len(cpu)
    return {
        "limits": {"cpu_m": limit, "memory_mib": 256.0},
        "timeseries": [
            {
                "t": START + s + 0.5,
                "replicas": desired[s],
                "ready": desired[s],
                "desired": desired[s],
                "pods": {"agent-0": {"cpu_m": c, "memory_mib": 50.0}},
            }
            for s, c in enumerate(cpu)
        ],
    }


def kinds(found) -> list[tuple[str, float]]:
    return [(f.kind, f.t) for f in found]


def test_a_latency_step_while_a_replica_is_at_its_cpu_limit():
    ms = [10.0] * 10 + [60.0] * 10
    cpu = [200.0] * 9 + [480.0] * 11  # 96% of the 500m limit from second 9
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=stack(cpu))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("latency-step-at-cpu-limit", 10.0)
    assert found.evidence["replica"] == "agent-0"
    assert "CPU-bound" in found.message
    # The same step with the replica far from its limit is not this finding.
    cool = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=stack([200.0] * 20))
    assert findings(cool) == []


def test_an_error_burst_next_to_a_restart():
    failed = [0] * 10 + [20, 25] + [0] * 8
    line = timeline({START + s: window(100, 5.0, f) for s, f in enumerate(failed)})
    events = [{"t": START + 8.5, "event": "oom-killed", "replica": "agent-1", "source": "stack"}]
    (found,) = findings(line, events=events)
    assert (found.kind, found.t) == ("errors-with-stack-event", 10.0)
    assert "oom-killed of agent-1" in found.message
    # Errors with no stack event near them: the stack is not blamed.
    far = [{"t": START + 1.0, "event": "oom-killed", "replica": "agent-1", "source": "stack"}]
    assert findings(line, events=far) == []


def test_the_autoscaler_at_its_maximum_while_a_threshold_is_breached():
    ms = [10.0] * 5 + [900.0] * 5
    slo = latency("p(95) < 500ms")
    line = timeline(
        {START + s: window(10, v) for s, v in enumerate(ms)},
        stack=stack([100.0] * 10, desired=[1, 1, 2, 2, 3, 4, 4, 4, 4, 4]),
    )
    found = findings(line, [(slo, False)], max_replicas=4)
    assert kinds(found) == [("autoscaler-at-max", 5.0)]
    assert findings(line, [(slo, False)], max_replicas=6) == []  # room left: not at max
    assert findings(line, [(slo, True)], max_replicas=4) == []  # nothing breached


def test_a_quota_that_denies_a_scale_up():
    line = timeline({START + s: window(10, 5.0) for s in range(5)})
    events = [
        {"t": START + 3.0, "event": "quota-denied", "reason": "pods: 3 > 2", "wanted": 3},
    ]
    (found,) = findings(line, events=events)
    assert (found.kind, found.t, found.evidence["wanted"]) == ("quota-denied", 3.0, 3)


def test_load_that_was_not_offered():
    dropped = [0, 0, 0, 5, 5, 5]
    line = timeline({START + s: window(100, 5.0, dropped=d) for s, d in enumerate(dropped)})
    (found,) = findings(line)
    assert (found.kind, found.t) == ("load-not-offered", 3.0)
    assert found.evidence == {"dropped": 15, "offered": 615}
    # 1% or less dropped: noise, not a finding.
    few = timeline({START + s: window(100, 5.0, dropped=1 if s == 3 else 0) for s in range(6)})
    assert findings(few) == []


def test_a_runner_at_its_cpu_capacity():
    windows = {START + s: window(10, 5.0) for s in range(12)}
    busy = {START + s + 1: (0.95 if s >= 4 else 0.3) for s in range(12)}
    runner = RunnerResult(
        index=0,
        count=1,
        segment="0:1",
        status=RunnerStatus.OK,
        exit_code=0,
        started_at=START,
        ended_at=START + 12,
        windows=windows,
        cpu=busy,
        cpu_capacity=1.0,
    )
    line = timeline(windows, [runner])
    (found,) = findings(line, runner_capacity=[1.0])
    assert (found.kind, found.t, found.evidence["runner"]) == ("runner-cpu", 4.0, 0)
    assert findings(line, runner_capacity=[2.0]) == []  # half of two cores: room left


def test_a_calm_run_has_no_findings():
    line = timeline({START + s: window(100, 5.0) for s in range(30)}, stack=stack([100.0] * 30))
    assert findings(line, [(error_rate("< 1%"), True)], max_replicas=4) == []


def test_a_cpu_bound_step_is_found_after_an_earlier_spike_the_cpu_does_not_explain():
    ms = [10.0] * 10 + [60.0] * 3 + [10.0] * 5 + [60.0] * 10
    cpu = [200.0] * 18 + [480.0] * 10
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=stack(cpu))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("latency-step-at-cpu-limit", 18.0)


# -- connections that stay where they opened -------------------------------------------------


def scale_out(
    new: Callable[[int], int], ready_at: float = 30.0, seconds: int = 90, old: int = 50
) -> tuple[Timeline, list[dict[str, Any]]]:
    """A run of ``seconds`` on two replicas holding ``old`` connections each, and a third
    (agent-2) started a second before ``ready_at`` (seconds since the start) holding ``new(s)``
    at second s; the timeline and the stack's events."""
    rows = []
    for s in range(seconds):
        pods = {
            f"agent-{i}": {"cpu_m": 100.0, "memory_mib": 50.0, "connections": old} for i in (0, 1)
        }
        if s >= ready_at - 1:
            pods["agent-2"] = {"cpu_m": 10.0, "memory_mib": 50.0, "connections": new(s)}
        rows.append({"t": START + s + 0.5, "replicas": len(pods), "desired": 3, "pods": pods})
    events = [
        {"t": START - 5.0, "event": "ready", "replica": "agent-0", "source": "stack"},
        {"t": START - 5.0, "event": "ready", "replica": "agent-1", "source": "stack"},
        {"t": START + ready_at, "event": "ready", "replica": "agent-2", "source": "stack"},
    ]
    windows = {START + s: window(10, 5.0) for s in range(seconds)}
    return timeline(windows, stack={"timeseries": rows}, events=events), events


def test_a_replica_added_under_long_lived_connections_that_gets_none_of_them():
    line, events = scale_out(lambda s: 0)
    (found,) = findings(line, events=events)
    assert (found.kind, found.t) == ("connections-not-rebalanced", 30.0)
    assert found.evidence == {
        "replicas": [
            {
                "replica": "agent-2",
                "ready_s": 30.0,
                "connections": 0.0,
                "total": 100.0,
                "fair_share": 33.3,
                "seconds": 60.0,
            }
        ]
    }
    assert found.message.startswith(
        "agent-2 became ready at 30 s, after the load began, but held 0 of 100 open connections"
    )
    assert "balances connections, not requests" in found.message
    assert "maximum age" in found.message
    assert "L7 balancer" in found.message


def test_connections_that_spread_to_the_new_replica_are_no_finding():
    # New connections arrive and go to the newcomer: 20 of 120 at 40 s is half its fair share.
    line, events = scale_out(lambda s: min(40, max(0, s - 30) * 2))
    assert findings(line, events=events) == []
    # Under half at first, then half: not "to the end".
    late, events = scale_out(lambda s: 0 if s < 80 else 25)
    assert findings(late, events=events) == []


def test_no_finding_without_a_scale_out_a_long_enough_wait_or_enough_connections():
    # Ready 20 s before the end: too short to say the connections will not come.
    short, events = scale_out(lambda s: 0, ready_at=70.0)
    assert findings(short, events=events) == []
    # Every replica ready before the load: nothing was added while connections were open.
    line, events = scale_out(lambda s: 0)
    before = [{**e, "t": START - 1.0} if e["replica"] == "agent-2" else e for e in events]
    assert findings(line, events=before) == []
    # Too few connections to judge a share (2 over 3 replicas).
    few, events = scale_out(lambda s: 0, old=1)
    assert findings(few, events=events) == []


def pods_stack(rows: list[dict[str, float]], limit: float = 500.0):
    return {
        "limits": {"cpu_m": limit, "memory_mib": 256.0},
        "timeseries": [
            {"t": START + s + 0.5, "replicas": 1, "ready": 1, "desired": 1,
             "pods": {"agent-0": {"cpu_m": 200.0, "memory_mib": 50.0, **row}}}
            for s, row in enumerate(rows)
        ],
    }  # fmt: skip


def test_a_latency_step_while_the_replica_s_cgroup_is_throttled():
    ms = [10.0] * 10 + [60.0] * 10
    rows = [{"throttled_share": 0.05}] * 9 + [{"throttled_share": 0.8}] * 11
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(rows))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("cpu-throttled", 10.0)
    assert found.evidence["throttled_share"] == 0.8
    assert "throttled in 80% of its CPU periods" in found.message
    # Throttled without a latency step: nothing to explain.
    flat = timeline({START + s: window(50, 10.0) for s in range(20)}, stack=pods_stack(rows))
    assert findings(flat) == []


def test_forks_refused_at_the_pids_limit():
    rows = [{"pids": 12, "pids_refused": 0}] * 8 + [{"pids": 16, "pids_refused": 5}] * 4
    line = timeline({START + s: window(50, 10.0) for s in range(12)}, stack=pods_stack(rows))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("pids-exhausted", 8.0)
    assert found.evidence == {"replica": "agent-0", "refused": 5.0, "pids": 16.0}
    calm = [{"pids": 12, "pids_refused": 3}] * 12  # refused before the run: not this run's
    line = timeline({START + s: window(50, 10.0) for s in range(12)}, stack=pods_stack(calm))
    assert findings(line) == []


def test_a_latency_step_while_the_replica_s_io_runs_at_its_limit():
    ms = [10.0] * 10 + [80.0] * 10
    rows = [{"io_write_mib_s": 0.2, "io_write_limit_mib_s": 1.0, "io_read_mib_s": 3.0}] * 9 + [
        {"io_write_mib_s": 0.97, "io_write_limit_mib_s": 1.0, "io_read_mib_s": 3.0}
    ] * 11
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(rows))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("io-throttled", 10.0)
    assert found.evidence["direction"] == "write"
    assert (found.evidence["io_mib_s"], found.evidence["io_limit_mib_s"]) == (0.97, 1.0)
    assert "agent-0 wrote 0.97 MiB/s, at its 1 MiB/s write limit" in found.message
    # IO well under its limit while latency steps up: not the disk's doing; no limit: none.
    # Reads at 3 MiB/s are not held by a write limit: each direction against its own.
    for calm in (
        {"io_write_mib_s": 0.3, "io_write_limit_mib_s": 1.0, "io_read_mib_s": 3.0},
        {"io_write_mib_s": 50.0},
    ):
        line = timeline(
            {START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack([calm] * 20)
        )
        assert "io-throttled" not in [f.kind for f in findings(line)]


def _disk_rows(free: list[float]) -> dict[str, Any]:
    made = pods_stack([{}] * len(free))
    for row, left in zip(made["timeseries"], free, strict=True):
        row.update(data_free_mib=left, data_size_mib=64.0)
    return made


def test_a_data_folder_that_filled_up_and_had_room_again():
    free = [60.0] * 5 + [0.0] * 4 + [60.0] * 3
    per_second = {START + s: window(50, 10.0, failed=10 if 5 <= s < 9 else 0) for s in range(12)}
    (found,) = findings(timeline(per_second, stack=_disk_rows(free)))
    assert (found.kind, found.t) == ("disk-full", 5.0)
    assert found.evidence == {"free_mib": 0.0, "size_mib": 64.0, "until_s": 9.0}
    assert found.message == (
        "the replicas' data folder was full (0 MiB free of 64 MiB) from 5 s to 9 s: writes "
        "there fail for want of space; 20.0% of the requests meanwhile failed"
    )
    # Never full (room under 1% of it is full; 2 MiB of 64 is not), or not measured: none.
    assert findings(timeline(per_second, stack=_disk_rows([2.0] * 12))) == []
    assert findings(timeline(per_second, stack=pods_stack([{}] * 12))) == []


def test_a_data_folder_full_to_the_end():
    free = [30.0] * 6 + [0.5] * 6
    per_second = {START + s: window(50, 10.0) for s in range(12)}
    (found,) = findings(timeline(per_second, stack=_disk_rows(free)))
    assert found.evidence["until_s"] is None
    assert "(0.5 MiB free of 64 MiB) to the end: writes there fail for want of space" in (
        found.message
    )


def test_a_latency_step_while_the_replica_waited_for_a_cpu_others_held():
    ms = [10.0] * 10 + [70.0] * 10
    rows = [{"cpu_wait": 0.008}] * 9 + [{"cpu_wait": 0.15}] * 11
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(rows))
    (found,) = findings(line)
    assert (found.kind, found.t) == ("cpu-contended", 10.0)
    assert (found.evidence["cpu_wait_s_per_s"], found.evidence["cpu_wait_before_s_per_s"]) == (
        0.15,
        0.008,
    )
    assert "threads waited 150 ms a second for a CPU (8 ms before)" in found.message
    # Throttled by its own quota meanwhile: that is cpu-throttled's, not contention.
    own = [{"cpu_wait": 0.008}] * 9 + [{"cpu_wait": 0.15, "throttled_share": 0.9}] * 11
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(own))
    assert [f.kind for f in findings(line)] == ["cpu-throttled"]
    # No wait measured before the step: nothing to compare with, not judged.
    late = [{}] * 9 + [{"cpu_wait": 0.15}] * 11
    line = timeline({START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(late))
    assert findings(line) == []
    # Waiting as much as before the step, or little: none.
    for calm in ([{"cpu_wait": 0.1}] * 20, [{"cpu_wait": 0.01}] * 9 + [{"cpu_wait": 0.03}] * 11):
        line = timeline(
            {START + s: window(50, v) for s, v in enumerate(ms)}, stack=pods_stack(calm)
        )
        assert findings(line) == []


def test_the_report_charts_io_against_its_throttle_the_wait_for_a_cpu_and_the_data_folder():
    rows = [{"io_write_mib_s": 0.06, "io_write_limit_mib_s": 0.0625, "cpu_wait": 0.0}] * 6
    made = _disk_rows([30.0] * 6)
    for row, extra in zip(made["timeseries"], rows, strict=True):
        row["pods"]["agent-0"].update(extra)
    line = timeline({START + s: window(50, 10.0) for s in range(6)}, stack=made)
    titles, labels, _ = chart_data(line)
    assert "Replica IO (reads and writes) against its throttle" in titles
    assert "Replica wait for a CPU (run-queue delay, seconds a second)" in titles
    assert "The replicas' data folder: free and its size" in titles
    assert any("agent-0 write throttle" in legends for legends in labels.values())
    # Not measured: no chart that would read as zero.
    bare = timeline({START + s: window(50, 10.0) for s in range(6)}, stack=pods_stack([{}] * 6))
    titles, _, _ = chart_data(bare)
    assert not [t for t in titles if "IO" in t or "CPU (run-queue" in t or "data folder" in t]
