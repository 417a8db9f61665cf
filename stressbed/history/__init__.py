"""The run history (issue 28, begun): every run remembered in a store, for trends across
builds. So far: the store (SQLite; one versioned schema migrated forward by stressbed itself,
a store of a newer schema refused), what a run's summary.json gives it (``entry``) and where
a series' level shifts (``changes``: change points, numpy only). Not yet: recording from
``run``/``capacity``/``collect``, PostgreSQL, ``stressbed history`` and ``stressbed trend``.
It may import :mod:`stressbed.errors`; nothing above.
"""
