"""A result document carried in a log, as the lines a runner pod prints last.

One JSON line of several megabytes does not survive a pod's log: the container runtime splits
long lines and the kubelet rotates the file (10 MiB by default). So the document travels
gzip-compressed, base64-encoded, in numbered chunks of at most :data:`CHUNK_CHARS` characters
(each line well under the runtime's 16 KiB), with the SHA-256 of the whole; the reader takes
the last complete set in the log, and says exactly what is wrong when there is none.

    {"event": "result-chunk", "index": 0, "part": 3, "parts": 7, "sha256": "...", "data": "..."}
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterator
from typing import Any

from ..errors import DocumentError

__all__ = ["CHUNK_CHARS", "read_document", "result_lines"]

CHUNK_CHARS = 12_000


def result_lines(index: int, document: dict[str, Any]) -> Iterator[dict[str, object]]:
    """The events (JSON lines) that carry ``document`` of runner ``index``."""
    packed = base64.b64encode(gzip.compress(json.dumps(document).encode(), mtime=0)).decode()
    digest = hashlib.sha256(packed.encode()).hexdigest()
    parts = max(1, -(-len(packed) // CHUNK_CHARS))
    for part in range(parts):
        yield {
            "event": "result-chunk",
            "index": index,
            "part": part,
            "parts": parts,
            "sha256": digest,
            "data": packed[part * CHUNK_CHARS : (part + 1) * CHUNK_CHARS],
        }


def read_document(text: str) -> dict[str, Any] | None:
    """The last result document carried in ``text`` (a pod's log); None when the log has no
    result at all (the runner never got that far). DocumentError when it has one but not whole:
    a chunk missing (the log rotated or cut), a checksum that does not match, bad data."""
    chunks: dict[str, dict[int, str]] = {}
    parts: dict[str, int] = {}
    last: str | None = None
    for line in text.splitlines():
        if '"result' not in line:
            continue
        try:
            said = json.loads(line)
        except ValueError:
            continue  # not one of ours, or a line the runtime split
        if not isinstance(said, dict):
            continue
        if said.get("event") == "result" and isinstance(said.get("document"), dict):
            single: dict[str, Any] = said["document"]  # the one-line form of older runners
            return single
        if said.get("event") != "result-chunk":
            continue
        digest = str(said.get("sha256"))
        part, count, data = said.get("part"), said.get("parts"), said.get("data")
        if not (isinstance(part, int) and isinstance(count, int) and isinstance(data, str)):
            raise DocumentError("result-chunk", line[:80], "part, parts and data")
        chunks.setdefault(digest, {})[part] = data
        parts[digest] = count
        last = digest
    if last is None:
        return None
    have, need = chunks[last], parts[last]
    missing = [p for p in range(need) if p not in have]
    if missing:
        raise DocumentError(
            "result",
            f"{len(have)} of {need} chunks",
            f"every chunk (chunk {missing[0]} is missing: the pod's log was rotated or cut)",
        )
    packed = "".join(have[p] for p in range(need))
    if hashlib.sha256(packed.encode()).hexdigest() != last:
        raise DocumentError("result", "a checksum mismatch", "the chunks as the runner wrote them")
    try:
        document = json.loads(gzip.decompress(base64.b64decode(packed)))
    except (ValueError, OSError) as exc:
        raise DocumentError("result", type(exc).__name__, "gzip-compressed JSON") from None
    if not isinstance(document, dict):
        raise DocumentError("result", type(document).__name__, "a JSON object")
    return document
