"""What the reference agent does when its sink's disk is full, on a real full filesystem (a
small tmpfs each test mounts): it never acknowledges what it could not store. The sink says how
many batches it stored whole before the disk filled; a line the disk cut short is ended by the
next write and never counted. Acknowledged once flushed, a report the disk refused is answered
503 with Retry-After; acknowledged once queued, it is lost and counted as dropped."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from stressbed_agent.config import Config, ConfigError
from stressbed_agent.sink import Sink, SinkFull, Stored

from .helpers import AgentProcess, call

TOKEN = "agent-token-for-disk-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POINT = {"ts": 1, "name": "cpu", "value": 1.5, "labels": {"host": "h1"}}
PAGE = 4096

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 256 KiB tmpfs of the test's own, unmounted after it."""
    where = tmp_path / "fs"
    where.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=256k", "stressbed-test", str(where)]
    if subprocess.run(mount, capture_output=True, check=False, timeout=10).returncode != 0:
        pytest.skip("no tmpfs could be mounted here")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, timeout=10)


def fill(path: Path) -> None:
    """Zeros into ``path`` until its filesystem has no page left."""
    with path.open("ab", buffering=0) as out:
        for _ in range(1024):
            try:
                out.write(bytes(PAGE))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return
    raise AssertionError("the filesystem never filled")


def batch(agent: str, size: int) -> tuple[str, list[dict[str, object]], float]:
    """A batch whose line is about ``size`` bytes."""
    label = "x" * max(1, size - 120)
    return agent, [{"ts": 1, "name": "cpu", "value": 1.0, "labels": {"l": label}}], 1.0


