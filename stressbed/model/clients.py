"""Who sent the traffic and what each did in order: clients, their sessions, their check-ins.

A request's client is, in this order: the value of a path parameter after a word naming a
client (``/v1/agents/{agent_id}/...``: :data:`CLIENT_WORDS`), a client-id header
(:data:`CLIENT_HEADERS`), a JSON body field naming one (:data:`CLIENT_FIELDS`), else what the
input says sent it (an address, a trace's client). Client keys live in memory only: no module
ever holds one.

Per client, while the input streams by:

- the time since its previous request to the same endpoint, pooled per endpoint: what a
  check-in's interval and jitter are read from;
- its sessions: requests less than :data:`SESSION_GAP_S` apart; a finished session's first
  :data:`MAX_STEPS` endpoints (in order) are counted as a journey, the gaps between its steps
  as think times;
- when it was first and last seen: how many were there at once.

At most :data:`MAX_CLIENTS` clients are followed (the rest are counted); a client's state is a
few numbers and its current session's steps.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from .fits import BoundedCounter, Reservoir

__all__ = [
    "CLIENT_FIELDS",
    "CLIENT_HEADERS",
    "CLIENT_WORDS",
    "Client",
    "Clients",
    "client_field",
    "client_word",
]

#: Words before a path parameter that make its value the client's id.
CLIENT_WORDS = frozenset(
    {"agent", "agents", "client", "clients", "node", "nodes", "host", "hosts", "device"}
    | {"devices", "machine", "machines", "sensor", "sensors", "instance", "instances"}
)
#: Request headers that carry a client's id (lower-case).
CLIENT_HEADERS = ("x-agent-id", "x-client-id", "x-device-id", "x-node-id", "x-host-id")
#: JSON body fields (top level) that carry one.
CLIENT_FIELDS = ("agent_id", "agentId", "client_id", "clientId", "node_id", "device_id", "host_id")
#: A client's requests further apart than this are two sessions.
SESSION_GAP_S = 1800.0
#: Steps of a session counted as its journey (longer sessions are counted, not followed).
MAX_STEPS = 6
#: Clients followed at most.
MAX_CLIENTS = 100_000


def client_word(word: str | None) -> bool:
    return word is not None and word.lower() in CLIENT_WORDS


def client_field(body: Any) -> str | None:
    """A client id from a JSON body's top-level fields, if one names it."""
    if isinstance(body, dict):
        for name in CLIENT_FIELDS:
            value = body.get(name)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return str(value)
    return None


@dataclass
class Client:
    first: float
    last: float
    count: int = 0
    last_by_endpoint: dict[Hashable, float] = field(default_factory=dict)
    steps: list[Hashable] = field(default_factory=list)
    session_long: bool = False
    #: Whether an id (not only an address) names it.
    has_id: bool = False
    #: The endpoint of its first request.
    first_endpoint: Hashable | None = None


