"""Registrations of simulated agents, and the session tokens any replica can verify.

A session token is ``<agent_id as unpadded base64url>.<HMAC-SHA256 of the agent id, hex>``,
keyed by ``STRESSBED_AGENT_TOKEN``: every replica started with the same token verifies every
other's sessions without sharing state. Without a token the key is :data:`BUILTIN_KEY`, which
is in this source and so is no secret: sessions then tell agents apart, they authenticate
nothing.

Each replica counts registrations per agent id; one of an id it has already seen registered is
a duplicate. At most :data:`MAX_IDS` ids are remembered (the least recently registered are
forgotten first), so an id forgotten and registered again is not counted as a duplicate.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import hmac
from typing import Any

from . import metrics
from .ingest import BadRequest

__all__ = ["BUILTIN_KEY", "MAX_IDS", "Registrations", "check_agent_id", "parse_registration"]

#: The key when the agent has no token: public, it makes sessions distinct, not secret.
BUILTIN_KEY = b"stressbed-agent built-in session key (public: not a secret)"
MAX_IDS = 200_000
MAX_ID_CHARS = 200


def check_agent_id(value: Any, field: str = "agent_id") -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise BadRequest(f"{field}: expected a string of 1..{MAX_ID_CHARS} characters")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise BadRequest(f"{field}: expected valid Unicode") from None
    return value


def parse_registration(body: Any) -> str:
    """The agent id of a ``POST /v1/register`` body, or BadRequest naming the field."""
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    agent = check_agent_id(body.get("agent_id"))
    if "host" in body and not isinstance(body["host"], str):
        raise BadRequest("host: expected a string")
    if "attrs" in body and not isinstance(body["attrs"], dict):
        raise BadRequest("attrs: expected an object")
    return agent


class Registrations:
    """Registrations per agent id (bounded), their total, and the duplicates among them."""

    def __init__(self, token: str, limit: int = MAX_IDS) -> None:
        self.key = token.encode() if token else BUILTIN_KEY
        self.limit = limit
        self.ids: collections.OrderedDict[str, int] = collections.OrderedDict()
        self.total = 0
        self.duplicates = 0

    def register(self, agent: str) -> tuple[str, bool]:
        """Count a registration of ``agent``: its session token, and whether it is a duplicate."""
        seen = self.ids.get(agent, 0)
        self.ids[agent] = seen + 1
        self.ids.move_to_end(agent)
        while len(self.ids) > self.limit:
            self.ids.popitem(last=False)
        self.total += 1
        metrics.registrations.inc()
        if seen:
            self.duplicates += 1
            metrics.duplicate_registrations.inc()
        return self.session(agent), seen > 0

    def session(self, agent: str) -> str:
        raw = agent.encode()
        name = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return f"{name}.{hmac.new(self.key, raw, hashlib.sha256).hexdigest()}"

    def verify(self, agent: str, session: Any) -> bool:
        """True when ``session`` is the token of ``agent`` under this replica's key."""
        if not isinstance(session, str) or not session.isascii():
            return False
        return hmac.compare_digest(session.encode(), self.session(agent).encode())

    def summary(self, with_ids: bool) -> dict[str, Any]:
        found: dict[str, Any] = {
            "count": len(self.ids),
            "registrations": self.total,
            "duplicates": self.duplicates,
        }
        if with_ids:
            found["ids"] = dict(self.ids)
        return found
