"""Populations: many simulated agents, each with an identity, a channel and a lifecycle.

An agent service is loaded by its population, not by a request mix: thousands of nodes that
register once, hold a connection each, check in on an interval, and reconnect (all at once,
after an outage) by their reconnect policy. A population is a workload whose flow is an
:class:`Agent` and whose load profile is :class:`Agents`::

    agent = Agent(
        register=post("/v1/register", json={"agent_id": "{{agent_id}}"},
                      extract={"session": extract.json("session")}),
        channel=WebSocket("/v1/channel",
                          hello={"type": "hello", "agent_id": "{{agent_id}}",
                                 "session": "{{session}}"},
                          welcome={"type": "welcome"},
                          commands=Commands(match={"type": "task"},
                                            answer={"type": "task_result", "id": "{{command.id}}"},
                                            confirm={"type": "task_done"})),
        activities=[every("30s", send({"type": "heartbeat", "seq": "{{seq}}"}), jitter="10%")],
        reconnect=reconnect.backoff("1s", cap="30s", jitter="full"),
    )
    population("fleet", agent, agents=2000, join="30s", lasting="5m")

Each k6 VU runs ``per_vu`` agents on its event loop (timers, ``http.asyncRequest`` and
``k6/experimental/websockets``), each agent's state a plain object; see
``runtime/population.js``. Agent ``i`` of the population belongs to exactly one VU of one
runner, whatever the number of runners, and joins ``join * i / agents`` after the start.

Variables an agent's templates may use: ``agent_id`` and ``agent_index`` (its identity; the id
is ``<population>-<index>`` unless ``identity`` says otherwise), ``seq`` (a number that grows by
one at each activity), its ``identity`` values (drawn once per agent), what ``register`` and the
channel's ``welcome`` extract (kept for the agent's life), setup's exports, and, in a command's
answer, ``command`` (the message the server pushed).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from ..errors import ConfigError
from .extract import Extractor, JsonPath
from .flow import Flow, Group, Journey, Mix, Think, is_flow, requests
from .http import _PATH_SAFE, Request, _encoded, _headers
from .load_profiles import LoadProfile
from .reconnect import Churn, Reconnect, backoff
from .templates import IDENTIFIER, Ref
from .units import format_duration, parse_duration_ms, parse_percent
from .values import Const, Node, as_string_node, as_value_node

__all__ = [
    "BUILTIN_VARIABLES",
    "Agent",
    "Agents",
    "Channel",
    "Commands",
    "Every",
    "KeepAlive",
    "PerRequest",
    "Send",
    "WebSocket",
    "every",
    "send",
]

#: Variables every agent has.
BUILTIN_VARIABLES = ("agent_id", "agent_index", "seq")
MAX_AGENTS = 10_000_000
MAX_PER_VU = 5_000
#: The shortest activity interval: below it an "agent" is a request loop, not a check-in.
MIN_INTERVAL_MS = 100.0
#: How long a population's VUs may run past its end to close every channel.
STOP_MARGIN_MS = 30_000.0


@dataclass(frozen=True)
class Send:
    """A JSON message sent over the agent's WebSocket."""

    value: Node

    def to_config(self) -> dict[str, object]:
        return {"type": "send", "value": self.value.to_config()}


def send(value: object) -> Send:
    """A message over the channel; strings in it may hold ``{{variable}}`` templates."""
    return Send(as_value_node(value, "send"))


Activity: TypeAlias = "Flow | Send"


@dataclass(frozen=True)
class Every:
    """An activity the agent runs every ``interval``, each gap spread by +- ``jitter``."""

    interval_ms: float
    do: Activity
    jitter: float

    def to_config(self) -> dict[str, object]:
        return {"every_ms": self.interval_ms, "jitter": self.jitter, "do": self.do.to_config()}


