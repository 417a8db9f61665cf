"""The application: what a user runs, on top of every other layer.

It owns the command line (``cli``), the run settings and profiles (``settings``: defaults <
profile file < environment < options), the stages of a run (``plan``: load and validate
everything and check the backend can do it; ``execute``: render, provision, run, merge,
judge, report, tear down), run directories (``rundir``), the live line (``live``),
``stressbed collect`` (``collect``) and run against run (``compare``: ``stressbed compare``
and ``run --baseline``), and the capacity search, an experiment that drives plans and fleets
(``capacity_plan``: validate the search; ``probing``: run and judge each probe; ``capacity``:
provision once, search, conclude, capacity.json), and ``stressbed export`` (``export_cli``:
the resolved stack as a Compose file or Kubernetes manifests). It may import every layer;
nothing imports it but the entry points.
"""