@dataclass
class Clients:
    """The clients of one input stream (see the module's docstring). Endpoints are told by
    the key the caller gives (its method and path leaf's)."""

    followed: dict[str, Client] = field(default_factory=dict)
    #: Clients followed at most.
    limit: int = MAX_CLIENTS
    #: Other names of clients: an id first seen from a client known by its address ->
    #: that address; an address first seen with an id -> that id.
    aliases: dict[str, str] = field(default_factory=dict)
    unfollowed: int = 0
    #: Per endpoint: the same client's time between two requests to it, and how many
    #: requests were such a repeat.
    intervals: dict[Hashable, Reservoir] = field(default_factory=dict)
    repeats: dict[Hashable, int] = field(default_factory=dict)
    #: Finished sessions by their steps; sessions longer than MAX_STEPS; think times.
    journeys: BoundedCounter = field(default_factory=lambda: BoundedCounter(5000))
    long_sessions: int = 0
    sessions: int = 0
    think: Reservoir = field(default_factory=lambda: Reservoir(4096))
    #: The clients that called each endpoint (counted at the end).
    callers: dict[Hashable, int] = field(default_factory=dict)
    #: Each client's first endpoint (a registration is every client's first).
    firsts: dict[Hashable, int] = field(default_factory=dict)
    #: (first, last) of every finished client, for how many were there at once.
    spans: list[tuple[float, float]] = field(default_factory=list)

    def see(self, key: str | None, address: str | None, endpoint: Hashable, time: float) -> None:
        """A request to ``endpoint`` at ``time`` from the client whose id is ``key`` (a path
        parameter's, a header's, a body's) sent from ``address`` (what the input says sent
        it). A client first seen by its address takes the first id seen from that address
        (an agent registers before it has an id in its paths); an address already bound to
        an id is another client's (agents behind one address)."""
        client = self._find(key, address)
        if client is None:
            name = key if key is not None else address
            if name is None:
                return
            if len(self.followed) >= self.limit:
                self.unfollowed += 1
                return
            client = self.followed[name] = Client(time, time, has_id=key is not None)
            client.first_endpoint = endpoint
            self.firsts[endpoint] = self.firsts.get(endpoint, 0) + 1
            if key is not None and address is not None and address not in self.aliases:
                # Its address's requests without an id are its own (the first id seen from
                # an address has it).
                self.aliases.setdefault(address, key)
        elif time - client.last > SESSION_GAP_S:
            self._end_session(client)
        elif client.steps or client.session_long:
            self.think.add(max(0.0, time - client.last))
        previous = client.last_by_endpoint.get(endpoint)
        if previous is not None:
            reservoir = self.intervals.get(endpoint)
            if reservoir is None:
                reservoir = self.intervals[endpoint] = Reservoir(4096)
            reservoir.add(max(0.0, time - previous))
            self.repeats[endpoint] = self.repeats.get(endpoint, 0) + 1
        client.last_by_endpoint[endpoint] = time
        client.last = max(client.last, time)
        client.count += 1
        if len(client.steps) < MAX_STEPS and not client.session_long:
            client.steps.append(endpoint)
        else:
            client.session_long = True

    def _find(self, key: str | None, address: str | None) -> Client | None:
        """The client of a request: by its id, by what its id or address stands for, or the
        client its address is (first seen by its address, now given an id)."""
        for name in (key, address) if key is not None else (address,):
            if name is None:
                continue
            found = self.followed.get(name)
            if found is None and name in self.aliases:
                found = self.followed.get(self.aliases[name])
            if found is not None:
                if name == address and key is not None:
                    if found.has_id:
                        return None  # another client's address: agents behind one address
                    found.has_id = True
                    self.aliases[key] = address
                return found
        return None

    def finish(self) -> None:
        """End every session still open (the input's end ends them); count each endpoint's
        callers."""
        for client in self.followed.values():
            self._end_session(client)
            self.spans.append((client.first, client.last))
            for endpoint in client.last_by_endpoint:
                self.callers[endpoint] = self.callers.get(endpoint, 0) + 1

    def _end_session(self, client: Client) -> None:
        if client.session_long:
            self.long_sessions += 1
            self.sessions += 1
        elif client.steps:
            self.journeys.add(tuple(client.steps))
            self.sessions += 1
        client.steps = []
        client.session_long = False

    def count(self) -> int:
        return len(self.followed) + (1 if self.unfollowed else 0)

    def at_once(self) -> tuple[float, int]:
        """Clients there at once: on average over the span they cover (time-weighted), and at
        most. A client is there from its first request to its last."""
        events = sorted([(a, 1) for a, _ in self.spans] + [(b, -1) for _, b in self.spans])
        if not events:
            return 0.0, 0
        level = peak = 0
        area = 0.0
        previous = events[0][0]
        for time, change in events:
            area += level * (time - previous)
            previous = time
            level += change
            peak = max(peak, level)
        span = events[-1][0] - events[0][0]
        return (area / span if span > 0 else float(peak)), peak
