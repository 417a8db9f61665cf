"""k6 as a runner starts it: its environment (garbage collector, usage reports, the loopback
addresses a population connects from) and its command line (paused, on its execution
segment, its samples to the runner's stream)."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from ..results.samples import SYSTEM_TAGS
from .control import TOKEN_ENV
from .segments import segment, sequence
from .usage import memory_bound

__all__ = [
    "K6_GOGC",
    "K6_GOGC_POPULATION",
    "K6_MEMORY_SHARE",
    "k6_command",
    "k6_environment",
    "source_addresses",
]

#: k6's garbage collector in a runner: k6 allocates for every sample it writes to the CSV
#: stream, and at Go's default (GOGC=100) collecting that cost k6 about a sixth of its request
#: rate on two cores; at 400 the runner outran plain k6 (BENCHMARKS.md, "Collection").
K6_GOGC = "400"
#: ...but a population's k6 is memory-bound: its heap is its agents' sockets and state, and
#: its samples are few. At 400 (or Go's 100) the heap grows to several times what is live;
#: at 50, 15,000 agents on one runner stay under 100 KB each (BENCHMARKS.md, "Populations").
K6_GOGC_POPULATION = "50"
#: ... while the heap, which GOGC=400 lets grow to five times what is live, stays under this
#: share of the memory the runner may count on (GOMEMLIMIT: the collector then runs as often
#: as it must; at most half the CPU, Go's own cap, rather than an OOM kill).
K6_MEMORY_SHARE = 0.8


def source_addresses(target_url: str | None, index: int) -> str | None:
    """The loopback addresses runner ``index``'s VUs connect from (k6's ``--local-ips``, one
    address a VU in turn), for a population whose target is on loopback: each connection
    takes a port of the ephemeral range (32768-60999 by default, 28,232 ports) for its source
    address and destination, so from 127.0.0.1 alone a machine holds at most that many
    connections to the stack's one address. Runner ``index`` has its own 254 addresses,
    127.<1 + index // 256>.<index % 256>.1-254 (Linux routes all of 127.0.0.0/8 to loopback).
    None where that does not apply: another target (a source on loopback reaches only
    loopback), or not Linux."""
    if not sys.platform.startswith("linux") or not target_url:
        return None
    host = urlsplit(target_url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version != 4 or not address.is_loopback:
        return None
    prefix = f"127.{1 + index // 256}.{index % 256}"
    return f"{prefix}.1-{prefix}.254"


def k6_environment(
    environ: Mapping[str, str],
    count: int = 1,
    *,
    population: bool = False,
    index: int = 0,
) -> dict[str, str]:
    """The environment k6 runs with in a runner: never a usage report; whole-second unix
    timestamps, which the collector's windows are keyed by, whatever K6_CSV_TIME_FORMAT the
    user's environment holds; and its garbage collector tuned for the sample stream (a GOGC or
    GOMEMLIMIT of the user's own is kept). ``count``: the fleet's runners, which may share
    this machine's memory; ``population``: the bundle holds simulated agents (a GC for
    memory, not for the sample stream, and for a target on loopback the runner's own
    :func:`source_addresses`, ``index`` its place in the fleet; a K6_LOCAL_IPS of the user's
    own is kept). Never the control endpoint's token: the script reads k6's environment
    (``__ENV``), and it is the runner's alone."""
    env = {k: v for k, v in environ.items() if k != TOKEN_ENV}
    env |= {"K6_NO_USAGE_REPORT": "true", "K6_CSV_TIME_FORMAT": "unix"}
    env.setdefault("GOGC", K6_GOGC_POPULATION if population else K6_GOGC)
    sources = source_addresses(environ.get("TARGET_URL"), index) if population else None
    if sources is not None:
        env.setdefault("K6_LOCAL_IPS", sources)
    if "GOMEMLIMIT" not in environ:
        bound = memory_bound()
        if bound is not None:
            env["GOMEMLIMIT"] = str(int(bound * K6_MEMORY_SHARE / max(1, count)))
    return env


def k6_command(
    script: Path,
    index: int,
    count: int,
    *,
    api: str,
    samples: Path,
    summary: Path,
    tags: Iterable[str] = SYSTEM_TAGS,
) -> list[str]:
    command = [
        "k6",
        "run",
        "--paused",
        "--quiet",
        "--no-color",
        "--no-usage-report",
        "--no-thresholds",
        "--no-setup",
        "--address",
        api,
        "--execution-segment",
        segment(index, count),
        "--execution-segment-sequence",
        sequence(count),
        "--system-tags",
        ",".join(tags),
        "--out",
        f"csv={samples}",
        "--summary-export",
        str(summary),
    ]
    if index != 0:
        command.append("--no-teardown")  # teardown() runs once, in runner 0
    return [*command, str(script)]
