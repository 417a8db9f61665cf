"""The run history: every run, capacity search and collected fleet remembered in a store, for
trends across builds.

``store`` (one versioned schema migrated forward by stressbed itself, a store of a newer
schema refused) in a SQLite file or a PostgreSQL database (``_postgres``, the ``postgresql``
extra) behind one small interface (``_database``); ``entry``, what a run's summary.json (or a
search's capacity.json) gives it; ``changes``, where a series' level shifts (change points,
numpy only); ``trend``, each metric of a series with its change points, and the history gate;
``trend_html``, trend.html. It may import :mod:`stressbed.errors`, :mod:`stressbed.scenario`
and :mod:`stressbed.results`; nothing above.
"""
