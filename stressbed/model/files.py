"""Opening inputs: plain or gzip-compressed (told by its magic bytes, not its name), read in
binary, with the bytes read so far for a progress bar."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["Opened", "open_input"]

_GZIP_MAGIC = b"\x1f\x8b"
#: Read ahead per read call: large enough that a gigabyte takes few system calls.
BUFFER = 1 << 20


class Opened:
    """An input opened for reading: ``stream`` yields its (decompressed) bytes; ``position()``
    is how far into the file on disk reading has come, ``size`` the file's size."""

    def __init__(self, path: Path) -> None:
        try:
            raw = io.BufferedReader(io.FileIO(path, "rb"), BUFFER)
        except OSError as exc:
            raise ConfigError("INPUT", str(path), f"a readable file ({exc.strerror})") from None
        self.path = path
        self.size = path.stat().st_size
        self._raw = raw
        self.compressed = raw.peek(2)[:2] == _GZIP_MAGIC
        self.stream: io.BufferedReader[Any] = (
            io.BufferedReader(_Gunzipped(gzip.GzipFile(fileobj=raw, mode="rb"), path), BUFFER)
            if self.compressed
            else raw
        )

    def position(self) -> int:
        return self._raw.tell()

    def head(self, limit: int = 65536) -> bytes:
        """The first ``limit`` bytes of the (decompressed) content, without consuming them."""
        return self.stream.peek(limit)[:limit]

    def close(self) -> None:
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(path: str | Path) -> Opened:
    return Opened(Path(path))


class _Gunzipped(io.RawIOBase):
    """A gzip stream whose errors (a truncated or corrupt file, found wherever reading has
    come to) are the input's ConfigError, not a traceback."""

    def __init__(self, inner: gzip.GzipFile, path: Path) -> None:
        super().__init__()
        self._inner = inner
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self._inner.readinto(buffer)
        except (EOFError, OSError, zlib.error) as exc:
            raise ConfigError("INPUT", str(self._path), f"a complete gzip file ({exc})") from None

    def close(self) -> None:
        self._inner.close()
        super().close()