def every(interval: object, do: object, *, jitter: object = "0%") -> Every:
    """Run ``do`` (a message, a request or a journey) every ``interval`` +- ``jitter``."""
    ms = parse_duration_ms(interval, "every.interval")
    if ms < MIN_INTERVAL_MS:
        raise ConfigError("every.interval", interval, "a duration of at least 100ms")
    spread = parse_percent(jitter, "every.jitter")
    if not 0.0 <= spread < 1.0:
        raise ConfigError("every.jitter", jitter, "a share from 0% to below 100%")
    if isinstance(do, Think) or (not isinstance(do, Send) and not is_flow(do)):
        raise ConfigError("every.do", do, "send(...), a request or a journey")
    return Every(ms, do, spread)  # type: ignore[arg-type]


def _match(value: object, field: str) -> tuple[tuple[str, Const], ...]:
    """A message matcher: top-level fields and the constant values they must have."""
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(field, value, "a non-empty mapping of message fields to values")
    items = []
    for key, item in value.items():
        node = as_value_node(item, f"{field}.{key}")
        if not isinstance(key, str) or not isinstance(node, Const):
            raise ConfigError(f"{field}.{key}", item, "a constant value (no template)")
        items.append((key, node))
    return tuple(items)


def _match_config(items: tuple[tuple[str, Const], ...]) -> list[object]:
    return [[key, node.to_config()] for key, node in items]


@dataclass(frozen=True)
class Commands:
    """Commands the server pushes on the channel: messages matching ``match`` are answered with
    ``answer`` (its templates may read ``{{command.<field>}}``); when ``confirm`` is given, the
    server's confirmation (a message matching it, with the same value at ``id``) ends the
    command's round trip, measured from the command's arrival (``agent_command_rtt``)."""

    match: tuple[tuple[str, Const], ...]
    answer: Node
    confirm: tuple[tuple[str, Const], ...] | None
    id: tuple[str | int, ...]

    def __init__(
        self,
        match: Mapping[str, object],
        *,
        answer: object,
        confirm: Mapping[str, object] | None = None,
        id: str = "id",
    ) -> None:
        object.__setattr__(self, "match", _match(match, "commands.match"))
        object.__setattr__(self, "answer", as_value_node(answer, "commands.answer"))
        object.__setattr__(
            self, "confirm", _match(confirm, "commands.confirm") if confirm is not None else None
        )
        path = id if id.startswith("$") else f"$.{id}"
        object.__setattr__(self, "id", JsonPath(_json_path(path, "commands.id")).path)

    def to_config(self) -> dict[str, object]:
        return {
            "match": _match_config(self.match),
            "answer": self.answer.to_config(),
            "confirm": _match_config(self.confirm) if self.confirm is not None else None,
            "id": list(self.id),
        }


def _json_path(path: str, field: str) -> tuple[str | int, ...]:
    from ._jsonpath import parse_json_path  # noqa: PLC0415 - a private helper of extract

    return parse_json_path(path, field)


class Channel:
    """How an agent talks to the service: a WebSocket, HTTP keep-alive or a connection per
    request."""

    kind: ClassVar[str]

    def to_config(self) -> dict[str, object]:
        return {"kind": self.kind}

    def nodes(self) -> Iterator[Node]:
        yield from ()


@dataclass(frozen=True)
class KeepAlive(Channel):
    """HTTP with keep-alive: the agent's requests reuse connections of its VU's pool (agents of
    one VU share it, as agents behind one egress proxy do). Connected means its last request
    reached the service."""

    kind: ClassVar[str] = "keepalive"


@dataclass(frozen=True)
class PerRequest(Channel):
    """HTTP with a new connection per request (``Connection: close``), as agents behind
    proxies that do not keep connections open."""

    kind: ClassVar[str] = "per_request"


