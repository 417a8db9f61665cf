"""What a value looks like: the shape that decides whether it is an identifier in a path, a
secret to keep out of the module, or a category worth copying.

Shapes, from the most to the least specific: ``uuid``, ``email``, ``ip`` (v4 or v6), ``jwt``,
``date`` (ISO 8601, with or without a time), ``number`` (an integer), ``decimal``, ``hash``
(16 or more hex digits with a digit and a letter among them, or 32/40/64 hex digits), ``id``
(a word, a separator and digits: ``node-17``; or a word and three or more digits:
``host042``), ``token`` (16 or more characters of a base64/url-safe alphabet mixing letters and
digits), and ``word`` (anything else).

A longer text (words between spaces, slashes, colons...) takes the shape of a UUID, an email,
a JWT, a hash or a token it holds (``Alice <alice@example.com>`` is an email), and one that
starts with an HTTP authentication scheme (``Bearer ...``, ``Basic ...``) is a token: a
secret inside a text is a secret.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "ID_SHAPES",
    "SECRET_NAME",
    "SENSITIVE_SHAPES",
    "alphabet_of",
    "is_sensitive_name",
    "shape",
]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_EMAIL = re.compile(r"[^@\s/]+@[^@\s/]+\.[A-Za-z]{2,}")
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_NUMBER = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d+\.\d+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_ID = re.compile(r"[A-Za-z]+[-_.]\d+|[A-Za-z]+\d{3,}")
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/=.~]{16,}")
#: An HTTP authentication scheme before a credential.
_AUTH_SCHEME = re.compile(r"(?:bearer|basic|digest|token|negotiate|ntlm|apikey)\s+\S", re.I)
#: What separates the words of a longer text (a header, a sentence, a URL).
_SEPARATORS = re.compile(r"[^A-Za-z0-9_\-+=.~@]+")
#: The shapes a longer text takes from a word it holds (not an address: a version such as
#: Chrome/120.0.0.0 is written as one).
_HELD = frozenset({"uuid", "email", "jwt", "hash", "token"})
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")

#: Shapes an identifier in a path has: a segment of these shapes is a parameter.
ID_SHAPES = frozenset({"uuid", "email", "ip", "jwt", "date", "number", "hash", "id", "token"})
#: Shapes never copied into a module, whatever the field: they become generators of the shape.
SENSITIVE_SHAPES = frozenset({"uuid", "email", "ip", "jwt", "hash", "token"})
#: Field names whose values are never copied (a password, a key, a session id...).
SECRET_NAME = re.compile(
    r"pass(word|wd)?|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private|"
    r"auth(?!ors?([-_.]|$))|session|sessid|^sid$|cookie|signature|^sig$|credential|otp|nonce|"
    r"^key$|bearer|ssn|card|cvv|cvc|(^|[-_.])pin($|[-_.])|(?-i:[a-z]Pin)|csrf|xsrf",
    re.IGNORECASE,
)


def shape(value: str) -> str:
    """The shape of ``value`` (see the module's docstring)."""
    n = len(value)
    if n == 36 and _UUID.fullmatch(value):
        return "uuid"
    if "@" in value and _EMAIL.fullmatch(value):
        return "email"
    if _is_ip(value):
        return "ip"
    if value.startswith("eyJ") and _JWT.fullmatch(value):
        return "jwt"
    if n >= 10 and value[4:5] == "-" and _DATE.fullmatch(value):
        return "date"
    if _NUMBER.fullmatch(value):
        return "number"
    if _DECIMAL.fullmatch(value):
        return "decimal"
    if (
        n >= 16
        and _HEX.fullmatch(value)
        and (n in (32, 40, 64) or (_HAS_DIGIT.search(value) and _HAS_LETTER.search(value)))
    ):
        return "hash"
    if _ID.fullmatch(value):
        return "id"
    if (
        n >= 16
        and _TOKEN.fullmatch(value)
        and _HAS_DIGIT.search(value)
        and _HAS_LETTER.search(value)
    ):
        return "token"
    if _SEPARATORS.search(value):
        return _held(value)
    return "word"


def _held(text: str) -> str:
    """The shape a longer text takes from what it holds (see the module's docstring)."""
    if _AUTH_SCHEME.match(text):
        return "token"
    for part in _SEPARATORS.split(text):
        if len(part) >= 6 and (found := shape(part)) in _HELD:
            return found
    return "word"


def _is_ip(value: str) -> bool:
    if _IPV4.fullmatch(value):
        return all(int(part) <= 255 for part in value.split("."))
    if ":" in value and len(value) >= 2 and all(c in "0123456789abcdefABCDEF:." for c in value):
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            return False
        return True
    return False


def is_sensitive_name(name: str) -> bool:
    """Whether a field, a parameter or a header named ``name`` carries secrets by its name."""
    return SECRET_NAME.search(name) is not None


def alphabet_of(values: list[str]) -> str:
    """The smallest of the usual alphabets that writes every one of ``values``: hex (lower or
    upper), digits, lower-case alphanumerics, alphanumerics, url-safe base64."""
    text = "".join(values)
    for alphabet in (
        "0123456789",
        "0123456789abcdef",
        "0123456789ABCDEF",
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
    ):
        if all(c in alphabet for c in text):
            return alphabet
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
