"""What two readings of one input's halves learned, as one (the app reads a big log on two
cores, each half in its own process).

Counts add; samples merge in proportion to what they stand for; the templates' trees join
(a position may then hold up to twice :data:`~stressbed.model.templates.DISTINCT` words,
still bounded); clients seen in both halves are one, their first and last requests the
earliest and the latest. What a split costs, and only at the split: the one interval of each
client that spans it, and a session across it counted as two.
"""

from __future__ import annotations

from .clients import Client, Clients
from .learn import EndpointStats, Learned, merge_counts, merge_field

__all__ = ["combine", "merge_clients", "merge_endpoint"]


def combine(parts: list[Learned]) -> Learned:
    """``parts`` (in the input's order) as one; the first part is the result."""
    out = parts[0]
    for other in parts[1:]:
        out.templates.absorb(other.templates)
        for key, stats in other.endpoints.items():
            mine = out.endpoints.get(key)
            if mine is None:
                stats.leaf = out.templates.leaf_by_key(key[1])
                out.endpoints[key] = stats
            else:
                merge_endpoint(mine, stats)
        out.per_second.update(other.per_second)
        if other.first is not None:
            out.first = other.first if out.first is None else min(out.first, other.first)
        if other.last is not None:
            out.last = other.last if out.last is None else max(out.last, other.last)
        out.count += other.count
        merge_clients(out.clients, other.clients)
    return out


def merge_endpoint(into: EndpointStats, other: EndpointStats) -> None:
    """One endpoint's figures from two halves: its path's parameters position by position."""
    merge_counts(into, other)
    for i, stats in enumerate(other.path):
        if i < len(into.path):
            merge_field(into.path[i], stats)
        else:
            into.path.append(stats)


def merge_clients(into: Clients, other: Clients) -> None:
    # The other names each of other's clients has there (ids bound to an address).
    names: dict[str, list[str]] = {}
    for alias, primary in other.aliases.items():
        names.setdefault(primary, []).append(alias)
    for key, client in other.followed.items():
        mine = _same(into, key, names.get(key, []))
        if mine is not None:
            mine.first = min(mine.first, client.first)
            mine.last = max(mine.last, client.last)
            mine.count += client.count
            mine.last_by_endpoint.update(client.last_by_endpoint)
            mine.has_id = mine.has_id or client.has_id
        elif len(into.followed) < into.limit:
            into.followed[key] = client
        else:
            into.unfollowed += client.count
    for alias, primary in other.aliases.items():
        if alias not in into.followed:
            into.aliases.setdefault(alias, primary)
    into.unfollowed += other.unfollowed
    for endpoint, reservoir in other.intervals.items():
        found = into.intervals.get(endpoint)
        if found is None:
            into.intervals[endpoint] = reservoir
        else:
            found.merge(reservoir)
    for endpoint, n in other.repeats.items():
        into.repeats[endpoint] = into.repeats.get(endpoint, 0) + n
    into.journeys.merge(other.journeys)
    into.long_sessions += other.long_sessions
    into.sessions += other.sessions
    into.think.merge(other.think)
    # Each client's first request and span, from the clients as they are now one.
    into.firsts = {}
    for client in into.followed.values():
        if client.first_endpoint is not None:
            into.firsts[client.first_endpoint] = into.firsts.get(client.first_endpoint, 0) + 1
    into.spans = [(c.first, c.last) for c in into.followed.values()]
    into.callers = {}
    for client in into.followed.values():
        for endpoint in client.last_by_endpoint:
            into.callers[endpoint] = into.callers.get(endpoint, 0) + 1


def _same(into: Clients, name: str, others: list[str]) -> Client | None:
    """The client of ``into`` that ``name`` (or one of its other names) is, if any."""
    for candidate in (name, *others):
        found = into.followed.get(candidate)
        if found is None and candidate in into.aliases:
            found = into.followed.get(into.aliases[candidate])
        if found is not None:
            return found
    return None