@dataclass(frozen=True)
class WebSocket(Channel):
    """A long-lived WebSocket per agent on ``path`` (relative to the target URL; http becomes
    ws). On open the agent sends ``hello``; it counts as connected once the server's
    ``welcome`` arrives (at once when none is declared), taking ``welcome_extract`` from it."""

    path: Node
    headers: tuple[tuple[str, Node], ...] = ()
    hello: Node | None = None
    welcome: tuple[tuple[str, Const], ...] | None = None
    welcome_extract: tuple[tuple[str, tuple[str | int, ...]], ...] = ()
    commands: Commands | None = None
    connect_timeout_ms: float = 10_000.0
    kind: ClassVar[str] = "websocket"

    def __init__(
        self,
        path: str = "/",
        *,
        headers: Mapping[str, object] | None = None,
        hello: object = None,
        welcome: Mapping[str, object] | None = None,
        welcome_extract: Mapping[str, Extractor] | None = None,
        commands: Commands | None = None,
        connect_timeout: object = "10s",
    ) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("channel.path", path, "a path starting with '/'")
        object.__setattr__(self, "path", as_string_node(path, "channel.path"))
        object.__setattr__(self, "headers", _headers(headers))
        object.__setattr__(
            self, "hello", as_value_node(hello, "channel.hello") if hello is not None else None
        )
        object.__setattr__(
            self, "welcome", _match(welcome, "channel.welcome") if welcome is not None else None
        )
        extracts = []
        for name, extractor in (welcome_extract or {}).items():
            if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
                raise ConfigError("channel.welcome_extract", name, "variable names")
            if not isinstance(extractor, JsonPath):
                raise ConfigError(
                    f"channel.welcome_extract.{name}", extractor, "extract.json(...) of the message"
                )
            extracts.append((name, extractor.path))
        if extracts and welcome is None:
            raise ConfigError("channel.welcome_extract", list(dict(extracts)), "a welcome=...")
        object.__setattr__(self, "welcome_extract", tuple(extracts))
        if commands is not None and not isinstance(commands, Commands):
            raise ConfigError("channel.commands", commands, "Commands(...)")
        object.__setattr__(self, "commands", commands)
        timeout = parse_duration_ms(connect_timeout, "channel.connect_timeout")
        object.__setattr__(self, "connect_timeout_ms", timeout)

    def nodes(self) -> Iterator[Node]:
        yield self.path
        for _, node in self.headers:
            yield node
        if self.hello is not None:
            yield self.hello

    def to_config(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "path": _encoded(self.path, _PATH_SAFE),
            "headers": [[k, n.to_config()] for k, n in self.headers],
            "hello": self.hello.to_config() if self.hello is not None else None,
            "welcome": _match_config(self.welcome) if self.welcome is not None else None,
            "welcome_extract": [[name, list(path)] for name, path in self.welcome_extract],
            "commands": self.commands.to_config() if self.commands is not None else None,
            "connect_timeout_ms": self.connect_timeout_ms,
        }


