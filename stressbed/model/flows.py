"""What the clients did, as the flows a scenario runs: a population of agents checking in,
journeys, and single requests.

- **A population** when the traffic is one: at least :data:`MIN_CLIENTS` clients, and the
  endpoints their clients call on a regular interval (check-ins) carry at least
  :data:`POPULATION_SHARE` of the requests. An endpoint is a check-in when half the clients
  (and :data:`MIN_CLIENTS` at least) call it, at least half its requests repeat the same
  client's previous one to it, the median time between them is a
  second or more, and the 10th and 90th percentiles lie within :data:`MAX_JITTER` of the
  median (the larger side is the jitter written). The agents: as many as were there at once
  (time-weighted, each client there from its first request to its last); their
  registration: an endpoint that was the first request of most clients and that they called
  about once. The other endpoints stay a mix at their own share of the rate.
- **Journeys** otherwise, when sessions were seen (:data:`MIN_CLIENTS` clients,
  :data:`MIN_SESSIONS` sessions): each sequence of two to six steps that at least
  :data:`JOURNEY_SHARE` of the sessions (and five at the least) followed from start to end,
  with the think times seen between steps (their 10th to 90th percentile). Each endpoint's
  requests not inside a journey stay single requests, so the requests' shares are kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from .clients import Clients
from .learn import Learned
from .requests import Endpoint

__all__ = ["CheckIn", "Flows", "Journey", "Population", "plan_flows"]

MIN_CLIENTS = 10
POPULATION_SHARE = 0.5
MAX_JITTER = 0.5
MIN_INTERVAL_S = 1.0
MIN_SESSIONS = 20
JOURNEY_SHARE = 0.05
MAX_JOURNEYS = 5
#: A registration's clients call it about once: at most this many times per client.
REGISTER_PER_CLIENT = 1.5


@dataclass(frozen=True)
class CheckIn:
    """An endpoint called on an interval: its median, jitter (a share of it) and the
    intervals it rests on (p10, p90 and how many)."""

    endpoint: Endpoint
    interval_s: float
    jitter: float
    p10: float
    p90: float
    intervals: int


@dataclass(frozen=True)
class Population:
    checkins: tuple[CheckIn, ...]
    register: Endpoint | None
    agents: int
    peak: int
    clients: int
    share: float


@dataclass(frozen=True)
class Journey:
    steps: tuple[Endpoint, ...]
    count: int


@dataclass
class Flows:
    """The plan: a population or journeys (or neither), the think times between journey
    steps (p10, p90 seconds), and each endpoint's requests left as single requests."""

    population: Population | None = None
    journeys: list[Journey] = field(default_factory=list)
    think: tuple[float, float] | None = None
    singles: dict[str, int] = field(default_factory=dict)
    clients: int = 0
    sessions: int = 0


def plan_flows(learned: Learned, endpoints: Sequence[Endpoint]) -> Flows:
    """The flows of ``endpoints`` (see the module's docstring)."""
    clients = learned.clients
    flows = Flows(
        singles={e.key: e.stats.count for e in endpoints},
        clients=clients.count(),
        sessions=clients.sessions,
    )
    if clients.count() < MIN_CLIENTS:
        return flows
    by_member: dict[Hashable, Endpoint] = {m: e for e in endpoints for m in e.members}
    flows.population = _population(clients, endpoints, learned.count, by_member)
    if flows.population is not None:
        for checkin in flows.population.checkins:
            flows.singles.pop(checkin.endpoint.key, None)
        if flows.population.register is not None:
            flows.singles.pop(flows.population.register.key, None)
        return flows
    if clients.sessions >= MIN_SESSIONS:
        _journeys(flows, clients, by_member)
    return flows


def _population(
    clients: Clients,
    endpoints: Sequence[Endpoint],
    total: int,
    by_member: Mapping[Hashable, Endpoint],
) -> Population | None:
    checkins = [c for e in endpoints if (c := _checkin(clients, e)) is not None]
    periodic = sum(c.endpoint.stats.count for c in checkins)
    if not checkins or periodic < POPULATION_SHARE * total:
        return None
    mean, peak = clients.at_once()
    followed = len(clients.followed)
    firsts: dict[str, int] = {}
    for member, n in clients.firsts.items():
        endpoint = by_member.get(member)
        if endpoint is not None:
            firsts[endpoint.key] = firsts.get(endpoint.key, 0) + n
    register = None
    if firsts:
        key, n = max(firsts.items(), key=lambda kv: kv[1])
        found = next(e for e in endpoints if e.key == key)
        periodic_keys = {c.endpoint.key for c in checkins}
        if (
            key not in periodic_keys
            and n >= 0.8 * followed
            and found.stats.count <= REGISTER_PER_CLIENT * followed
        ):
            register = found
    return Population(
        tuple(checkins),
        register,
        max(1, round(mean)),
        peak,
        clients.count(),
        periodic / total,
    )


def _checkin(clients: Clients, endpoint: Endpoint) -> CheckIn | None:
    intervals: list[float] = []
    repeats = 0
    for member in endpoint.members:
        reservoir = clients.intervals.get(member)
        if reservoir is not None:
            intervals += reservoir.values
        repeats += clients.repeats.get(member, 0)
    callers = sum(clients.callers.get(member, 0) for member in endpoint.members)
    if len(intervals) < 10 or repeats < 0.5 * endpoint.stats.count:
        return None
    # A fleet's check-in: called by half the clients at least (one busy client's loop is not).
    if callers < max(MIN_CLIENTS, 0.5 * len(clients.followed)):
        return None
    ordered = sorted(intervals)
    median = statistics.median(ordered)
    p10 = ordered[int(0.1 * (len(ordered) - 1))]
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    if median < MIN_INTERVAL_S:
        return None
    jitter = max(median - p10, p90 - median) / median
    if jitter > MAX_JITTER:
        return None
    return CheckIn(endpoint, median, jitter, p10, p90, repeats)


def _journeys(flows: Flows, clients: Clients, by_member: Mapping[Hashable, Endpoint]) -> None:
    least = max(5, JOURNEY_SHARE * clients.sessions)
    found: list[Journey] = []
    for steps, count in sorted(clients.journeys.counts.items(), key=lambda kv: -kv[1]):
        if count < least or len(found) >= MAX_JOURNEYS:
            break
        if not isinstance(steps, tuple) or len(steps) < 2:
            continue
        endpoints = tuple(by_member.get(step) for step in steps)
        if any(e is None for e in endpoints):
            continue
        journey = Journey(tuple(e for e in endpoints if e is not None), count)
        needed: dict[str, int] = {}
        for step in journey.steps:
            needed[step.key] = needed.get(step.key, 0) + count
        if any(flows.singles.get(k, 0) < n for k, n in needed.items()):
            continue
        for k, n in needed.items():
            flows.singles[k] -= n
        found.append(journey)
    flows.journeys = found
    if found and clients.think.values:
        ordered = sorted(clients.think.values)
        flows.think = (
            ordered[int(0.1 * (len(ordered) - 1))],
            ordered[int(0.9 * (len(ordered) - 1))],
        )
