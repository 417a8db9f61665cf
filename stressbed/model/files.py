"""Opening inputs: plain or gzip-compressed (told by its magic bytes, not its name), read in
binary, with the bytes read so far for a progress bar."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO

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
            raw = path.open("rb", buffering=BUFFER)
        except OSError as exc:
            raise ConfigError("INPUT", str(path), f"a readable file ({exc.strerror})") from None
        self.path = path
        self.size = path.stat().st_size
        self._raw = raw
        self.compressed = raw.peek(2)[:2] == _GZIP_MAGIC
        self.stream: BinaryIO = (
            io.BufferedReader(gzip.GzipFile(fileobj=raw, mode="rb"), BUFFER)  # type: ignore[arg-type]
            if self.compressed
            else raw
        )

    def position(self) -> int:
        return self._raw.tell()

    def head(self, limit: int = 65536) -> bytes:
        """The first ``limit`` bytes of the (decompressed) content, without consuming them."""
        peek = getattr(self.stream, "peek", None)
        return peek(limit)[:limit] if peek is not None else b""

    def close(self) -> None:
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> Opened:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_input(path: str | Path) -> Opened:
    return Opened(Path(path))
