"""The network addresses a stack's NetworkPolicy admits besides its own pods, as Kubernetes
writes them (an ``ipBlock``'s CIDR)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from ..errors import ConfigError

__all__ = ["parse_cidrs"]

EXPECTED = (
    "CIDRs such as 10.0.0.0/24 or 172.18.0.2, comma-separated: the addresses the API "
    "server's requests to pods come from"
)


def parse_cidrs(value: str | Sequence[str] | None, where: str) -> tuple[str, ...]:
    """CIDRs from a comma-separated text or a list, each in its canonical form (an address
    alone is its /32 or /128; host bits are cleared, as the API server would read them);
    ConfigError naming ``where`` for one that is not a CIDR."""
    if value is None:
        return ()
    if not isinstance(value, str | list | tuple):
        raise ConfigError(where, value, EXPECTED)
    items = value.split(",") if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        text = str(item).strip()
        try:
            found.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigError(where, text, EXPECTED) from None
    return tuple(dict.fromkeys(found))
