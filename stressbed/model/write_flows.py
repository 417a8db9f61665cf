"""The flows planned (:mod:`stressbed.model.flows`) as module source: the mix of single
requests and journeys, and the population of agents with their check-ins.

The mix's weights are counts: a single request's, the requests of its endpoint outside any
journey; a journey's, the sessions that followed it. An iteration is one pick of the mix, so
the rate in iterations is the rate in requests over the requests an iteration makes on
average (:attr:`MixSource.per_iteration`); the population's requests are the agents', so the
mix keeps only its own share of the rate (:attr:`MixSource.share`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..scenario.units import format_duration
from .flows import Flows
from .pysource import Call, Dict, Item, List, Node, Raw, Tuple, emit, string
from .requests import Endpoint, wrap

__all__ = ["MixSource", "mix_block", "population_block"]


@dataclass(frozen=True)
class MixSource:
    """The mix's source (empty when every request is the population's), the requests one
    iteration makes on average, and the mix's share of all requests."""

    text: str
    per_iteration: float
    share: float
    uses_journeys: bool


def mix_block(
    flows: Flows,
    kept: list[Endpoint],
    consts: dict[str, str],
    total: int,
    rest: list[Endpoint],
) -> MixSource:
    items: list[Item] = []
    requests = iterations = 0
    for journey in flows.journeys:
        steps = ", ".join(consts[s.key] for s in journey.steps)
        think = ""
        if flows.think is not None:
            low, high = flows.think
            high = max(high, low + 0.001)
            think = f", think=think_uniform({string(_seconds(low))}, {string(_seconds(high))})"
        share = journey.count / max(1, flows.sessions)
        items.append(
            Item(
                Tuple((Item(Raw(f"journey({steps}{think})")), Item(Raw(str(journey.count))))),
                None,
                (f"a journey {share:.1%} of {flows.sessions:,} sessions followed",),
            )
        )
        requests += journey.count * len(journey.steps)
        iterations += journey.count
    for endpoint in kept:
        count = flows.singles.get(endpoint.key, 0)
        if count <= 0:
            continue
        items.append(
            Item(
                Tuple((Item(Raw(consts[endpoint.key])), Item(Raw(str(count))))),
                None,
                (f"{endpoint.stats.count / total:.2%} of all requests",),
            )
        )
        requests += count
        iterations += count
    if not items:
        return MixSource("", 1.0, 0.0, False)
    head = "#: The requests in their production proportions (weights: the requests counted"
    head += ";\n#: a journey's: the sessions that followed it).\n" if flows.journeys else ").\n"
    if rest:
        left = ", ".join(e.key for e in rest[:5]) + (", ..." if len(rest) > 5 else "")
        head += "".join(
            f"{line}\n" for line in wrap(f"Left out ({len(rest)} endpoints): {left}", "# ")
        )
    text = head + "TRAFFIC = " + emit(Call("mix", tuple(items)), 0, 10) + "\n"
    return MixSource(text, requests / iterations, requests / total, bool(flows.journeys))


def population_block(
    flows: Flows,
    consts: dict[str, str],
    identity: dict[str, tuple[Node, str]],
    others: list[tuple[Endpoint, float]],
    *,
    scale: float,
    lasting_s: float,
    join_at_once: bool = False,
) -> str:
    """``AGENT`` and ``AGENTS`` (the population's workload) for the planned population."""
    plan = flows.population
    assert plan is not None
    activities = []
    for checkin in plan.checkins:
        comment = (
            f"{checkin.endpoint.key}: every {_seconds(checkin.interval_s)} "
            f"(median of {checkin.intervals:,} intervals; p10 {_seconds(checkin.p10)}, "
            f"p90 {_seconds(checkin.p90)})"
        )
        activities.append(
            Item(
                Call(
                    "every",
                    (
                        Item(Raw(string(_seconds(checkin.interval_s)))),
                        Item(Raw(consts[checkin.endpoint.key])),
                        Item(Raw(string(f"{round(100 * checkin.jitter)}%")), "jitter"),
                    ),
                ),
                None,
                (comment,),
            )
        )
    for endpoint, interval in others:
        comment = (
            f"{endpoint.key}: {endpoint.stats.count:,} requests, one per agent every "
            f"{_seconds(interval)} on average (jitter 90%: spread, not periodic)"
        )
        activities.append(
            Item(
                Call(
                    "every",
                    (
                        Item(Raw(string(_seconds(interval)))),
                        Item(Raw(consts[endpoint.key])),
                        Item(Raw(string("90%")), "jitter"),
                    ),
                ),
                None,
                (comment,),
            )
        )
    args = [
        Item(Call("KeepAlive"), "channel"),
        Item(
            Dict(
                tuple(
                    Item(node, string(name), (comment,))
                    for name, (node, comment) in identity.items()
                )
            ),
            "identity",
        ),
    ]
    if plan.register is not None:
        args.append(Item(Raw(consts[plan.register.key]), "register"))
    args.append(Item(List(tuple(activities)), "activities"))
    agents = max(1, round(plan.agents * scale))
    longest = max(c.interval_s for c in plan.checkins)
    # Their first activities fall at a random phase of their intervals, so agents joined at
    # once are steady at once (what a replay that checks the model wants).
    join = 0.0 if join_at_once else min(longest, lasting_s / 2)
    head = "".join(
        f"{line}\n"
        for line in wrap(
            f"The clients as agents: {plan.clients:,} seen, {plan.agents:,} at once on average "
            f"(at most {plan.peak:,}); their check-ins carry {plan.share:.1%} of the requests. "
            "Each keeps its identity (its path parameters) for its life; they join over one "
            "interval, so their check-ins are spread as a fleet's are.",
            "#: ",
        )
    )
    agent = "AGENT = " + emit(Call("Agent", tuple(args)), 0, 8) + "\n"
    workload = Call(
        "population",
        (
            Item(Raw(string("agents"))),
            Item(Raw("AGENT")),
            Item(Raw(str(agents)), "agents"),
            Item(Raw(string(format_duration(round(1000 * join)))), "join"),
            Item(Raw(string(format_duration(round(1000 * lasting_s)))), "lasting"),
        ),
    )
    return head + agent + "\nAGENTS = " + emit(workload, 0, 9) + "\n"


def _seconds(value: float) -> str:
    """A duration for a module: whole seconds from 10 s, tenths below, as k6 writes them."""
    rounded = round(value) if value >= 10 else round(value, 1)
    return format_duration(max(1, round(rounded * 1000)))