@needs_root
def test_a_full_disk_stores_whole_lines_or_none_and_says_how_many(small_fs: Path):
    path = small_fs / "sink.jsonl"
    sink = Sink(Config(sink="file", sink_path=str(path)))
    sink.write([batch("a", 100)])
    fill(small_fs / "filler")
    # What is left is the rest of the sink file's last page: the first batch fits in it,
    # the second only in part.
    room = PAGE - path.stat().st_size % PAGE
    with pytest.raises(SinkFull) as caught:
        sink.write([batch("b", room // 2), batch("c", room)])
    assert caught.value.stored == 1
    assert caught.value.errno == errno.ENOSPC
    assert not path.read_bytes().endswith(b"\n")  # a torn line
    with pytest.raises(SinkFull) as caught:
        sink.write([batch("d", 50)])
    assert caught.value.stored == 0
    (small_fs / "filler").unlink()
    sink.write([batch("e", 100)])
    stored = Stored(path)
    assert [stored.of(a)["stored"] for a in "abcde"] == [1, 1, 0, 0, 1]
    assert stored.bad_lines == 1  # the torn line, ended by the next write, never counted


@needs_root
def test_only_the_replica_whose_write_was_cut_short_ends_the_torn_line(small_fs: Path):
    path = small_fs / "sink.jsonl"
    torn, other = (Sink(Config(sink="file", sink_path=str(path))) for _ in range(2))
    torn.write([batch("a", 100)])
    fill(small_fs / "filler")
    room = PAGE - path.stat().st_size % PAGE
    with pytest.raises(SinkFull):
        torn.write([batch("b", room * 2)])
    assert (torn.torn, other.torn) == (True, False)
    (small_fs / "filler").unlink()
    other.write([batch("c", 100)])  # joined to the torn line: it never looked at the end
    torn.write([batch("d", 100)])  # the file ends whole again: no newline of its own
    assert torn.torn is False
    assert b"\n\n" not in path.read_bytes()
    stored = Stored(path)
    assert [stored.of(a)["stored"] for a in "abcd"] == [1, 0, 1, 1]
    assert stored.bad_lines == 1


def test_the_read_back_counts_a_whole_line_joined_to_a_torn_one_and_never_the_torn_one(
    tmp_path: Path,
):
    path = tmp_path / "sink.jsonl"
    whole = json.dumps({"agent_id": "b", "accepted_at": 2.5, "points": [POINT, POINT]})
    torn = json.dumps({"agent_id": "a", "accepted_at": 1.0, "points": [POINT]})[:30]
    path.write_text(f"{torn}{whole}\n{torn}\n\n{whole}\n")
    stored = Stored(path)
    assert stored.of("b") == {"agent_id": "b", "stored": 4, "by_second": {"2": 4}}
    assert stored.of("a")["stored"] == 0
    assert stored.bad_lines == 2  # the torn parts; the blank line is no line


def _agent(sink: Path, ack: str) -> AgentProcess:
    process = AgentProcess(
        env={
            "STRESSBED_AGENT_TOKEN": TOKEN,
            "STRESSBED_AGENT_SINK": "file",
            "STRESSBED_AGENT_SINK_PATH": str(sink),
            "STRESSBED_AGENT_ACK": ack,
        }
    )
    process.wait_listening()
    return process


def _dropped(url: str) -> float:
    text = call(url + "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith('agent_points_dropped_total{reason="disk_full"}'):
            return float(line.split()[-1])
    return 0.0


def _until(condition, what: str, within_s: float = 10.0):
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {within_s} s: {what}")


def _points_in(path: Path) -> int:
    """Points in the sink file's whole lines, counted apart from the agent (a torn line, cut
    short by the full disk, is no JSON; a whole line appended to it follows its last start)."""
    total = 0
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            total += len(json.loads(line[line.rfind('{"agent_id": ') :])["points"])
    return total


@needs_root
@pytest.mark.parametrize("ack", ["flushed", "queued"])
def test_the_agent_never_acknowledges_what_a_full_disk_refused(small_fs: Path, ack: str):
    path = small_fs / "sink.jsonl"
    agent = _agent(path, ack)
    try:
        first = call(agent.url + "/v1/report", "POST", {"agent_id": "a1", "points": [POINT]})
        assert first.status == 202
        _until(lambda: path.exists() and path.stat().st_size > 0, "the first report stored")
        fill(small_fs / "filler")
        # Larger than any page's rest: nothing of it can be stored.
        body = {"agent_id": "a1", "points": [POINT] * 200}
        reply = call(agent.url + "/v1/report", "POST", body)
        if ack == "flushed":
            assert reply.status == 503, reply.body
            assert reply.headers["Retry-After"] == "1"
            assert "disk is full" in reply.json()["error"]
        else:
            assert reply.status == 202  # acknowledged before the write: then lost
        _until(lambda: _dropped(agent.url) == 200, "the refused points counted as dropped")
        (small_fs / "filler").unlink()
        again = call(agent.url + "/v1/report", "POST", {"agent_id": "a1", "points": [POINT]})
        assert again.status == 202
        _until(
            lambda: call(agent.url + "/v1/agents/a1/stored", headers=AUTH).json()["stored"] == 2,
            "the reports before and after the full disk stored",
        )
        assert _points_in(path) == 2
    finally:
        with contextlib.suppress(Exception):
            agent.stop()


def test_a_synced_sink_puts_each_write_on_the_disk_and_counts_none_it_could_not(
    tmp_path: Path, monkeypatch
):
    path = tmp_path / "sink.jsonl"
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd)))
    Sink(Config(sink="file", sink_path=str(path))).write([batch("a", 10)])
    assert synced == []  # sink_sync none: stored once in the page cache
    sink = Sink(Config(sink="file", sink_path=str(path), sink_sync="data"))
    sink.write([batch("b", 10)])
    assert len(synced) == 1  # on the disk before it counts as stored

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    with pytest.raises(SinkFull) as caught:
        sink.write([batch("c", 10), batch("d", 10)])
    assert caught.value.stored == 0  # written, but not on the disk: none of them stored


def test_a_sink_sync_that_is_not_one_is_refused_naming_it():
    with pytest.raises(ConfigError, match="sink_sync: got 'always'; expected 'none' or 'data'"):
        Config(sink="file", sink_path="x", sink_sync="always").validate()
