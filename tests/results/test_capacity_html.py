"""A capacity search's report.html, from capacity.json alone: the probe table's columns."""

from __future__ import annotations

import re

from stressbed.results.capacity_html import render_capacity_html

from .test_capacity_table import DOCUMENT


def _row(html: str, index: int) -> list[str]:
    table = html[html.index('<table id="probes">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    heads = re.findall(r"<th>(.*?)</th>", rows[0])
    cells = re.findall(r"<td>(.*?)</td>", rows[index])
    return [f"{h}={c}" for h, c in zip(heads, cells, strict=True)]


def test_the_probe_table_shows_the_vus_busy_and_the_concurrency_by_little_s_law():
    row = _row(render_capacity_html(DOCUMENT), 1)
    assert "concurrency (Little&#x27;s law)=72.250" in row
    assert "VUs busy=30.500" in row
    assert "VUs peak=44" in row


def test_a_capacity_json_written_before_vus_active_still_shows_its_vus_busy():
    (probe, *rest) = DOCUMENT["probes"]
    old = {k: v for k, v in probe.items() if k not in ("vus_active", "concurrency_littles_law")}
    row = _row(render_capacity_html({**DOCUMENT, "probes": [{**old, "in_flight": 30.0}, *rest]}), 1)
    assert "VUs busy=30" in row
