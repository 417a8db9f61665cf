"""The agent's HTTP API (aiohttp), its middleware and its lifecycle."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import channel, metrics
from .channel import Channels
from .config import Config
from .faults import Faults
from .ingest import BadRequest, Ingest, parse_report
from .registry import Registrations, parse_registration
from .sink import Sink, Stored
from .tasks import Tasks

log = logging.getLogger("stressbed_agent")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

PROBES = ("/healthz", "/readyz", "/metrics")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.sink = Sink(config)
        self.stored = Stored(self.sink.path) if self.sink.path is not None else None
        self.ingest = Ingest(config, self.sink)
        self.tasks = Tasks(config.max_tasks, config.max_task_timeout_s)
        self.faults = Faults()
        # Kept in expiry order (a fixed TTL, refreshed entries moved to the end), so expired
        # entries are always at the front and pruning never scans.
        self.heartbeats: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self.sessions: collections.OrderedDict[str, tuple[str, float]] = collections.OrderedDict()
        self.buckets: dict[str, tuple[float, float]] = {}
        self.registrations = Registrations(config.token)
        self.channels = Channels(config, self.registrations, self.beat)
        self.started = False
        self.draining = False
        self.stopping = asyncio.Event()
        self.in_flight = 0
        metrics.in_flight.set_function(lambda: self.in_flight)

    # -- the application -------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_bytes, middlewares=[self.middleware]
        )
        app.router.add_post("/v1/report", self.report)
        app.router.add_post("/v1/heartbeat", self.heartbeat)
        app.router.add_get("/v1/agents", self.agents)
        app.router.add_post("/v1/register", self.register)
        app.router.add_get("/v1/registrations", self.registered)
        app.router.add_get(channel.ROUTE, self.channel, allow_head=False)
        app.router.add_get("/v1/agents/{agent_id}/stored", self.read_back)
        app.router.add_post("/v1/login", self.login)
        app.router.add_post("/v1/tasks", self.submit_task)
        app.router.add_get("/v1/tasks/{id}", self.task)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_post("/admin/faults", self.start_fault)
        app.router.add_delete("/admin/faults/{kind}", self.stop_fault)
        app.router.add_post("/admin/push", self.push)
        return app

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request.headers.get("X-Request-Id") or os.urandom(8).hex()
        request_id.set(rid)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        started = time.perf_counter()
        if route == channel.ROUTE:
            # A channel lives for minutes: it is no request in flight, under no request timeout,
            # and its upgrade is refused by the channel limit, not by the HTTP admission.
            response = await handler(request)
            if not isinstance(response, web.WebSocketResponse):
                response.headers["X-Request-Id"] = rid
                metrics.observe(route, response.status, time.perf_counter() - started)
            return response
        self.in_flight += 1
        try:
            response = await self._guarded(request, handler, route)
        finally:
            self.in_flight -= 1
        response.headers["X-Request-Id"] = rid
        metrics.observe(route, response.status, time.perf_counter() - started)
        if self.config.log_level == "debug":
            log.debug("%s %s %d", request.method, request.path, response.status)
        return response

    async def _guarded(
        self, request: web.Request, handler: Handler, route: str
    ) -> web.StreamResponse:
        try:
            if request.path not in PROBES:
                refused = await self._admission(request)
                if refused is not None:
                    return refused
            async with asyncio.timeout(self.config.request_timeout_s):
                return await handler(request)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        except web.HTTPException as exc:
            return error(exc.status, exc.reason or "error")
        except TimeoutError:
            return error(503, f"request timed out after {self.config.request_timeout_s:g} s")
        except Exception:  # a bug: answer 500, log it with the request id, keep serving
            log.exception("unhandled error on %s", route)
            return error(500, "internal error")

    async def _admission(self, request: web.Request) -> web.Response | None:
        """Drain, faults and the rate limit, before any handler runs. A request admitted
        before a drain began is finished, however long an injected latency holds it."""
        if self.draining and not request.path.startswith("/admin"):
            return error(503, "draining: not accepting new work", retry_after=1)
        if self.in_flight > self.config.max_in_flight:
            # CPU overload: answering at once keeps latency and memory bounded.
            response = error(429, "overloaded: too many requests in flight")
            response.headers["Retry-After"] = "1"
            return response
        fault = self.faults.get("latency")
        if fault is not None:
            await asyncio.sleep(float(fault.get("ms", 100)) / 1000)
        status = self.faults.error_status()
        if status is not None:
            return error(status, "injected fault")
        if self.config.rate_limit_per_s > 0 and not self._take_token(request):
            response = error(429, "rate limit exceeded")
            response.headers["Retry-After"] = "1"
            return response
        return None

    def _take_token(self, request: web.Request) -> bool:
        client = request.headers.get("X-Agent-Id") or request.remote or "-"
        now = time.monotonic()
        tokens, last = self.buckets.get(client, (float(self.config.rate_limit_burst), now))
        tokens = min(
            self.config.rate_limit_burst, tokens + (now - last) * self.config.rate_limit_per_s
        )
        if tokens < 1:
            self.buckets[client] = (tokens, now)
            return False
        self.buckets[client] = (tokens - 1, now)
        if len(self.buckets) > 100_000:  # bounded: forget the oldest clients
            for key in list(self.buckets)[:10_000]:
                del self.buckets[key]
        return True

    # -- handlers --------------------------------------------------------------------

    async def report(self, request: web.Request) -> web.Response:
        agent, points = parse_report(await _json(request), self.config.max_points_per_batch)
        queued = self.ingest.offer(agent, points)
        if not queued:
            response = error(429, "queue full: retry later", queued=self.ingest.points)
            response.headers["Retry-After"] = str(self.ingest.retry_after_s())
            return response
        # ack "flushed": answer once stored. A timeout answers 503 and the batch stays queued
        # (it may still be stored: stored, not acknowledged, is not a loss); False: the
        # sink's disk was full, nothing of it stored, nothing acknowledged.
        if isinstance(queued, asyncio.Future) and not await asyncio.shield(queued):
            response = error(503, "the sink's disk is full: retry later")
            response.headers["Retry-After"] = str(self.ingest.retry_after_s())
            return response
        return web.json_response({"accepted": len(points)}, status=202)

    async def heartbeat(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        agent, status = body.get("agent_id"), body.get("status")
        if not isinstance(agent, str) or not 0 < len(agent) <= 200:
            raise BadRequest("agent_id: expected a string of 1..200 characters")
        if status not in ("ok", "degraded", "failing"):
            raise BadRequest("status: expected ok, degraded or failing")
        self.beat(agent, status)
        return web.json_response({"ttl_s": self.config.heartbeat_ttl_s})

    def beat(self, agent: str, status: str) -> None:
        """``agent`` is live with ``status`` for the heartbeat TTL (HTTP or its channel)."""
        self.heartbeats[agent] = (status, time.monotonic() + self.config.heartbeat_ttl_s)
        self.heartbeats.move_to_end(agent)
        _prune(self.heartbeats, MAX_AGENTS)

    async def agents(self, request: web.Request) -> web.Response:
        _prune(self.heartbeats, MAX_AGENTS)
        live = [{"agent_id": a, "status": s} for a, (s, _) in self.heartbeats.items()]
        return web.json_response({"agents": live, "count": len(live)})

    async def register(self, request: web.Request) -> web.Response:
        agent = parse_registration(await _json(request))
        session, duplicate = self.registrations.register(agent)
        return web.json_response({"session": session, "agent_id": agent, "duplicate": duplicate})

    async def registered(self, request: web.Request) -> web.Response:
        with_ids = request.query.get("ids", "") in ("1", "true")
        return web.json_response(self.registrations.summary(with_ids))

    async def channel(self, request: web.Request) -> web.StreamResponse:
        headers = {"X-Request-Id": request_id.get() or ""}
        return await self.channels.handle(request, self.draining, headers)

    async def read_back(self, request: web.Request) -> web.Response:
        """What the sink holds of one agent's reports: ``stored`` points in total and
        ``by_second`` of acceptance. The agent token reads any agent; a session, its own."""
        agent = request.match_info["agent_id"]
        self._authorize(request, sessions=True, agent=agent)
        if self.stored is None:
            return error(409, "the null sink stores nothing: read-back needs sink: file")
        # Off the event loop: the first read-back of a long run reads the whole file.
        found = await asyncio.get_running_loop().run_in_executor(None, self.stored.of, agent)
        return web.json_response(found)

    async def login(self, request: web.Request) -> web.Response:
        self._authorize(request, sessions=False)
        body = await _json(request)
        agent = body.get("agent_id") if isinstance(body, dict) else None
        if not isinstance(agent, str) or not 0 < len(agent) <= 200:
            raise BadRequest("agent_id: expected a string of 1..200 characters")
        token = secrets.token_urlsafe(24)
        self.sessions[token] = (agent, time.monotonic() + self.config.session_ttl_s)
        _prune(self.sessions, MAX_SESSIONS)
        return web.json_response({"token": token, "expires_in": self.config.session_ttl_s})

    async def submit_task(self, request: web.Request) -> web.Response:
        self._authorize(request, sessions=True)
        return web.json_response(self.tasks.submit(await _json(request)), status=202)

    async def task(self, request: web.Request) -> web.Response:
        self._authorize(request, sessions=True)
        state = self.tasks.get(request.match_info["id"])
        if state is None:
            return error(404, "no such task")
        return web.json_response(state)

    def _authorize(self, request: web.Request, *, sessions: bool, agent: str | None = None) -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or len(header) <= 7:
            raise BadRequest("Authorization: expected 'Bearer <token>'", 401)
        token = header[7:]
        if not self.config.token:
            raise BadRequest("tasks are disabled: the agent has no token configured", 403)
        if hmac.compare_digest(token.encode(), self.config.token.encode()):
            return
        if sessions:
            session = self.sessions.get(token)
            owner, expires = session if session is not None else ("", 0.0)
            if expires > time.monotonic() and agent in (None, owner):
                return
        raise BadRequest("token not accepted", 403)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        reason = self.unready_reason()
        metrics.ready.set(0 if reason else 1)
        if reason:
            return web.json_response({"ready": False, "reason": reason}, status=503)
        return web.json_response({"ready": True})

    def unready_reason(self) -> str | None:
        if not self.started:
            return "starting"
        if self.draining:
            return "draining"
        if self.ingest.above_watermark:
            return "queue above high watermark"
        if self.faults.unready():
            return "injected readiness flap"
        return None

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _admin(self, request: web.Request) -> web.Response | None:
        """None when the request carries the admin token; the refusal otherwise."""
        if not self.config.admin_token:
            return error(404, "not found")
        # As a bearer token, or in X-Admin-Token (which a cluster's API server proxy passes on).
        header = request.headers.get("Authorization", "")
        given = request.headers.get("X-Admin-Token", "")
        if header.startswith("Bearer "):
            given = header[7:]
        if not hmac.compare_digest(given.encode(), self.config.admin_token.encode()):
            return error(403, "admin token not accepted")
        return None

    async def start_fault(self, request: web.Request) -> web.Response:
        refused = self._admin(request)
        if refused is not None:
            return refused
        started = self.faults.start(await _json(request))
        if started["kind"] == "sink_failure":
            self.sink.failing = "injected sink failure"
            asyncio.get_running_loop().call_later(float(started["duration_s"]), self._sink_recovers)
        log.warning("fault started: %s", json.dumps(started))
        return web.json_response({"started": started})

    async def stop_fault(self, request: web.Request) -> web.Response:
        refused = self._admin(request)
        if refused is not None:
            return refused
        kind = request.match_info["kind"]
        was_active = self.faults.stop(kind)
        if kind == "sink_failure":
            self.sink.failing = None
        log.warning("fault stopped: %s", kind)
        return web.json_response({"stopped": kind, "was_active": was_active})

    async def push(self, request: web.Request) -> web.Response:
        """One task down every channel past its hello, now."""
        refused = self._admin(request)
        if refused is not None:
            return refused
        return web.json_response({"pushed": self.channels.push_all()})

    def _sink_recovers(self) -> None:
        # Only when no sink failure is active: a later one (started after a stop) keeps it.
        if self.faults.get("sink_failure") is None:
            self.sink.failing = None


MAX_AGENTS = 200_000
MAX_SESSIONS = 100_000


def _prune(entries: collections.OrderedDict[str, tuple[str, float]], limit: int) -> None:
    """Drop expired entries (all at the front), then the oldest beyond ``limit``."""
    now = time.monotonic()
    while entries:
        key, (_, until) = next(iter(entries.items()))
        if until > now and len(entries) <= limit:
            return
        del entries[key]


async def _json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise BadRequest(
            f"Content-Type: got {request.content_type!r}; expected application/json", 415
        )
    raw = await request.read()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except (RecursionError, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body: cannot be decoded ({type(exc).__name__})") from None
