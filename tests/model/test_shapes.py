"""What a value looks like, and which names carry secrets: tables of both."""

from __future__ import annotations

import pytest

from stressbed.model.shapes import (
    ID_SHAPES,
    SENSITIVE_SHAPES,
    alphabet_of,
    is_sensitive_name,
    shape,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8f3a0c2e-1b2d-4e5f-9a8b-7c6d5e4f3a2b", "uuid"),
        ("8F3A0C2E-1B2D-4E5F-9A8B-7C6D5E4F3A2B", "uuid"),
        ("alice@example.com", "email"),
        ("a.b+tag@mail.example.co.uk", "email"),
        ("10.0.0.1", "ip"),
        ("255.255.255.255", "ip"),
        ("2001:db8::1", "ip"),
        ("::1", "ip"),
        ("fe80::1ff:fe23:4567:890a", "ip"),
        (JWT, "jwt"),
        ("2024-01-02", "date"),
        ("2024-01-02T10:00:00Z", "date"),
        ("2024-01-02T10:00:00.123+01:00", "date"),
        ("2024-01-02 10:00", "date"),
        ("42", "number"),
        ("-7", "number"),
        ("007", "number"),
        ("3.25", "decimal"),
        ("d41d8cd98f00b204e9800998ecf8427e", "hash"),  # md5
        ("da39a3ee5e6b4b0d3255bfef95601890afd80709", "hash"),  # sha1
        ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "hash"),  # sha256
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hash"),  # 32 hex digits, no digit among them
        ("0123456789abcdef", "hash"),
        ("node-17", "id"),
        ("host042", "id"),
        ("agent_7", "id"),
        ("x9fK2mQ7vL3pR8sT", "token"),
        ("tok_3f9a8b7c6d5e4f3aZZ", "token"),
        ("Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc", "token"),  # a credential after its scheme
        ("Basic dXNlcjpwYXNz", "token"),
        ("Alice <alice@example.com>", "email"),  # a text holding an email
        ("sha256:" + "ab" * 32, "hash"),
        ("urn:uuid:8f3a0c2e-1b2d-4e5f-9a8b-7c6d5e4f3a2b", "uuid"),
        ("https://hooks.example.com/services/aBcD1234eFgH5678iJkL9012", "token"),
        # Words: what a path's fixed segments and a category's values are.
        ("v1", "word"),
        ("api", "word"),
        ("health", "word"),
        ("status", "word"),
        ("agents", "word"),
        ("index.html", "word"),
        ("1.2.3", "word"),  # a version, not an address
        ("999.1.1.1", "word"),
        ("12:30", "word"),
        ("deadbeefcafebabe", "word"),  # 16 hex letters: a word may be written in them
        ("hello world", "word"),
        ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0", "word"),
        ("", "word"),
    ],
)
def test_shape(value, expected):
    assert shape(value) == expected


def test_every_identifier_shape_but_a_date_and_an_id_is_sensitive():
    assert SENSITIVE_SHAPES < ID_SHAPES
    assert {"date", "number", "id"} == ID_SHAPES - SENSITIVE_SHAPES


@pytest.mark.parametrize(
    "name",
    [
        *("password", "passwd", "pwd", "new_pwd", "newPassword", "secret", "client_secret"),
        *("token", "access_token", "refreshToken", "api_key", "apiKey", "x-api-key", "apikey"),
        *("access-key", "private_key", "auth", "oauth_state", "Authorization", "session"),
        *("sessionid", "session_id", "PHPSESSID", "JSESSIONID", "sid", "cookie", "signature"),
        *("sig", "credentials", "otp", "totp", "nonce", "key", "bearer", "ssn", "card"),
        *("card_number", "cvv", "cvc", "pin", "card.pin", "userPin", "csrf", "X-XSRF-TOKEN"),
    ],
)
def test_names_of_secrets(name):
    assert is_sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    [
        *("page", "limit", "sort", "q", "name", "user", "id", "email", "os", "cpu", "kind"),
        *("author", "authors", "author_id", "coauthor", "shipping", "mapping", "spinner"),
        *("keyboard", "sort_key", "monkey", "status", "region"),
    ],
)
def test_names_of_no_secret(name):
    assert not is_sensitive_name(name)


@pytest.mark.parametrize(
    ("values", "alphabet"),
    [
        (["123", "4"], "0123456789"),
        (["dead", "beef0"], "0123456789abcdef"),
        (["DEAD", "BEEF0"], "0123456789ABCDEF"),
        (["abc9", "z"], "abcdefghijklmnopqrstuvwxyz0123456789"),
        (["aZ9"], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
        (["a-_"], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"),
        (["a b!"], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"),
    ],
)
def test_the_smallest_alphabet_that_writes_the_values(values, alphabet):
    assert alphabet_of(values) == alphabet
