"""The live page: report.html's charts (:mod:`.charts`, the same code) drawn from the seconds
sealed so far, and moved on without a reload.

:func:`render_live` is the whole page as it stands (what a first load or a reload gets);
:func:`live_update` is what the page asks for each second: every chart's data source by name,
where the time axis ends, the header (state, thresholds now) and a signature of the page's
layout. When the layout changes (a chart appears: the first failed status, a request name, a
stack event), the page reloads itself; otherwise it swaps each source's data in place. Bokeh's
JavaScript is inlined: the page asks nothing of any host but the one that serves it.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._numbers import show
from .html import STYLE
from .timeline import Timeline

__all__ = ["POLL_MS", "live_header", "live_update", "render_live"]

#: How often the page asks for the seconds sealed since (milliseconds).
POLL_MS = 1000

_SCRIPT = """
<script>
(function () {
  const POLL_MS = %(poll)d;
  const layout = %(layout)s;
  let misses = 0;
  function header(text) { document.getElementById('live-header').innerHTML = text; }
  function move(data) {
    const doc = Bokeh.documents[0];
    if (!doc) return;
    for (const [name, columns] of Object.entries(data.sources)) {
      const source = doc.get_model_by_name(name);
      if (!source) continue;
      const fresh = {};
      for (const [key, column] of Object.entries(columns)) {
        fresh[key] = column.map((v) => (v === null ? NaN : v));
      }
      source.data = fresh;
    }
    const x = doc.get_model_by_name('%(x_range)s');
    if (x) {
      const following = !Array.isArray(x.bounds) || x.end >= x.bounds[1] - 1e-6;
      x.bounds = [0, data.end];
      if (following) x.end = data.end;
    }
  }
  async function tick() {
    let data;
    try {
      const response = await fetch('live.json', {cache: 'no-store'});
      data = await response.json();
      misses = 0;
    } catch (e) {
      if (++misses >= 3) {
        header(document.getElementById('live-header').innerHTML +
               '<p class="nodata">The live server has gone (the run is over).</p>');
        return;
      }
      setTimeout(tick, POLL_MS);
      return;
    }
    if (data.layout !== layout) {
      location.reload();
      return;
    }
    header(data.header);
    move(data);
    if (!data.ended) setTimeout(tick, POLL_MS);
  }
  setTimeout(tick, POLL_MS);
})();
</script>
"""

_TEMPLATE = """
{% block postamble %}{{ style }}{% endblock %}
{% block contents %}
<div id="live-header">{{ header }}</div>
<div class="charts">
{{ super() }}
</div>
{{ script }}
{% endblock %}
"""


def _layout(
    titles: Sequence[str],
    labels: Mapping[str, Sequence[str]],
    data: Mapping[str, Mapping[str, Any]],
) -> str:
    """What decides the page's shape: each chart's title, its legends, its sources' names
    and columns."""
    shape = [
        list(titles),
        sorted((name, list(legend)) for name, legend in labels.items()),
        sorted((name, sorted(columns)) for name, columns in data.items()),
    ]
    return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]


def render_live(title: str, line: Timeline, header: str) -> str:
    """The live page with the seconds of ``line``, its ``header`` (:func:`live_header`)."""
    from bokeh.embed import file_html  # noqa: PLC0415 - Bokeh only when a page is drawn
    from bokeh.layouts import column  # noqa: PLC0415
    from bokeh.resources import INLINE  # noqa: PLC0415

    from .charts import X_RANGE, chart_data, charts  # noqa: PLC0415 - imports Bokeh

    figures = charts(line, {})
    layout = _layout(*chart_data(line))
    script = _SCRIPT % {"poll": POLL_MS, "layout": json.dumps(layout), "x_range": X_RANGE}
    return file_html(
        column(*figures, sizing_mode="stretch_width"),
        INLINE,
        title,
        template=_TEMPLATE,
        template_variables={"style": STYLE, "header": header, "script": script},
    )


def live_update(line: Timeline) -> dict[str, Any]:
    """What the page asks for each second, the header and the end aside (see the module's
    docstring): made without Bokeh, a few milliseconds for a long run's 900 points."""
    from .charts import chart_data  # noqa: PLC0415 - Bokeh is imported only to draw

    titles, labels, data = chart_data(line)
    layout = _layout(titles, labels, data)
    return {"sources": data, "end": max(line.seconds, 1.0), "layout": layout}


def live_header(
    identity: Mapping[str, str],
    state: str,
    facts: Sequence[tuple[str, str]],
    thresholds: Sequence[tuple[str, str, str]],
    notes: Sequence[str] = (),
) -> str:
    """The page's top: who (``identity``), ``state`` (HTML, already escaped where it needs
    to be), ``facts`` (label, value), each threshold's (label, state, observed) now and
    ``notes`` (lines said so far: a capacity search's probes)."""
    e = html.escape
    who = " ".join(e(v) for v in identity.values())
    parts = [f"<h1>stressbed live: {who}</h1>", f'<p class="message">{state}</p>']
    if facts:
        parts.append(
            '<p class="facts">'
            + "".join(f"<span>{e(k)}: <b>{e(v)}</b></span>" for k, v in facts)
            + "</p>"
        )
    if thresholds:
        marks = {"pass": "ok", "fail": "bad", "no_data": "nodata", "at_end": "muted"}
        words = {
            "pass": "holding",
            "fail": "failing",
            "no_data": "no data yet",
            "at_end": "judged at the end",
        }
        rows = "".join(
            f'<tr><td>{e(label)}</td><td class="{marks.get(now, "")}">{e(words.get(now, now))}'
            f'</td><td class="num">{e(observed)}</td></tr>'
            for label, now, observed in thresholds
        )
        parts.append(
            f"<table><tr><th>threshold</th><th>now</th><th>observed so far</th></tr>{rows}</table>"
        )
    if notes:
        items = "".join(f"<li>{e(note)}</li>" for note in notes)
        parts.append(f'<ul class="notes">{items}</ul>')
    return "\n".join(parts)


def observed_text(value: float | None, unit: str) -> str:
    """A threshold's observed value for the header (no data: said so, never 0)."""
    return "no data" if value is None else f"{show(value)}{unit}"
