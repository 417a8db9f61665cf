"""URLs fit for a results file or a log line: what a run writes of ``--target-url`` and
``--target-metrics-url`` (summary.json, capacity.json, report.html, the terminal) goes
through :func:`redact`, so a credential in one is used but never kept.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact"]

REDACTED = "REDACTED"


def redact(url: str) -> str:
    """``url`` without its ``user:password@``, each query value replaced by REDACTED (the keys
    kept, so it still says what was asked: ``?token=REDACTED&format=REDACTED``) and any
    fragment too. A query part without ``=`` may be a bare token: it is replaced whole."""
    head, hashed, fragment = url.partition("#")
    head, asked, query = head.partition("?")
    head = re.sub(r"//[^/@]*@", "//", head, count=1)
    if asked:
        head += "?" + "&".join(_pair(part) for part in query.split("&"))
    if hashed:
        head += "#" + (REDACTED if fragment else "")
    return head


def _pair(part: str) -> str:
    key, equals, value = part.partition("=")
    if not equals:
        return REDACTED if part else part
    return f"{key}={REDACTED}" if value else part
