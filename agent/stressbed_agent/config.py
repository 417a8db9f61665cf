"""Configuration: built-in defaults < YAML file < environment variables, validated at start.

Every key can be set in the YAML file (``queue_max_points: 50000``) or the environment
(``STRESSBED_AGENT_QUEUE_MAX_POINTS=50000``). Tokens come from the environment only:
``STRESSBED_AGENT_TOKEN`` (bearer for tasks and login) and ``STRESSBED_AGENT_ADMIN_TOKEN``
(enables the fault hooks; they are off without it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "STRESSBED_AGENT_"
SECRET_KEYS = ("token", "admin_token")


class ConfigError(Exception):
    """A bad configuration value; the message names the key, the value and what is allowed."""


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    #: Points held in memory at most; beyond, /v1/report answers 429.
    queue_max_points: int = 100_000
    #: Readiness turns false above this share of the queue.
    high_watermark: float = 0.8
    max_body_bytes: int = 1 << 20
    max_points_per_batch: int = 1000
    request_timeout_s: float = 5.0
    #: Requests handled at once at most; beyond, new ones get 429 at once (probes excepted).
    max_in_flight: int = 1024
    #: Requests per second per client (X-Agent-Id header, else address); 0 turns it off.
    rate_limit_per_s: float = 0.0
    rate_limit_burst: int = 100
    heartbeat_ttl_s: float = 30.0
    sink: str = "null"
    sink_path: str = ""
    #: "none": a write is stored once in the page cache (a killed agent loses nothing; a lost
    #: machine may); "data": each write fdatasync'ed to the disk before it counts as stored.
    sink_sync: str = "none"
    #: When a report is answered 202: "queued" (in memory) or "flushed" (stored by the sink).
    ack: str = "queued"
    flush_batch_points: int = 5000
    flush_interval_s: float = 0.05
    sink_retries: int = 5
    retry_base_s: float = 0.05
    retry_max_s: float = 2.0
    breaker_failures: int = 5
    breaker_reset_s: float = 5.0
    max_task_timeout_s: float = 30.0
    max_tasks: int = 10_000
    session_ttl_s: float = 300.0
    drain_grace_s: float = 20.0
    #: WebSocket channels (GET /v1/channel) open at once at most; beyond, the upgrade gets 503
    #: with Retry-After before the handshake. 0 = unlimited (the open-files limit still holds).
    max_connections: int = 20_000
    #: Seconds between tasks the agent pushes down each channel (+-10% jitter); 0 = none.
    channel_task_interval_s: float = 0.0
    #: Seconds between WebSocket pings on a quiet channel; a peer that does not answer with a
    #: pong within half of it is closed. 0 = no pings.
    channel_ping_interval_s: float = 30.0
    startup_delay_s: float = 0.0
    log_level: str = "info"
    token: str = dataclasses.field(default="", repr=False)
    admin_token: str = dataclasses.field(default="", repr=False)

    def validate(self) -> Config:
        _check(0 < self.port < 65536 or self.port == 0, "port", self.port, "a port 0..65535")
        for key in (
            "queue_max_points",
            "max_body_bytes",
            "max_points_per_batch",
            "flush_batch_points",
            "breaker_failures",
            "max_tasks",
            "rate_limit_burst",
        ):
            _check(getattr(self, key) >= 1, key, getattr(self, key), "an integer >= 1")
        _check(
            0 < self.high_watermark <= 1,
            "high_watermark",
            self.high_watermark,
            "a fraction in (0, 1]",
        )
        for key in (
            "request_timeout_s",
            "heartbeat_ttl_s",
            "flush_interval_s",
            "retry_base_s",
            "retry_max_s",
            "breaker_reset_s",
            "max_task_timeout_s",
            "session_ttl_s",
            "drain_grace_s",
        ):
            _check(getattr(self, key) > 0, key, getattr(self, key), "a number of seconds > 0")
        _check(
            self.rate_limit_per_s >= 0,
            "rate_limit_per_s",
            self.rate_limit_per_s,
            "a number >= 0 (0 turns the limit off)",
        )
        _check(
            self.startup_delay_s >= 0,
            "startup_delay_s",
            self.startup_delay_s,
            "a number of seconds >= 0",
        )
        for key in ("channel_task_interval_s", "channel_ping_interval_s"):
            _check(
                getattr(self, key) >= 0,
                key,
                getattr(self, key),
                "a number of seconds >= 0 (0 = off)",
            )
        _check(
            self.max_connections >= 0,
            "max_connections",
            self.max_connections,
            "an integer >= 0 (0 = unlimited)",
        )
        _check(self.sink_retries >= 0, "sink_retries", self.sink_retries, "an integer >= 0")
        _check(self.sink in ("null", "file"), "sink", self.sink, "'null' or 'file'")
        _check(self.ack in ("queued", "flushed"), "ack", self.ack, "'queued' or 'flushed'")
        _check(self.sink_sync in ("none", "data"), "sink_sync", self.sink_sync, "'none' or 'data'")
        _check(
            self.sink != "file" or bool(self.sink_path),
            "sink_path",
            self.sink_path,
            "a file path when sink is 'file'",
        )
        _check(
            self.log_level in ("debug", "info", "warning", "error"),
            "log_level",
            self.log_level,
            "debug, info, warning or error",
        )
        return self


def load(
    path: Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Config:
    """Defaults < ``path`` (YAML) < ``env`` < ``overrides`` (the command line)."""
    env = os.environ if env is None else env
    known = {f.name: f for f in fields(Config)}
    values: dict[str, Any] = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping of keys to values")
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"config file {path}: unknown key {key!r}")
            if key in SECRET_KEYS:
                raise ConfigError(
                    f"config file {path}: {key} may only come from the environment "
                    f"({ENV_PREFIX}{key.upper()})"
                )
            values[key] = _coerce(key, value, known[key].type, str(path))
    for key, spec in known.items():
        name = ENV_PREFIX + key.upper()
        if name in env:
            values[key] = _coerce(key, env[name], spec.type, name)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value, known[key].type, "command line")
    return Config(**values).validate()


def _coerce(key: str, value: Any, kind: Any, source: str) -> Any:
    kind = kind if isinstance(kind, str) else kind.__name__
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {key}: got {value!r}; expected {kind}") from None


def _check(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: got {value!r}; expected {expected}")
