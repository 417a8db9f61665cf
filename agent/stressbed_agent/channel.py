"""WebSocket channels (``GET /v1/channel``): one per simulated agent, JSON text frames.

    client {"type": "hello", "agent_id", "session"?}   -> {"type": "welcome", "agent_id"}
           without "session": registers, and the welcome carries "session" and "duplicate";
           a session that does not verify, or anything but a hello first: closed with 1008
    client {"type": "heartbeat", "seq", "status"?}    -> {"type": "heartbeat_ack", "seq"}
    server {"type": "task", "id", "kind": "collect"}  <- {"type": "task_result", "id", "ok"}
                                                    -> {"type": "task_done", "id"}
    anything else                                    -> {"type": "error", "error"}, still open

Upgrades past ``max_connections``, or once the agent drains, are refused with 503 and
``Retry-After: 1`` before the handshake; a drain closes every channel with 1001.

A channel costs what aiohttp's connection costs plus a few slots: no task of its own (pushes
ride on a timer), no compression (a zlib context per connection would cost more than the rest).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from . import metrics
from .config import Config
from .ingest import BadRequest
from .registry import Registrations, check_agent_id

__all__ = ["Channel", "Channels"]

log = logging.getLogger("stressbed_agent.channel")

ROUTE = "/v1/channel"
#: Largest frame accepted; the protocol's messages are a few hundred bytes.
MAX_MESSAGE_BYTES = 1 << 16
#: Tasks awaiting their result on one channel; past it the oldest is forgotten.
MAX_PENDING = 64
#: How long a close waits for the peer's close frame.
CLOSE_TIMEOUT_S = 2.0
IN_TYPES = ("hello", "heartbeat", "task_result")
OUT_TYPES = ("welcome", "heartbeat_ack", "task", "task_done", "error")
STATUSES = ("ok", "degraded", "failing")
#: Why a channel is refused: upgrades (limit, draining) and channels closed 1008 (session,
#: protocol: anything but a hello first).
REFUSALS = ("limit", "draining", "session", "protocol")


class Channel:
    """One open channel: its socket, the agent that said hello, its pushed tasks."""

    __slots__ = ("agent", "handler", "pending", "timer", "ws")

    def __init__(self, ws: web.WebSocketResponse, handler: asyncio.Task[Any] | None) -> None:
        self.ws = ws
        self.handler = handler
        self.agent: str | None = None
        #: task id -> loop time it was pushed; made on the first push.
        self.pending: dict[str, float] | None = None
        self.timer: asyncio.TimerHandle | None = None

    def stop_pushing(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Channels:
    """Every open channel of this replica, what they say, and the tasks pushed down them."""

    def __init__(
        self, config: Config, registrations: Registrations, beat: Callable[[str, str], None]
    ) -> None:
        self.config = config
        self.registrations = registrations
        self.beat = beat
        self.open: set[Channel] = set()
        self.closing = False
        self.sending: set[asyncio.Task[None]] = set()
        # Task ids unique across replicas and restarts: a random prefix, then a count.
        self.nonce = os.urandom(4).hex()
        self.pushed = 0
        self.counters = {
            (direction, kind): metrics.channel_messages.labels(direction, kind)
            for direction, kinds in (("in", IN_TYPES), ("out", OUT_TYPES))
            for kind in (*kinds, "other")
        }
        for reason in REFUSALS:
            metrics.channel_refused.labels(reason)  # exported at 0 from the start
        metrics.channel_connected.set_function(lambda: len(self.open))

    # -- the upgrade -----------------------------------------------------------------

    def refusal(self, draining: bool) -> str | None:
        """Why a new channel is refused now ("draining", "limit"), or None."""
        if draining or self.closing:
            return "draining"
        if 0 < self.config.max_connections <= len(self.open):
            return "limit"
        return None

    async def handle(
        self, request: web.Request, draining: bool, headers: dict[str, str]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        reason = self.refusal(draining)
        if reason is not None:
            metrics.channel_refused.labels(reason).inc()
            message = (
                "draining: not accepting new channels"
                if reason == "draining"
                else f"too many channels: max_connections ({self.config.max_connections}) open"
            )
            refused = web.json_response({"error": message, "reason": reason}, status=503)
            refused.headers["Retry-After"] = "1"
            return refused
        ping = self.config.channel_ping_interval_s
        ws = web.WebSocketResponse(
            timeout=CLOSE_TIMEOUT_S,
            heartbeat=ping if ping > 0 else None,
            compress=False,
            max_msg_size=MAX_MESSAGE_BYTES,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {"error": "expected a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)"},
                status=400,
            )
        ws.headers.update(headers)
        channel = Channel(ws, asyncio.current_task())
        self.open.add(channel)
        try:
            await ws.prepare(request)
            metrics.observe(ROUTE, 101, time.perf_counter() - started)
            if self.closing:  # the drain began during the handshake
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"going away")
            else:
                await self._serve(channel)
        except ConnectionError:
            pass  # the peer went away; nothing to answer
        except Exception:  # a bug: log it, close this channel, keep serving the others
            log.exception("unhandled error on a channel")
            if not ws.closed:
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
        finally:
            self.open.discard(channel)
            channel.stop_pushing()
        return ws

    # -- messages --------------------------------------------------------------------

    async def _serve(self, channel: Channel) -> None:
        async for msg in channel.ws:
            if msg.type is WSMsgType.TEXT:
                body = _decode(msg.data)
            elif msg.type is WSMsgType.BINARY:
                body = None
            else:  # an error: aiohttp has closed the socket
                return
            kind = body.get("type") if isinstance(body, dict) else None
            self._count("in", kind)
            if channel.agent is None:
                if not await self._hello(channel, body, kind):
                    return
            elif kind == "heartbeat":
                await self._heartbeat(channel, body)
            elif kind == "task_result":
                await self._task_result(channel, body)
            elif kind == "hello":
                await self._error(channel, f"hello: this channel is agent {channel.agent!r}'s")
            elif body is None:
                await self._error(channel, "expected a JSON object in a text frame")
            else:
                await self._error(
                    channel, f"type: got {_short(kind)}; expected heartbeat or task_result"
                )

    async def _hello(self, channel: Channel, body: Any, kind: Any) -> bool:
        if kind != "hello":
            await self._refuse(channel, "protocol", "expected a hello first")
            return False
        try:
            agent = check_agent_id(body.get("agent_id"), "hello: agent_id")
        except BadRequest as exc:
            await self._refuse(channel, "protocol", str(exc))
            return False
        welcome: dict[str, Any] = {"type": "welcome", "agent_id": agent}
        if "session" in body:
            if not self.registrations.verify(agent, body["session"]):
                await self._refuse(channel, "session", "session not accepted")
                return False
        else:
            session, duplicate = self.registrations.register(agent)
            welcome.update(session=session, duplicate=duplicate)
        channel.agent = agent
        await self._send(channel, welcome)
        self._schedule(channel)
        return True

    async def _heartbeat(self, channel: Channel, body: dict[str, Any]) -> None:
        seq, status = body.get("seq"), body.get("status", "ok")
        if isinstance(seq, bool) or not isinstance(seq, int | float):
            await self._error(channel, "heartbeat: seq: expected a number")
        elif status not in STATUSES:
            await self._error(channel, "heartbeat: status: expected ok, degraded or failing")
        else:
            assert channel.agent is not None
            self.beat(channel.agent, status)
            await self._send(channel, {"type": "heartbeat_ack", "seq": seq})

    async def _task_result(self, channel: Channel, body: dict[str, Any]) -> None:
        task_id = body.get("id")
        pending = channel.pending
        sent = pending.pop(task_id, None) if pending and isinstance(task_id, str) else None
        if sent is None:
            await self._error(
                channel, f"task_result: id: no task {_short(task_id)} pending on this channel"
            )
            return
        metrics.channel_task_rtt.observe(asyncio.get_running_loop().time() - sent)
        await self._send(channel, {"type": "task_done", "id": task_id})

    async def _error(self, channel: Channel, message: str) -> None:
        await self._send(channel, {"type": "error", "error": message})

    async def _refuse(self, channel: Channel, reason: str, message: str) -> None:
        metrics.channel_refused.labels(reason).inc()
        # A close frame's reason holds 123 bytes at most.
        await channel.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=message.encode()[:123])

    async def _send(self, channel: Channel, message: dict[str, Any]) -> None:
        try:
            await channel.ws.send_str(json.dumps(message))
        except ConnectionError:
            return  # closing or gone: the receive loop ends on its own
        self._count("out", message["type"])

    def _count(self, direction: str, kind: Any) -> None:
        counter = self.counters.get((direction, kind)) if isinstance(kind, str) else None
        (counter or self.counters[(direction, "other")]).inc()

    # -- pushed tasks ----------------------------------------------------------------

    def _schedule(self, channel: Channel) -> None:
        interval = self.config.channel_task_interval_s
        if interval > 0 and not self.closing:
            delay = interval * random.uniform(0.9, 1.1)
            channel.timer = asyncio.get_running_loop().call_later(delay, self._tick, channel)

    def _tick(self, channel: Channel) -> None:
        channel.timer = None
        if self.push(channel):
            self._schedule(channel)

    def push(self, channel: Channel) -> bool:
        """Send one task down ``channel`` (past its hello); False when it cannot take one."""
        if channel.agent is None or channel.ws.closed or self.closing:
            return False
        self.pushed += 1
        task_id = f"{self.nonce}-{self.pushed}"
        loop = asyncio.get_running_loop()
        if channel.pending is None:
            channel.pending = {}
        channel.pending[task_id] = loop.time()
        if len(channel.pending) > MAX_PENDING:
            del channel.pending[next(iter(channel.pending))]
        job = loop.create_task(
            self._send(channel, {"type": "task", "id": task_id, "kind": "collect"})
        )
        self.sending.add(job)
        job.add_done_callback(self.sending.discard)
        return True

    def push_all(self) -> int:
        """One task down every channel past its hello, now: how many got one."""
        return sum(self.push(channel) for channel in list(self.open))

    # -- the drain -------------------------------------------------------------------

    async def close_all(self) -> None:
        """Close every channel with 1001 (going away) so its agent reconnects elsewhere; new
        upgrades are refused from now on."""
        self.closing = True
        channels = list(self.open)
        for channel in channels:
            channel.stop_pushing()
        closes = [
            channel.ws.close(code=WSCloseCode.GOING_AWAY, message=b"going away")
            for channel in channels
            if channel.ws.prepared
        ]
        await asyncio.gather(*closes, return_exceptions=True)

    def abort(self) -> int:
        """Cancel the handlers of channels still open (the grace period is over)."""
        left = [channel for channel in self.open if channel.handler is not None]
        for channel in left:
            assert channel.handler is not None
            channel.handler.cancel()
        return len(left)


def _decode(data: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