@dataclass(frozen=True)
class Agent:
    """What one simulated agent is and does (see the module's docstring)."""

    channel: Channel
    activities: tuple[Every, ...]
    register: Request | None
    identity: tuple[tuple[str, Node], ...]
    reconnect: Reconnect
    churn: Churn | None
    seed: int

    def __init__(
        self,
        *,
        channel: Channel,
        activities: Sequence[Every] = (),
        register: Request | None = None,
        identity: Mapping[str, object] | None = None,
        reconnect: Reconnect | None = None,
        churn: Churn | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(channel, Channel):
            raise ConfigError(
                "agent.channel", channel, "WebSocket(...), KeepAlive() or PerRequest()"
            )
        if isinstance(activities, Every):
            activities = [activities]
        if not isinstance(activities, Sequence) or isinstance(activities, str):
            raise ConfigError("agent.activities", activities, "a list of every(...)")
        for i, item in enumerate(activities):
            if not isinstance(item, Every):
                raise ConfigError(f"agent.activities[{i}]", item, "every(interval, do)")
            _check_activity(item.do, f"agent.activities[{i}].do", channel)
        if not activities and not isinstance(channel, WebSocket):
            raise ConfigError(
                "agent.activities", [], "at least one activity (an HTTP agent is its requests)"
            )
        if register is not None and not isinstance(register, Request):
            raise ConfigError("agent.register", register, "a request (post(...)) or None")
        if reconnect is None:
            reconnect = backoff("1s", cap="60s", jitter="full")
        if not isinstance(reconnect, Reconnect):
            raise ConfigError("agent.reconnect", reconnect, "reconnect.none/fixed/backoff(...)")
        if churn is not None and not isinstance(churn, Churn):
            raise ConfigError("agent.churn", churn, "Churn(rate, away=..., never_back=...)")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ConfigError("agent.seed", seed, "an integer 0..2^32-1")
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "activities", tuple(activities))
        object.__setattr__(self, "register", register)
        object.__setattr__(self, "identity", _identity(identity))
        object.__setattr__(self, "reconnect", reconnect)
        object.__setattr__(self, "churn", churn)
        object.__setattr__(self, "seed", seed)

    def requests(self) -> Iterator[Request]:
        if self.register is not None:
            yield self.register
        for item in self.activities:
            if not isinstance(item.do, Send):
                yield from requests(item.do)

    def nodes(self) -> Iterator[Node]:
        """Every value node: identity, channel, messages (requests excluded)."""
        for _, node in self.identity:
            yield node
        yield from self.channel.nodes()
        if isinstance(self.channel, WebSocket) and self.channel.commands is not None:
            yield self.channel.commands.answer
        for item in self.activities:
            if isinstance(item.do, Send):
                yield item.do.value

    def defined(self, base: frozenset[str]) -> frozenset[str]:
        """The variables the agent's activities may read, given ``base`` (the scenario's)."""
        names = set(base) | set(BUILTIN_VARIABLES) | {name for name, _ in self.identity}
        if self.register is not None:
            names |= {name for name, _ in self.register.extract}
        if isinstance(self.channel, WebSocket):
            names |= {name for name, _ in self.channel.welcome_extract}
        return frozenset(names)

    def to_config(self) -> dict[str, object]:
        return {
            "type": "agent",
            "identity": [[name, node.to_config()] for name, node in self.identity],
            "register": self.register.to_config() if self.register is not None else None,
            "channel": self.channel.to_config(),
            "activities": [item.to_config() for item in self.activities],
            "reconnect": self.reconnect.to_config(),
            "churn": self.churn.to_config() if self.churn is not None else None,
            "seed": self.seed,
        }


def _identity(identity: Mapping[str, object] | None) -> tuple[tuple[str, Node], ...]:
    if identity is None:
        return ()
    if not isinstance(identity, Mapping):
        raise ConfigError("agent.identity", identity, "a mapping of names to values")
    items = []
    for name, value in identity.items():
        if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
            raise ConfigError("agent.identity", name, "variable names (letters, digits, _)")
        if name in ("agent_index", "seq"):
            raise ConfigError("agent.identity", name, "a name other than agent_index and seq")
        items.append((name, as_value_node(value, f"agent.identity.{name}")))
    return tuple(items)


def _check_activity(do: Activity, where: str, channel: Channel) -> None:
    if isinstance(do, Send):
        if not isinstance(channel, WebSocket):
            raise ConfigError(where, "send(...)", "a request: messages need a WebSocket channel")
        return
    if isinstance(do, Group):
        raise ConfigError(where, f"group {do.name!r}", "a request, journey or mix (no group)")
    if isinstance(do, Journey):
        for i, step in enumerate(do.steps):
            _check_activity(step, f"{where}.steps[{i}]", channel)
    if isinstance(do, Mix):
        for i, (branch, _) in enumerate(do.entries):
            _check_activity(branch, f"{where}.mix[{i}]", channel)


def check_refs(agent: Agent, base: frozenset[str], where: str) -> None:
    """Raise on a reference to a variable the agent does not have, or on a scenario variable
    that an agent's own would hide."""
    for name in sorted(base & {*BUILTIN_VARIABLES, "command"}):
        raise ConfigError(f"variables.{name}", name, "a name an agent does not have already")
    defined = agent.defined(base)
    identity_names: set[str] = set(base) | {"agent_index"}
    for name, node in agent.identity:
        _refs_in(node, identity_names, f"{where}.identity.{name}")
        identity_names.add(name)
    registered = set(base) | set(BUILTIN_VARIABLES) | {name for name, _ in agent.identity}
    if agent.register is not None:
        for ref in agent.register.refs():
            _unknown(ref, registered, f"{where}.register")
    for node in agent.channel.nodes():
        _refs_in(node, defined, f"{where}.channel")
    channel = agent.channel
    if isinstance(channel, WebSocket) and channel.commands is not None:
        _refs_in(channel.commands.answer, defined | {"command"}, f"{where}.commands.answer")
    for i, item in enumerate(agent.activities):
        if isinstance(item.do, Send):
            _refs_in(item.do.value, defined, f"{where}.activities[{i}]")
        else:
            for request in requests(item.do):
                for ref in request.refs():
                    _unknown(ref, defined | _extracted_before(item.do), f"{where}.activities[{i}]")


