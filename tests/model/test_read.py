"""Several inputs as one stream: gzip or plain (told by the bytes), merged in time order,
closed with the caller's stack, each input's tally of its own."""

from __future__ import annotations

import gzip
import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from stressbed.errors import ConfigError
from stressbed.model import read
from stressbed.model.files import Opened, open_input
from stressbed.model.hits import Hit
from stressbed.model.read import kind_of, read_inputs


def line(second: int, path: str, status: int = 200) -> bytes:
    minute, sec = divmod(second, 60)
    return (
        f"203.0.113.{second % 250} - - [10/Oct/2023:13:{minute:02d}:{sec:02d} +0000] "
        f'"GET {path}?s={second} HTTP/1.1" {status} 12 "-" "probe/1"\n'
    ).encode()


def hits_of(paths: list[Path], fmt: str | None = None) -> list[Hit]:
    with ExitStack() as stack:
        return list(read_inputs(paths, fmt, stack).hits)


def test_gzip_is_read_the_same_as_plain_whatever_its_name(tmp_path):
    text = b"".join(line(s, f"/v1/items/{s % 7}") for s in range(300))
    plain = tmp_path / "access.log"
    plain.write_bytes(text)
    packed = tmp_path / "access.log.1"  # a rotated log: gzip without .gz
    packed.write_bytes(gzip.compress(text))
    with open_input(packed) as opened:
        assert opened.compressed
    assert hits_of([packed]) == hits_of([plain])
    assert len(hits_of([packed])) == 300


def test_rotated_logs_given_out_of_order_come_out_in_time_order(tmp_path):
    # Three rotations of one log, each in time order, overlapping at their seams.
    pieces = {
        "access.log": range(200, 300),
        "access.log.1": range(95, 205),
        "access.log.2.gz": range(100),
    }
    for name, seconds in pieces.items():
        data = b"".join(line(s, "/a" if s % 2 else "/b") for s in seconds)
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    given = [tmp_path / n for n in ("access.log", "access.log.2.gz", "access.log.1")]
    with ExitStack() as stack:
        reading = read_inputs(given, None, stack)
        times = [hit.time for hit in reading.hits]
        tallies = [(t.source, t.format, t.read) for t in reading.tallies]
    assert times == sorted(times)
    assert len(times) == 100 + 110 + 100
    assert tallies == [
        (str(tmp_path / "access.log"), "combined", 100),
        (str(tmp_path / "access.log.2.gz"), "combined", 100),
        (str(tmp_path / "access.log.1"), "combined", 110),
    ]


def test_every_input_is_closed_with_the_stack(tmp_path, monkeypatch):
    opened: list[Opened] = []

    def recorded(path: Path) -> Opened:
        opened.append(open_input(path))
        return opened[-1]

    monkeypatch.setattr(read, "open_input", recorded)
    for name in ("a.log", "b.log.gz"):
        data = line(1, "/x")
        (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with ExitStack() as stack:
        reading = read_inputs([tmp_path / "a.log", tmp_path / "b.log.gz"], None, stack)
        next(reading.hits)
        assert not any(o.stream.closed for o in opened)
    assert len(opened) == 2
    assert all(o.stream.closed for o in opened)


@pytest.mark.parametrize(
    ("content", "cut"),
    [
        (b"".join(line(s, "/x") for s in range(2000)), 0.5),  # cut short in its head
        (b"".join(line(s % 3600, f"/x/{s}") for s in range(30_000)), 0.9),  # past its head
        (b"\x1f\x8b" + b"not deflate at all" * 10, None),  # gzip's magic, then junk
    ],
    ids=["cut in the head", "cut past the head", "not deflate"],
)
def test_a_truncated_or_corrupt_gzip_names_the_input(tmp_path, content, cut):
    path = tmp_path / "access.log.gz"
    packed = gzip.compress(content) if cut else content
    path.write_bytes(packed[: int(len(packed) * cut)] if cut else packed)
    with pytest.raises(ConfigError) as raised:
        hits_of([path])
    assert raised.value.value == str(path)
    assert raised.value.expected.startswith("a complete gzip file (")


def test_a_missing_input_or_none_at_all_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        hits_of([tmp_path / "nope.log"])
    assert (raised.value.field, raised.value.value) == ("INPUT", str(tmp_path / "nope.log"))
    with pytest.raises(ConfigError):
        hits_of([])


def test_an_input_s_kind_is_told_from_its_first_bytes(tmp_path):
    cases = {
        "trace.json": json.dumps({"resourceSpans": []}).encode(),
        "capture.har": b'  {"log": {"version": "1.2", "entries": []}}',
        "access.log": line(1, "/x"),
        "odd.json": b'{"path": "/x"}',
    }
    kinds = {}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(gzip.compress(data) if name == "trace.json" else data)
        with open_input(tmp_path / name) as opened:
            kinds[name] = kind_of(opened)
    assert kinds == {
        "trace.json": "otlp",
        "capture.har": "har",
        "access.log": "log",
        "odd.json": "log",
    }
