"""What a run measured, and its verdict. Pure: no processes, no threads, no network.

It owns the mergeable ``sketch``, the additive ``aggregates`` (per metric and per second),
the ``samples`` collector that folds k6's CSV stream into them, the versioned
``runner_result`` document, a population's per-second ``agents`` and what is read from them
(``population``: levels, the connected share, summary.json's section), the fleet ``merge``
(additive data first, percentiles after),
the ``verdict`` on thresholds, the run on one time axis (``timeline``) and what it points at
(``findings``), and the run's documents: ``summary`` (summary.json, junit.xml, events.jsonl),
report.html (``html``, its Bokeh ``charts``; Bokeh imported only to draw), the terminal
``table`` and the URLs fit to be written in them (``redact``); and a capacity search's
judgement: one probe's verdict (``probe``, its growth test in ``trend``), where to probe
next and what the probes add up to (``search``), the binding cause (``causes``) and its
report.html (``capacity_html``); what faults and a scale-out cost users (``resilience``,
``scaleout``), both read from the one per-second SLO judgement and recovery search
(``slo_seconds``). It may import :mod:`stressbed.scenario` (threshold and metric definitions)
and :mod:`stressbed.errors`; nothing above.
"""
