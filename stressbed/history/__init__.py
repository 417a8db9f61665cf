"""The run history (issue 28, begun): every run remembered in a store, for trends across
builds. So far: the store (one versioned schema migrated forward by stressbed itself, a store
of a newer schema refused), in a SQLite file or a PostgreSQL database (``_postgres``, the
``postgresql`` extra) behind one small interface (``_database``), and what a run's
summary.json gives it (``entry``). Not yet: recording from ``run``/``capacity``/``collect``
and ``stressbed trend``. It may import :mod:`stressbed.errors`, :mod:`stressbed.scenario` and
:mod:`stressbed.results`; nothing above.
"""
