"""A small JSON path: ``id``, ``data.items[0].id``, ``$.task.state``; parsed once to segments."""

from __future__ import annotations

import re

from ..errors import ConfigError

_SEGMENT = re.compile(r"\.?([A-Za-z0-9_$-][A-Za-z0-9_$-]*)|\[(-?\d+)\]")
HELP = "a JSON path like 'id', 'data.items[0].id' or '$.task.state'"


def parse_json_path(path: object, field: str) -> tuple[str | int, ...]:
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(field, path, HELP)
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
        if not text:
            return ()
    if text.startswith("."):
        text = text[1:]
    segments: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _SEGMENT.match(text, pos)
        if not match or (match.group(1) and pos and not text[pos] == "."):
            raise ConfigError(field, path, HELP)
        segments.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    return tuple(segments)
