"""URLs as results files and log lines keep them: used, never written."""

from __future__ import annotations

import pytest

from stressbed.results.redact import redact


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://load:s3cret@api.example.com/v1", "https://api.example.com/v1"),
        (
            "http://h:9/metrics?token=s3cret&format=text",
            "http://h:9/metrics?token=REDACTED&format=REDACTED",
        ),
        ("http://h/metrics?s3cret", "http://h/metrics?REDACTED"),  # a bare token
        ("http://h/metrics?a=&b=1", "http://h/metrics?a=&b=REDACTED"),
        ("http://h?mail=a@s3cret", "http://h?mail=REDACTED"),  # an @ past the host is no user
        ("http://u:p@h/x?k=s3cret#s3cret", "http://h/x?k=REDACTED#REDACTED"),
    ],
)
def test_a_url_keeps_its_host_path_and_query_keys_and_loses_every_secret(url, kept):
    assert redact(url) == kept
