"""``stressbed collect``: a fleet started by hand in a cluster, read back from its pods' logs
(a fake cluster: none can run here), merged and judged like any run."""

from __future__ import annotations

import json
import time

import pytest

from stressbed.app.collect import collect
from stressbed.app.recording import Recorder
from stressbed.backends.kubernetes import PodState
from stressbed.errors import ConfigError
from stressbed.history.store import Store
from stressbed.results.runner_result import RunnerResult

from ..backends.kubernetes.fakes import SCENARIO, FakeCluster


def test_collect_merges_a_fleet_started_by_hand(tmp_path):
    (tmp_path / "k.py").write_text(SCENARIO)
    report = collect(
        "load-test", "runners", str(tmp_path / "k.py"), tmp_path / "r", api=FakeCluster(3, [{}])
    )
    assert report.exit_code == 0, report.message
    assert [r.index for r in report.runners] == [0, 1, 2]
    run_dir = tmp_path / "r" / "latest"
    assert (run_dir / "summary.json").is_file()
    assert RunnerResult.read(run_dir / "runners" / "2" / "result.json").index == 2


def test_collect_refuses_a_fleet_still_running(tmp_path):
    (tmp_path / "k.py").write_text(SCENARIO)
    running = FakeCluster(2, [{1: {"phase": "Running"}}])
    with pytest.raises(ConfigError, match="runner 1 is still Running"):
        collect("ns", "runners", str(tmp_path / "k.py"), tmp_path / "r", api=running)
    assert not (tmp_path / "r").exists()


def test_one_damaged_pod_log_is_that_runners_error_not_the_whole_collect(tmp_path):
    (tmp_path / "k.py").write_text(SCENARIO)

    class Damaged(FakeCluster):
        def log(self, namespace: str, pod: str, tail_lines: int | None = None) -> str:
            text = super().log(namespace, pod, tail_lines)
            if pod != "runners-1":
                return text
            return text.replace('"data": "H4sI', '"data": "X4sI', 1)  # altered on the way

    report = collect("ns", "runners", str(tmp_path / "k.py"), tmp_path / "r", api=Damaged(2, [{}]))
    assert report.exit_code == 3
    assert [r.status.value for r in report.runners] == ["ok", "error"]
    assert report.runners[1].reason.startswith("its result cannot be read: result: got '")


def test_collect_says_so_when_the_coordinator_aborted_the_fleet(tmp_path):
    (tmp_path / "k.py").write_text(
        SCENARIO.replace(
            "SharedIterations(vus=2, iterations=10))]",
            "SharedIterations(vus=2, iterations=10))],\n"
            "    thresholds=[error_rate('< 5%', abort_on_fail=True)]",
        )
    )
    cluster = FakeCluster(2, [{}])
    cluster.coordinator = PodState("runners-coordinator-7x", -1, "Succeeded", time.time())
    cluster.coordinator_news = [
        (0, {"event": "aborted", "threshold": "http_req_failed", "expression": "rate<0.05"})
    ]
    report = collect("load-test", "runners", str(tmp_path / "k.py"), tmp_path / "r", api=cluster)
    assert report.exit_code == 1
    assert report.message.startswith("aborted: threshold failed fleet-wide: http_req_failed")


def test_the_collected_fingerprint_is_the_scaled_scenarios_on_the_declared_stack(tmp_path):
    from stressbed.app.collect import collected_scenario  # noqa: PLC0415
    from stressbed.app.compare import run_fingerprint  # noqa: PLC0415
    from stressbed.stack.agent import reference_agent  # noqa: PLC0415

    (tmp_path / "k.py").write_text(SCENARIO)
    scenario = str(tmp_path / "k.py")
    report = collect(
        "ns", "runners", scenario, tmp_path / "r", api=FakeCluster(2, [{}]),
        duration="5s", stack=reference_agent(),
    )  # fmt: skip
    expected = run_fingerprint(
        collected_scenario(scenario, "5s"), 2, "kubernetes", reference_agent()
    )
    assert report.fingerprint == expected
    assert report.fingerprint["stack"] is not None
    with pytest.raises(ConfigError, match="--duration: got '500ms'; expected at least 1s"):
        collected_scenario(scenario, "500ms")


def test_a_collected_fleet_is_recorded_in_the_history_as_a_collect(tmp_path):
    (tmp_path / "k.py").write_text(SCENARIO)
    recorder = Recorder(str(tmp_path / "r" / "history.db"), build="b3")
    for _ in range(2):
        report = collect(
            "load-test",
            "runners",
            str(tmp_path / "k.py"),
            tmp_path / "r",
            api=FakeCluster(3, [{}]),
            recorder=recorder,
        )
    with Store(tmp_path / "r" / "history.db") as store:
        first, second = store.entries()
    assert (second.run_id, second.kind, second.build, second.runners) == (
        report.run_id, "collect", "b3", 3,
    )  # fmt: skip
    assert first.fingerprint == second.fingerprint  # one series: the second sees the first
    summary = json.loads((tmp_path / "r" / report.run_id / "summary.json").read_text())
    assert [r["run_id"] for r in summary["history"]["earlier"]] == [first.run_id]
