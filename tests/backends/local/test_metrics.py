"""The usage feed: each replica's CPU, memory, the share of CFS periods it was throttled, its IO
and its wait for a CPU; the data folder's room."""

from __future__ import annotations

import os
from pathlib import Path

from stressbed.backends.local import Usage
from stressbed.backends.local._metrics import UsageFeed
from stressbed.stack.agent import reference_agent
from stressbed.stack.lifecycle import Lifecycle


def test_the_throttled_share_is_per_sample_and_starts_again_with_a_new_process():
    feed = UsageFeed(reference_agent(), window_s=5.0)
    life = [Lifecycle("agent-0", 0)]
    feed.sample(100.0, {"agent-0": Usage(1.0, 2**20, (10, 0))}, life, 1)
    feed.sample(101.0, {"agent-0": Usage(1.5, 2**20, (20, 8))}, life, 1)
    assert "throttled_share" not in feed.series[0]["pods"]["agent-0"]  # nothing to compare yet
    assert feed.series[1]["pods"]["agent-0"]["throttled_share"] == 0.8
    feed.restarted("agent-0")  # a new process, maybe a new cgroup: counters start again
    feed.sample(102.0, {"agent-0": Usage(0.1, 2**20, (3, 1))}, life, 1)
    assert "throttled_share" not in feed.series[2]["pods"]["agent-0"]
    # Without a cgroup nothing is said about throttling.
    feed.sample(103.0, {"agent-0": Usage(0.2, 2**20)}, life, 1)
    assert "throttled_share" not in feed.series[3]["pods"]["agent-0"]


def test_each_replica_s_open_files_and_the_balancer_s_are_in_the_series():
    feed = UsageFeed(reference_agent(), window_s=5.0)
    life = [Lifecycle("agent-0", 0)]
    usage = Usage(1.0, 2**20, open_files=310, nofile_limit=20_000)
    balancer = {"open_files": 620, "nofile_limit": 20_000}
    feed.sample(100.0, {"agent-0": usage}, life, 1, balancer=balancer)
    row = feed.series[0]
    assert row["pods"]["agent-0"]["open_files"] == 310
    assert row["pods"]["agent-0"]["nofile_limit"] == 20_000
    assert row["balancer"] == {"open_files": 620, "nofile_limit": 20_000}
    # Not read (a container's runtime): nothing said, never 0.
    feed.sample(101.0, {"agent-0": Usage(1.5, 2**20)}, life, 1)
    assert "open_files" not in feed.series[1]["pods"]["agent-0"]
    assert "balancer" not in feed.series[1]


def test_a_process_s_open_files_and_limit_are_read_from_proc():
    import os  # noqa: PLC0415
    import resource  # noqa: PLC0415

    from stressbed.backends.local._files import open_files  # noqa: PLC0415

    before, limit = open_files(os.getpid())
    assert limit == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    with open(os.devnull) as a, open(os.devnull) as b:  # noqa: F841 - two more files held
        during, _ = open_files(os.getpid())
    assert before is not None
    assert during is not None
    assert during - before == 2
    assert open_files(2**22 + 7) == (None, None)  # no such process


def test_each_replica_s_open_connections_are_in_its_row():
    feed = UsageFeed(reference_agent(), window_s=5.0)
    life = [Lifecycle("agent-0", 0), Lifecycle("agent-1", 1)]
    usage = {"agent-0": Usage(1.0, 2**20)}
    feed.sample(100.0, usage, life, 2, connections={"agent-0": 7, "agent-1": 0})
    pods = feed.series[0]["pods"]
    assert pods["agent-0"]["connections"] == 7
    assert pods["agent-1"] == {"connections": 0}  # counted by the balancer, usage not read yet
    feed.sample(101.0, usage, life, 2)  # no balancer: nothing said, not 0
    assert "connections" not in feed.series[1]["pods"]["agent-0"]


def test_io_and_cpu_wait_are_rates_per_sample_and_start_again_with_a_new_process():
    feed = UsageFeed(reference_agent(), window_s=5.0)
    life = [Lifecycle("agent-0", 0)]
    feed.sample(
        100.0,
        {"agent-0": Usage(1.0, 2**20, io={"read": (0, None), "write": (0, 2**20)}, cpu_wait_s=1.0)},
        life,
        1,
    )
    feed.sample(
        102.0,
        {
            "agent-0": Usage(
                1.5, 2**20, io={"read": (0, None), "write": (2**20, 2**20)}, cpu_wait_s=1.2
            )
        },
        life,
        1,
    )
    first, second = (row["pods"]["agent-0"] for row in feed.series)
    assert "io_write_mib_s" not in first  # one reading is no rate
    assert "cpu_wait" not in first
    assert first["io_write_limit_mib_s"] == 1.0  # the limit is known at once
    assert "io_read_limit_mib_s" not in first  # reads have none
    assert (second["io_write_mib_s"], second["io_read_mib_s"]) == (0.5, 0.0)  # per second
    assert second["cpu_wait"] == 0.1
    feed.restarted("agent-0")  # a new process counts from zero again: no negative rate
    feed.sample(
        103.0,
        {"agent-0": Usage(0.1, 2**20, io={"read": (0, None), "write": (10, None)}, cpu_wait_s=0.0)},
        life,
        1,
    )
    third = feed.series[-1]["pods"]["agent-0"]
    assert "io_write_mib_s" not in third
    assert "io_write_limit_mib_s" not in third  # no throttle: no limit
    assert "cpu_wait" not in third


def test_the_data_folder_s_room_is_in_each_row(tmp_path: Path):
    feed = UsageFeed(reference_agent(), 5.0, tmp_path)
    feed.sample(100.0, {}, [Lifecycle("agent-0", 0)], 1)
    row = feed.series[-1]
    found = os.statvfs(tmp_path)
    assert row["data_size_mib"] == round(found.f_blocks * found.f_frsize / 2**20, 2)
    assert 0 < row["data_free_mib"] <= row["data_size_mib"]
    gone = UsageFeed(reference_agent(), 5.0, tmp_path / "missing")
    gone.sample(100.0, {}, [Lifecycle("agent-0", 0)], 1)
    assert "data_free_mib" not in gone.series[-1]  # not measured: absent, never 0
