"""``stressbed model``: production traffic in, a readable scenario module out. Pure: it reads
files, but runs no process, thread or socket (``--check``'s replay is the app's).

    readers (access logs, HAR, OTLP JSON) -> Hit records -> privacy filter -> templates,
    counts, fits, clients, the rate's shape -> Model -> writer (a formatted scenario module)

Every reader yields :class:`~stressbed.model.hits.Hit` records, one per request, and counts
what it could not read in a :class:`~stressbed.model.hits.Tally`; ``files`` opens an input,
plain or gzip. Nothing the privacy filter refuses is kept past the record: headers that carry
credentials are never read at all. It may import :mod:`stressbed.scenario` (to write and check
what it writes) and :mod:`stressbed.errors`; nothing above.
"""
