"""Every string travels as data: hostile text in paths, queries, headers, bodies and names
arrives at a recording server byte for byte, and nothing of it is spliced into JavaScript."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from stressbed import Scenario, SharedIterations, Workload, gen, journey, post, put

from ..conftest import needs_k6, run_k6

pytestmark = [needs_k6, pytest.mark.k6]

HOSTILE = [
    "quote\" and 'single'",
    "back`tick`",
    "${globalThis.pwned = 1}",
    "</script><script>alert(1)</script>",
    "new\nline\r\nand\ttab",
    "nul\x00byte",
    "ünïcödé ✓ 日本語 \U0001f680",
    '{"json": [1, 2]}',
    "%41%2F%%",
    "a/../b?x=1&y=2#frag",
    "back\\slash",
    "  spaces  ",
    "+plus=equals;semi:colon@at",
]
# HTTP forbids CR, LF and NUL in header values and drops whitespace around them: such values
# are rejected when the scenario is built (see test_http.py); every other string must reach
# the server unchanged.
HEADER_SAFE = [s for s in HOSTILE if not any(c in s for c in "\r\n\x00") and s == s.strip()]


def test_hostile_strings_arrive_byte_exact(server, k6_bundle, tmp_path: Path):
    steps = []
    for i, text in enumerate(HOSTILE):
        headers = {"X-Probe": HEADER_SAFE[i % len(HEADER_SAFE)]}
        steps.append(
            post(
                f"/p{i}/{text}",
                name=f"json {text}",
                query={text: text},
                headers=headers,
                json={"k": text, text: [text]},
            )
        )
        steps.append(put(f"/t{i}", name=f"text {text}", body=text))
        steps.append(put(f"/b{i}", name=f"bytes {i}", body=text.encode("utf-8") + b"\xff\x00"))
    steps.append(
        post("/v/{{value}}", name="substituted", query={"q": "{{value}}"}, json={"v": "{{value}}"})
    )
    scenario = Scenario(
        "injection",
        description="hostile strings",
        variables={"value": gen.env("HOSTILE_VALUE")},
        workloads=[Workload("w", journey(*steps), SharedIterations(vus=1, iterations=1))],
    )
    script = k6_bundle(scenario)
    raw_out = tmp_path / "samples.json"
    substituted = "../../admin?evil=1#x/${1}`"
    result = run_k6(
        script, {"TARGET_URL": server.url, "HOSTILE_VALUE": substituted}, "--out", f"json={raw_out}"
    )
    assert result.exit_code == 0, result.stderr

    # Nothing of the user's strings is in the JavaScript: it is constant text.
    for js in script.parent.rglob("*.js"):
        source = js.read_text()
        assert "pwned" not in source
        assert "alert(1)" not in source

    received = {r.path.split("?")[0].split("/")[1]: r for r in server.received}
    for i, text in enumerate(HOSTILE):
        req = received[f"p{i}"]
        path, _, query = req.path.partition("?")
        assert urllib.parse.unquote(path.removeprefix(f"/p{i}/"), errors="strict") == text
        assert urllib.parse.parse_qs(query, keep_blank_values=True) == {text: [text]}
        # http.server decodes header bytes as latin-1; undo that to compare the UTF-8 bytes.
        probe = req.headers["X-Probe"].encode("latin-1").decode("utf-8")
        assert probe == HEADER_SAFE[i % len(HEADER_SAFE)]
        assert req.json() == {"k": text, text: [text]}
        assert received[f"t{i}"].body == text.encode("utf-8")
        assert received[f"b{i}"].body == text.encode("utf-8") + b"\xff\x00"

    # A substituted value is one path segment: it cannot climb the path or add a query.
    sub = received["v"]
    path, _, query = sub.path.partition("?")
    assert path.count("/") == 2
    assert urllib.parse.unquote(path.removeprefix("/v/")) == substituted
    assert urllib.parse.parse_qs(query) == {"q": [substituted]}
    assert sub.json() == {"v": substituted}

    # Request names reach k6's metric tags unchanged.
    names = set()
    for line in raw_out.read_text().splitlines():
        sample = json.loads(line)
        if sample.get("type") == "Point" and sample["metric"] == "http_reqs":
            names.add(sample["data"]["tags"]["name"])
    assert {f"json {t}" for t in HOSTILE} <= names
    assert {f"text {t}" for t in HOSTILE} <= names
