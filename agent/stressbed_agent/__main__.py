"""``stressbed-agent --port P [--host H] [--config FILE]``: run the reference agent.

Exit codes: 0 after a graceful shutdown (SIGTERM or SIGINT), 2 for a bad configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import resource
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from . import __version__, metrics
from .app import Agent, request_id
from .config import Config, ConfigError, load

log = logging.getLogger("stressbed_agent")


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the request id of the request being handled."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": request_id.get(),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


async def serve(config: Config) -> int:
    agent = Agent(config)
    runner = web.AppRunner(
        agent.app(), access_log=None, handle_signals=False, shutdown_timeout=config.drain_grace_s
    )
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else config.port
    log.info("listening on http://%s:%d", config.host, port)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    flusher = loop.create_task(agent.ingest.run(agent.stopping))

    async def become_ready() -> None:
        await asyncio.sleep(config.startup_delay_s)
        # Everything allocated so far lives for the whole process: keep it out of the
        # collector's scans, and collect young objects less often (fewer pauses under load).
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        agent.started = True
        log.info("ready")

    starting = loop.create_task(become_ready())
    await stop.wait()
    # One SIGTERM starts the drain; more (a supervisor repeating itself) must not cut it
    # short. Ignoring it here also covers the moment the event loop closes.
    loop.remove_signal_handler(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    starting.cancel()
    # Readiness goes false at once; new work is refused; what is in flight finishes; the
    # queue drains to the sink within the grace period.
    agent.draining = True
    log.info(
        "draining: %d requests in flight, %d points queued, %d channels open",
        agent.in_flight,
        agent.ingest.points,
        len(agent.channels.open),
    )
    deadline = time.monotonic() + config.drain_grace_s
    # Channels are closed at once (1001, going away): their agents reconnect to another replica
    # while this one finishes its requests.
    closing = loop.create_task(agent.channels.close_all())
    while agent.in_flight > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    agent.stopping.set()
    agent.ingest.wakeup.set()  # the flusher may be waiting out a long flush interval
    try:
        await asyncio.wait_for(flusher, max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("drain grace period over: %d points not flushed", agent.ingest.points)
    try:
        await asyncio.wait_for(closing, max(0.1, deadline - time.monotonic()))
    except TimeoutError:
        log.warning("drain grace period over: %d channels cut", agent.channels.abort())
    for task in list(agent.tasks.running):
        task.cancel()
    await runner.cleanup()
    log.info("stopped")
    return 0


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one (each channel holds a socket): the
    soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit cannot be the soft one on Linux (nr_open caps it): ask for 2**20.
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the open files limit from %d to %d: %s", soft, wanted, exc)
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stressbed-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--config", type=Path, help="a YAML file of settings")
    parser.add_argument("--version", action="version", version=f"stressbed-agent {__version__}")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    try:
        config = load(args.config, port=args.port, host=args.host)
    except ConfigError as exc:
        print(f"stressbed-agent: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(config.log_level.upper())
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    nofile = raise_open_files_limit()
    metrics.nofile_limit.set(nofile)
    log.info("open files limit %d (max_connections %d)", nofile, config.max_connections)
    try:
        return asyncio.run(serve(config))
    except OSError as exc:
        print(
            f"stressbed-agent: error: cannot listen on {config.host}:{config.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