def _extracted_before(flow: Flow) -> set[str]:
    return {name for request in requests(flow) for name, _ in request.extract}


def _refs_in(node: Node, defined: set[str] | frozenset[str], where: str) -> None:
    for ref in node.refs():
        _unknown(ref, defined, where)


def _unknown(ref: Ref, defined: set[str] | frozenset[str], where: str) -> None:
    if ref.name not in defined:
        raise ConfigError(
            where, str(ref), f"a variable the agent has ({', '.join(sorted(defined))})"
        )


@dataclass(frozen=True)
class Agents(LoadProfile):
    """A population's load: ``count`` agents, ``per_vu`` on each k6 VU, joining evenly over
    ``join`` (``"0s"``: all at once), then staying for ``lasting``. Rendered as k6's
    per-vu-iterations executor, one long iteration per VU."""

    count: int
    lasting: str
    join: str = "0s"
    per_vu: int = 1000
    executor: ClassVar[str] = "per-vu-iterations"
    _join_ms: float = field(init=False, repr=False, compare=False)
    _lasting_ms: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int):
            raise ConfigError("population.agents", self.count, f"an integer 1..{MAX_AGENTS}")
        if not 1 <= self.count <= MAX_AGENTS:
            raise ConfigError("population.agents", self.count, f"an integer 1..{MAX_AGENTS}")
        if (
            isinstance(self.per_vu, bool)
            or not isinstance(self.per_vu, int)
            or not 1 <= self.per_vu <= MAX_PER_VU
        ):
            raise ConfigError("population.per_vu", self.per_vu, f"an integer 1..{MAX_PER_VU}")
        join = parse_duration_ms(self.join, "population.join", allow_zero=True)
        lasting = parse_duration_ms(self.lasting, "population.lasting")
        if lasting < 1000:
            raise ConfigError("population.lasting", self.lasting, "at least 1s")
        object.__setattr__(self, "_join_ms", join)
        object.__setattr__(self, "_lasting_ms", lasting)

    @property
    def vus(self) -> int:
        return math.ceil(self.count / self.per_vu)

    @property
    def join_ms(self) -> float:
        return self._join_ms

    def to_k6(self) -> dict[str, object]:
        return {
            "executor": self.executor,
            "vus": self.vus,
            "iterations": 1,
            "maxDuration": format_duration(self.duration_ms() + STOP_MARGIN_MS),
        }

    def to_config(self) -> dict[str, object]:
        """What the runtime needs beyond k6's executor."""
        return {
            "agents": self.count,
            "per_vu": self.per_vu,
            "join_ms": self._join_ms,
            "lasting_ms": self._lasting_ms,
        }

    def peak_vus(self) -> int:
        return self.vus

    def duration_ms(self) -> float:
        return self._join_ms + self._lasting_ms

    def plateau_ms(self) -> tuple[float, float]:
        """From when the last agent joined to the end, relative to the population's start."""
        return self._join_ms, self._join_ms + self._lasting_ms

    def scaled(self, factor: float) -> Agents:
        return Agents(
            self.count,
            lasting=format_duration(max(1000.0, round(self._lasting_ms * factor))),
            join=format_duration(round(self._join_ms * factor)),
            per_vu=self.per_vu,
        )

    def with_count(self, count: int) -> Agents:
        return Agents(count, lasting=self.lasting, join=self.join, per_vu=self.per_vu)
