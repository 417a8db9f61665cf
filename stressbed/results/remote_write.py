"""Prometheus remote write's body: a ``WriteRequest`` protobuf, snappy-framed, from samples.

The protocol (remote write 1.0) posts ``prometheus.WriteRequest { repeated TimeSeries
timeseries = 1; }`` where ``TimeSeries { repeated Label labels = 1; repeated Sample samples =
2; }``, ``Label { string name = 1; string value = 2; }`` and ``Sample { double value = 1;
int64 timestamp = 2; }`` (milliseconds), labels sorted by name, ``__name__`` among them,
compressed with snappy's block format. Those four messages are all it takes, so they are
written here by hand, as is snappy's block format in its simplest valid form: every byte a
literal (a receiver decodes it as any snappy block; what is lost is only compression, which
a run's few hundred series a second do not need).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Series", "snappy_block", "write_request"]

#: A snappy literal holds at most this many bytes (its length in up to 4 bytes; 64 KiB keeps
#: each element's tag at 3 bytes).
_LITERAL_MAX = 65536


@dataclass(frozen=True)
class Series:
    """One time series: its labels (``__name__`` included) and (value, unix ms) samples."""

    labels: Mapping[str, str]
    samples: Sequence[tuple[float, int]]


def write_request(series: Iterable[Series]) -> bytes:
    """The snappy-compressed ``WriteRequest`` a remote-write receiver takes."""
    return snappy_block(_write_request(series))


def _write_request(series: Iterable[Series]) -> bytes:
    out = bytearray()
    for one in series:
        out += _field(1, _time_series(one))
    return bytes(out)


def _time_series(series: Series) -> bytes:
    out = bytearray()
    for name in sorted(series.labels):  # the protocol wants them sorted by name
        label = _field(1, name.encode()) + _field(2, series.labels[name].encode())
        out += _field(1, label)
    for value, timestamp_ms in series.samples:
        sample = b"\x09" + struct.pack("<d", value)  # field 1, 64-bit
        sample += b"\x10" + _varint(timestamp_ms & 0xFFFFFFFFFFFFFFFF)  # field 2, varint
        out += _field(2, sample)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def snappy_block(data: bytes) -> bytes:
    """``data`` in snappy's block format, as literals only: the uncompressed length as a
    varint, then each chunk of at most 64 KiB behind its literal tag."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), _LITERAL_MAX):
        chunk = data[start : start + _LITERAL_MAX]
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        elif size < 256:
            out += bytes([60 << 2, size])
        else:
            out += bytes([61 << 2]) + size.to_bytes(2, "little")
        out += chunk
    return bytes(out)
