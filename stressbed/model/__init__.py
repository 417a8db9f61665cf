"""``stressbed model``: production traffic in, a readable scenario module out.

    readers (access logs, HAR, OTLP JSON) -> Hit records -> privacy filter -> templates,
    counts, fits, clients, the rate's shape -> Model -> writer (a formatted scenario module)

Every reader yields :class:`~stressbed.model.hits.Hit` records, one per request, and counts
what it could not read in a :class:`~stressbed.model.hits.Tally`. Nothing the privacy filter
refuses is kept past the record: headers that carry credentials are never read at all.
"""
